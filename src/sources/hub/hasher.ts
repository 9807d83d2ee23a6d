import { createHash, type Hash } from 'node:crypto'
import { Worker } from 'node:worker_threads'

/**
 * The running digests of a blob as its bytes arrive, in order: sha256 always, and the git blob sha1 (of
 * `blob <size>\0` + bytes) when that is what the file is checked against.
 */
export interface Hasher {
  /**
   * Add `bytes` (the next bytes of the blob). `done` is called once the hasher no longer reads them, so
   * their memory may be reused: at once on the main thread, later with a worker.
   */
  update(bytes: Uint8Array, done?: () => void): void
  /** Start again from zero (a server that ignored `Range`). */
  reset(): void
  digest(): Promise<{ sha256: string; gitOid?: string }>
  /** Free the worker, if any. Idempotent. */
  close(): void
}

export interface HasherOptions {
  /** Also compute the git blob oid of a file of this size. */
  gitOidOfSize?: number
  /**
   * Hash on a worker thread, so that hashing (about 0.25 s of CPU per 300 MB with SHA-NI) overlaps with
   * receiving and writing instead of adding to them. The bytes must then live in SharedArrayBuffer memory
   * (the worker reads them in place, no copy), which {@link getBody}'s read pool provides.
   */
  worker?: boolean
}

/** sha256 (and sha1) on the main thread. */
function localHasher(o: HasherOptions): Hasher {
  let sha256: Hash
  let sha1: Hash | undefined
  const reset = () => {
    sha256 = createHash('sha256')
    sha1 = o.gitOidOfSize !== undefined ? createHash('sha1').update(`blob ${o.gitOidOfSize}\0`) : undefined
  }
  reset()
  return {
    update(b, done) {
      sha256.update(b)
      sha1?.update(b)
      done?.()
    },
    reset,
    digest() {
      return Promise.resolve(sha1 ? { sha256: sha256.digest('hex'), gitOid: sha1.digest('hex') } : { sha256: sha256.digest('hex') })
    },
    close() {},
  }
}

// CommonJS on purpose: an `eval` worker runs as a script, which keeps this working from src/ (vitest) and dist/ alike.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const { createHash } = require('node:crypto')
let sha256, sha1
const reset = () => {
  sha256 = createHash('sha256')
  sha1 = workerData.gitOidOfSize === undefined ? undefined : createHash('sha1').update('blob ' + workerData.gitOidOfSize + '\\0')
}
reset()
parentPort.on('message', (m) => {
  if (m.bytes) {
    for (const b of m.bytes) {
      sha256.update(b)
      if (sha1) sha1.update(b)
    }
    parentPort.postMessage({ done: m.id })
  } else if (m.reset) reset()
  else if (m.digest) parentPort.postMessage({ sha256: sha256.digest('hex'), gitOid: sha1 ? sha1.digest('hex') : undefined })
})
`

/** sha256 (and sha1) on a worker thread; bytes not in shared memory are copied into it. */
function workerHasher(o: HasherOptions): Hasher {
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { gitOidOfSize: o.gitOidOfSize } })
  const pending = new Map<number, () => void>()
  // Chunks are sent in batches, one message per turn of the event loop: a message costs more than hashing a
  // small chunk, and several socket reads often land in one turn.
  let batch: Uint8Array[] = []
  let batchDone: (() => void)[] = []
  let scheduled = false
  let next = 0
  let failed: Error | undefined
  let want: { resolve: (d: { sha256: string; gitOid?: string }) => void; reject: (err: Error) => void } | undefined
  let closed = false
  const fail = (err: Error) => {
    failed ??= err
    for (const done of [...pending.values(), ...batchDone]) done()
    pending.clear()
    batch = []
    batchDone = []
    want?.reject(failed)
    want = undefined
  }
  worker.on('message', (m: { done?: number; sha256?: string; gitOid?: string }) => {
    if (m.done !== undefined) {
      const done = pending.get(m.done)
      pending.delete(m.done)
      done?.()
    } else if (m.sha256 !== undefined) {
      want?.resolve(m.gitOid === undefined ? { sha256: m.sha256 } : { sha256: m.sha256, gitOid: m.gitOid })
      want = undefined
    }
  })
  worker.on('error', fail)
  worker.on('exit', (code) => {
    if (!closed) fail(new Error(`the hashing worker stopped (exit code ${code})`))
  })
  const flush = () => {
    scheduled = false
    if (batch.length === 0 || failed) return
    const id = next++
    const dones = batchDone
    pending.set(id, () => {
      for (const d of dones) d()
    })
    worker.postMessage({ bytes: batch, id })
    batch = []
    batchDone = []
  }
  return {
    update(b, done) {
      if (failed) {
        done?.()
        return
      }
      if (b.buffer instanceof SharedArrayBuffer) {
        batch.push(b)
        if (done) batchDone.push(done)
      } else {
        // not shared memory: hash a copy, and the caller's memory is free at once
        const copy = new Uint8Array(new SharedArrayBuffer(b.length))
        copy.set(b)
        batch.push(copy)
        done?.()
      }
      if (!scheduled) {
        scheduled = true
        setImmediate(flush)
      }
    },
    reset() {
      flush()
      if (!failed) worker.postMessage({ reset: true })
    },
    digest() {
      flush()
      if (failed) return Promise.reject(failed)
      return new Promise((resolve, reject) => {
        want = { resolve, reject }
        worker.postMessage({ digest: true })
      })
    },
    close() {
      if (closed) return
      closed = true
      void worker.terminate()
    },
  }
}

/**
 * A {@link Hasher}: on a worker thread when asked (falling back to the main thread if no worker can be
 * started), else on the main thread.
 *
 * @example
 * const h = makeHasher({ worker: true })
 * h.update(bytes, () => pool.release(bytes))
 * const { sha256 } = await h.digest()
 * h.close()
 */
export function makeHasher(o: HasherOptions = {}): Hasher {
  if (o.worker) {
    try {
      return workerHasher(o)
    } catch {
      // no worker threads here (a locked-down runtime): hash inline
    }
  }
  return localHasher(o)
}
