/**
 * The real download path over HTTPS, as against the real Hub and its CDN: the body client of
 * src/sources/hub/body.ts on `tls.connect` (SNI, ALPN http/1.1, certificate checks), after a 302 from the Hub to
 * a CDN on another origin (127.0.0.2).
 *
 * The certificates are made here with the `openssl` CLI (skipped without it): a test CA, a leaf for
 * `localhost`, 127.0.0.1 and 127.0.0.2 signed by it, and a second CA that signed nothing the mock serves. The
 * client trusts the test CA the way a user behind a TLS-inspecting proxy would, through `NODE_EXTRA_CA_CERTS`,
 * so everything runs in child processes on the built code (`npm run build` first): the CLI
 * (`dist/cli/main.js download`), and for the fault cases the library's `downloadDatasetFile` with
 * millisecond backoff (the CLI waits a second before a retry). Production code trusts only the system's CAs.
 */
import { execFile, execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { CLI, ROOT, run } from '../helpers.js'
import { DATA, DATA_SHA, FAST_RETRY, FILE, README, REPO, scratch } from '../mock-hub/fixtures.js'
import { startMockHub, type MockHub } from '../mock-hub/server.js'

const ROOT_DIR = 'datasets--llamafactory--RLHF-V'
const TOKEN = 'hf_httpsTestTokenThatMustStayOnTheHub'
const LIBRARY = join(ROOT, 'dist', 'sources', 'hub', 'download.js')
const BODY = join(ROOT, 'dist', 'sources', 'hub', 'body.js')
/** More than the body client's 16 MiB read pool, to see it pause a TLS socket. */
const BIG = 'big.parquet'
const BIG_DATA = randomBytes(24 << 20)

const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()

const openssl = (args: string[], cwd: string) =>
  new Promise<void>((resolve, reject) => {
    execFile('openssl', args, { cwd }, (err, _stdout, stderr) => (err ? reject(new Error(`openssl ${args[0]}: ${stderr || err.message}`)) : resolve()))
  })

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']

/** A CA (`<name>-ca.pem`) and, when `leaf`, a server certificate it signed (`<name>.pem`, `<name>.key`). */
async function makeCa(dir: string, name: string, leaf: boolean): Promise<void> {
  await openssl(['req', '-x509', ...EC, '-keyout', `${name}-ca.key`, '-out', `${name}-ca.pem`, '-days', '2', '-subj', `/CN=prefpipe ${name} test CA`], dir)
  if (!leaf) return
  await writeFile(join(dir, `${name}.ext`), 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1,IP:127.0.0.2\n')
  await openssl(['req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=localhost'], dir)
  await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${name}-ca.pem`, '-CAkey', `${name}-ca.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`], dir)
}

let certs: string
/** Endpoint https://localhost (SNI) → CDN https://127.0.0.2. */
let secureHub: MockHub
/** Endpoint http://127.0.0.1 → CDN https://127.0.0.2. */
let mixedHub: MockHub
let s: Awaited<ReturnType<typeof scratch>>

beforeAll(async () => {
  if (!hasOpenssl) return
  certs = await mkdtemp(join(tmpdir(), 'prefpipe-tls-'))
  await Promise.all([makeCa(certs, 'trusted', true), makeCa(certs, 'rogue', false)])
  const tls = { key: await readFile(join(certs, 'trusted.key')), cert: await readFile(join(certs, 'trusted.pem')) }
  const repos = { [REPO]: { files: { [FILE]: DATA, 'README.md': README } } }
  secureHub = await startMockHub({ repos, validTokens: [TOKEN], tls: { ...tls, hostname: 'localhost' } })
  mixedHub = await startMockHub({ repos: { [REPO]: { files: { ...repos[REPO].files, [BIG]: BIG_DATA } } }, validTokens: [TOKEN], tls: { ...tls, hub: false } })
})
afterAll(async () => {
  await secureHub?.close()
  await mixedHub?.close()
  if (certs) await rm(certs, { recursive: true, force: true })
})
beforeEach(async () => {
  s = await scratch()
  for (const hub of [secureHub, mixedHub]) {
    if (!hub) continue
    hub.requests.length = 0
    hub.faults.fail.length = 0
    for (const k of ['cut', 'reset', 'chunked', 'hang'] as const) delete hub.faults[k]
  }
})
afterEach(() => s.cleanup())

/** The environment of a child: the user's minus every HF_ variable, the scratch cache, and the CA file to trust. */
function childEnv(hub: MockHub, ca: 'trusted' | 'rogue' = 'trusted', extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('HF_') && k !== 'NODE_EXTRA_CA_CERTS' && k !== 'PREFPIPE_DEBUG') env[k] = v
  return { ...env, HF_ENDPOINT: hub.url, HF_HOME: s.home, HF_HUB_CACHE: s.cacheDir, HF_TOKEN: TOKEN, NODE_EXTRA_CA_CERTS: join(certs, `${ca}-ca.pem`), ...extra }
}

const cli = (hub: MockHub, args: string[], ca: 'trusted' | 'rogue' = 'trusted', extra: NodeJS.ProcessEnv = {}) =>
  run(process.execPath, [CLI, 'download', REPO, ...args, '--no-progress', '--json'], { env: childEnv(hub, ca, extra) })

/** `downloadDatasetFile` of the built library in a child, with millisecond backoff; prints the result as JSON. */
const SCRIPT = `
const { downloadDatasetFile } = await import(process.env.TEST_LIBRARY)
const o = JSON.parse(process.env.TEST_OPTIONS)
const lines = []
try {
  const f = await downloadDatasetFile({ ...o, log: { warn: (m) => lines.push('warn: ' + m), debug: (m) => lines.push('debug: ' + m), info: () => {} } })
  process.stdout.write(JSON.stringify({ ok: true, path: f.path, sha256: f.sha256, size: f.size, lines }))
} catch (err) {
  process.stdout.write(JSON.stringify({ ok: false, code: err.code, message: err.message, lines }))
}
`
async function library(hub: MockHub, file: string): Promise<{ ok: boolean; path?: string; sha256?: string; message?: string; lines: string[] }> {
  const options = { repo: REPO, file, endpoint: hub.url, cacheDir: s.cacheDir, env: { HF_HOME: s.home }, retry: FAST_RETRY }
  const r = await run(process.execPath, ['--input-type=module', '-e', SCRIPT], { env: childEnv(hub, 'trusted', { TEST_LIBRARY: LIBRARY, TEST_OPTIONS: JSON.stringify(options) }) })
  expect(r.stderr).toBe('')
  expect(r.code).toBe(0)
  return JSON.parse(r.stdout) as { ok: boolean; path?: string; sha256?: string; lines: string[] }
}

/**
 * `getBody` of the built body client in a child, on `url`, with a sink that holds the chunks (a stuck disk)
 * until it holds 12 MiB, then 200 ms more (2 s at most) before it releases them all: prints the body's sha256
 * and the most bytes held at once.
 */
const BODY_SCRIPT = `
const { createHash } = await import('node:crypto')
const { getBody } = await import(process.env.TEST_BODY)
const r = await getBody(process.env.TEST_URL, { settings: { endpoint: process.env.HF_ENDPOINT }, timeoutMs: 10000 })
const hash = createHash('sha256')
const held = []
let timer
let soon = false
let holding = 0
let most = 0
const flush = () => {
  timer = undefined
  soon = false
  for (const [n, done] of held.splice(0)) {
    holding -= n
    done()
  }
}
await r.pipe((chunk, release) => {
  hash.update(chunk)
  holding += chunk.length
  most = Math.max(most, holding)
  held.push([chunk.length, release])
  if (holding >= 12 << 20 && !soon) {
    clearTimeout(timer)
    timer = setTimeout(flush, 200)
    soon = true
  } else timer ??= setTimeout(flush, 2000)
})
clearTimeout(timer)
flush()
process.stdout.write(JSON.stringify({ status: r.status, sha256: hash.digest('hex'), most }))
`

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** Every blob is named by its sha256 (LFS) or git oid (small files); `.incomplete` partials are listed apart. */
async function blobs(): Promise<{ complete: string[]; partial: string[] }> {
  const dir = join(s.cacheDir, ROOT_DIR, 'blobs')
  const names = existsSync(dir) ? await readdir(dir) : []
  const complete = names.filter((n) => !n.endsWith('.incomplete') && !n.endsWith('.lock'))
  for (const n of complete) {
    const bytes = await readFile(join(dir, n))
    const gitOid = createHash('sha1').update(Buffer.concat([Buffer.from(`blob ${bytes.length}\0`), bytes])).digest('hex')
    expect([sha256(bytes), gitOid], `blobs/${n} is not named by its hash`).toContain(n)
  }
  return { complete, partial: names.filter((n) => n.endsWith('.incomplete')) }
}

/** The data file is in the cache, verified: the snapshot entry resolves to the blob named by its sha256. */
async function expectCached(path: string): Promise<void> {
  expect(path).toBe(join(s.cacheDir, ROOT_DIR, 'snapshots', secureHub.commit(REPO), FILE))
  const bytes = await readFile(path)
  expect(bytes.length).toBe(DATA.length)
  expect(sha256(bytes)).toBe(DATA_SHA)
  const b = await blobs()
  expect(b.complete).toContain(DATA_SHA)
  expect(b.partial).toEqual([])
}

const cdnGets = (hub: MockHub) => hub.requests.filter((q) => q.method === 'GET' && q.path.startsWith('/cdn/'))

describe.skipIf(!hasOpenssl)('downloads over HTTPS (self-signed test CA trusted through NODE_EXTRA_CA_CERTS)', () => {
  it('endpoint https://localhost: metadata, a small file and the 302 to the https CDN, with SNI and ALPN http/1.1; sha256 verified', async () => {
    expect(secureHub.url).toMatch(/^https:\/\/localhost:\d+$/)
    expect(secureHub.cdnUrl).toMatch(/^https:\/\/127\.0\.0\.\d:\d+$/)
    const r = await cli(secureHub, ['--file', FILE, 'README.md'])
    expect(r.stderr).toBe(`prefpipe download: ${REPO}@main (commit ${secureHub.commit(REPO).slice(0, 7)}): 2 files, 5.2 MB downloaded and sha256-verified\n`)
    expect(r.code).toBe(0)
    const [data, readme] = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { path: string; sha256: string; size: number; fromCache: boolean })
    expect(data).toMatchObject({ sha256: DATA_SHA, size: DATA.length, fromCache: false })
    await expectCached(data!.path)
    expect(await readFile(readme!.path, 'utf8')).toBe(README)

    // every request went over TLS: SNI `localhost` to the Hub, none to the CDN's IP address; the body client
    // (the GETs of bytes) asks for ALPN http/1.1. The metadata is one HEAD per file on its resolve URL (the
    // second at the commit the first answered), then the LFS body straight from the CDN URL of the first HEAD's
    // redirect, and the small file's body from the Hub
    const commit = secureHub.commit(REPO)
    expect(secureHub.requests.map((q) => `${q.method} ${q.path}`)).toEqual([
      `HEAD /datasets/${REPO}/resolve/main/${FILE}`,
      `HEAD /datasets/${REPO}/resolve/${commit}/README.md`,
      `GET /cdn/${DATA_SHA}`,
      `GET /datasets/${REPO}/resolve/${commit}/README.md`,
    ])
    const bodies = secureHub.bodyRequests()
    expect(bodies.map((q) => q.path.split('/')[1])).toEqual(['cdn', 'datasets'])
    for (const q of bodies) expect(q.alpn, `${q.method} ${q.path}`).toBe('http/1.1')
    for (const q of secureHub.requests) expect(q.servername, `${q.method} ${q.path}`).toBe(q.path.startsWith('/cdn/') ? undefined : 'localhost')
    const cdn = cdnGets(secureHub)
    expect(cdn).toHaveLength(1)
    expect(cdn[0]!.range).toBeUndefined()
    // the token went to the Hub, never to the CDN
    expect(secureHub.requests.some((q) => q.path.includes('/resolve/') && q.authorization === `Bearer ${TOKEN}`)).toBe(true)
    expect(cdn[0]!.authorization).toBeUndefined()
  })

  it('endpoint http, CDN https: a chunked body (no Content-Length) over TLS', async () => {
    expect(mixedHub.url).toMatch(/^http:\/\//)
    expect(mixedHub.cdnUrl).toMatch(/^https:\/\//)
    mixedHub.faults.chunked = 100_003 // odd sizes: chunk headers fall anywhere in the TLS records
    const r = await cli(mixedHub, ['--file', FILE])
    expect(r.stderr).toMatch(/: 1 file, 5\.2 MB downloaded and sha256-verified\n$/)
    expect(r.code).toBe(0)
    await expectCached((JSON.parse(r.stdout) as { path: string }).path)
    const cdn = cdnGets(mixedHub)
    expect(cdn).toHaveLength(1)
    expect(cdn[0]).toMatchObject({ alpn: 'http/1.1' })
    expect(cdn[0]!.authorization).toBeUndefined()
  })

  it('resumes the .incomplete left by an earlier run from where it stopped, with Range over TLS', async () => {
    const blobsDir = join(s.cacheDir, ROOT_DIR, 'blobs')
    await mkdir(blobsDir, { recursive: true })
    const have = 1_234_567
    await writeFile(join(blobsDir, `${DATA_SHA}.incomplete`), DATA.subarray(0, have))
    const r = await cli(secureHub, ['--file', FILE])
    expect(r.stderr).toMatch(/: 1 file, .* downloaded and sha256-verified\n$/)
    expect(r.code).toBe(0)
    await expectCached((JSON.parse(r.stdout) as { path: string }).path)
    expect(cdnGets(secureHub).map((q) => q.range)).toEqual([`bytes=${have}-`])
  })

  it('a connection closed mid-body (Content-Length) resumes with Range from the bytes that arrived', async () => {
    secureHub.faults.cut = { bytes: 3 << 20, times: 1 }
    const r = await library(secureHub, FILE)
    expect(r).toMatchObject({ ok: true, sha256: DATA_SHA })
    await expectCached(r.path!)
    expect(cdnGets(secureHub).map((q) => q.range)).toEqual([undefined, `bytes=${3 << 20}-`])
    expect(r.lines.some((l) => /ECONNRESET/.test(l))).toBe(true)
  })

  it('a connection reset (RST) mid-body, on a chunked body, resumes and completes', async () => {
    mixedHub.faults.chunked = 65_537
    mixedHub.faults.reset = { match: /^GET \/cdn\//, times: 2, afterBytes: 2 << 20 }
    const r = await library(mixedHub, FILE)
    expect(r).toMatchObject({ ok: true, sha256: DATA_SHA })
    await expectCached(r.path!)
    const ranges = cdnGets(mixedHub).map((q) => q.range)
    expect(ranges).toHaveLength(3)
    expect(ranges[0]).toBeUndefined()
  })

  it('pauses the TLS socket while the sink holds the 16 MiB read pool, and resumes it', async () => {
    const url = `${mixedHub.cdnUrl}/cdn/${sha256(BIG_DATA)}`
    const r = await run(process.execPath, ['--input-type=module', '-e', BODY_SCRIPT], { env: childEnv(mixedHub, 'trusted', { TEST_BODY: BODY, TEST_URL: url }) })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout) as { status: number; sha256: string; most: number }
    expect(out).toMatchObject({ status: 200, sha256: sha256(BIG_DATA) })
    // the pool filled up, and for 200 ms nothing was released: the socket paused rather than read past 16 MiB
    expect(out.most).toBeGreaterThanOrEqual(12 << 20)
    expect(out.most).toBeLessThanOrEqual(16 << 20)
  })

  it('a certificate the client does not trust fails at once with a clear error, and leaves no blob', async () => {
    const started = Date.now()
    // the CDN's certificate (the body client), and the Hub's (the metadata requests) at the same time
    const [r, hubToo] = await Promise.all([cli(mixedHub, ['--file', FILE], 'rogue'), cli(secureHub, ['--file', FILE], 'rogue', { HF_HUB_CACHE: join(s.dir, 'other') })])
    // no retries: they would take 1 + 2 + 4 + 8 + 8 s with the CLI's backoff
    expect(Date.now() - started).toBeLessThan(10_000)
    expect(hubToo.code).toBe(1)
    expect(hubToo.stderr).toMatch(/certificate/i)
    expect(existsSync(join(s.dir, 'other', ROOT_DIR, 'blobs'))).toBe(false)
    expect(r.code).toBe(1)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/certificate/i)
    expect(r.stderr).toContain(mixedHub.cdnUrl.replace(/^https:\/\//, ''))
    expect(r.stderr).toContain('NODE_EXTRA_CA_CERTS')
    expect(cdnGets(mixedHub)).toHaveLength(0) // the handshake failed: no request was sent
    const b = await blobs()
    expect(b.complete).toEqual([])
    for (const n of b.partial) expect((await readFile(join(s.cacheDir, ROOT_DIR, 'blobs', n))).length, n).toBe(0)
    expect(existsSync(join(s.cacheDir, ROOT_DIR, 'snapshots', mixedHub.commit(REPO), FILE))).toBe(false)
  })
})
