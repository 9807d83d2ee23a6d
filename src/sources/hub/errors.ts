import type { HubSettings } from './env.js'

/**
 * Why a Hub call failed, as a stable code to branch on:
 * - `unauthorized` (401): the repo does not exist, or it is private/gated and no valid token was sent;
 * - `forbidden` (403): the token is valid but has no access (gated dataset not accepted, fine-grained token);
 * - `repo-not-found`, `revision-not-found`, `file-not-found` (404), `no-data-files` (no parquet file to read);
 * - `not-cached`: offline (or the Hub unreachable) and the file is not in the cache;
 * - `network`: the Hub could not be reached, or kept failing, after every retry;
 * - `http`: any other HTTP status; `bad-response`: the server's answer made no sense;
 * - `disk-full`: ENOSPC while writing the cache; `checksum`: the bytes did not match the Hub's sha256 twice.
 */
export type HubErrorCode =
  | 'unauthorized'
  | 'forbidden'
  | 'repo-not-found'
  | 'revision-not-found'
  | 'file-not-found'
  | 'no-data-files'
  | 'not-cached'
  | 'network'
  | 'http'
  | 'bad-response'
  | 'disk-full'
  | 'checksum'

/** A Hub call failed in a way a person can act on: the message says what to do. It never contains a token. */
export class HubError extends Error {
  override name = 'HubError'
  readonly code: HubErrorCode
  /** The HTTP status, when the failure was one. */
  readonly status?: number
  constructor(code: HubErrorCode, message: string, opts: { status?: number; cause?: unknown; token?: string } = {}) {
    super(redact(message, opts.token), opts.cause === undefined ? undefined : { cause: opts.cause })
    this.code = code
    if (opts.status !== undefined) this.status = opts.status
  }
}

/**
 * A non-2xx answer from the Hub, after retries. Internal to the Hub modules (they turn it into a
 * {@link HubError} with context); `errorCode` is the Hub's `X-Error-Code` (`RepoNotFound`, `GatedRepo`,
 * `RevisionNotFound`, `EntryNotFound`, ...).
 */
export class HubHttpError extends Error {
  override name = 'HubHttpError'
  /** The server's `Retry-After`, in ms. */
  retryAfterMs?: number
  /** The Hub's `X-Repo-Commit` on the error (a 404 `EntryNotFound` on a resolve URL names the commit it looked in). */
  repoCommit?: string
  constructor(
    readonly status: number,
    readonly url: string,
    readonly errorCode: string | undefined,
    readonly serverMessage: string | undefined,
  ) {
    super(`HTTP ${status}${errorCode ? ` ${errorCode}` : ''}${serverMessage ? `: ${serverMessage}` : ''} (${stripQuery(url)})`)
  }
}

/** The URL without its query (signed CDN URLs carry credentials-like signatures there). */
export function stripQuery(url: string): string {
  const q = url.indexOf('?')
  return q < 0 ? url : url.slice(0, q)
}

/** Replace every occurrence of `token` by `hf_***`: the last guard before a message leaves the library. */
export function redact(text: string, token: string | undefined): string {
  if (!token || token.length < 4) return text
  return text.split(token).join('hf_***')
}

/** Which token was sent, named by its source, never by value. */
export function tokenNote(s: Pick<HubSettings, 'token' | 'tokenSource' | 'tokenPath'>): string {
  if (!s.token) return 'no token was sent'
  const from = s.tokenSource === 'token file' ? `the token file ${s.tokenPath}` : s.tokenSource === 'option' ? 'the token option' : `$${s.tokenSource}`
  return `the token from ${from} was sent`
}

/** How to log in, the way huggingface_hub users know it. */
export function loginHint(s: Pick<HubSettings, 'endpoint' | 'tokenPath'>): string {
  return (
    `To read a private or gated dataset, log in: set HF_TOKEN to a read token (create one at ${s.endpoint}/settings/tokens), ` +
    `or save the token in ${s.tokenPath} (\`hf auth login\` does that)`
  )
}

/** A network-level failure (refused, reset, DNS, timeout), as opposed to an HTTP status. */
export function isNetworkError(err: unknown): boolean {
  if (!(err instanceof Error)) return false
  if (err.name === 'TimeoutError' || err.name === 'HubTimeoutError') return true
  const code = (err as NodeJS.ErrnoException).code ?? ((err as { cause?: NodeJS.ErrnoException }).cause?.code)
  if (code && NETWORK_CODES.has(code)) return true
  // undici's fetch wraps every socket failure in `TypeError: fetch failed`
  return err instanceof TypeError && /fetch failed|terminated|other side closed/i.test(err.message)
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ENETDOWN',
  'EHOSTDOWN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
  'ERR_STREAM_PREMATURE_CLOSE',
  'HPE_INVALID_CONSTANT',
])
