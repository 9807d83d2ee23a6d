/**
 * The sink's image files, written on a thread of their own.
 *
 * sharp runs its pipelines on libuv's thread pool (4 threads unless `UV_THREADPOOL_SIZE` is set before Node
 * starts), and `fs/promises` queues on the same pool: written that way, every image cost the pool 8 operations
 * (stat, open, write, close, open, fsync, close, rename) that took threads from sharp, and the main thread one
 * callback for each. Here an image is one message to a worker thread that makes the same system calls
 * synchronously, off the pool and off the main thread.
 *
 * Durability: a file is written to a temporary name and renamed at once; the worker fsyncs the written files
 * whenever it has no write to do, and {@link ImageFileWriter.durable} waits for the rest and for the folders.
 * A file under its final name may therefore be incomplete after a power loss before `durable()` (never after a
 * process kill: the data is in the page cache). That is safe because nothing trusts such a file by its name:
 * a write finds an existing file "already there" only when its size and sha256 are right, and the image
 * journal checks both before reusing one. The manifest, which marks a complete folder, is written after
 * `durable()`.
 */
import { Worker } from 'node:worker_threads'

/** Writes image files on a worker thread (see the module comment). */
export interface ImageFileWriter {
  /**
   * Write `bytes` as `final`, through `tmp` (written, then renamed), unless `final` already holds exactly these
   * bytes (its size and `sha256`). Rejects with the system error (`code`, `syscall`, `path`) of a failed write.
   */
  write(final: string, tmp: string, sha256: string, bytes: Uint8Array): Promise<'written' | 'existing'>
  /**
   * Every file written so far on disk (fsynced), then the folders written into, and `parents` when this writer
   * made any folder: afterwards every write and rename so far survives a power loss.
   */
  durable(parents: string[]): Promise<void>
  /** Drop the writes not started, wait for the one running, end the thread. Idempotent. */
  close(): Promise<void>
}

