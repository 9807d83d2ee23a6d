import type { EventEmitter } from 'node:events'
import type { Reject } from '../record.js'
import type { Logger, PipelineEvent, ProgressUpdate, RejectQueue, Shard, StageContext, StageStats } from './types.js'

/** Counters for one stage, plus the timing the pipeline measures around it. */
export class Stats implements StageStats {
  in = 0
  out = 0
  readonly dropped: Record<string, number> = {}
  readonly counters: Record<string, number> = {}
  /** Time inside the stage's own calls (`next()` of its output, or the sink's promise). */
  wallMs = 0
  /** Of `wallMs`, the time the stage spent waiting for its input. */
  waitMs = 0
  firstCall = 0
  lastCall = 0
  constructor(readonly name: string) {}
  drop(reason: string, n = 1): void {
    this.dropped[reason] = (this.dropped[reason] ?? 0) + n
  }
  count(counter: string, n = 1): void {
    this.counters[counter] = (this.counters[counter] ?? 0) + n
  }
}

/**
 * The run's reject queue: stages push, the sink drains, in row order (see {@link RejectQueue.drain}).
 *
 * Positions: the n-th item the source yields is at `n` (kept by its `id` until its row ends: rejected, or
 * received by the sink, or the sink drains through it); a reject of an id the queue does not know (the source's own rejects, a
 * stage's summary at the end) is placed just before the next item the source will yield (`count - 0.5`).
 */
export class Rejects implements RejectQueue {
  private queue: { r: Reject; pos: number; seq: number }[] = []
  private readonly positions = new Map<string, number>()
  private yielded = 0
  private seq = 0
  total = 0
  readonly byReason: Record<string, number> = {}
  /** Note an item the source yielded (the pipeline calls it). */
  sourced(item: unknown): void {
    const id = (item as { id?: unknown } | null)?.id
    if (typeof id === 'string') this.positions.set(id, this.yielded)
    this.yielded++
  }
  /**
   * Note an item the sink received. Every row before it is decided upstream, but the sink may still reject one
   * of the rows it holds in flight, so positions are forgotten only {@link SINK_WINDOW} rows behind it (memory
   * stays bounded by the read-ahead, not by the data).
   */
  arrived(item: unknown): void {
    const id = (item as { id?: unknown } | null)?.id
    const pos = typeof id === 'string' ? this.positions.get(id) : undefined
    if (pos === undefined) return
    for (const [key, p] of this.positions) {
      if (p >= pos - SINK_WINDOW) break
      this.positions.delete(key)
    }
  }
  push(r: Reject): void {
    const known = this.positions.get(r.id)
    this.queue.push({ r, pos: known ?? this.yielded - 0.5, seq: this.seq++ })
    this.total++
    this.byReason[r.reason] = (this.byReason[r.reason] ?? 0) + 1
  }
  drain(): Reject[] {
    const out = this.queue.sort(byPosition).map((e) => e.r)
    this.queue = []
    return out
  }
  drainBefore(id: string, inclusive = false): Reject[] {
    const pos = this.positions.get(id)
    if (pos === undefined) return this.drain()
    if (inclusive) this.positions.delete(id)
    const take: typeof this.queue = []
    const keep: typeof this.queue = []
    for (const e of this.queue) (e.pos < pos || (inclusive && e.pos === pos) ? take : keep).push(e)
    this.queue = keep
    return take.sort(byPosition).map((e) => e.r)
  }
}

/** How many received rows a sink may still reject (hold in flight) before their positions are forgotten. */
const SINK_WINDOW = 4096

function byPosition(a: { pos: number; seq: number }, b: { pos: number; seq: number }): number {
  return a.pos - b.pos || a.seq - b.seq
}

export interface RunShared {
  signal: AbortSignal
  log: Logger
  events: EventEmitter
  shard: Shard
  rejects: Rejects
  emit(event: PipelineEvent): void
}

export function makeContext(run: RunShared, stats: Stats): StageContext {
  return {
    stage: stats.name,
    signal: run.signal,
    log: run.log,
    events: run.events,
    stats,
    shard: run.shard,
    rejects: run.rejects,
    progress(update: ProgressUpdate) {
      run.emit({ type: 'progress', stage: stats.name, ...update })
    },
    reject(reject: Reject) {
      const r = { ...reject, stage: reject.stage ?? stats.name }
      stats.drop(r.reason)
      run.rejects.push(r)
      run.emit({ type: 'reject', stage: stats.name, reject: r })
    },
  }
}

/** The default logger: warnings to stderr, nothing else (a library should not chatter). */
export const quietLogger: Logger = {
  debug() {},
  info() {},
  warn(message) {
    process.stderr.write(`prefpipe: ${message}\n`)
  },
}
