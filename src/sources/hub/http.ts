import http, { type IncomingMessage } from 'node:http'
import https from 'node:https'
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib'
import { abortError } from '../../pipeline/errors.js'
import type { HubSettings } from './env.js'
import { HubHttpError, isNetworkError, stripQuery } from './errors.js'

/** How failed requests are retried. Delays double from `minDelayMs` up to `maxDelayMs` (±20 % jitter). */
export interface RetryOptions {
  /** Retries after the first attempt (default 5, as huggingface_hub). */
  retries?: number
  /** First backoff delay in ms (default 1000). */
  minDelayMs?: number
  /** Longest backoff delay in ms (default 8000). */
  maxDelayMs?: number
  /** Longest wait a `Retry-After` header can impose, in ms (default 300 000); longer asks are cut to this. */
  maxRetryAfterMs?: number
}

export type RetryPolicy = Required<RetryOptions>

/** 408, 429 and the 5xx that mean "try again", as huggingface_hub retries them. */
export const RETRY_STATUS: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504])

export function retryPolicy(o: RetryOptions = {}): RetryPolicy {
  return { retries: o.retries ?? 5, minDelayMs: o.minDelayMs ?? 1000, maxDelayMs: o.maxDelayMs ?? 8000, maxRetryAfterMs: o.maxRetryAfterMs ?? 300_000 }
}

export const USER_AGENT = `prefpipe (node ${process.versions.node})`

/** Delay before retry number `n` (1-based); a server's `Retry-After` wins when it asks for longer. */
export function backoffMs(n: number, p: RetryPolicy, retryAfterMs?: number): number {
  const base = Math.min(p.maxDelayMs, p.minDelayMs * 2 ** (n - 1))
  const jittered = base * (0.8 + Math.random() * 0.4)
  return retryAfterMs === undefined ? jittered : Math.max(jittered, Math.min(retryAfterMs, p.maxRetryAfterMs))
}

/** `Retry-After` as ms: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null | undefined): number | undefined {
  if (!value) return undefined
  const secs = Number(value)
  if (Number.isFinite(secs) && secs >= 0) return secs * 1000
  const at = Date.parse(value)
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now())
}

/** Wait `ms`, or reject with an AbortError as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortError(signal))
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer)
      reject(abortError(signal!))
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** An attempt that took longer than its timeout. Counted as a network error (retried). */
export class HubTimeoutError extends Error {
  override name = 'HubTimeoutError'
}

/** The retry decision for an error thrown by an attempt. */
function retryable(err: unknown): { retry: boolean; afterMs?: number } {
  if (err instanceof HubHttpError) return RETRY_STATUS.has(err.status) ? { retry: true, ...(err.retryAfterMs === undefined ? {} : { afterMs: err.retryAfterMs }) } : { retry: false }
  return { retry: isNetworkError(err) }
}

/**
 * Run `attempt` until it succeeds, retrying network errors and {@link RETRY_STATUS} answers with backoff (and
 * `Retry-After`). Rethrows the last error once the retries are spent, and an AbortError when `signal` aborts.
 */
export async function withRetry<T>(attempt: (n: number) => Promise<T>, policy: RetryPolicy, signal?: AbortSignal, onRetry?: (err: unknown, delayMs: number) => void): Promise<T> {
  for (let n = 1; ; n++) {
    if (signal?.aborted) throw abortError(signal)
    try {
      return await attempt(n)
    } catch (err) {
      if (signal?.aborted) throw abortError(signal)
      const r = retryable(err)
      if (!r.retry || n > policy.retries) throw err
      const delay = backoffMs(n, policy, r.afterMs)
      onRetry?.(err, delay)
      await sleep(delay, signal)
    }
  }
}

/** Whether `url` is on the endpoint's origin: only those requests carry the token. */
export function sameOrigin(url: string, endpoint: string): boolean {
  try {
    return new URL(url).origin === new URL(endpoint).origin
  } catch {
    return false
  }
}

/**
 * The subset of the WHATWG `Response` that `@huggingface/hub`'s metadata calls read (`ok`, `status`,
 * `headers.get`, `json()`, `text()`), over a body already read into memory. Not `fetch`'s own `Response`:
 * constructing one loads undici, which costs 30 to 100 ms of start-up on every run (measured); node:http is
 * loaded already.
 */
