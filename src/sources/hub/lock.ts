import { randomBytes } from 'node:crypto'
import { mkdir, open, readFile, stat, unlink, utimes } from 'node:fs/promises'
import { hostname } from 'node:os'
import { dirname } from 'node:path'
import { sleep } from './http.js'

/** Who holds a lock, as written in the lock file. */
export interface LockHolder {
  pid: number
  host: string
  /** Unique per acquisition: a release only removes its own file. */
  nonce: string
  since: string
}

/** A held lock. `release()` is idempotent. */
export interface FileLock {
  readonly path: string
  release(): Promise<void>
}

export interface LockOptions {
  signal?: AbortSignal
  /** A lock whose file was not touched for this long is stale (ms, default 60 000). The holder touches it every `staleMs / 4`. */
  staleMs?: number
  /** How often a waiter looks again (ms, default 200). */
  pollMs?: number
  /** Called on each poll while another process holds the lock. */
  onWait?: (holder: LockHolder | undefined) => void | Promise<void>
}

/**
 * Take an exclusive lock: a file created with `O_CREAT | O_EXCL` (atomic, also on NFS v3+), holding the
 * owner's pid, host and a nonce.
 *
 * Why this and not `flock`: Node has no `flock` without a native addon, and a lock file works across
 * processes, hosts sharing the cache over NFS, and concurrent calls in one process alike. Stale locks are
 * detected two ways: on the same host the holder's pid is checked (a crashed process frees its lock at once),
 * and on any host a lock whose heartbeat (the file's mtime, touched every `staleMs / 4`) is older than
 * `staleMs` is taken over. The lock is an optimisation, not what keeps the cache correct: a blob only ever
 * appears by renaming a complete, verified file, so two writers racing after a stale takeover cost bandwidth
 * (a checksum mismatch and a retry), never a wrong blob.
 *
 * @example
 * const lock = await acquireLock('/cache/.locks/datasets--a--b/sha.prefpipe.lock', { signal })
 * try { ... } finally { await lock.release() }
 */
export async function acquireLock(path: string, o: LockOptions = {}): Promise<FileLock> {
  const staleMs = o.staleMs ?? 60_000
  const pollMs = o.pollMs ?? 200
  await mkdir(dirname(path), { recursive: true })
  const me: LockHolder = { pid: process.pid, host: hostname(), nonce: randomBytes(8).toString('hex'), since: new Date().toISOString() }
  for (;;) {
    try {
      const fh = await open(path, 'wx')
      try {
        await fh.writeFile(JSON.stringify(me))
      } finally {
        await fh.close()
      }
      return held(path, me, staleMs)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    const holder = await readHolder(path)
    if (await isStale(path, holder, staleMs)) {
      await unlink(path).catch(() => {})
      continue
    }
    await o.onWait?.(holder)
    await sleep(pollMs, o.signal)
  }
}

function held(path: string, me: LockHolder, staleMs: number): FileLock {
  const beat = setInterval(() => {
    const now = new Date()
    utimes(path, now, now).catch(() => {})
  }, Math.max(50, staleMs / 4))
  beat.unref()
  let released: Promise<void> | undefined
  return {
    path,
    release() {
      released ??= (async () => {
        clearInterval(beat)
        // Remove the file only if it is still ours (it may have been taken over as stale).
        const holder = await readHolder(path)
        if (holder?.nonce === me.nonce) await unlink(path).catch(() => {})
      })()
      return released
    },
  }
}

async function readHolder(path: string): Promise<LockHolder | undefined> {
  try {
    const h = JSON.parse(await readFile(path, 'utf8')) as Partial<LockHolder>
    return typeof h.pid === 'number' && typeof h.host === 'string' && typeof h.nonce === 'string' ? (h as LockHolder) : undefined
  } catch {
    return undefined
  }
}

async function isStale(path: string, holder: LockHolder | undefined, staleMs: number): Promise<boolean> {
  let mtimeMs: number
  try {
    mtimeMs = (await stat(path)).mtimeMs
  } catch {
    return false // gone already: the next try creates it
  }
  const age = Date.now() - mtimeMs
  // No readable holder: a writer between create and write (give it a moment) or a crash at that instant.
  if (!holder) return age > Math.min(staleMs, 2000)
  if (holder.host === hostname() && !pidAlive(holder.pid)) return true
  return age > staleMs
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
