/**
 * A Hugging Face Hub on 127.0.0.1 for tests and benchmarks: the routes `@huggingface/hub`, prefpipe and
 * Python's `huggingface_hub` use to download dataset files, with the Hub's headers and error codes, plus
 * fault injection (status codes with Retry-After, cut bodies, ignored Range, a down server, a mirror without
 * `/api/`, connection resets, silent hangs, a lying Content-Length). Bodies are served from memory (Buffer) or streamed from disk (a path), with Range.
 *
 * Routes:
 *   GET  /api/datasets/{repo}[/revision/{rev}]          info: { id, sha, private, gated, siblings }
 *   GET  /api/datasets/{repo}/tree/{rev}[/{dir}]        ?recursive=&expand=&cursor= , paged with Link: rel="next"
 *   POST /api/datasets/{repo}/paths-info/{rev}          JSON { paths, expand } or form paths=&expand=
 *   GET  /api/datasets/{repo}/refs                      { branches, tags, converts }
 *   HEAD|GET /datasets/{repo}/resolve/{rev}/{path}      LFS: 302 to /cdn/{sha256} with X-Repo-Commit, X-Linked-Etag,
 *                                                       X-Linked-Size; small files: the body (Range honoured)
 *   HEAD|GET /cdn/{sha256}                              the LFS body, Range honoured (206/416), no auth; served
 *                                                       on a second port (another origin, like the real CDN)
 * Errors carry X-Error-Code (RepoNotFound, GatedRepo, RevisionNotFound, EntryNotFound) and a JSON { error }.
 *
 * With `tls`, the Hub and/or the CDN speak HTTPS (HTTP/1.1 by ALPN) with the given key and certificate, as the
 * real Hub and CDN do; the test makes the client trust the certificate (e.g. `NODE_EXTRA_CA_CERTS`).
 */
import { createHash } from 'node:crypto'
import { createReadStream, readFileSync, statSync } from 'node:fs'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import https from 'node:https'
import type { AddressInfo, Socket } from 'node:net'

/** A file of the mock repo: bytes, or a path on disk (streamed; for big benchmark files). */
export type MockFileInput = Buffer | string | { content?: Buffer; path?: string; lfs?: boolean; sha256?: string }

export interface MockRepoInput {
  /** Files at `main`. */
  files: Record<string, MockFileInput>
  /** Other revisions (branches, tags, `refs/convert/parquet`), each with its own files. */
  revisions?: Record<string, Record<string, MockFileInput>>
  /** A private repo: only this token sees it (others get 401/404 RepoNotFound). */
  token?: string
  /** A gated repo: these tokens were granted access; another token gets 403, none 401. */
  gated?: string[]
}

export interface MockHubOptions {
  repos: Record<string, MockRepoInput>
  /** Tree entries per page (default 1000). */
  pageSize?: number
  /** Tokens that exist but have no special access (a valid token for 403 tests). */
  validTokens?: string[]
  /**
   * Serve HTTPS with this PEM key and certificate: on the Hub (`hub`, default true) and/or on the CDN (`cdn`,
   * default true); the other one stays plain http. `hostname` is the Hub's host in its URL (default
   * `127.0.0.1`; `localhost` makes clients send SNI); the certificate must name it and the CDN's 127.0.0.2.
   */
  tls?: { key: string | Buffer; cert: string | Buffer; hub?: boolean; cdn?: boolean; hostname?: string }
}

/** One request as the mock saw it. */
export interface MockRequest {
  method: string
  /** The path with its query, as sent. */
  url: string
  /** The decoded path. */
  path: string
  range?: string
  authorization?: string
  /** Over TLS: the SNI name the client sent (none for an IP address) and the protocol ALPN chose. */
  servername?: string
  alpn?: string
}

