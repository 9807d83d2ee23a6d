import http, { type IncomingMessage } from 'node:http'
import https from 'node:https'
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

/** Build the {@link HubHttpError} of a failed fetch `Response` (reads and releases its body). */
async function httpErrorOf(res: Response, url: string): Promise<HubHttpError> {
  let message = res.headers.get('x-error-message') ?? undefined
  try {
    const text = await res.text()
    if (!message && text) {
      try {
        const json = JSON.parse(text) as { error?: unknown; message?: unknown }
        const m = json.error ?? json.message
        if (typeof m === 'string') message = m
      } catch {
        message = text.slice(0, 200)
      }
    }
  } catch {
    // the body could not be read: the status says enough
  }
  const err = new HubHttpError(res.status, url, res.headers.get('x-error-code') ?? undefined, message)
  const after = parseRetryAfter(res.headers.get('retry-after'))
  if (after !== undefined) err.retryAfterMs = after
  return err
}

/**
 * A `fetch` for `@huggingface/hub`'s metadata calls that adds what the library lacks: the token (only to the
 * endpoint's origin, so it never leaks to a CDN), a timeout per attempt (`HF_HUB_ETAG_TIMEOUT`), retries of
 * network errors and 408/429/5xx with backoff and `Retry-After`, and the caller's AbortSignal. A non-2xx
 * answer (after retries) is thrown as a {@link HubHttpError}, so the library never sees it.
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
    const headers = new Headers(init.headers)
    if (s.token && sameOrigin(url, s.endpoint)) headers.set('authorization', `Bearer ${s.token}`)
    headers.set('user-agent', USER_AGENT)
    return withRetry(
      async () => {
        o.onRequest?.(url)
        const controller = new AbortController()
        const onAbort = () => controller.abort(o.signal!.reason)
        o.signal?.addEventListener('abort', onAbort, { once: true })
        // The timeout covers the wait for headers; bodies of metadata answers are small.
        const timer = setTimeout(() => controller.abort(new HubTimeoutError(`no answer from ${stripQuery(url)} in ${s.metadataTimeoutMs} ms`)), s.metadataTimeoutMs)
        try {
          const res = await fetch(url, { ...init, headers, signal: controller.signal })
          if (res.ok) return res
          throw await httpErrorOf(res, url)
        } catch (err) {
          if (controller.signal.reason instanceof HubTimeoutError) throw controller.signal.reason
          throw err
        } finally {
          clearTimeout(timer)
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
 * One HTTP request with node:http(s) (not `fetch`: for a body streamed to disk it is two to three times faster,
 * and it exposes the status of a `Range` answer), following redirects itself so the token goes only to the
 * endpoint's origin. `follow: 'same-origin'` stops at a redirect to another origin (the CDN), as
 * huggingface_hub's HEAD does to read `X-Linked-Etag` from the 302. The socket's idle timeout is `timeoutMs`; the
 * response errors with a {@link HubTimeoutError} when it fires.
 */
export function request(
  url: string,
  o: {
    settings: HubSettings
    method?: 'GET' | 'HEAD'
    range?: number
    follow?: 'all' | 'same-origin'
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
          if (o.follow === 'same-origin' && !sameOrigin(next, current)) {
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
  const h = res.headers
  let message = typeof h['x-error-message'] === 'string' ? h['x-error-message'] : undefined
  const text = await readText(res).catch(() => '')
  if (!message && text) {
    try {
      const json = JSON.parse(text) as { error?: unknown }
      if (typeof json.error === 'string') message = json.error
    } catch {
      message = text.slice(0, 200)
    }
  }
  const err = new HubHttpError(res.statusCode ?? 0, url, typeof h['x-error-code'] === 'string' ? h['x-error-code'] : undefined, message)
  const after = parseRetryAfter(typeof h['retry-after'] === 'string' ? h['retry-after'] : undefined)
  if (after !== undefined) err.retryAfterMs = after
  return err
}