class MetadataResponse {
  readonly ok: boolean
  readonly redirected = false
  readonly type = 'basic'
  readonly bodyUsed = false
  readonly headers: { get(name: string): string | null; has(name: string): boolean; forEach(fn: (value: string, key: string) => void): void }
  constructor(
    readonly status: number,
    readonly statusText: string,
    readonly url: string,
    raw: IncomingMessage['headers'],
    private readonly bytes: Buffer,
  ) {
    this.ok = status >= 200 && status < 300
    const one = (name: string): string | null => {
      const v = raw[name.toLowerCase()]
      return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v
    }
    this.headers = {
      get: one,
      has: (name) => one(name) !== null,
      forEach: (fn) => {
        for (const k of Object.keys(raw)) fn(one(k)!, k)
      },
    }
  }
  async text(): Promise<string> {
    return this.bytes.toString('utf8')
  }
  async json(): Promise<unknown> {
    return JSON.parse(this.bytes.toString('utf8')) as unknown
  }
  async arrayBuffer(): Promise<ArrayBuffer> {
    return this.bytes.buffer.slice(this.bytes.byteOffset, this.bytes.byteOffset + this.bytes.length) as ArrayBuffer
  }
}

/** The request headers of a `fetch` init, as a plain object with lower-case names. */
function headersOf(h: RequestInit['headers']): Record<string, string> {
  const out: Record<string, string> = {}
  if (!h) return out
  if (Array.isArray(h)) for (const [k, v] of h) out[k!.toLowerCase()] = v!
  else if (typeof (h as Headers).get === 'function' && typeof (h as Headers).forEach === 'function') (h as Headers).forEach((v, k) => (out[k.toLowerCase()] = v))
  else for (const [k, v] of Object.entries(h as Record<string, string>)) out[k.toLowerCase()] = v
  return out
}

/** Decode a gzip/deflate/br body (the Hub compresses its JSON). */
function decode(body: Buffer, encoding: string | undefined): Buffer {
  switch ((encoding ?? '').trim().toLowerCase()) {
    case 'gzip':
    case 'x-gzip':
      return gunzipSync(body)
    case 'deflate':
      return inflateSync(body)
    case 'br':
      return brotliDecompressSync(body)
    default:
      return body
  }
}

/**
 * One metadata request with node:http(s): `fetch` semantics for what the Hub's API needs (methods with a
 * string body, redirects followed with the token dropped when the origin changes and POST turned into GET on
 * 301/302/303, gzip/br bodies decoded), the whole (small) body read before it resolves.
 */
function metadataRequest(url: string, init: RequestInit, o: { timeoutMs: number; signal: AbortSignal }): Promise<MetadataResponse> {
  const hop = (current: string, method: string, headers: Record<string, string>, body: string | undefined, left: number): Promise<MetadataResponse> =>
    new Promise<MetadataResponse>((resolve, reject) => {
      const target = new URL(current)
      const lib = target.protocol === 'https:' ? https : target.protocol === 'http:' ? http : undefined
      if (!lib) return reject(new TypeError(`fetch failed: ${stripQuery(current)} is not an http(s) URL`))
      const req = lib.request(target, { method, headers: body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) }, signal: o.signal })
      req.setTimeout(o.timeoutMs, () => req.destroy(new HubTimeoutError(`no answer from ${stripQuery(current)} in ${o.timeoutMs} ms`)))
      req.once('error', reject)
      req.once('response', (res) => {
        const status = res.statusCode ?? 0
        const location = res.headers.location
        if ([301, 302, 303, 307, 308].includes(status) && location && init.redirect !== 'manual') {
          res.resume()
          if (left <= 0) return reject(new TypeError(`fetch failed: too many redirects from ${stripQuery(url)}`))
          const next = new URL(location, current).href
          const h = { ...headers }
          if (!sameOrigin(next, current)) delete h.authorization
          const toGet = status === 303 || ((status === 301 || status === 302) && method === 'POST')
          if (toGet) delete h['content-type']
          hop(next, toGet ? 'GET' : method, h, toGet ? undefined : body, left - 1).then(resolve, reject)
          return
        }
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.once('error', reject)
        res.once('aborted', () => reject(Object.assign(new Error(`${stripQuery(current)} closed the connection mid-body`), { code: 'ECONNRESET' })))
        res.once('end', () => {
          try {
            resolve(new MetadataResponse(status, res.statusMessage ?? '', current, res.headers, decode(Buffer.concat(chunks), res.headers['content-encoding'])))
          } catch (err) {
            reject(err)
          }
        })
      })
      req.end(body)
    })
  const body = init.body === undefined || init.body === null ? undefined : typeof init.body === 'string' ? init.body : undefined
  if (init.body !== undefined && init.body !== null && body === undefined) return Promise.reject(new TypeError('hubFetch sends string bodies only'))
  return hop(url, (init.method ?? 'GET').toUpperCase(), headersOf(init.headers), body, 20)
}

