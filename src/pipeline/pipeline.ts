import { EventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import { Rejects, Stats, makeContext, quietLogger, type RunShared } from './context.js'
import { PipelineError, abortError, isAbortError } from './errors.js'
import { isAfter, stageName } from './stage.js'
import type {
  After,
  PipelineEvent,
  PipelineOptions,
  PipelineResult,
  RunReport,
  Sink,
  Source,
  StageReport,
  Transform,
} from './types.js'

/**
 * Run `source -> ...transforms -> sink [-> then]` and resolve to the sink's (or `then`'s) result and a run report.
 *
 * - **Pull-based**: nothing runs ahead of what the sink asks for, so a slow sink slows the source and memory stays
 *   bounded by what each stage holds itself.
 * - **Abort**: `options.signal` stops every stage promptly; each stage's `finally` runs before the promise rejects
 *   with an `AbortError`.
 * - **Errors**: the first stage to throw rejects the pipeline with a {@link PipelineError} naming it (the original
 *   error is its `cause`); the other stages are closed and the run's signal is aborted.
 * - **Report**: per-stage `in`/`out`/`dropped` counters and timings, and every reject by reason.
 *
 * @example
 * const { result, report } = await pipeline(
 *   parquetSource({ path: 'fixtures/rlhf-v-sample.parquet' }),
 *   validateRanking(),
 *   llamaFactory({ out: 'out/rlhf_v', name: 'rlhf_v' }),
 * )
 */
export function pipeline<A, R>(source: Source<A>, sink: Sink<A, R>, options?: PipelineOptions): Promise<PipelineResult<R>>
export function pipeline<A, R, R2>(source: Source<A>, sink: Sink<A, R>, then: After<R, R2>, options?: PipelineOptions): Promise<PipelineResult<R2>>
export function pipeline<A, R, R2, R3>(source: Source<A>, sink: Sink<A, R>, then: After<R, R2>, then2: After<R2, R3>, options?: PipelineOptions): Promise<PipelineResult<R3>>
export function pipeline<A, B, R>(source: Source<A>, t1: Transform<A, B>, sink: Sink<B, R>, options?: PipelineOptions): Promise<PipelineResult<R>>
export function pipeline<A, B, R, R2>(source: Source<A>, t1: Transform<A, B>, sink: Sink<B, R>, then: After<R, R2>, options?: PipelineOptions): Promise<PipelineResult<R2>>
export function pipeline<A, B, R, R2, R3>(source: Source<A>, t1: Transform<A, B>, sink: Sink<B, R>, then: After<R, R2>, then2: After<R2, R3>, options?: PipelineOptions): Promise<PipelineResult<R3>>
export function pipeline<A, B, C, R>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, sink: Sink<C, R>, options?: PipelineOptions): Promise<PipelineResult<R>>
export function pipeline<A, B, C, R, R2>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, sink: Sink<C, R>, then: After<R, R2>, options?: PipelineOptions): Promise<PipelineResult<R2>>
export function pipeline<A, B, C, R, R2, R3>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, sink: Sink<C, R>, then: After<R, R2>, then2: After<R2, R3>, options?: PipelineOptions): Promise<PipelineResult<R3>>
export function pipeline<A, B, C, D, R>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, sink: Sink<D, R>, options?: PipelineOptions): Promise<PipelineResult<R>>
export function pipeline<A, B, C, D, R, R2>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, sink: Sink<D, R>, then: After<R, R2>, options?: PipelineOptions): Promise<PipelineResult<R2>>
export function pipeline<A, B, C, D, R, R2, R3>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, sink: Sink<D, R>, then: After<R, R2>, then2: After<R2, R3>, options?: PipelineOptions): Promise<PipelineResult<R3>>
export function pipeline<A, B, C, D, E, R>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, t4: Transform<D, E>, sink: Sink<E, R>, options?: PipelineOptions): Promise<PipelineResult<R>>
export function pipeline<A, B, C, D, E, R, R2>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, t4: Transform<D, E>, sink: Sink<E, R>, then: After<R, R2>, options?: PipelineOptions): Promise<PipelineResult<R2>>
export function pipeline<A, B, C, D, E, R, R2, R3>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, t4: Transform<D, E>, sink: Sink<E, R>, then: After<R, R2>, then2: After<R2, R3>, options?: PipelineOptions): Promise<PipelineResult<R3>>
export function pipeline<A, B, C, D, E, F, R>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, t4: Transform<D, E>, t5: Transform<E, F>, sink: Sink<F, R>, options?: PipelineOptions): Promise<PipelineResult<R>>
export function pipeline<A, B, C, D, E, F, R, R2>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, t4: Transform<D, E>, t5: Transform<E, F>, sink: Sink<F, R>, then: After<R, R2>, options?: PipelineOptions): Promise<PipelineResult<R2>>
export function pipeline<A, B, C, D, E, F, R, R2, R3>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, t4: Transform<D, E>, t5: Transform<E, F>, sink: Sink<F, R>, then: After<R, R2>, then2: After<R2, R3>, options?: PipelineOptions): Promise<PipelineResult<R3>>
export function pipeline<A, B, C, D, E, F, G, R>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, t4: Transform<D, E>, t5: Transform<E, F>, t6: Transform<F, G>, sink: Sink<G, R>, options?: PipelineOptions): Promise<PipelineResult<R>>
export function pipeline<A, B, C, D, E, F, G, R, R2>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, t4: Transform<D, E>, t5: Transform<E, F>, t6: Transform<F, G>, sink: Sink<G, R>, then: After<R, R2>, options?: PipelineOptions): Promise<PipelineResult<R2>>
export function pipeline<A, B, C, D, E, F, G, R, R2, R3>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, t4: Transform<D, E>, t5: Transform<E, F>, t6: Transform<F, G>, sink: Sink<G, R>, then: After<R, R2>, then2: After<R2, R3>, options?: PipelineOptions): Promise<PipelineResult<R3>>
export function pipeline<A, B, C, D, E, F, G, H, R>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, t4: Transform<D, E>, t5: Transform<E, F>, t6: Transform<F, G>, t7: Transform<G, H>, sink: Sink<H, R>, options?: PipelineOptions): Promise<PipelineResult<R>>
export function pipeline<A, B, C, D, E, F, G, H, R, R2>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, t4: Transform<D, E>, t5: Transform<E, F>, t6: Transform<F, G>, t7: Transform<G, H>, sink: Sink<H, R>, then: After<R, R2>, options?: PipelineOptions): Promise<PipelineResult<R2>>
export function pipeline<A, B, C, D, E, F, G, H, R, R2, R3>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, t4: Transform<D, E>, t5: Transform<E, F>, t6: Transform<F, G>, t7: Transform<G, H>, sink: Sink<H, R>, then: After<R, R2>, then2: After<R2, R3>, options?: PipelineOptions): Promise<PipelineResult<R3>>
export function pipeline<A, B, C, D, E, F, G, H, I, R>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, t4: Transform<D, E>, t5: Transform<E, F>, t6: Transform<F, G>, t7: Transform<G, H>, t8: Transform<H, I>, sink: Sink<I, R>, options?: PipelineOptions): Promise<PipelineResult<R>>
export function pipeline<A, B, C, D, E, F, G, H, I, R, R2>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, t4: Transform<D, E>, t5: Transform<E, F>, t6: Transform<F, G>, t7: Transform<G, H>, t8: Transform<H, I>, sink: Sink<I, R>, then: After<R, R2>, options?: PipelineOptions): Promise<PipelineResult<R2>>
export function pipeline<A, B, C, D, E, F, G, H, I, R, R2, R3>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, t4: Transform<D, E>, t5: Transform<E, F>, t6: Transform<F, G>, t7: Transform<G, H>, t8: Transform<H, I>, sink: Sink<I, R>, then: After<R, R2>, then2: After<R2, R3>, options?: PipelineOptions): Promise<PipelineResult<R3>>
export function pipeline<A, B, C, D, E, F, G, H, I, J, R>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, t4: Transform<D, E>, t5: Transform<E, F>, t6: Transform<F, G>, t7: Transform<G, H>, t8: Transform<H, I>, t9: Transform<I, J>, sink: Sink<J, R>, options?: PipelineOptions): Promise<PipelineResult<R>>
export function pipeline<A, B, C, D, E, F, G, H, I, J, R, R2>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, t4: Transform<D, E>, t5: Transform<E, F>, t6: Transform<F, G>, t7: Transform<G, H>, t8: Transform<H, I>, t9: Transform<I, J>, sink: Sink<J, R>, then: After<R, R2>, options?: PipelineOptions): Promise<PipelineResult<R2>>
export function pipeline<A, B, C, D, E, F, G, H, I, J, R, R2, R3>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, t4: Transform<D, E>, t5: Transform<E, F>, t6: Transform<F, G>, t7: Transform<G, H>, t8: Transform<H, I>, t9: Transform<I, J>, sink: Sink<J, R>, then: After<R, R2>, then2: After<R2, R3>, options?: PipelineOptions): Promise<PipelineResult<R3>>
export function pipeline<A, B, C, D, E, F, G, H, I, J, K, R>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, t4: Transform<D, E>, t5: Transform<E, F>, t6: Transform<F, G>, t7: Transform<G, H>, t8: Transform<H, I>, t9: Transform<I, J>, t10: Transform<J, K>, sink: Sink<K, R>, options?: PipelineOptions): Promise<PipelineResult<R>>
export function pipeline<A, B, C, D, E, F, G, H, I, J, K, R, R2>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, t4: Transform<D, E>, t5: Transform<E, F>, t6: Transform<F, G>, t7: Transform<G, H>, t8: Transform<H, I>, t9: Transform<I, J>, t10: Transform<J, K>, sink: Sink<K, R>, then: After<R, R2>, options?: PipelineOptions): Promise<PipelineResult<R2>>
export function pipeline<A, B, C, D, E, F, G, H, I, J, K, R, R2, R3>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, t4: Transform<D, E>, t5: Transform<E, F>, t6: Transform<F, G>, t7: Transform<G, H>, t8: Transform<H, I>, t9: Transform<I, J>, t10: Transform<J, K>, sink: Sink<K, R>, then: After<R, R2>, then2: After<R2, R3>, options?: PipelineOptions): Promise<PipelineResult<R3>>
export function pipeline<A, B, C, D, E, F, G, H, I, J, K, L, R>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, t4: Transform<D, E>, t5: Transform<E, F>, t6: Transform<F, G>, t7: Transform<G, H>, t8: Transform<H, I>, t9: Transform<I, J>, t10: Transform<J, K>, t11: Transform<K, L>, sink: Sink<L, R>, options?: PipelineOptions): Promise<PipelineResult<R>>
export function pipeline<A, B, C, D, E, F, G, H, I, J, K, L, R, R2>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, t4: Transform<D, E>, t5: Transform<E, F>, t6: Transform<F, G>, t7: Transform<G, H>, t8: Transform<H, I>, t9: Transform<I, J>, t10: Transform<J, K>, t11: Transform<K, L>, sink: Sink<L, R>, then: After<R, R2>, options?: PipelineOptions): Promise<PipelineResult<R2>>
export function pipeline<A, B, C, D, E, F, G, H, I, J, K, L, R, R2, R3>(source: Source<A>, t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>, t4: Transform<D, E>, t5: Transform<E, F>, t6: Transform<F, G>, t7: Transform<G, H>, t8: Transform<H, I>, t9: Transform<I, J>, t10: Transform<J, K>, t11: Transform<K, L>, sink: Sink<L, R>, then: After<R, R2>, then2: After<R2, R3>, options?: PipelineOptions): Promise<PipelineResult<R3>>
export async function pipeline(...args: unknown[]): Promise<PipelineResult<unknown>> {
  const { source, transforms, sink, thens, options } = splitStages(args)
  const controller = new AbortController()
  const outer = options.signal
  const onOuterAbort = () => controller.abort(outer?.reason)
  if (outer?.aborted) throw abortError(outer)
  outer?.addEventListener('abort', onOuterAbort, { once: true })

  const events = options.events ?? new EventEmitter()
  const run: RunShared = {
    signal: controller.signal,
    log: options.log ?? quietLogger,
    events,
    shard: options.shard ?? { index: 0, count: 1 },
    rejects: new Rejects(),
    emit(event: PipelineEvent) {
      options.onEvent?.(event)
      if (events.listenerCount('event') > 0) events.emit('event', event)
      if (events.listenerCount(event.type) > 0) events.emit(event.type, event)
    },
  }
  const closeTimeoutMs = options.closeTimeoutMs ?? 10_000
  const names = uniqueNames([source, ...transforms, sink, ...thens])
  const kinds: StageReport['kind'][] = ['source', ...transforms.map(() => 'transform' as const), 'sink', ...thens.map(() => 'after' as const)]
  const stats = names.map((n) => new Stats(n))
  const startedAt = new Date()
  const t0 = performance.now()

  try {
    // Each stage's output is wrapped to count `out`, time it, name its errors and honour the signal;
    // each stage's input is wrapped to count `in` and measure how long the stage waited for it.
    let stream = instrumentOutput(source(makeContext(run, stats[0]!)), stats[0]!, run, closeTimeoutMs, (item) => run.rejects.sourced(item))
    transforms.forEach((t, i) => {
      const s = stats[i + 1]!
      stream = instrumentOutput(t(instrumentInput(stream, s), makeContext(run, s)), s, run, closeTimeoutMs)
    })
    const sinkStats = stats[transforms.length + 1]!
    let result: unknown = await timed(sinkStats, run, closeTimeoutMs, () => sink(instrumentInput(stream, sinkStats, (item) => run.rejects.arrived(item)), makeContext(run, sinkStats)))
    for (let i = 0; i < thens.length; i++) {
      const s = stats[transforms.length + 2 + i]!
      const then = thens[i]!
      const input = result
      s.in = 1
      result = await timed(s, run, closeTimeoutMs, () => then(input, makeContext(run, s)))
      s.out = 1
    }
    if (controller.signal.aborted) throw abortError(controller.signal)
    return { result, report: report(true), rejects: run.rejects.drain() }
  } catch (err) {
    // Tell every stage still working (image workers, downloads) to stop.
    if (!controller.signal.aborted) controller.abort(err)
    if (outer?.aborted) throw abortError(outer)
    if (err instanceof PipelineError) err.report = report(false)
    throw err
  } finally {
    outer?.removeEventListener('abort', onOuterAbort)
  }

  function report(ok: boolean): RunReport {
    return {
      ok,
      startedAt: startedAt.toISOString(),
      wallMs: round(performance.now() - t0),
      stages: stats.map((s, i) => ({
        name: s.name,
        kind: kinds[i]!,
        in: s.in,
        out: s.out,
        dropped: { ...s.dropped },
        counters: { ...s.counters },
        selfMs: round(Math.max(0, s.wallMs - s.waitMs)),
        wallMs: round(s.lastCall - s.firstCall),
      })),
      rejected: { ...run.rejects.byReason },
    }
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10
}

interface Split {
  source: Source<unknown>
  transforms: Transform<unknown, unknown>[]
  sink: Sink<unknown, unknown>
  thens: After<unknown, unknown>[]
  options: PipelineOptions
}

function splitStages(args: unknown[]): Split {
  const list = [...args]
  let options: PipelineOptions = {}
  const last = list[list.length - 1]
  if (last !== undefined && typeof last !== 'function') {
    if (last === null || typeof last !== 'object') throw new TypeError('[prefpipe] pipeline(): the last argument must be a stage or an options object')
    options = list.pop() as PipelineOptions
  }
  const thens: After<unknown, unknown>[] = []
  while (list.length > 0 && isAfter(list[list.length - 1])) thens.unshift(list.pop() as After<unknown, unknown>)
  list.forEach((s, i) => {
    if (typeof s !== 'function') throw new TypeError(`[prefpipe] pipeline(): stage ${i + 1} is not a function (got ${typeof s})`)
    if (isAfter(s)) throw new TypeError(`[prefpipe] pipeline(): "${stageName(s, 'after')}" must come after the sink`)
  })
  if (list.length < 2) throw new TypeError('[prefpipe] pipeline() needs at least a source and a sink')
  return {
    source: list[0] as Source<unknown>,
    transforms: list.slice(1, -1) as Transform<unknown, unknown>[],
    sink: list[list.length - 1] as Sink<unknown, unknown>,
    thens,
    options,
  }
}

function uniqueNames(stages: unknown[]): string[] {
  const seen = new Map<string, number>()
  return stages.map((s, i) => {
    const base = stageName(s, `stage${i + 1}`)
    const n = (seen.get(base) ?? 0) + 1
    seen.set(base, n)
    return n === 1 ? base : `${base}#${n}`
  })
}

function mark(s: Stats): number {
  const now = performance.now()
  if (s.firstCall === 0) s.firstCall = now
  return now
}

/** Run a sink (or an after-step), timing it and naming its error. */
async function timed<T>(s: Stats, run: RunShared, closeTimeoutMs: number, fn: () => Promise<T>): Promise<T> {
  run.emit({ type: 'stage-start', stage: s.name })
  const start = mark(s)
  const work = Promise.resolve().then(fn)
  try {
    const out = await raceAbort(work, run.signal)
    run.emit({ type: 'stage-end', stage: s.name, ok: true })
    return out
  } catch (err) {
    // On abort, let the stage see it and run its cleanup (and so close everything upstream) before we reject.
    if (run.signal.aborted) await Promise.race([work.catch(() => {}), delay(closeTimeoutMs)])
    run.emit({ type: 'stage-end', stage: s.name, ok: false })
    if (isAbortError(err) && run.signal.aborted) throw err
    throw err instanceof PipelineError ? err : new PipelineError(s.name, err)
  } finally {
    s.lastCall = performance.now()
    s.wallMs += s.lastCall - start
  }
}

/** Settles with `p`, or rejects with an AbortError as soon as `signal` aborts. */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(abortError(signal))
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal))
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort)
        resolve(v)
      },
      (e) => {
        signal.removeEventListener('abort', onAbort)
        reject(e)
      },
    )
  })
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref())
}

