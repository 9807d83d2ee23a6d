import net, { type Socket } from 'node:net'
import tls from 'node:tls'
import { abortError } from '../../pipeline/errors.js'
import type { HubSettings } from './env.js'
import { HubHttpError, stripQuery } from './errors.js'
import { HubTimeoutError, hubHttpError, sameOrigin, USER_AGENT } from './http.js'

/**
 * The GET of a file's bytes, on a bare TCP/TLS socket that reads into a few reused buffers (`onread`).
 *
 * Why not node:http or fetch: on a fast link they cost two to five times curl's CPU per byte, measured
 * (BENCHMARKS.md, "Hub download"). Every socket read allocates a fresh 64 KiB buffer (page faults, GC), and
 * each one walks the parser, the stream machinery and `pipe`. Here the kernel copies straight into a pool of
 * sixteen 1 MiB slabs (shared memory, so a hashing worker can read them in place), each read into the free
 * tail of the current slab, reads as big as what the socket holds (hundreds of KiB on loopback); a slab goes
 * back to the pool once every chunk cut from it is released (written and hashed), and the socket pauses when
 * none is free (backpressure: at most 16 MiB of body in memory whatever the file's size).
 *
 * It speaks just the HTTP/1.1 a file download needs: one GET per connection (`Connection: close`), the
 * status line and headers, bodies framed by `Content-Length`, `Transfer-Encoding: chunked` or the close of
 * the connection, interim 1xx answers skipped, redirects followed (the token goes only to the endpoint's
 * origin, never to the CDN a Hub redirects to). Metadata requests still go through `fetch`/node:http.
 */

/** Bytes of one slab of the read pool. */
const SLAB = 1 << 20
/** Slabs per connection: the most body bytes held in memory at once. */
const SLABS = 16
/** A read goes into the current slab while this much of it is left, else into the next slab. */
const MIN_TAIL = 128 * 1024
/** Longest status line + headers accepted. */
const MAX_HEAD = 64 * 1024

/** An answer whose body has not been read yet. */
export interface BodyResponse {
  status: number
  /** Header names in lower case; repeated headers joined with `, `. */
  headers: Record<string, string>
  /** The URL that answered (after redirects). */
  url: string
  /**
   * Hand every body byte to `sink`, in order. A chunk's memory is reused once `release()` is called, so the
   * sink must be done with it (written, hashed) by then; until enough chunks are released the socket is
   * paused. Resolves at the end of the body; rejects when it is cut short (`ECONNRESET`), stalls past the
   * timeout ({@link HubTimeoutError}) or the signal aborts. Every chunk received before a failure has been
   * handed to the sink by the time the promise settles.
   */
  pipe(sink: (chunk: Buffer, release: () => void) => void): Promise<void>
  /** The body as text (at most `max` bytes kept), for error messages. */
  text(max?: number): Promise<string>
  /** Close the connection without reading further. */
  destroy(): void
}

export interface BodyRequestOptions {
  settings: HubSettings
  /** Ask for the bytes from this offset on (`Range: bytes=<range>-`) when above 0. */
  range?: number
  /** Longest silence on the socket (connecting, waiting for headers, or mid-body), in ms. */
  timeoutMs: number
  signal?: AbortSignal
  onRequest?: (url: string) => void
}

/**
 * GET `url` (following redirects) and resolve once the final answer's headers are in.
 *
 * @example
 * const r = await getBody(url, { settings, range: 1024, timeoutMs: 10_000 })
 * if (r.status === 206) await r.pipe((chunk, release) => { hash.update(chunk); release() })
 */
export async function getBody(url: string, o: BodyRequestOptions): Promise<BodyResponse> {
  let current = url
  for (let left = 10; ; left--) {
    const r = await getOnce(current, o)
    const location = r.headers.location
    if (r.status >= 300 && r.status < 400 && r.status !== 304 && location) {
      r.destroy()
      if (left <= 0) throw new HubHttpError(r.status, current, undefined, 'too many redirects')
      current = new URL(location, current).href
      continue
    }
    return r
  }
}

type Framing = { kind: 'length'; left: number } | { kind: 'chunked' } | { kind: 'close' } | { kind: 'none' }