export interface MockFaults {
  /** Answer the next `times` requests whose `"<METHOD> <path>"` matches with `status` (and `Retry-After`). */
  fail: { match: RegExp; status: number; times: number; retryAfter?: string }[]
  /** Cut the next `times` bodies served from /cdn after `bytes` bytes (the socket is destroyed). */
  cut?: { bytes: number; times: number }
  /** Send /cdn bodies `bytes` at a time every `everyMs` (slow downloads, to overlap two clients). */
  throttle?: { bytes: number; everyMs: number }
  /** Answer Range requests on /cdn with the whole body (200). */
  ignoreRange?: boolean
  /** Flip one byte of the next `n` /cdn bodies. */
  corrupt?: number
  /** Answer HEAD on /resolve without the Hub's X-Repo-Commit, ETag and X-Linked-* headers (a proxy that strips them). */
  bareHead?: boolean
  /** Answer every /api/ route 404 without an error code (a mirror that serves only /resolve). */
  noApi?: boolean
  /** Destroy every new connection at once (a Hub that cannot be reached). */
  down?: boolean
  /**
   * Reset (TCP RST) the connection of the next `times` requests whose `"<METHOD> <path>"` matches: at once,
   * before any answer, or (for bodies) after the headers and `afterBytes` bytes of the body.
   */
  reset?: { match: RegExp; times: number; afterBytes?: number }
  /** Never answer the next `times` matching requests (the connection stays open, silent). */
  hang?: { match: RegExp; times: number }
  /**
   * The next `times` /cdn bodies declare a `Content-Length` off by `delta` bytes (shorter or longer than the
   * bytes sent), then the connection is closed after the real body.
   */
  contentLength?: { delta: number; times: number }
  /** Send /cdn GET bodies with `Transfer-Encoding: chunked` (no Content-Length), in chunks of this many bytes. */
  chunked?: number
}

export interface MockFile {
  path: string
  size: number
  sha256: string
  /** The git blob oid: of the LFS pointer for LFS files, of the bytes otherwise. */
  gitOid: string
  lfs: boolean
  pointerSize: number
  content?: Buffer
  diskPath?: string
}

export interface MockHub {
  /** `http://127.0.0.1:<port>` (`https://` and `tls.hostname` with `tls`): pass as `endpoint` or `HF_ENDPOINT`. */
  url: string
  /** The CDN the LFS files redirect to: another port, so another origin. */
  cdnUrl: string
  requests: MockRequest[]
  faults: MockFaults
  /** The commit sha of a revision (default `main`). */
  commit(repo: string, revision?: string): string
  file(repo: string, path: string, revision?: string): MockFile
  /** Requests that fetched file bytes (resolve GETs of small files and every /cdn GET). */
  bodyRequests(): MockRequest[]
  close(): Promise<void>
}

const sha1 = (b: Buffer | string) => createHash('sha1').update(b).digest('hex')

/**
 * Reset (TCP RST) a connection. `resetAndDestroy` works on TCP handles only: a TLS socket is reset through the
 * TCP socket under it.
 */
function rst(socket: Socket): void {
  const raw = (socket as Socket & { _parent?: Socket | null })._parent
  ;(raw ?? socket).resetAndDestroy()
}

