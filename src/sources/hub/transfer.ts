import { createHash, type Hash } from 'node:crypto'
import { createReadStream, writev as fsWritev, write as fsWrite } from 'node:fs'
import { open, stat, statfs, truncate, unlink, type FileHandle } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import { dirname } from 'node:path'
import { Writable } from 'node:stream'
import { abortError } from '../../pipeline/errors.js'
import type { Logger } from '../../pipeline/types.js'
import type { HubSettings } from './env.js'
import { HubError, HubHttpError, isNetworkError } from './errors.js'
import { backoffMs, httpErrorOfMessage, RETRY_STATUS, request, sameOrigin, sleep, type RetryPolicy } from './http.js'

/** What to download and how to check it. */
export interface BlobSpec {
  /** `<endpoint>/datasets/<repo>/resolve/<commit>/<file>` (redirects to the CDN are followed). */
  url: string
  size: number
  /** The LFS oid: the sha256 the bytes must have. */
  sha256?: string
  /** For a file not in LFS: its git blob oid (sha1 of `blob <size>\0` + bytes), checked instead. */
  gitOid?: string
  /** The file's name in the repo, for messages. */
  label: string
}

export interface TransferOptions {
  settings: HubSettings
  retry: RetryPolicy
  /** The `.incomplete` file: resumed if present, left in place on failure so a later run resumes it. */
  partial: string
  signal?: AbortSignal
  /** Bytes on disk so far, after every write (and once at the start of every attempt). */
  onBytes?: (done: number, total: number) => void
  onRequest?: (url: string) => void
  log?: Pick<Logger, 'warn' | 'debug'>
}

export interface TransferResult {
  sha256: string
  /** Bytes fetched by this call (not counting a resumed prefix). */
  downloaded: number
  /** Size of the partial this call started from. */
  resumedFrom: number
}

/**
 * Download a blob into `partial` until it is complete and verified: resume with `Range` from whatever the
 * partial holds (across runs), retry network errors and 408/429/5xx with backoff and `Retry-After` (a retry
 * that made progress resets the count), restart from zero when a server ignores `Range`, stream to disk
 * (hashing on the way, never holding the file in memory), then check the size and the sha256 (LFS) or git oid.
 * A mismatch deletes the partial and downloads again, once; a second mismatch fails.
 *
 * The partial is always a prefix of what the server sent (written in order, appended), which is what
 * huggingface_hub < 1.0 expects when it resumes the same `<etag>.incomplete`.
 */
