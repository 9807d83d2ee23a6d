import type { EventEmitter } from 'node:events'
import type { Reject } from '../record.js'

/** Where a stage writes human-readable messages. The CLI prints them; a library user may route them anywhere. */
export interface Logger {
  debug(message: string): void
  info(message: string): void
  warn(message: string): void
}

/** Which slice of the data this process handles (`--shard i/n`). Sources honour it; the rest ignore it. */
export interface Shard {
  index: number
  count: number
}

/** A progress update from a stage. `total` and `bytes` are given when the stage knows them. */
export interface ProgressUpdate {
  done: number
  total?: number
  bytes?: number
  totalBytes?: number
}

/** Every event a pipeline emits, on `ctx.events` and to `options.onEvent`. */
export type PipelineEvent =
  | { type: 'stage-start'; stage: string }
  | { type: 'stage-end'; stage: string; ok: boolean }
  | ({ type: 'progress'; stage: string } & ProgressUpdate)
  | { type: 'reject'; stage: string; reject: Reject }

/** Counters of one stage. `in`/`out` are counted by the pipeline; `drop` and `count` are for the stage. */
export interface StageStats {
  readonly name: string
  in: number
  out: number
  /** Items the stage dropped, by reason code. */
  readonly dropped: Record<string, number>
  /** Free-form counters (`imagesWritten`, `bytesRead`, ...). */
  readonly counters: Record<string, number>
  /** Count `n` items dropped for `reason` (without writing a reject; see `ctx.reject`). */
  drop(reason: string, n?: number): void
  /** Add `n` to a named counter. */
  count(counter: string, n?: number): void
}

/** The queue of rejected rows; the sink that writes `rejects.jsonl` drains it as it goes. */
export interface RejectQueue {
  /**
   * Take every reject queued so far, in **row order**: the order of the rows they belong to in the source's
   * output (rows made by the source carry their position by id; a row the source itself rejected sits between
   * the rows it yielded before and after it), then in the order they were made. So the order does not depend on
   * how far stages read ahead, and a sink writes the same `rejects.jsonl` whatever the timing.
   */
  drain(): Reject[]
  /**
   * Take the queued rejects of rows that come before the row with this id (or up to and including it, with
   * `inclusive`), in row order; the rest stay queued (all of them are taken if the id is not a row the source
   * yielded). A sink calls it as each row arrives: every stage decides a
   * row before it passes on a later one, so by then no earlier row can be rejected any more.
   */
  drainBefore(id: string, inclusive?: boolean): Reject[]
  /** How many rejects were made in this run so far (drained or not). */
  readonly total: number
}

/** What every stage receives. */
export interface StageContext {
  /** This stage's name, as it appears in errors and the run report. */
  readonly stage: string
  /** Aborted when the caller aborts or any stage fails: stop promptly and let `finally` clean up. */
  readonly signal: AbortSignal
  readonly log: Logger
  /** Emits `'event'` with every {@link PipelineEvent}, and each event under its own `type` too. */
  readonly events: EventEmitter
  readonly stats: StageStats
  readonly shard: Shard
  /** Report progress; the CLI turns these into progress lines. */
  progress(update: ProgressUpdate): void
  /** Leave a row out with a reason: counted as dropped, queued for `rejects.jsonl`. */
  reject(reject: Reject): void
  readonly rejects: RejectQueue
}

/** Produces items. Plain `async function*(ctx)` generators are sources. */
export type Source<T> = (ctx: StageContext) => AsyncIterable<T>
/** Turns items into items (0, 1 or many each). Plain `async function*(input, ctx)` generators are transforms. */
export type Transform<I, O> = (input: AsyncIterable<I>, ctx: StageContext) => AsyncIterable<O>
/** Consumes every item and resolves to a result (for the LLaMA-Factory sink: the manifest of the folder). */
export type Sink<I, R> = (input: AsyncIterable<I>, ctx: StageContext) => Promise<R>
/**
 * A final step that takes the sink's result once the sink has finished (the training launch takes the
 * manifest of the folder the sink wrote). Make one with {@link after}; a plain function is not one.
 */
export interface After<R, R2> {
  (result: R, ctx: StageContext): Promise<R2>
  readonly [AFTER]: true
}

export const AFTER: unique symbol = Symbol.for('prefpipe.after')
export const STAGE_NAME: unique symbol = Symbol.for('prefpipe.stageName')

/** Options of {@link pipeline}, given as its last argument. */
export interface PipelineOptions {
  /** Abort the run: every stage stops, cleans up, and the pipeline rejects with an `AbortError`. */
  signal?: AbortSignal
  log?: Logger
  /** Called with every event, synchronously. */
  onEvent?: (event: PipelineEvent) => void
  /** Use this emitter for `ctx.events` (one is made otherwise). */
  events?: EventEmitter
  shard?: Shard
  /** How long to wait for a stage's cleanup after an abort before giving up on it (ms, default 10 000). */
  closeTimeoutMs?: number
}

/** Counters and timings of one stage, as in the run report. */
export interface StageReport {
  name: string
  kind: 'source' | 'transform' | 'sink' | 'after'
  in: number
  out: number
  dropped: Record<string, number>
  counters: Record<string, number>
  /** Wall time the stage was working on its own (not waiting for its input), in ms. */
  selfMs: number
  /** Wall time from the first to the last call into the stage, in ms. */
  wallMs: number
}

/** What a run did, stage by stage. Timings differ from run to run; counters do not. */
export interface RunReport {
  ok: boolean
  startedAt: string
  wallMs: number
  stages: StageReport[]
  /** Every reject of the run, by reason code. */
  rejected: Record<string, number>
}

/** What {@link pipeline} resolves to. */
export interface PipelineResult<R> {
  result: R
  report: RunReport
  /** Rejects no sink drained (a pipeline without the LLaMA-Factory sink keeps them here). */
  rejects: Reject[]
}
