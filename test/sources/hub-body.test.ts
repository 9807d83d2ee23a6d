import { createHash, randomBytes } from 'node:crypto'
import net, { type AddressInfo, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { getBody, httpErrorOfBody, type BodyResponse } from '../../src/sources/hub/body.js'
import { hubSettings } from '../../src/sources/hub/env.js'
import { makeHasher } from '../../src/sources/hub/hasher.js'
import { useHashWorker } from '../../src/sources/hub/transfer.js'

/** A raw TCP server that answers each connection with `answer(socket, request)`: any bytes, any framing. */
let servers: Server[] = []
async function rawServer(answer: (socket: Socket, request: string) => void): Promise<{ url: string; requests: string[] }> {
  const requests: string[] = []
  const server = net.createServer((socket) => {
    let head = ''
    socket.on('data', (d) => {
      head += d.toString('latin1')
      if (!head.includes('\r\n\r\n')) return
      requests.push(head)
      answer(socket, head)
      head = ''
    })
    socket.on('error', () => {})
  })
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests }
}
afterEach(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))))
  servers = []
})

const settings = (endpoint: string, token?: string) => hubSettings({ endpoint, env: { HF_HOME: '/nonexistent-prefpipe-home' }, ...(token ? { token } : {}) })

async function readAll(r: BodyResponse): Promise<Buffer> {
  const parts: Buffer[] = []
  await r.pipe((chunk, release) => {
    parts.push(Buffer.from(chunk))
    release()
  })
  return Buffer.concat(parts)
}