function makeFile(path: string, input: MockFileInput): MockFile {
  const spec = Buffer.isBuffer(input) ? { content: input } : typeof input === 'string' ? { content: Buffer.from(input) } : input
  const content = spec.content
  const size = content ? content.length : statSync(spec.path!).size
  const sha256 = spec.sha256 ?? createHash('sha256').update(content ?? readFileSync(spec.path!)).digest('hex')
  const lfs = spec.lfs ?? (size >= 1024 || path.endsWith('.parquet'))
  const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${size}\n`
  const gitOid = lfs ? sha1(`blob ${pointer.length}\0${pointer}`) : sha1(Buffer.concat([Buffer.from(`blob ${size}\0`), content ?? readFileSync(spec.path!)]))
  const f: MockFile = { path, size, sha256, gitOid, lfs, pointerSize: pointer.length }
  if (content) f.content = content
  else f.diskPath = spec.path!
  return f
}

interface Revision {
  name: string
  commit: string
  files: Map<string, MockFile>
}

interface Repo {
  id: string
  input: MockRepoInput
  revisions: Revision[]
}

/** Parse `bytes=a-b`, `bytes=a-`, `bytes=-n`. `null`: no (usable) range; `'unsatisfiable'`: 416. */
function parseRange(header: string | undefined, size: number): { start: number; end: number } | null | 'unsatisfiable' {
  const m = header ? /^bytes=(\d*)-(\d*)$/.exec(header.trim()) : null
  if (!m) return null
  if (m[1] === '' && m[2] === '') return null
  if (m[1] === '') {
    const n = Number(m[2])
    return n === 0 ? 'unsatisfiable' : { start: Math.max(0, size - n), end: size - 1 }
  }
  const start = Number(m[1])
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)
  if (start >= size || end < start) return 'unsatisfiable'
  return { start, end }
}

/**
 * Start a mock Hub on 127.0.0.1 (an ephemeral port).
 *
 * @example
 * const hub = await startMockHub({ repos: { 'llamafactory/RLHF-V': { files: { 'rlhf-v.parquet': bytes, 'README.md': '# mock' } } } })
 * await downloadDatasetFile({ repo: 'llamafactory/RLHF-V', file: 'rlhf-v.parquet', endpoint: hub.url, cacheDir })
 * hub.faults.fail.push({ match: /\/cdn\//, status: 503, times: 2, retryAfter: '1' })
 * await hub.close()
 */
export async function startMockHub(o: MockHubOptions): Promise<MockHub> {
  const repos = new Map<string, Repo>()
  for (const [id, input] of Object.entries(o.repos)) {
    const revs: Revision[] = [{ name: 'main', commit: sha1(`${id}@main`), files: new Map(Object.entries(input.files).map(([p, f]) => [p, makeFile(p, f)])) }]
    for (const [name, files] of Object.entries(input.revisions ?? {})) {
      revs.push({ name, commit: sha1(`${id}@${name}`), files: new Map(Object.entries(files).map(([p, f]) => [p, makeFile(p, f)])) })
    }
    repos.set(id, { id, input, revisions: revs })
  }
  const blobs = new Map<string, MockFile>()
  for (const r of repos.values()) for (const rev of r.revisions) for (const f of rev.files.values()) if (f.lfs) blobs.set(f.sha256, f)
  const knownTokens = new Set<string>(o.validTokens ?? [])
  for (const r of repos.values()) {
    if (r.input.token) knownTokens.add(r.input.token)
    for (const t of r.input.gated ?? []) knownTokens.add(t)
  }

  const requests: MockRequest[] = []
  const faults: MockFaults = { fail: [] }
  const pageSize = o.pageSize ?? 1000
  let base = ''
  let cdnBase = ''

  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const text = JSON.stringify(body)
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers })
    res.end(text)
  }
  const error = (res: ServerResponse, status: number, code: string | undefined, message: string) =>
    json(res, status, { error: message }, { ...(code ? { 'x-error-code': code } : {}), 'x-error-message': message })

  const revisionOf = (repo: Repo, rev: string) => repo.revisions.find((r) => r.name === rev || r.commit === rev)

  /** Auth rules of the Hub. Returns false (and answers) when the request may not see the repo. */
  const authorize = (req: IncomingMessage, res: ServerResponse, id: string): Repo | undefined => {
    const auth = req.headers.authorization
    const token = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined
    if (token !== undefined && !knownTokens.has(token)) {
      error(res, 401, undefined, 'Invalid credentials in Authorization header')
      return undefined
    }
    const repo = repos.get(id)
    if (!repo || (repo.input.token && token !== repo.input.token)) {
      if (token) error(res, 404, 'RepoNotFound', 'Repository not found')
      else error(res, 401, 'RepoNotFound', 'Repository not found')
      return undefined
    }
    if (repo.input.gated && !(token && repo.input.gated.includes(token))) {
      if (!token) error(res, 401, 'GatedRepo', `Access to dataset ${id} is restricted. You must have access to it and be authenticated to access it. Please log in.`)
      else error(res, 403, 'GatedRepo', `Access to dataset ${id} is restricted and you are not in the authorized list. Visit ${base}/datasets/${id} to ask for access.`)
      return undefined
    }
    return repo
  }

  const treeEntry = (f: MockFile) => ({
    type: 'file',
    oid: f.gitOid,
    size: f.size,
    path: f.path,
    ...(f.lfs ? { lfs: { oid: f.sha256, size: f.size, pointerSize: f.pointerSize } } : {}),
  })

  const serveBody = (req: IncomingMessage, res: ServerResponse, f: MockFile, headers: Record<string, string>, fromCdn: boolean) => {
    const range = fromCdn && faults.ignoreRange ? null : parseRange(req.headers.range, f.size)
    if (range === 'unsatisfiable') {
      res.writeHead(416, { 'content-range': `bytes */${f.size}`, ...headers })
      res.end()
      return
    }
    const start = range ? range.start : 0
    const end = range ? range.end : f.size - 1
    const length = end - start + 1
    const lying = fromCdn && req.method === 'GET' && faults.contentLength && faults.contentLength.times > 0 ? faults.contentLength : undefined
    if (lying) {
      lying.times--
      const body = (f.content ?? readFileSync(f.diskPath!)).subarray(start, end + 1)
      // bypass node:http (it would refuse a body that disagrees with its Content-Length): raw bytes on the socket
      const socket = res.socket!
      const head = [`HTTP/1.1 ${range ? '206 Partial Content' : '200 OK'}`, 'Content-Type: application/octet-stream', `Content-Length: ${Math.max(0, length + lying.delta)}`, 'Accept-Ranges: bytes', 'Connection: close']
      if (range) head.push(`Content-Range: bytes ${start}-${end}/${f.size}`)
      for (const [k, v] of Object.entries(headers)) head.push(`${k}: ${v}`)
      socket.write(`${head.join('\r\n')}\r\n\r\n`)
      socket.end(body)
      return
    }
    const chunked = fromCdn && req.method === 'GET' && faults.chunked ? faults.chunked : undefined
    res.writeHead(range ? 206 : 200, {
      'content-type': 'application/octet-stream',
      ...(chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(length) }),
      'accept-ranges': 'bytes',
      ...(range ? { 'content-range': `bytes ${start}-${end}/${f.size}` } : {}),
      ...headers,
    })
    if (req.method === 'HEAD') {
      res.end()
      return
    }
    const reset = faults.reset && faults.reset.afterBytes !== undefined && faults.reset.times > 0 && faults.reset.match.test(`${req.method} ${decodeURIComponent(req.url ?? '').split('?')[0]}`) ? faults.reset : undefined
    if (reset) {
      reset.times--
      const body = (f.content ?? readFileSync(f.diskPath!)).subarray(start, end + 1)
      res.write(body.subarray(0, Math.min(reset.afterBytes!, body.length)), () => res.socket && rst(res.socket))
      return
    }
    const cut = fromCdn && faults.cut && faults.cut.times > 0 ? faults.cut : undefined
    if (cut) cut.times--
    const corrupt = fromCdn && (faults.corrupt ?? 0) > 0
    if (corrupt) faults.corrupt!--
    const throttle = fromCdn ? faults.throttle : undefined
    if (!f.content) {
      createReadStream(f.diskPath!, { start, end, highWaterMark: 1 << 20 }).pipe(res)
      return
    }
    let body = f.content.subarray(start, end + 1)
    if (corrupt) {
      body = Buffer.from(body)
      body[Math.floor(body.length / 2)]! ^= 0xff
    }
    if (cut) {
      // end (FIN) rather than destroy (RST): the client gets exactly `bytes` bytes, then a premature close
      res.write(body.subarray(0, Math.min(cut.bytes, body.length)), () => res.socket?.end())
      return
    }
    if (chunked) {
      // one write per chunk (node:http frames each write as one chunk)
      for (let at = 0; at < body.length; at += chunked) res.write(body.subarray(at, at + chunked))
      res.end()
      return
    }
    if (!throttle) {
      res.end(body)
      return
    }
    let at = 0
    const tick = () => {
      if (res.destroyed) return
      const next = body.subarray(at, at + throttle.bytes)
      at += next.length
      if (at >= body.length) res.end(next)
      else res.write(next, () => setTimeout(tick, throttle.everyMs).unref())
    }
    tick()
  }

  const handleApi = async (req: IncomingMessage, res: ServerResponse, url: URL, parts: string[]) => {
    // parts: ['api', 'datasets', owner, name, action?, ...]
    if (faults.noApi) return error(res, 404, undefined, 'Not Found')
    const id = `${parts[2]}/${parts[3]}`
    const repo = authorize(req, res, id)
    if (!repo) return
    const action = parts[4]
    const raw = url.pathname.split('/').slice(6) // raw segments after the action
    if (action === undefined || action === 'revision') {
      const revName = action === undefined ? 'main' : decodeURIComponent(raw.join('/'))
      const rev = revisionOf(repo, revName)
      if (!rev) return error(res, 404, 'RevisionNotFound', `Invalid rev id: ${revName}`)
      return json(res, 200, {
        _id: sha1(id).slice(0, 24),
        id,
        private: !!repo.input.token,
        gated: repo.input.gated ? 'manual' : false,
        sha: rev.commit,
        lastModified: '2024-01-01T00:00:00.000Z',
        downloads: 0,
        likes: 0,
        siblings: [...rev.files.keys()].map((rfilename) => ({ rfilename })),
      })
    }
    if (action === 'refs') {
      const branches = repo.revisions.filter((r) => !r.name.startsWith('refs/')).map((r) => ({ name: r.name, ref: `refs/heads/${r.name}`, targetCommit: r.commit }))
      const converts = repo.revisions.filter((r) => r.name.startsWith('refs/convert/')).map((r) => ({ name: r.name.slice('refs/convert/'.length), ref: r.name, targetCommit: r.commit }))
      return json(res, 200, { branches, tags: [], converts })
    }
    const revName = decodeURIComponent(raw[0] ?? '')
    const rev = revisionOf(repo, revName)
    if (!rev) return error(res, 404, 'RevisionNotFound', `Invalid rev id: ${revName}`)
    if (action === 'tree') {
      const dir = raw.slice(1).map(decodeURIComponent).join('/')
      const recursive = url.searchParams.get('recursive') === 'true'
      const files = [...rev.files.values()].filter((f) => !dir || f.path.startsWith(`${dir}/`)).sort((a, b) => a.path.localeCompare(b.path))
      if (dir && files.length === 0) return error(res, 404, 'EntryNotFound', `${dir} does not exist on "${revName}"`)
      const entries: unknown[] = []
      const dirs = new Set<string>()
      for (const f of files) {
        const rest = dir ? f.path.slice(dir.length + 1) : f.path
        if (!recursive && rest.includes('/')) {
          const d = (dir ? `${dir}/` : '') + rest.split('/')[0]!
          if (!dirs.has(d)) entries.push({ type: 'directory', oid: sha1(d), size: 0, path: d })
          dirs.add(d)
        } else entries.push(treeEntry(f))
      }
      const cursor = Number(url.searchParams.get('cursor') ?? 0)
      const page = entries.slice(cursor, cursor + pageSize)
      const headers: Record<string, string> = {}
      if (cursor + pageSize < entries.length) {
        const next = new URL(url.href, base)
        next.searchParams.set('cursor', String(cursor + pageSize))
        headers.link = `<${base}${next.pathname}${next.search}>; rel="next"`
      }
      return json(res, 200, page, headers)
    }
    if (action === 'paths-info' && req.method === 'POST') {
      const body = await readBody(req)
      let paths: string[] = []
      if ((req.headers['content-type'] ?? '').includes('application/json')) paths = (JSON.parse(body) as { paths: string[] }).paths
      else paths = new URLSearchParams(body).getAll('paths')
      return json(res, 200, paths.flatMap((p) => (rev.files.has(p) ? [treeEntry(rev.files.get(p)!)] : [])))
    }
    return error(res, 404, undefined, 'Not Found')
  }

  const handleResolve = (req: IncomingMessage, res: ServerResponse, url: URL, parts: string[]) => {
    // parts: ['datasets', owner, name, 'resolve', rev, ...path]
    const id = `${parts[1]}/${parts[2]}`
    const repo = authorize(req, res, id)
    if (!repo) return
    const raw = url.pathname.split('/')
    const revName = decodeURIComponent(raw[5] ?? '')
    const rev = revisionOf(repo, revName)
    if (!rev) return error(res, 404, 'RevisionNotFound', `Invalid rev id: ${revName}`)
    const path = raw.slice(6).map(decodeURIComponent).join('/')
    const f = rev.files.get(path)
    // the Hub names the commit it looked in (huggingface_hub records `.no_exist/<commit>/<path>` from it)
    if (!f) return json(res, 404, { error: 'Entry not found' }, { 'x-error-code': 'EntryNotFound', 'x-error-message': 'Entry not found', 'x-repo-commit': rev.commit })
    const common = { 'x-repo-commit': rev.commit, 'access-control-expose-headers': 'X-Repo-Commit, X-Linked-Etag, X-Linked-Size' }
    if (faults.bareHead && req.method === 'HEAD') {
      res.writeHead(200, { 'content-type': 'text/html' })
      res.end()
      return
    }
    if (f.lfs) {
      res.writeHead(302, {
        location: `${cdnBase}/cdn/${f.sha256}?sig=mock`,
        'x-linked-etag': `"${f.sha256}"`,
        'x-linked-size': String(f.size),
        etag: `"${f.gitOid}"`,
        'content-length': '0',
        ...common,
      })
      res.end()
      return
    }
    serveBody(req, res, f, { etag: `"${f.gitOid}"`, ...common }, false)
  }

  const handler: http.RequestListener = (req, res) => {
    if (faults.down) {
      req.socket.destroy() // also kept-alive connections opened before the Hub went down
      return
    }
    const url = new URL(req.url ?? '/', base)
    const path = decodeURIComponent(url.pathname)
    const entry: MockRequest = { method: req.method ?? 'GET', url: req.url ?? '/', path }
    if (req.headers.range) entry.range = req.headers.range
    if (req.headers.authorization) entry.authorization = req.headers.authorization
    const secure = req.socket as Socket & { servername?: string | false; alpnProtocol?: string | false; encrypted?: boolean }
    if (secure.encrypted) {
      if (secure.servername) entry.servername = secure.servername
      if (secure.alpnProtocol) entry.alpn = secure.alpnProtocol
    }
    requests.push(entry)
    const key = `${entry.method} ${path}`
    if (faults.reset && faults.reset.afterBytes === undefined && faults.reset.times > 0 && faults.reset.match.test(key)) {
      faults.reset.times--
      rst(req.socket)
      return
    }
    if (faults.hang && faults.hang.times > 0 && faults.hang.match.test(key)) {
      faults.hang.times--
      req.resume()
      return // silence: the client's timeout must cut it
    }
    const injected = faults.fail.find((f) => f.times > 0 && f.match.test(key))
    if (injected) {
      injected.times--
      req.resume()
      return json(res, injected.status, { error: `injected ${injected.status}` }, injected.retryAfter ? { 'retry-after': injected.retryAfter } : {})
    }
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent)
    Promise.resolve()
      .then(() => {
        if (parts[0] === 'api' && parts[1] === 'datasets' && parts.length >= 4) return handleApi(req, res, url, parts)
        if (parts[0] === 'datasets' && parts[3] === 'resolve' && parts.length >= 6) return handleResolve(req, res, url, parts)
        if (parts[0] === 'cdn' && parts[1] && (req.method === 'GET' || req.method === 'HEAD')) {
          const f = blobs.get(parts[1])
          if (!f) return error(res, 404, undefined, 'NoSuchKey')
          return serveBody(req, res, f, { etag: `"${f.sha256}"` }, true)
        }
        return error(res, 404, undefined, 'Not Found')
      })
      .catch((err: unknown) => {
        if (!res.headersSent) error(res, 500, undefined, String(err))
        else res.destroy()
      })
  }

  const tlsOptions = o.tls
  const create = (secure: boolean): http.Server =>
    secure && tlsOptions ? https.createServer({ key: tlsOptions.key, cert: tlsOptions.cert, ALPNProtocols: ['http/1.1'] }, handler) : http.createServer(handler)
  const hubSecure = !!tlsOptions && tlsOptions.hub !== false
  const cdnSecure = !!tlsOptions && tlsOptions.cdn !== false
  const server = create(hubSecure)
  // The CDN is another server on another host (127.0.0.2, as the real CDN is another host): clients must not
  // send it the token, and Python's huggingface_hub stops its HEAD only at a redirect to another hostname.
  const cdn = create(cdnSecure)
  const sockets = new Set<Socket>()
  for (const srv of [server, cdn]) {
    srv.on('connection', (s) => {
      if (faults.down) {
        s.destroy()
        return
      }
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
    })
  }
  const listen = (srv: http.Server, host: string) =>
    new Promise<void>((resolve, reject) => {
      srv.once('error', reject)
      srv.listen(0, host, () => {
        srv.off('error', reject)
        resolve()
      })
    })
  await listen(server, '127.0.0.1')
  // Linux routes all of 127/8 to loopback; elsewhere fall back to the Hub's own host
  const cdnHost = await listen(cdn, '127.0.0.2').then(
    () => '127.0.0.2',
    () => listen(cdn, '127.0.0.1').then(() => '127.0.0.1'),
  )
  base = `${hubSecure ? 'https' : 'http'}://${tlsOptions?.hostname ?? '127.0.0.1'}:${(server.address() as AddressInfo).port}`
  cdnBase = `${cdnSecure ? 'https' : 'http'}://${cdnHost}:${(cdn.address() as AddressInfo).port}`

  const find = (repo: string, revision = 'main') => {
    const r = repos.get(repo)
    const rev = r && revisionOf(r, revision)
    if (!rev) throw new Error(`mock hub: no ${repo}@${revision}`)
    return rev
  }
  return {
    url: base,
    cdnUrl: cdnBase,
    requests,
    faults,
    commit: (repo, revision) => find(repo, revision).commit,
    file(repo, path, revision) {
      const f = find(repo, revision).files.get(path)
      if (!f) throw new Error(`mock hub: no ${path} in ${repo}`)
      return f
    },
    bodyRequests: () => requests.filter((r) => r.method === 'GET' && (r.path.startsWith('/cdn/') || /\/resolve\//.test(r.path))),
    close: async () => {
      for (const s of sockets) s.destroy()
      await Promise.all([server, cdn].map((srv) => new Promise<void>((resolve) => srv.close(() => resolve()))))
    },
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}
