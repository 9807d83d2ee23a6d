import { createReadStream, writev as fsWritev, write as fsWrite, writeSync } from 'node:fs'
import { open, stat, statfs, truncate, unlink, type FileHandle } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { dirname } from 'node:path'
import { abortError } from '../../pipeline/errors.js'
import type { Logger } from '../../pipeline/types.js'
import type { HubSettings } from './env.js'
import { HubError, HubHttpError, isNetworkError } from './errors.js'
import { makeHasher, type Hasher } from './hasher.js'
import { getBody, httpErrorOfBody, type BodyResponse } from './body.js'
import { backoffMs, RETRY_STATUS, sameOrigin, sleep, type RetryPolicy } from './http.js'

/** What to download and how to check it. */
export interface BlobSpec {
  /** `<endpoint>/datasets/<repo>/resolve/<commit>/<file>` (redirects to the CDN are followed). */
  url: string
  /**
   * Where the Hub's `HEAD` said the bytes are (the CDN URL of its redirect): fetched first, with no extra
   * hop; a 4xx from it (an expired signed URL) goes back to `url` for a fresh redirect.
   */
  directUrl?: string
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
 * (hashing on the way, never holding more than the 16 MiB read pool in memory), then check the size and the
 * sha256 (LFS) or git oid. A mismatch deletes the partial and downloads again, once; a second mismatch fails.
 *
 * The body comes over one connection ({@link getBody}: a bare socket reading into reused buffers, not
 * node:http), and the sha256 is computed on a worker thread for big files on machines with 4+ CPUs
 * ({@link useHashWorker}). Parallel ranged connections were measured and not kept: on a CPU-bound link they
 * only add work, and they would break the prefix property below.
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
  let from = spec.directUrl ?? spec.url
  await warnIfLowOnSpace(o.partial, spec.size - resumedFrom, o.log)
  for (;;) {
    if (signal?.aborted) throw abortError(signal)
    let have = await partialSize(o.partial, spec.size)
    let attemptBytes = 0
    o.onBytes?.(have, spec.size)
    let hashes: Hasher | undefined
    try {
      hashes = await hashPrefix(o.partial, have, spec, signal)
      if (have < spec.size) {
        const res = await getBody(from, {
          settings: o.settings,
          range: have,
          timeoutMs: o.settings.downloadTimeoutMs,
          ...(signal ? { signal } : {}),
          ...(o.onRequest ? { onRequest: o.onRequest } : {}),
        })
        const { status, url } = res
        if (status === 200 && have > 0) {
          // The server ignored Range: take the whole body from byte 0 rather than append it.
          o.log?.debug(`${spec.label}: the server ignored the Range request; downloading from the start`)
          have = 0
          hashes.reset()
        } else if (status === 206) {
          const start = Number(/^bytes (\d+)-/.exec(res.headers['content-range'] ?? '')?.[1])
          if (start !== have) {
            res.destroy()
            await truncate(o.partial, 0).catch(() => {})
            throw new HubHttpError(502, url, undefined, `asked for bytes from ${have}, got Content-Range "${res.headers['content-range'] ?? ''}"`)
          }
        } else if (status !== 200) {
          const err = await httpErrorOfBody(res)
          if (status === 416) await unlink(o.partial).catch(() => {})
          // A CDN's 4xx (an expired signed URL) is cured by resolving again at once; the Hub's own 4xx are final.
          // 408 and 429 are retried as such, after their Retry-After, wherever they come from.
          if (status === 416 || (status >= 400 && status < 500 && !RETRY_STATUS.has(status) && !sameOrigin(url, o.settings.endpoint))) err.retryAfterMs = 0
          if (status !== 416 && err.retryAfterMs === 0) from = spec.url
          throw err
        }
        const before = have
        const written = await writeBody(res, o.partial, have, hashes, (n) => {
          downloaded += n
          attemptBytes += n
          have += n
          o.onBytes?.(have, spec.size)
        })
        have = before + written
        if (have !== spec.size) {
          if (have > spec.size) await unlink(o.partial).catch(() => {})
          throw Object.assign(new Error(`${spec.label}: the body ended at byte ${have} of ${spec.size}`), { code: 'ECONNRESET' })
        }
      }
      const digest = await hashes.digest()
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
    } finally {
      hashes?.close()
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

/** Remaining bytes from which hashing may move to a worker thread (below, starting the worker costs more than it saves). */
const WORKER_HASH_BYTES = 16 << 20
/** CPUs from which it does: with fewer, the worker competes for the cores that receive and write (measured: slower). */
const WORKER_HASH_CPUS = 4

/**
 * Whether to hash `bytes` on a worker thread. A worker overlaps hashing (about 0.25 s of CPU per 300 MB) with
 * receiving and writing, but costs about 0.1 s of CPU of its own (start-up, messages): it pays only for big
 * files on a machine with cores to spare. `PREFPIPE_HASH_WORKER=1` (or `0`) forces it on (or off).
 */
export function useHashWorker(bytes: number, env: NodeJS.ProcessEnv = process.env): boolean {
  const forced = env.PREFPIPE_HASH_WORKER
  if (forced === '1' || forced === '0') return forced === '1'
  return bytes >= WORKER_HASH_BYTES && availableParallelism() >= WORKER_HASH_CPUS
}

function makeHashes(spec: BlobSpec, have: number): Hasher {
  return makeHasher({
    ...(spec.gitOid !== undefined && spec.sha256 === undefined ? { gitOidOfSize: spec.size } : {}),
    worker: useHashWorker(spec.size - have),
  })
}

/** Start the digests with the bytes already in the partial (resumed downloads are verified whole). */
async function hashPrefix(path: string, have: number, spec: BlobSpec, signal?: AbortSignal): Promise<Hasher> {
  const hashes = makeHashes(spec, have)
  if (have === 0) return hashes
  try {
    const stream = createReadStream(path, { start: 0, end: have - 1, highWaterMark: 1 << 20, ...(signal ? { signal } : {}) })
    for await (const chunk of stream as AsyncIterable<Buffer>) hashes.update(chunk)
    return hashes
  } catch (err) {
    hashes.close()
    throw err
  }
}

/**
 * Write `body` onto the end of the partial (truncating it first when `from` is 0), hashing every chunk as it
 * arrives. Chunks are written in order, one write at a time, so the partial is always a prefix of the blob even
 * if the process dies mid-way: on the spot while writes are fast, else through the thread pool, where the chunks
 * that came meanwhile go down together in one `writev` (fewer syscalls, no copy). A chunk's buffer goes back to the socket once it is written. When the body fails (a
 * cut connection, a timeout, an abort) every byte already received is still written before the error is
 * passed on, so the next attempt resumes after it.
 */
/** A write slower than this (ms) moves the rest of the body's writes off the event loop. */
const SLOW_WRITE_MS = 20

async function writeBody(body: BodyResponse, path: string, from: number, hashes: Hasher, onWritten: (n: number) => void): Promise<number> {
  const fh: FileHandle = await open(path, from > 0 ? 'a' : 'w')
  let written = 0
  try {
    const fd = fh.fd
    const queue: Buffer[] = []
    const releases: (() => void)[] = []
    let writing = false
    let writeError: Error | undefined
    let idle: (() => void) | undefined
    const kick = () => {
      if (writing || queue.length === 0 || writeError) {
        if (!writing) idle?.()
        return
      }
      writing = true
      const bufs = queue.splice(0)
      const done = releases.splice(0)
      writeAll(fd, bufs, (err, n) => {
        writing = false
        written += n
        if (n > 0) onWritten(n)
        for (const r of done) r()
        if (err) {
          writeError = err
          body.destroy()
          for (const r of releases.splice(0)) r()
          queue.length = 0
        }
        kick()
      })
    }
    let bodyError: unknown
    // Write on the spot while writes are quick (the page cache takes them in a fraction of a millisecond): no
    // thread-pool round trip per chunk, about 15 % less CPU per byte (measured). After one slow write (a
    // network file system, a disk that throttles) the rest goes through the thread pool, so the event loop is
    // never held up for long.
    let inline = true
    await body
      .pipe((chunk, release) => {
        if (writeError) return release()
        // the buffer goes back to the socket once it is both hashed and written
        let left = 2
        const settle = () => {
          if (--left === 0) release()
        }
        hashes.update(chunk, settle)
        if (inline && !writing && queue.length === 0) {
          const t0 = performance.now()
          try {
            for (let at = 0; at < chunk.length; ) at += writeSync(fd, chunk, at)
          } catch (err) {
            writeError = err as Error
            body.destroy()
            settle()
            return
          }
          if (performance.now() - t0 > SLOW_WRITE_MS) inline = false
          written += chunk.length
          onWritten(chunk.length)
          settle()
          return
        }
        queue.push(chunk)
        releases.push(settle)
        kick()
      })
      .catch((err: unknown) => {
        bodyError = err
      })
    // let the last writes land, whatever happened to the body
    await new Promise<void>((resolve) => {
      idle = resolve
      kick()
    })
    if (writeError) throw writeError
    if (bodyError !== undefined) throw bodyError
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
