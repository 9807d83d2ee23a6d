import http, { type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { brotliCompressSync, gzipSync } from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'
import { hubSettings } from '../../src/sources/hub/env.js'
import { hubFetch, retryPolicy } from '../../src/sources/hub/http.js'

let servers: Server[] = []
async function serve(handler: (req: IncomingMessage, body: string, res: http.ServerResponse) => void): Promise<{ url: string; seen: { method: string; url: string; auth?: string; body: string }[] }> {
  const seen: { method: string; url: string; auth?: string; body: string }[] = []
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString()))
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, body, ...(req.headers.authorization ? { auth: req.headers.authorization } : {}) })
      handler(req, body, res)
    })
  })
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}
afterEach(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))))
  servers = []
})

const fast = retryPolicy({ retries: 2, minDelayMs: 5, maxDelayMs: 10 })
const settings = (endpoint: string) => hubSettings({ endpoint, token: 'hf_http_test', env: { HF_HOME: '/nonexistent-prefpipe-home' } })

describe('hubFetch (node:http, no undici)', () => {
  it('decodes gzip and br JSON, exposes headers, and sends the token to the endpoint only', async () => {
    const json = JSON.stringify({ hello: 'world', list: [1, 2, 3] })
    const srv = await serve((req, _body, res) => {
      const br = req.url === '/br'
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': br ? 'br' : 'gzip', link: '<http://x/next>; rel="next"' })
      res.end(br ? brotliCompressSync(json) : gzipSync(json))
    })
    const f = hubFetch(settings(srv.url), { retry: fast })
    for (const path of ['/gz', '/br']) {
      const res = await f(`${srv.url}${path}`, { headers: { Accept: 'application/json' } })
      expect(res.ok).toBe(true)
      expect(res.status).toBe(200)
      expect(res.headers.get('Link')).toBe('<http://x/next>; rel="next"')
      expect(res.headers.get('x-missing')).toBeNull()
      expect(await res.json()).toEqual(JSON.parse(json))
    }
    expect(srv.seen.every((r) => r.auth === 'Bearer hf_http_test')).toBe(true)
  })

  it('POSTs a JSON body, follows a 307 keeping it, and drops the token on a redirect to another origin', async () => {
    const other = await serve((_req, body, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ echoed: body }))
    })
    const srv = await serve((req, _body, res) => {
      if (req.url === '/api/a') {
        res.writeHead(307, { location: '/api/b' })
        return res.end()
      }
      if (req.url === '/api/b') {
        res.writeHead(307, { location: `${other.url.replace('127.0.0.1', 'localhost')}/c` })
        return res.end()
      }
      res.writeHead(404)
      res.end()
    })
    const f = hubFetch(settings(srv.url), { retry: fast })
    const res = await f(`${srv.url}/api/a`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ paths: ['x'] }) })
    expect(await res.json()).toEqual({ echoed: '{"paths":["x"]}' })
    expect(srv.seen.map((r) => `${r.method} ${r.url} ${r.body}`)).toEqual(['POST /api/a {"paths":["x"]}', 'POST /api/b {"paths":["x"]}'])
    expect(srv.seen.every((r) => r.auth === 'Bearer hf_http_test')).toBe(true)
    expect(other.seen[0]).toMatchObject({ method: 'POST', url: '/c' })
    expect(other.seen[0]!.auth).toBeUndefined()
  })

  it('throws a HubHttpError with the Hub error code and message after the retries', async () => {
    const srv = await serve((_req, _body, res) => {
      res.writeHead(503, { 'content-type': 'application/json', 'x-error-code': 'Overloaded', 'retry-after': '0' })
      res.end(JSON.stringify({ error: 'try later' }))
    })
    const err = await hubFetch(settings(srv.url), { retry: fast })(`${srv.url}/api/x`).catch((e: unknown) => e)
    expect(err).toMatchObject({ name: 'HubHttpError', status: 503, errorCode: 'Overloaded', serverMessage: 'try later' })
    expect(srv.seen).toHaveLength(3)
  })
})