describe('getBody: HTTP/1.1 framing', () => {
  const data = randomBytes(3 << 20)

  it('reads a Content-Length body; chunks held by the sink are never overwritten (the socket pauses instead)', async () => {
    const big = randomBytes(40 << 20)
    const srv = await rawServer((s) => {
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${big.length}\r\n\r\n`)
      s.end(big)
    })
    const r = await getBody(`${srv.url}/f`, { settings: settings(srv.url), timeoutMs: 5000 })
    expect(r.status).toBe(200)
    // hold the chunks (views of the read pool, not copies) for a while, check them, then let them go
    let at = 0
    let maxHeld = 0
    const held: { chunk: Buffer; release: () => void }[] = []
    const check = () => {
      for (const h of held.splice(0)) {
        expect(h.chunk.equals(big.subarray(at, at + h.chunk.length))).toBe(true)
        at += h.chunk.length
        h.release()
      }
    }
    const timer = setInterval(check, 30)
    try {
      await r.pipe((chunk, release) => {
        held.push({ chunk, release })
        maxHeld = Math.max(maxHeld, held.reduce((n, h) => n + h.chunk.length, 0))
      })
    } finally {
      clearInterval(timer)
    }
    check()
    expect(at).toBe(big.length)
    expect(maxHeld).toBeLessThanOrEqual(16 << 20)
    expect(srv.requests[0]).toMatch(/^GET \/f HTTP\/1\.1\r\n/)
    expect(srv.requests[0]).toMatch(/\r\nConnection: close\r\n/)
  })

  it('decodes a chunked body (chunk extensions, trailers), split across reads anywhere', async () => {
    const pieces = [data.subarray(0, 1), data.subarray(1, 100_000), data.subarray(100_000)]
    const wire = Buffer.concat([
      ...pieces.flatMap((p, i) => [Buffer.from(`${p.length.toString(16)}${i === 1 ? ';ext=1' : ''}\r\n`), p, Buffer.from('\r\n')]),
      Buffer.from('0\r\nX-Trailer: yes\r\n\r\n'),
    ])
    const srv = await rawServer((s) => {
      s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n')
      // dribble the framing in small writes so lines and sizes straddle reads
      let at = 0
      const step = () => {
        if (at >= wire.length) return
        const n = at < 200_000 ? 7 + (at % 13) : 1 << 20
        s.write(wire.subarray(at, at + n), () => setImmediate(step))
        at += n
      }
      step()
    })
    const r = await getBody(`${srv.url}/f`, { settings: settings(srv.url), timeoutMs: 5000 })
    expect((await readAll(r)).equals(data)).toBe(true)
  })

  it('reads a body framed by the close of the connection, and skips interim 1xx answers', async () => {
    const srv = await rawServer((s) => {
      s.write('HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n')
      s.end(Buffer.concat([Buffer.from('Content-Type: application/octet-stream\r\n\r\n'), data]))
    })
    const r = await getBody(`${srv.url}/f`, { settings: settings(srv.url), timeoutMs: 5000 })
    expect(r.status).toBe(200)
    expect(r.headers['content-type']).toBe('application/octet-stream')
    expect((await readAll(r)).equals(data)).toBe(true)
  })

  it('fails with ECONNRESET when the connection closes before Content-Length bytes, after handing over what came', async () => {
    const srv = await rawServer((s) => {
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${data.length}\r\n\r\n`)
      s.end(data.subarray(0, 1 << 20))
    })
    const r = await getBody(`${srv.url}/f`, { settings: settings(srv.url), timeoutMs: 5000 })
    let got = 0
    const err = await r
      .pipe((chunk, release) => {
        got += chunk.length
        release()
      })
      .catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ECONNRESET' })
    expect(got).toBe(1 << 20)
  })

  it('follows redirects, sending the token only to the endpoint origin', async () => {
    const cdn = await rawServer((s) => {
      s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
    })
    const hub = await rawServer((s) => {
      s.end(`HTTP/1.1 302 Found\r\nLocation: ${cdn.url.replace('127.0.0.1', 'localhost')}/blob?sig=1\r\nContent-Length: 0\r\n\r\n`)
    })
    const r = await getBody(`${hub.url}/resolve/x`, { settings: settings(hub.url, 'hf_body_test_token'), range: 5, timeoutMs: 5000 })
    expect((await readAll(r)).toString()).toBe('ok')
    expect(hub.requests[0]).toMatch(/\r\nAuthorization: Bearer hf_body_test_token\r\n/)
    expect(hub.requests[0]).toMatch(/\r\nRange: bytes=5-\r\n/)
    expect(cdn.requests[0]).toMatch(/^GET \/blob\?sig=1 HTTP\/1\.1/)
    expect(cdn.requests[0]).not.toMatch(/authorization/i)
    expect(cdn.requests[0]).toMatch(/\r\nRange: bytes=5-\r\n/)
  })

  it('turns an error answer into a HubHttpError with the server message and Retry-After', async () => {
    const srv = await rawServer((s) => {
      const body = JSON.stringify({ error: 'slow down' })
      s.end(`HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
    })
    const r = await getBody(`${srv.url}/f`, { settings: settings(srv.url), timeoutMs: 5000 })
    const err = await httpErrorOfBody(r)
    expect(err).toMatchObject({ status: 429, serverMessage: 'slow down', retryAfterMs: 7000 })
  })

  it('times out on silence, and rejects a garbage answer', async () => {
    const silent = await rawServer(() => {})
    await expect(getBody(`${silent.url}/f`, { settings: settings(silent.url), timeoutMs: 100 })).rejects.toMatchObject({ name: 'HubTimeoutError' })
    const garbage = await rawServer((s) => s.end('SSH-2.0-OpenSSH\r\n\r\n'))
    await expect(getBody(`${garbage.url}/f`, { settings: settings(garbage.url), timeoutMs: 1000 })).rejects.toThrow(/does not start with an HTTP\/1\.x status line/)
  })
})

describe('makeHasher', () => {
  const data = randomBytes(5 << 20)
  const sha = createHash('sha256').update(data).digest('hex')
  const gitOid = createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex')

  for (const worker of [false, true]) {
    it(`${worker ? 'on a worker thread' : 'on the main thread'}: sha256 and git oid, shared or private memory, reset`, async () => {
      const h = makeHasher({ worker, gitOidOfSize: data.length })
      try {
        h.update(Buffer.from('garbage before a reset'))
        h.reset()
        const shared = Buffer.from(new SharedArrayBuffer(data.length))
        data.copy(shared)
        let released = 0
        for (let at = 0; at < data.length; at += 700_000) {
          const end = Math.min(data.length, at + 700_000)
          // alternate shared memory (read in place) and ordinary buffers (copied)
          h.update(at % 1_400_000 === 0 ? shared.subarray(at, end) : data.subarray(at, end), () => released++)
        }
        expect(await h.digest()).toEqual({ sha256: sha, gitOid })
        expect(released).toBe(Math.ceil(data.length / 700_000))
      } finally {
        h.close()
      }
    })
  }

  it('uses a worker only for big files on a machine with cores to spare, unless forced', () => {
    expect(useHashWorker(1 << 20, {})).toBe(false)
    expect(useHashWorker(1 << 30, { PREFPIPE_HASH_WORKER: '1' })).toBe(true)
    expect(useHashWorker(1, { PREFPIPE_HASH_WORKER: '1' })).toBe(true)
    expect(useHashWorker(1 << 30, { PREFPIPE_HASH_WORKER: '0' })).toBe(false)
  })
})