/**
 * The {@link HubHttpError} of a failed answer, whatever client read it: the Hub's `X-Error-Message` (else the
 * `error`/`message` of a JSON body, else the body's start), `X-Error-Code`, and `Retry-After`.
 */
export function hubHttpError(status: number, url: string, header: (name: string) => string | undefined, text: string): HubHttpError {
  let message = header('x-error-message')
  if (!message && text) {
    try {
      const json = JSON.parse(text) as { error?: unknown; message?: unknown }
      const m = json.error ?? json.message
      if (typeof m === 'string') message = m
    } catch {
      message = text.slice(0, 200)
    }
  }
  const err = new HubHttpError(status, url, header('x-error-code'), message)
  const after = parseRetryAfter(header('retry-after'))
  if (after !== undefined) err.retryAfterMs = after
  return err
}

/** Build the {@link HubHttpError} of a failed metadata answer (its body is already read). */
async function httpErrorOf(res: MetadataResponse, url: string): Promise<HubHttpError> {
  return hubHttpError(res.status, url, (n) => res.headers.get(n) ?? undefined, await res.text())
}

/**
 * A `fetch` for `@huggingface/hub`'s metadata calls that adds what the library lacks: the token (only to the
 * endpoint's origin, so it never leaks to a CDN), a timeout per attempt (`HF_HUB_ETAG_TIMEOUT`, the longest
 * silence while waiting for the answer or its body), retries of network errors and 408/429/5xx with backoff
 * and `Retry-After`, and the caller's AbortSignal. A non-2xx answer (after retries) is thrown as a
 * {@link HubHttpError}, so the library never sees it. It runs on node:http, not undici: the answer is a
 * `Response` with what the library reads (`ok`, `status`, `headers.get`, `json()`, `text()`), its body read.
 *
 * @example
 * const f = hubFetch(hubSettings(), { retry: retryPolicy() })
 * for await (const file of listFiles({ repo: 'datasets/llamafactory/RLHF-V', hubUrl: s.endpoint, fetch: f })) console.log(file.path)
 */
export function hubFetch(
  s: HubSettings,
  o: { retry: RetryPolicy; signal?: AbortSignal; onRequest?: (url: string) => void; log?: { debug(message: string): void } },
): typeof fetch {
  return async (input: string | URL | Request, init: RequestInit = {}) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url
    if (s.offline) throw new Error(`[prefpipe] offline mode (HF_HUB_OFFLINE) forbids the request to ${stripQuery(url)}`)
    const headers = headersOf(init.headers)
    if (s.token && sameOrigin(url, s.endpoint)) headers.authorization = `Bearer ${s.token}`
    headers['user-agent'] = USER_AGENT
    headers['accept-encoding'] ??= 'gzip, deflate, br'
    return withRetry(
      async () => {
        o.onRequest?.(url)
        const controller = new AbortController()
        const onAbort = () => controller.abort(o.signal!.reason)
        o.signal?.addEventListener('abort', onAbort, { once: true })
        try {
          const res = await metadataRequest(url, { ...init, headers }, { timeoutMs: s.metadataTimeoutMs, signal: controller.signal })
          if (res.ok) return res as unknown as Response
          throw await httpErrorOf(res, url)
        } catch (err) {
          if (o.signal?.aborted) throw abortError(o.signal)
          throw err
        } finally {
          o.signal?.removeEventListener('abort', onAbort)
        }
      },
      o.retry,
      o.signal,
      (err, delay) => o.log?.debug(`${stripQuery(url)}: ${err instanceof Error ? err.message : String(err)}; retrying in ${Math.round(delay)} ms`),
    )
  }
}