export async function transferBlob(spec: BlobSpec, o: TransferOptions): Promise<TransferResult> {
  const { signal } = o
  let failures = 0
  let mismatches = 0
  let downloaded = 0
  const resumedFrom = await partialSize(o.partial, spec.size)
  await warnIfLowOnSpace(o.partial, spec.size - resumedFrom, o.log)
  for (;;) {
    if (signal?.aborted) throw abortError(signal)
    let have = await partialSize(o.partial, spec.size)
    let attemptBytes = 0
    o.onBytes?.(have, spec.size)
    try {
      const hashes = await hashPrefix(o.partial, have, spec, signal)
      if (have < spec.size) {
        const { res, url } = await request(spec.url, {
          settings: o.settings,
          range: have,
          timeoutMs: o.settings.downloadTimeoutMs,
          ...(signal ? { signal } : {}),
          ...(o.onRequest ? { onRequest: o.onRequest } : {}),
        })
        const status = res.statusCode ?? 0
        if (status === 200 && have > 0) {
          // The server ignored Range: take the whole body from byte 0 rather than append it.
          o.log?.debug(`${spec.label}: the server ignored the Range request; downloading from the start`)
          have = 0
          hashes.reset()
        } else if (status === 206) {
          const start = Number(/^bytes (\d+)-/.exec(String(res.headers['content-range'] ?? ''))?.[1])
          if (start !== have) {
            res.destroy()
            await truncate(o.partial, 0).catch(() => {})
            throw new HubHttpError(502, url, undefined, `asked for bytes from ${have}, got Content-Range "${res.headers['content-range'] ?? ''}"`)
          }
        } else if (status !== 200) {
          const err = await httpErrorOfMessage(res, url)
          if (status === 416) await unlink(o.partial).catch(() => {})
          // A CDN's 4xx (an expired signed URL) is cured by resolving again; the Hub's own 4xx are final.
          if (status === 416 || (status >= 400 && status < 500 && !sameOrigin(url, o.settings.endpoint))) err.retryAfterMs = 0
          throw err
        }
        const before = have
        const written = await writeBody(res, o.partial, have, hashes, (n) => {
          downloaded += n
          attemptBytes += n
          have += n
          o.onBytes?.(have, spec.size)
        }, signal)
        have = before + written
        if (have !== spec.size) {
          if (have > spec.size) await unlink(o.partial).catch(() => {})
          throw Object.assign(new Error(`${spec.label}: the body ended at byte ${have} of ${spec.size}`), { code: 'ECONNRESET' })
        }
      }
      const digest = hashes.digest()
      const wrong = spec.sha256 !== undefined ? digest.sha256 !== spec.sha256 : spec.gitOid !== undefined && digest.gitOid !== spec.gitOid
      if (!wrong) return { sha256: digest.sha256, downloaded, resumedFrom }
      await unlink(o.partial).catch(() => {})
      mismatches++
      const expected = spec.sha256 ? `sha256 ${spec.sha256}` : `git oid ${spec.gitOid}`
      const got = spec.sha256 ? `sha256 ${digest.sha256}` : `git oid ${digest.gitOid}`
      if (mismatches >= 2) {
        throw new HubError('checksum', `[prefpipe] ${spec.label}: the downloaded bytes do not match the Hub's ${expected} (got ${got}) twice in a row; the file on the Hub, a mirror or a proxy in between is corrupt`, { token: o.settings.token })
      }
      o.log?.warn(`${spec.label}: the downloaded file does not match the Hub's ${expected} (got ${got}); the partial download was corrupt, downloading again from the start`)
    } catch (err) {
      if (signal?.aborted) throw abortError(signal)
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC') throw await diskFull(spec, o, err)
      if (err instanceof HubError) throw err
      const retry = err instanceof HubHttpError ? RETRY_STATUS.has(err.status) || err.retryAfterMs === 0 : isNetworkError(err)
      if (!retry) throw err
      const now = await partialSize(o.partial, spec.size)
      // An attempt that brought bytes was not a failure of the download as a whole: count from 1 again.
      failures = attemptBytes > 0 ? 1 : failures + 1
      if (failures > o.retry.retries) {
        throw new HubError(
          'network',
          `[prefpipe] ${spec.label}: the download failed ${failures} times in a row (${describe(err)}); ${now} of ${spec.size} bytes are kept in ${o.partial}, run again to resume`,
          { cause: err, token: o.settings.token },
        )
      }
      const delay = backoffMs(failures, o.retry, err instanceof HubHttpError && err.retryAfterMs ? err.retryAfterMs : undefined)
      o.log?.debug(`${spec.label}: ${describe(err)}; retrying in ${Math.round(delay)} ms (${now} bytes kept)`)
      await sleep(delay, signal)
    }
  }
}

function describe(err: unknown): string {
  if (err instanceof HubHttpError) return `HTTP ${err.status}${err.serverMessage ? ` ${err.serverMessage}` : ''}`
  if (err instanceof Error) return (err as NodeJS.ErrnoException).code ? `${(err as NodeJS.ErrnoException).code}: ${err.message}` : err.message
  return String(err)
}

/** The partial's size; a partial longer than the blob is garbage and is emptied. */
async function partialSize(path: string, size: number): Promise<number> {
  try {
    const n = (await stat(path)).size
    if (n <= size) return n
    await truncate(path, 0)
    return 0
  } catch {
    return 0
  }
}

/** The running digests of a blob: sha256 always, and the git blob sha1 when that is what we check. */
interface Hashes {
  update(b: Uint8Array): void
  reset(): void
  digest(): { sha256: string; gitOid?: string }
}

function makeHashes(spec: BlobSpec): Hashes {
  let sha256: Hash
  let sha1: Hash | undefined
  const reset = () => {
    sha256 = createHash('sha256')
    sha1 = spec.gitOid !== undefined && spec.sha256 === undefined ? createHash('sha1').update(`blob ${spec.size}\0`) : undefined
  }
  reset()
  return {
    update(b) {
      sha256.update(b)
      sha1?.update(b)
    },
    reset,
    digest() {
      return sha1 ? { sha256: sha256.digest('hex'), gitOid: sha1.digest('hex') } : { sha256: sha256.digest('hex') }
    },
  }
}

/** Start the digests with the bytes already in the partial (resumed downloads are verified whole). */
async function hashPrefix(path: string, have: number, spec: BlobSpec, signal?: AbortSignal): Promise<Hashes> {
  const hashes = makeHashes(spec)
  if (have === 0) return hashes
  const stream = createReadStream(path, { start: 0, end: have - 1, highWaterMark: 1 << 20, ...(signal ? { signal } : {}) })
  for await (const chunk of stream as AsyncIterable<Buffer>) hashes.update(chunk)
  return hashes
}