/**
 * Wrap a stage's output: count items, time the stage, turn its errors into PipelineErrors, and on abort
 * close it (run its `finally`) before rejecting.
 */
function instrumentOutput<T>(iterable: AsyncIterable<T>, s: Stats, run: RunShared, closeTimeoutMs: number, onItem?: (item: T) => void): AsyncIterable<T> {
  if (iterable == null || typeof (iterable as AsyncIterable<T>)[Symbol.asyncIterator] !== 'function') {
    throw new PipelineError(s.name, new TypeError('the stage did not return an async iterable (a sink must be the last stage)'))
  }
  const inner = iterable[Symbol.asyncIterator]()
  let started = false
  let finished = false
  let pending: Promise<unknown> | undefined

  const close = async () => {
    if (finished) return
    finished = true
    // A generator busy in an await runs its `return()` only once that await settles: give it that long.
    const cleanup = (async () => {
      if (pending) await pending.catch(() => {})
      await inner.return?.()
    })().catch(() => {})
    await Promise.race([cleanup, delay(closeTimeoutMs)])
  }
  const end = (ok: boolean) => {
    if (!finished) run.emit({ type: 'stage-end', stage: s.name, ok })
    finished = true
  }

  const iterator: AsyncIterator<T> = {
    async next() {
      if (!started) {
        started = true
        run.emit({ type: 'stage-start', stage: s.name })
      }
      if (finished) return { done: true, value: undefined }
      if (run.signal.aborted) {
        await close()
        throw abortError(run.signal)
      }
      const start = mark(s)
      try {
        pending = inner.next()
        const r = await raceAbort(pending as Promise<IteratorResult<T>>, run.signal)
        pending = undefined
        if (r.done) end(true)
        else {
          s.out++
          onItem?.(r.value)
        }
        return r
      } catch (err) {
        if (run.signal.aborted && isAbortError(err)) {
          await close()
          throw err
        }
        pending = undefined
        end(false)
        throw err instanceof PipelineError || isAbortError(err) ? err : new PipelineError(s.name, err)
      } finally {
        s.lastCall = performance.now()
        s.wallMs += s.lastCall - start
      }
    },
    async return(value?: unknown) {
      await close()
      return { done: true, value: value as T }
    },
  }
  return { [Symbol.asyncIterator]: () => iterator }
}

/** Wrap a stage's input: count what it pulls and how long it waits for it. */
function instrumentInput<T>(iterable: AsyncIterable<T>, s: Stats, onItem?: (item: T) => void): AsyncIterable<T> {
  const inner = iterable[Symbol.asyncIterator]()
  const iterator: AsyncIterator<T> = {
    async next() {
      const start = performance.now()
      try {
        const r = await inner.next()
        if (!r.done) {
          s.in++
          onItem?.(r.value)
        }
        return r
      } finally {
        s.waitMs += performance.now() - start
      }
    },
    async return(value?: unknown) {
      await inner.return?.()
      return { done: true, value: value as T }
    },
  }
  return { [Symbol.asyncIterator]: () => iterator }
}