/** What {@link request} resolves to: the final response (its body not read yet) and its URL. */
export interface OpenResponse {
  res: IncomingMessage
  url: string
}

/**
 * One HTTP request with node:http(s), following redirects itself so the token goes only to the endpoint's
 * origin. Used for the metadata `HEAD` on a resolve URL; file bodies go through {@link getBody} (`body.ts`), which
 * costs a fraction of node:http's CPU per byte. `follow: 'same-origin'` stops at a redirect to another origin (the
 * CDN); `'hub-head'` also stops at one that carries `X-Linked-Etag` (the file's own answer, wherever it points),
 * as huggingface_hub's HEAD does to read `X-Repo-Commit`, `X-Linked-Etag`, `X-Linked-Size` and `Location` from the 302. The socket's idle timeout is `timeoutMs`; the
 * response errors with a {@link HubTimeoutError} when it fires.
 */
export function request(
  url: string,
  o: {
    settings: HubSettings
    method?: 'GET' | 'HEAD'
    range?: number
    follow?: 'all' | 'same-origin' | 'hub-head'
    timeoutMs: number
    signal?: AbortSignal
    onRequest?: (url: string) => void
  },
): Promise<OpenResponse> {
  const hop = (current: string, left: number): Promise<OpenResponse> =>
    new Promise<OpenResponse>((resolve, reject) => {
      const target = new URL(current)
      const headers: Record<string, string> = { 'user-agent': USER_AGENT, 'accept-encoding': 'identity' }
      if (o.range !== undefined && o.range > 0) headers.range = `bytes=${o.range}-`
      if (o.settings.token && sameOrigin(current, o.settings.endpoint)) headers.authorization = `Bearer ${o.settings.token}`
      o.onRequest?.(current)
      const lib = target.protocol === 'https:' ? https : http
      const req = lib.request(target, { method: o.method ?? 'GET', headers, ...(o.signal ? { signal: o.signal } : {}) })
      req.setTimeout(o.timeoutMs, () => req.destroy(new HubTimeoutError(`no data from ${stripQuery(current)} for ${o.timeoutMs} ms`)))
      req.once('error', (err) => reject(o.signal?.aborted ? abortError(o.signal) : err))
      req.once('response', (res) => {
        const status = res.statusCode ?? 0
        const location = res.headers.location
        if (status >= 300 && status < 400 && location && status !== 304) {
          const next = new URL(location, current).href
          // 'hub-head': a redirect carrying the file's X-Linked-Etag is the file's answer, wherever it points
          const answer = o.follow === 'hub-head' && res.headers['x-linked-etag'] !== undefined
          if (answer || (o.follow !== undefined && o.follow !== 'all' && !sameOrigin(next, current))) {
            resolve({ res, url: current })
            return
          }
          res.resume()
          if (left <= 0) {
            reject(new HubHttpError(status, current, undefined, 'too many redirects'))
            return
          }
          hop(next, left - 1).then(resolve, reject)
          return
        }
        resolve({ res, url: current })
      })
      req.end()
    })
  return hop(url, 10)
}

/** Read a small response body as text (for error messages). */
export async function readText(res: IncomingMessage, max = 64 * 1024): Promise<string> {
  const chunks: Buffer[] = []
  let n = 0
  for await (const c of res as AsyncIterable<Buffer>) {
    if (n < max) chunks.push(c)
    n += c.length
  }
  return Buffer.concat(chunks).toString('utf8').slice(0, max)
}

/** The {@link HubHttpError} of a failed node:http response (reads and releases its body). */
export async function httpErrorOfMessage(res: IncomingMessage, url: string): Promise<HubHttpError> {
  const text = await readText(res).catch(() => '')
  return hubHttpError(res.statusCode ?? 0, url, (n) => {
    const v = res.headers[n]
    return typeof v === 'string' ? v : undefined
  }, text)
}
