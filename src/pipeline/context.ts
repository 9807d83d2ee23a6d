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

/** The run's reject queue: stages push, the sink drains. */
export class Rejects implements RejectQueue {
  private queue: Reject[] = []
  total = 0
  readonly byReason: Record<string, number> = {}
  push(r: Reject): void {
    this.queue.push(r)
    this.total++
    this.byReason[r.reason] = (this.byReason[r.reason] ?? 0) + 1
  }
  drain(): Reject[] {
    const out = this.queue
    this.queue = []
    return out
  }
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