// CommonJS on purpose: an `eval` worker runs as a script, from src/ (vitest) and dist/ alike.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads')
const fs = require('node:fs')
const { dirname } = require('node:path')
const { createHash } = require('node:crypto')
const { workerData } = require('node:worker_threads')
const slab = new Uint8Array(workerData.slab)
const queue = []
const unsynced = []
const written = new Set()
const made = new Set()
let durable = null
let syncError = null
let scheduled = false
const schedule = () => {
  if (!scheduled) {
    scheduled = true
    setImmediate(pump)
  }
}
const errorOf = (e) => ({ message: String((e && e.message) || e), code: e && e.code, syscall: e && e.syscall, path: e && e.path })
const fsyncPath = (path, flags) => {
  const fd = fs.openSync(path, flags)
  try { fs.fsyncSync(fd) } finally { fs.closeSync(fd) }
}
// Some platforms cannot fsync a folder (Windows: EPERM/EISDIR); the renames are then as durable as they get.
const DIR_SYNC_IGNORED = new Set(['EPERM', 'EISDIR', 'EINVAL', 'EBADF', 'EACCES'])
const same = (path, sha256, size) => {
  let st
  try { st = fs.statSync(path) } catch { return false }
  if (!st.isFile() || st.size !== size) return false
  return createHash('sha256').update(fs.readFileSync(path)).digest('hex') === sha256
}
const writeOne = (w) => {
  if (same(w.final, w.sha256, w.bytes.byteLength)) return 'existing'
  const dir = dirname(w.final)
  if (!made.has(dir)) {
    fs.mkdirSync(dir, { recursive: true })
    made.add(dir)
  }
  const fd = fs.openSync(w.tmp, 'w')
  try {
    for (let at = 0; at < w.bytes.byteLength; ) at += fs.writeSync(fd, w.bytes, at)
  } finally {
    fs.closeSync(fd)
  }
  fs.renameSync(w.tmp, w.final)
  unsynced.push(w.final)
  written.add(dir)
  return 'written'
}
function pump() {
  scheduled = false
  // Writes first (rows wait for them); then one fsync at a time, so that messages arriving meanwhile are served.
  while (queue.length > 0) {
    const w = queue.shift()
    try {
      parentPort.postMessage({ id: w.id, result: writeOne(w) })
    } catch (e) {
      try { fs.unlinkSync(w.tmp) } catch {}
      parentPort.postMessage({ id: w.id, error: errorOf(e) })
    }
  }
  if (unsynced.length > 0) {
    try { fsyncPath(unsynced.shift(), 'r+') } catch (e) { syncError = syncError || errorOf(e) }
    schedule()
    return
  }
  if (durable) {
    const dirs = [...written, ...(made.size > 0 ? durable.parents : [])]
    for (const d of dirs) {
      try { fsyncPath(d, 'r') } catch (e) { if (!DIR_SYNC_IGNORED.has(e && e.code)) syncError = syncError || errorOf(e) }
    }
    parentPort.postMessage({ durable: true, error: syncError })
    durable = null
    syncError = null
    written.clear()
  }
}
parentPort.on('message', (m) => {
  if (m.write) {
    // Bytes in a slot of the shared slab are read in place (no copy, nothing for this thread's GC).
    if (m.write.slot !== undefined) m.write.bytes = slab.subarray(m.write.slot * workerData.slotSize, m.write.slot * workerData.slotSize + m.write.size)
    queue.push(m.write)
  }
  else if (m.durable) durable = m.durable
  else if (m.stop) {
    for (const w of queue.splice(0)) parentPort.postMessage({ id: w.id, error: { message: 'the run stopped', code: 'ESTOPPED' } })
    parentPort.postMessage({ stopped: true })
    return
  }
  schedule()
})
`

/**
 * Shared memory for the bytes in flight: 16 slots of 256 KiB. A cloned message would leave a copy of every image
 * in the worker's heap until its garbage collector runs (tens of MB, since it allocates almost nothing else).
 */
const SLOTS = 16
const SLOT_SIZE = 256 * 1024

interface Reply {
  id?: number
  result?: 'written' | 'existing'
  error?: { message: string; code?: string; syscall?: string; path?: string } | null
  durable?: true
  stopped?: true
}

/** A system error as `fs` throws it: the message, `code`, `syscall` and `path` the worker saw. */
function systemError(e: NonNullable<Reply['error']>): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(e.message)
  if (e.code !== undefined) err.code = e.code
  if (e.syscall !== undefined) err.syscall = e.syscall
  if (e.path !== undefined) err.path = e.path
  return err
}

/**
 * Start a writer thread for one run of the sink. Close it when the run ends, whatever the outcome.
 *
 * @example
 * const files = imageFileWriter()
 * try {
 *   await files.write('out/images/ab/ab12….jpg', 'out/images/ab/.ab12….jpg.tmp', 'ab12…', bytes)
 *   await files.durable(['out/images', 'out'])
 * } finally {
 *   await files.close()
 * }
 */
export function imageFileWriter(): ImageFileWriter {
  const slab = new SharedArrayBuffer(SLOTS * SLOT_SIZE)
  const slabBytes = new Uint8Array(slab)
  const freeSlots = Array.from({ length: SLOTS }, (_, i) => SLOTS - 1 - i)
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { slab, slotSize: SLOT_SIZE } })
  const pending = new Map<number, { resolve: (r: 'written' | 'existing') => void; reject: (e: Error) => void; slot?: number }>()
  let waitingDurable: { resolve: () => void; reject: (e: Error) => void } | undefined
  let waitingStop: (() => void) | undefined
  let failure: Error | undefined
  let closed: Promise<void> | undefined
  let seq = 0

  const failAll = (err: Error) => {
    failure ??= err
    for (const p of pending.values()) p.reject(err)
    pending.clear()
    waitingDurable?.reject(err)
    waitingDurable = undefined
    waitingStop?.()
  }
  worker.on('message', (m: Reply) => {
    if (m.id !== undefined) {
      const p = pending.get(m.id)
      pending.delete(m.id)
      if (p?.slot !== undefined) freeSlots.push(p.slot)
      if (m.error) p?.reject(systemError(m.error))
      else p?.resolve(m.result!)
    } else if (m.durable) {
      const w = waitingDurable
      waitingDurable = undefined
      if (m.error) w?.reject(systemError(m.error))
      else w?.resolve()
    } else if (m.stopped) {
      waitingStop?.()
    }
  })
  worker.on('error', failAll)
  worker.on('exit', (code) => failAll(new Error(`[prefpipe] the image-writing thread stopped (exit code ${code})`)))

  return {
    write(final, tmp, sha256, bytes) {
      if (failure) return Promise.reject(failure)
      const id = ++seq
      return new Promise((resolve, reject) => {
        // Into a free slot of the shared slab when it fits (a copy the worker reads in place); else cloned.
        const slot = bytes.byteLength <= SLOT_SIZE ? freeSlots.pop() : undefined
        pending.set(id, { resolve, reject, ...(slot !== undefined ? { slot } : {}) })
        if (slot !== undefined) {
          slabBytes.set(bytes, slot * SLOT_SIZE)
          worker.postMessage({ write: { id, final, tmp, sha256, slot, size: bytes.byteLength } })
        } else {
          worker.postMessage({ write: { id, final, tmp, sha256, bytes } })
        }
      })
    },
    durable(parents) {
      if (failure) return Promise.reject(failure)
      return new Promise((resolve, reject) => {
        waitingDurable = { resolve, reject }
        worker.postMessage({ durable: { parents } })
      })
    },
    close() {
      closed ??= (async () => {
        if (!failure) {
          await new Promise<void>((resolve) => {
            waitingStop = resolve
            worker.postMessage({ stop: true })
          })
        }
        await worker.terminate()
      })()
      return closed
    },
  }
}
