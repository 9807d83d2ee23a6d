import { mkdtemp, open, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest'
import {
  PipelineError,
  after,
  named,
  pipeline,
  type PipelineEvent,
  type Sink,
  type Source,
  type StageContext,
  type Transform,
} from '../../src/pipeline/index.js'

function numbers(n: number, log?: number[]): Source<number> {
  return named('numbers', async function* () {
    for (let i = 0; i < n; i++) {
      log?.push(i)
      yield i
    }
  })
}

const double: Transform<number, number> = named('double', async function* (input) {
  for await (const x of input) yield x * 2
})

const collect = <T>(): Sink<T, T[]> =>
  named('collect', async (input: AsyncIterable<T>) => {
    const out: T[] = []
    for await (const x of input) out.push(x)
    return out
  })

describe('pipeline()', () => {
  it('composes source, transforms and sink and keeps order', async () => {
    const jitter: Transform<number, string> = async function* (input) {
      for await (const x of input) {
        await sleep((x * 7) % 3) // uneven work must not reorder
        yield `#${x}`
      }
    }
    const { result, report } = await pipeline(numbers(50), double, jitter, collect<string>())
    expect(result).toEqual(Array.from({ length: 50 }, (_, i) => `#${i * 2}`))
    expect(report.ok).toBe(true)
    expect(report.stages.map((s) => [s.name, s.kind, s.in, s.out])).toEqual([
      ['numbers', 'source', 0, 50],
      ['double', 'transform', 50, 50],
      ['jitter', 'transform', 50, 50],
      ['collect', 'sink', 50, 0],
    ])
  })

  it('infers types end to end', async () => {
    const toStr: Transform<number, string> = async function* (input) {
      for await (const x of input) yield String(x)
    }
    const p = pipeline(numbers(3), double, toStr, collect<string>())
    expectTypeOf(p).resolves.toHaveProperty('result').toEqualTypeOf<string[]>()
    const q = pipeline(numbers(3), collect<number>(), after('count', async (xs: number[]) => xs.length))
    expectTypeOf(q).resolves.toHaveProperty('result').toEqualTypeOf<number>()
    const r = pipeline(numbers(3), collect<number>(), after('count', async (xs: number[]) => xs.length), after('label', async (n: number) => `${n} items`))
    expectTypeOf(r).resolves.toHaveProperty('result').toEqualTypeOf<string>()
    // @ts-expect-error the second step must take what the first returns
    void pipeline(numbers(3), collect<number>(), after('count', async (xs: number[]) => xs.length), after('bad', async (s: string[]) => s)).catch(() => {})
    // @ts-expect-error a transform that takes strings cannot follow a source of numbers
    void pipeline(numbers(3), toStr, toStr, collect<string>()).catch(() => {})
    expect((await p).result).toEqual(['0', '2', '4'])
    expect((await q).result).toBe(3)
    expect((await r).result).toBe('3 items')
  })

  it('pulls: a slow sink bounds how far the source runs ahead', async () => {
    const produced: number[] = []
    let maxAhead = 0
    let consumed = 0
    const slowSink: Sink<number, number> = async (input) => {
      for await (const _ of input) {
        consumed++
        maxAhead = Math.max(maxAhead, produced.length - consumed)
        await sleep(2)
      }
      return consumed
    }
    const { result } = await pipeline(numbers(200, produced), double, slowSink)
    expect(result).toBe(200)
    // One item in hand per generator at most: nothing buffers ahead of the sink.
    expect(maxAhead).toBeLessThanOrEqual(1)
  })

  it('counts dropped rows by reason and hands rejects to the sink', async () => {
    const dropOdd: Transform<number, number> = named('drop-odd', async function* (input, ctx) {
      for await (const x of input) {
        if (x % 2) ctx.reject({ id: `n#${x}`, reason: 'odd', message: `${x} is odd` })
        else if (x === 4) ctx.stats.drop('four')
        else yield x
      }
    })
    let drained: string[] = []
    const sink: Sink<number, number[]> = async (input, ctx) => {
      const out: number[] = []
      for await (const x of input) out.push(x)
      drained = ctx.rejects.drain().map((r) => `${r.stage}:${r.id}:${r.reason}`)
      return out
    }
    const { result, report, rejects } = await pipeline(numbers(8), dropOdd, sink)
    expect(result).toEqual([0, 2, 6])
    expect(drained).toEqual(['drop-odd:n#1:odd', 'drop-odd:n#3:odd', 'drop-odd:n#5:odd', 'drop-odd:n#7:odd'])
    expect(rejects).toEqual([]) // the sink drained them
    const stage = report.stages.find((s) => s.name === 'drop-odd')!
    expect(stage).toMatchObject({ in: 8, out: 3, dropped: { odd: 4, four: 1 } })
    expect(report.rejected).toEqual({ odd: 4 })
  })

  it('returns undrained rejects with the result', async () => {
    const rejectAll: Transform<number, number> = async function* (input, ctx) {
      for await (const x of input) ctx.reject({ id: String(x), reason: 'nope', message: 'no' })
    }
    const { rejects } = await pipeline(numbers(2), rejectAll, collect<number>())
    expect(rejects.map((r) => [r.id, r.stage])).toEqual([['0', 'rejectAll'], ['1', 'rejectAll']])
  })

  it('emits progress and stage events', async () => {
    const events: PipelineEvent[] = []
    const src: Source<number> = named('src', async function* (ctx) {
      for (let i = 0; i < 3; i++) {
        ctx.progress({ done: i + 1, total: 3 })
        yield i
      }
    })
    await pipeline(src, collect<number>(), { onEvent: (e) => events.push(e) })
    const progress = events.filter((e) => e.type === 'progress')
    expect(progress).toEqual([
      { type: 'progress', stage: 'src', done: 1, total: 3 },
      { type: 'progress', stage: 'src', done: 2, total: 3 },
      { type: 'progress', stage: 'src', done: 3, total: 3 },
    ])
    expect(events.filter((e) => e.type === 'stage-end').map((e) => e.stage).sort()).toEqual(['collect', 'src'])
  })

  it('names the failing stage, keeps the cause, and closes the other stages', async () => {
    const closed: string[] = []
    const src: Source<number> = named('src', async function* () {
      try {
        for (let i = 0; ; i++) yield i
      } finally {
        closed.push('src')
      }
    })
    const boom = new Error('bad row 5')
    const explode: Transform<number, number> = named('explode', async function* (input) {
      for await (const x of input) {
        if (x === 5) throw boom
        yield x
      }
    })
    const sink: Sink<number, void> = named('sink', async (input) => {
      try {
        for await (const _ of input) {
          /* consume */
        }
      } finally {
        closed.push('sink')
      }
    })
    const err = await pipeline(src, explode, sink).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(PipelineError)
    expect((err as PipelineError).stage).toBe('explode')
    expect((err as PipelineError).cause).toBe(boom)
    expect((err as PipelineError).message).toMatch(/stage "explode" failed: bad row 5/)
    expect((err as PipelineError).report?.stages.find((s) => s.name === 'explode')?.in).toBe(6)
    expect(closed.sort()).toEqual(['sink', 'src'])
  })

  it('names the sink when the sink throws, and closes the source', async () => {
    const closed: string[] = []
    const src: Source<number> = async function* src() {
      try {
        for (let i = 0; ; i++) yield i
      } finally {
        closed.push('src')
      }
    }
    const sink: Sink<number, void> = named('writer', async (input) => {
      for await (const x of input) if (x === 3) throw new Error('disk full')
    })
    const err = (await pipeline(src, sink).catch((e: unknown) => e)) as PipelineError
    expect(err.stage).toBe('writer')
    expect(closed).toEqual(['src'])
  })

  it('aborts on an error in a stage so that concurrent work in other stages stops', async () => {
    let sawAbort = false
    const src: Source<number> = async function* (ctx: StageContext) {
      ctx.signal.addEventListener('abort', () => (sawAbort = true))
      for (let i = 0; ; i++) yield i
    }
    const sink: Sink<number, void> = async (input) => {
      for await (const x of input) if (x === 2) throw new Error('x')
    }
    await expect(pipeline(src, sink)).rejects.toThrow(PipelineError)
    expect(sawAbort).toBe(true)
  })

  describe('abort', () => {
    let dir: string
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'prefpipe-pipeline-'))
      await writeFile(join(dir, 'data.bin'), Buffer.alloc(1 << 20, 7))
    })
    afterAll(() => rm(dir, { recursive: true, force: true }))

    it('stops every stage promptly and closes the source file handle', async () => {
      const state = { opened: false, closed: false, chunks: 0 }
      const fileChunks: Source<Buffer> = named('file', async function* (ctx) {
        const fh = await open(join(dir, 'data.bin'))
        state.opened = true
        try {
          for (;;) {
            const buf = Buffer.alloc(1024)
            const { bytesRead } = await fh.read(buf, 0, buf.length, null)
            if (bytesRead === 0) return
            state.chunks++
            yield buf
            ctx.signal.throwIfAborted()
          }
        } finally {
          await fh.close()
          state.closed = true
        }
      })
      const controller = new AbortController()
      const slowSink: Sink<Buffer, number> = async (input) => {
        let n = 0
        for await (const _ of input) {
          if (++n === 10) controller.abort()
          await sleep(1)
        }
        return n
      }
      const err = await pipeline(fileChunks, slowSink, { signal: controller.signal }).catch((e: unknown) => e)
      expect((err as Error).name).toBe('AbortError')
      expect(state.opened).toBe(true)
      expect(state.closed).toBe(true)
      expect(state.chunks).toBeLessThan(20) // 1024 chunks in the file: it stopped early
    })

    it('rejects at once while a stage waits, then runs its cleanup', async () => {
      let cleaned = false
      const waiting: Source<number> = async function* (ctx) {
        try {
          yield 1
          await sleep(60_000, undefined, { signal: ctx.signal }) // a long wait that honours the signal
          yield 2
        } finally {
          cleaned = true
        }
      }
      const controller = new AbortController()
      setTimeout(() => controller.abort(), 30)
      const t0 = Date.now()
      await expect(pipeline(waiting, collect<number>(), { signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' })
      expect(Date.now() - t0).toBeLessThan(10_000)
      expect(cleaned).toBe(true)
    })

    it('refuses to start with a signal already aborted', async () => {
      const produced: number[] = []
      await expect(pipeline(numbers(3, produced), collect<number>(), { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' })
      expect(produced).toEqual([])
    })
  })

  it('runs after-steps with the sink result and reports them', async () => {
    const { result, report } = await pipeline(
      numbers(4),
      collect<number>(),
      after('sum', async (xs: number[]) => xs.reduce((a, b) => a + b, 0)),
    )
    expect(result).toBe(6)
    expect(report.stages.at(-1)).toMatchObject({ name: 'sum', kind: 'after', in: 1, out: 1 })
  })

  it('rejects bad compositions with a clear error', async () => {
    // @ts-expect-error a source alone is not a pipeline
    await expect(pipeline(numbers(1))).rejects.toThrow(/at least a source and a sink/)
    const notIterable = (() => 42) as unknown as Transform<number, number>
    await expect(pipeline(numbers(1), notIterable, collect<number>())).rejects.toThrow(/did not return an async iterable/)
  })

  it('measures time per stage', async () => {
    const slow: Transform<number, number> = named('slow', async function* (input) {
      for await (const x of input) {
        await sleep(5)
        yield x
      }
    })
    const { report } = await pipeline(numbers(10), slow, collect<number>())
    const s = report.stages.find((x) => x.name === 'slow')!
    expect(s.selfMs).toBeGreaterThanOrEqual(40)
    const sink = report.stages.find((x) => x.name === 'collect')!
    expect(sink.selfMs).toBeLessThan(s.selfMs)
  })
})