/**
 * Stream `body` onto the end of the partial (truncating it first when `from` is 0), hashing every chunk.
 * Chunks queue while a write is in flight and go down in one `writev`: fewer syscalls, no copy. When the
 * body fails (a cut connection, a timeout, an abort) what was already received is still written before the
 * error is passed on, so the next attempt resumes after every byte that arrived (`stream.pipeline` would
 * drop the queued chunks).
 */
async function writeBody(body: IncomingMessage, path: string, from: number, hashes: Hashes, onWritten: (n: number) => void, signal?: AbortSignal): Promise<number> {
  const fh: FileHandle = await open(path, from > 0 ? 'a' : 'w')
  let written = 0
  try {
    const fd = fh.fd
    const sink = new Writable({
      highWaterMark: 8 << 20,
      writev(chunks, cb) {
        const bufs = chunks.map((c) => c.chunk as Buffer)
        for (const b of bufs) hashes.update(b)
        writeAll(fd, bufs, (err, n) => {
          if (!err) {
            written += n
            onWritten(n)
          }
          cb(err)
        })
      },
    })
    await new Promise<void>((resolve, reject) => {
      let failure: unknown
      const fail = (err: unknown) => {
        if (failure !== undefined) return
        failure = err
        body.unpipe(sink)
        sink.end() // flush what was received, then report the failure on 'finish'
      }
      const onAbort = () => fail(abortError(signal!))
      signal?.addEventListener('abort', onAbort, { once: true })
      body.on('error', fail)
      body.once('aborted', () => fail(Object.assign(new Error('the connection was closed mid-body'), { code: 'ECONNRESET' })))
      sink.once('finish', () => {
        signal?.removeEventListener('abort', onAbort)
        if (failure === undefined) resolve()
        else reject(failure)
      })
      sink.on('error', (err) => {
        signal?.removeEventListener('abort', onAbort)
        body.destroy()
        reject(err)
      })
      body.pipe(sink)
    })
    return written
  } finally {
    await fh.close()
  }
}

/** `writev` until every byte is down (a regular file may take fewer bytes only right before an error). */
function writeAll(fd: number, bufs: Buffer[], cb: (err: Error | null, n: number) => void): void {
  const total = bufs.reduce((n, b) => n + b.length, 0)
  const step = (rest: Buffer[], done: number): void => {
    const next = (err: NodeJS.ErrnoException | null, n: number) => {
      if (err) return cb(err, done)
      const all = done + n
      if (all >= total) return cb(null, all)
      // drop what was written and go on with the remainder
      let skip = n
      const left: Buffer[] = []
      for (const b of rest) {
        if (skip >= b.length) skip -= b.length
        else {
          left.push(skip > 0 ? b.subarray(skip) : b)
          skip = 0
        }
      }
      step(left, all)
    }
    if (rest.length === 1) fsWrite(fd, rest[0]!, next)
    else fsWritev(fd, rest, next)
  }
  step(bufs, 0)
}

async function freeBytes(dir: string): Promise<number | undefined> {
  try {
    const s = await statfs(dir)
    return s.bavail * s.bsize
  } catch {
    return undefined
  }
}

/** Warn (as huggingface_hub does; statfs can be wrong on network file systems) when the disk looks too small. */
async function warnIfLowOnSpace(partial: string, needed: number, log?: Pick<Logger, 'warn'>): Promise<void> {
  const free = await freeBytes(dirname(partial))
  if (free !== undefined && free < needed) {
    log?.warn(`${dirname(partial)} has ${formatBytes(free)} free but the download needs ${formatBytes(needed)} more; it will likely fail with "disk full"`)
  }
}

async function diskFull(spec: BlobSpec, o: TransferOptions, cause: unknown): Promise<HubError> {
  const have = await partialSize(o.partial, spec.size)
  const free = await freeBytes(dirname(o.partial))
  return new HubError(
    'disk-full',
    `[prefpipe] ${spec.label}: the disk is full (ENOSPC) while writing ${o.partial}: the file needs ${formatBytes(spec.size - have)} more ` +
      `(${formatBytes(spec.size)} in all, ${formatBytes(have)} are kept)${free === undefined ? '' : ` and ${formatBytes(free)} is free`}. ` +
      `Free some space, or point HF_HUB_CACHE at a bigger disk, and run again: the download resumes where it stopped`,
    { cause, token: o.settings.token },
  )
}

/** `365.1 MB` */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`
  const units = ['kB', 'MB', 'GB', 'TB']
  let v = n
  let i = -1
  do {
    v /= 1000
    i++
  } while (v >= 1000 && i < units.length - 1)
  return `${v.toFixed(1)} ${units[i]}`
}