function getOnce(url: string, o: BodyRequestOptions): Promise<BodyResponse> {
  const { signal } = o
  if (signal?.aborted) return Promise.reject(abortError(signal))
  const target = new URL(url)
  if (target.protocol !== 'http:' && target.protocol !== 'https:') return Promise.reject(new Error(`[prefpipe] cannot download from ${stripQuery(url)}: not an http(s) URL`))
  const secure = target.protocol === 'https:'
  const host = target.hostname.startsWith('[') ? target.hostname.slice(1, -1) : target.hostname
  const port = Number(target.port) || (secure ? 443 : 80)
  const lines = [`GET ${target.pathname}${target.search} HTTP/1.1`, `Host: ${target.host}`, `User-Agent: ${USER_AGENT}`, 'Accept: */*', 'Accept-Encoding: identity', 'Connection: close']
  if (o.range !== undefined && o.range > 0) lines.push(`Range: bytes=${o.range}-`)
  if (o.settings.token && sameOrigin(url, o.settings.endpoint)) lines.push(`Authorization: Bearer ${o.settings.token}`)
  o.onRequest?.(url)

  // --- the read pool: reads fill a slab from the front (each read into the free tail of the current slab), and a
  // slab is free again when the reader has moved past it and every chunk cut from it has been released
  const free: Buffer[] = []
  const refs = new Map<ArrayBufferLike, number>()
  let allocated = 0
  const take = (): Buffer => {
    const b = free.pop()
    if (b) return b
    allocated++
    // shared memory, so that a hashing worker reads the bytes in place
    return Buffer.from(new SharedArrayBuffer(SLAB))
  }
  const available = () => free.length + (SLABS - allocated)
  let paused = false
  const unref = (key: ArrayBufferLike) => {
    const n = (refs.get(key) ?? 0) - 1
    if (n > 0) {
      refs.set(key, n)
      return
    }
    refs.delete(key)
    free.push(Buffer.from(key as SharedArrayBuffer))
    if (paused && !socket.destroyed) {
      paused = false
      socket.resume()
    }
  }
  /** The slab being filled (its reader's hold is one of its refs), how much of it is used, and the next read's buffer. */
  let slab = take()
  refs.set(slab.buffer, 1)
  let used = 0
  let nextBuffer: Buffer = slab
  /** After a read of `n` bytes: where the next one goes; false when the socket must pause until a release. */
  const advance = (n: number): boolean => {
    used += n
    if (SLAB - used >= MIN_TAIL) {
      nextBuffer = slab.subarray(used)
      // the read after this one may need a fresh slab
      return available() >= 1
    }
    const old = slab.buffer
    slab = take()
    refs.set(slab.buffer, 1)
    used = 0
    nextBuffer = slab
    unref(old)
    return available() >= 1
  }

  // --- the parser state
  let head: Buffer[] = []
  let headBytes = 0
  let framing: Framing | undefined
  let chunkLeft = 0 // chunked: data bytes left in the current chunk
  let chunkLine = '' // chunked: a size line (or the CRLF after the data, or the trailers) being read
  let chunkState: 'size' | 'data' | 'crlf' | 'trailer' = 'size'
  let ended = false
  let failure: Error | undefined
  const queue: { chunk: Buffer; slab: Buffer }[] = []
  let sink: ((chunk: Buffer, release: () => void) => void) | undefined
  let settle: { resolve: () => void; reject: (err: Error) => void } | undefined

  const deliver = (chunk: Buffer, _slab: Buffer) => {
    if (chunk.length === 0) return
    const key = chunk.buffer
    refs.set(key, (refs.get(key) ?? 0) + 1)
    if (sink) {
      let done = false
      sink(chunk, () => {
        if (!done) {
          done = true
          unref(key)
        }
      })
    } else queue.push({ chunk, slab: _slab })
  }
  const finish = (err?: Error) => {
    if (ended) return
    ended = true
    if (err) failure = err
    if (!socket.destroyed) socket.destroy()
    if (sink && settle) {
      if (failure) settle.reject(failure)
      else settle.resolve()
    }
  }

  /** Body bytes of one read (a view of `slab`), framed. */
  const body = (data: Buffer, slab: Buffer) => {
    const f = framing!
    if (f.kind === 'none') return
    if (f.kind === 'close') return deliver(data, slab)
    if (f.kind === 'length') {
      const n = Math.min(f.left, data.length)
      deliver(data.subarray(0, n), slab)
      f.left -= n
      if (f.left === 0) finish()
      return
    }
    let at = 0
    while (at < data.length && !ended) {
      if (chunkState === 'data') {
        const n = Math.min(chunkLeft, data.length - at)
        deliver(data.subarray(at, at + n), slab)
        at += n
        chunkLeft -= n
        if (chunkLeft === 0) chunkState = 'crlf'
        continue
      }
      const nl = data.indexOf(10, at)
      const end = nl < 0 ? data.length : nl + 1
      chunkLine += data.toString('latin1', at, end)
      at = end
      if (chunkLine.length > 4096) return finish(badResponse(url, 'a chunk header is too long'))
      if (nl < 0) continue
      const line = chunkLine.trim()
      chunkLine = ''
      if (chunkState === 'crlf') {
        if (line !== '') return finish(badResponse(url, 'a chunk does not end with CRLF'))
        chunkState = 'size'
      } else if (chunkState === 'size') {
        const size = Number.parseInt(line.split(';')[0]!, 16)
        if (!/^[0-9a-f]+$/i.test(line.split(';')[0]!.trim()) || !Number.isSafeInteger(size)) return finish(badResponse(url, `a chunk size "${line.slice(0, 40)}" is not hexadecimal`))
        if (size === 0) chunkState = 'trailer'
        else {
          chunkLeft = size
          chunkState = 'data'
        }
      } else if (line === '') return finish() // the blank line after the (ignored) trailers
    }
  }

  let answer: { resolve: (r: BodyResponse) => void; reject: (err: Error) => void }
  const response = new Promise<BodyResponse>((resolve, reject) => {
    answer = { resolve, reject }
  })
  let answered = false

  /** Bytes of the head, then the body that followed it in the same read. */
  const onHead = (data: Buffer, slab: Buffer) => {
    const prev = headBytes
    head.push(Buffer.from(data)) // copied: the slab is reused
    headBytes += data.length
    const all = Buffer.concat(head, headBytes)
    const end = all.indexOf('\r\n\r\n', Math.max(0, prev - 3))
    if (end < 0) {
      if (headBytes > MAX_HEAD) finish(badResponse(url, `the response headers are longer than ${MAX_HEAD} bytes`))
      return
    }
    const lines = all.toString('latin1', 0, end).split('\r\n')
    const m = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0] ?? '')
    if (!m) return finish(badResponse(url, `the answer does not start with an HTTP/1.x status line ("${(lines[0] ?? '').slice(0, 60)}")`))
    const status = Number(m[1])
    const rest = data.subarray(data.length - (headBytes - end - 4))
    if (status >= 100 && status < 200) {
      // an interim answer (100 Continue, 103 Early Hints): the real one follows
      head = []
      headBytes = 0
      if (rest.length > 0) onHead(rest, slab)
      return
    }
    const headers: Record<string, string> = {}
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':')
      if (colon <= 0) continue
      const name = line.slice(0, colon).trim().toLowerCase()
      const value = line.slice(colon + 1).trim()
      headers[name] = name in headers ? `${headers[name]}, ${value}` : value
    }
    head = []
    const te = (headers['transfer-encoding'] ?? '').toLowerCase()
    const cl = headers['content-length']
    if (status === 204 || status === 304) framing = { kind: 'none' }
    else if (te.includes('chunked')) framing = { kind: 'chunked' }
    else if (cl !== undefined && /^\d+$/.test(cl)) framing = { kind: 'length', left: Number(cl) }
    else if (cl !== undefined) return finish(badResponse(url, `Content-Length "${cl.slice(0, 40)}" is not a number`))
    else framing = { kind: 'close' }
    answered = true
    answer.resolve(makeResponse(status, headers))
    if (framing.kind === 'none' || (framing.kind === 'length' && framing.left === 0)) return finish()
    if (rest.length > 0) body(rest, slab)
  }

  const makeResponse = (status: number, headers: Record<string, string>): BodyResponse => ({
    status,
    headers,
    url,
    pipe(fn) {
      if (sink) return Promise.reject(new Error('the body is already being read'))
      return new Promise<void>((resolve, reject) => {
        settle = { resolve, reject }
        sink = fn
        for (const q of queue.splice(0)) {
          let done = false
          fn(q.chunk, () => {
            if (!done) {
              done = true
              unref(q.chunk.buffer)
            }
          })
        }
        if (ended) {
          if (failure) reject(failure)
          else resolve()
        }
      })
    },
    async text(max = 64 * 1024) {
      const parts: Buffer[] = []
      let n = 0
      await this.pipe((chunk, release) => {
        if (n < max) parts.push(Buffer.from(chunk.subarray(0, max - n)))
        n += chunk.length
        release()
      }).catch(() => {})
      return Buffer.concat(parts).toString('utf8')
    },
    destroy() {
      finish()
    },
  })

  const onread = {
    buffer: () => nextBuffer,
    callback: (n: number, buf: Buffer): boolean => {
      if (ended) return true
      const data = buf.subarray(0, n)
      if (framing === undefined) onHead(data, buf)
      else body(data, buf)
      if (ended) return true
      if (advance(n)) return true
      paused = true
      return false
    },
  }
  const socket: Socket = secure
    ? // `onread` works on TLS sockets too (Node docs of tls.connect), though @types/node omits it
      tls.connect({ host, port, ...(net.isIP(host) ? {} : { servername: host }), ALPNProtocols: ['http/1.1'], onread } as tls.ConnectionOptions)
    : net.connect({ host, port, onread })
  socket.setNoDelay(true)
  socket.setTimeout(o.timeoutMs, () => socket.destroy(new HubTimeoutError(`no data from ${stripQuery(url)} for ${o.timeoutMs} ms`)))
  const onAbort = () => socket.destroy(abortError(signal!))
  signal?.addEventListener('abort', onAbort, { once: true })
  socket.once(secure ? 'secureConnect' : 'connect', () => socket.write(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'))
  socket.on('error', (err) => {
    failure ??= signal?.aborted ? abortError(signal) : secure && !answered && isCertificateError(err) ? untrusted(url, err) : err
  })
  socket.once('close', () => {
    signal?.removeEventListener('abort', onAbort)
    if (!answered) {
      answered = true
      answer.reject(failure ?? Object.assign(new Error(`${stripQuery(url)} closed the connection before answering`), { code: 'ECONNRESET' }))
      return
    }
    if (ended) return
    if (failure) return finish(failure)
    if (framing?.kind === 'close') return finish()
    finish(Object.assign(new Error(`${stripQuery(url)} closed the connection mid-body`), { code: 'ECONNRESET' }))
  })
  return response
}

/** An error of the TLS certificate check (OpenSSL's verify codes, and Node's check of the host name). */
function isCertificateError(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code ?? ''
  return /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_TLS_CERT_ALTNAME/.test(code)
}

/**
 * A certificate the client does not trust. Node's own message ("unable to verify the first certificate") names
 * neither the host nor a way out: say both. The code stays (it is not a network error, so not retried).
 */
function untrusted(url: string, err: Error): Error {
  const code = (err as NodeJS.ErrnoException).code
  return Object.assign(
    new Error(
      `[prefpipe] cannot download from ${stripQuery(url)}: its TLS certificate is not trusted (${err.message}${code ? `, ${code}` : ''}). ` +
        `If a proxy or a private CA signs it, point NODE_EXTRA_CA_CERTS at that CA's PEM file`,
      { cause: err },
    ),
    { code },
  )
}

function badResponse(url: string, why: string): Error {
  return Object.assign(new Error(`${stripQuery(url)}: ${why}`), { code: 'HPE_INVALID_CONSTANT' })
}

/** The {@link HubHttpError} of a failed answer (reads and releases its body). */
export async function httpErrorOfBody(r: BodyResponse): Promise<HubHttpError> {
  const text = await r.text().catch(() => '')
  return hubHttpError(r.status, r.url, (n) => r.headers[n], text)
}
