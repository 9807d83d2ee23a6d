import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { readFileSync, writeFileSync } from 'node:fs'
import { fdsOn } from '../helpers.js'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parquetMetadataAsync } from 'hyparquet'
import { ParquetWriter, fileWriter } from 'hyparquet-writer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Rejects, Stats, makeContext, quietLogger } from '../../src/pipeline/context.js'
import { pipeline } from '../../src/pipeline/index.js'
import type { ProgressUpdate, Shard, Sink } from '../../src/pipeline/types.js'
import type { PreferenceSample, Reject } from '../../src/record.js'
import { openFileBuffer, parquetInfo, parquetSource, type ClosableAsyncBuffer, type ParquetSourceOptions } from '../../src/sources/parquet.js'

// ---------------------------------------------------------------------------------------------------------
// helpers

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'parquet')
const RLHF_V_SAMPLE = join(import.meta.dirname, '..', '..', 'fixtures', 'rlhf-v-sample.parquet')

/** A bare stage context (no pipeline), with what the source reported. */
function context(opts: { signal?: AbortSignal; shard?: Shard } = {}) {
  const rejects = new Rejects()
  const progress: ProgressUpdate[] = []
  const stats = new Stats('parquet')
  const ctx = makeContext(
    {
      signal: opts.signal ?? new AbortController().signal,
      log: quietLogger,
      events: new EventEmitter(),
      shard: opts.shard ?? { index: 0, count: 1 },
      rejects,
      emit(e) {
        if (e.type === 'progress') progress.push(e)
      },
    },
    stats,
  )
  return { ctx, rejects, progress, stats }
}

async function collect(options: ParquetSourceOptions, ctxOpts: { signal?: AbortSignal; shard?: Shard } = {}) {
  const c = context(ctxOpts)
  const samples: PreferenceSample[] = []
  for await (const s of parquetSource(options)(c.ctx)) samples.push(s)
  return { samples, ...c, rejected: c.rejects.drain() }
}

/** A slice the source asked for. */
interface SliceLog {
  start: number
  end: number
  /** How many samples the consumer had received when the slice was asked for. */
  consumed: number
  /** The slice reaches the end of the file: the footer read (512 KiB, so all of a small file), not data. */
  footer: boolean
}

/** Wrap {@link openFileBuffer}: log every slice and every close. */
function observed() {
  const log = { slices: [] as SliceLog[], opened: 0, closed: 0, consumed: 0, onSlice: undefined as undefined | ((s: SliceLog) => void) }
  const open = async (path: string): Promise<ClosableAsyncBuffer> => {
    const inner = await openFileBuffer(path)
    log.opened++
    return {
      byteLength: inner.byteLength,
      slice(start: number, end?: number) {
        const e = end ?? inner.byteLength
        const s = { start, end: e, consumed: log.consumed, footer: e === inner.byteLength }
        log.slices.push(s)
        log.onSlice?.(s)
        return inner.slice(start, end)
      },
      async close() {
        log.closed++
        await inner.close()
      },
    }
  }
  return { log, open }
}


const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

const TAG: Record<string, string> = { user: 'human', assistant: 'gpt', system: 'system', observation: 'observation', function: 'function_call' }

/** A sample back in the fixture's `expected.jsonl` shape (default tags). */
function asExpected(s: PreferenceSample) {
  const turn = (t: { role: string; content: string }) => ({ from: TAG[t.role], value: t.content })
  const conversations = s.messages.map(turn)
  if (s.system !== undefined) conversations.unshift({ from: 'system', value: s.system })
  const paths = (s.meta.imagePaths as (string | null)[] | undefined) ?? []
  return {
    conversations,
    chosen: turn(s.chosen),
    rejected: turn(s.rejected),
    images: s.images.map((img, k) => {
      expect(img.bytes).toBeInstanceOf(Uint8Array)
      return { sha256: sha256(img.bytes!), len: img.bytes!.byteLength, path: paths[k] ?? null }
    }),
  }
}

interface SourceRow {
  conversations: { from: string; value: string }[]
  chosen: { from: string; value: string }
  rejected: { from: string; value: string }
  images: { bytes: Uint8Array; path: string | null }[] | null
  extra: Uint8Array
}

/** Deterministic bytes (an xorshift stream). */
function bytesOf(seed: number, len: number): Uint8Array {
  const out = new Uint8Array(len)
  let x = (seed * 2654435761) >>> 0 || 1
  for (let i = 0; i < len; i++) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    out[i] = x & 0xff
  }
  return out
}

/** Rows in RLHF-V's shape with every edge the source must carry: unicode, system turns, 0/1/2/null images, null paths. */
function makeRows(n: number, imageBytes = 3000): SourceRow[] {
  return Array.from({ length: n }, (_, i) => {
    const images = i % 17 === 5 ? null : i % 11 === 3 ? [] : Array.from({ length: i % 7 === 2 ? 2 : 1 }, (_, k) => ({
      bytes: bytesOf(i * 10 + k + 1, imageBytes + ((i * 37 + k * 101) % 997)),
      path: i % 3 === 0 ? null : `imgs/${i}_${k}.jpg`,
    }))
    const placeholders = '<image>'.repeat(images?.length ?? 0)
    const conversations = [
      ...(i % 5 === 1 ? [{ from: 'system', value: `You are helpful #${i}` }] : []),
      { from: 'human', value: `${placeholders}Question ${i}: 这是什么? 🐱 "quotes" \\ back` },
    ]
    return {
      conversations,
      chosen: { from: 'gpt', value: `Chosen answer ${i} ✅` },
      rejected: { from: 'gpt', value: `Rejected answer ${i} ❌` },
      images,
      extra: bytesOf(100000 + i, 500),
    }
  })
}

const str = (name: string) => ({ name, type: 'BYTE_ARRAY' as const, converted_type: 'UTF8' as const, logical_type: { type: 'STRING' as const }, repetition_type: 'OPTIONAL' as const })
const struct = (name: string, kids: object[]) => [{ name, repetition_type: 'OPTIONAL' as const, num_children: kids.length }, ...kids]
const list = (name: string, kids: object[]) => [
  { name, repetition_type: 'OPTIONAL' as const, num_children: 1, converted_type: 'LIST' as const, logical_type: { type: 'LIST' as const } },
  { name: 'list', repetition_type: 'REPEATED' as const, num_children: 1 },
  ...struct('element', kids),
]
const SCHEMA = [
  { name: 'schema', num_children: 5 },
  ...list('conversations', [str('from'), str('value')]),
  ...struct('chosen', [str('from'), str('value')]),
  ...struct('rejected', [str('from'), str('value')]),
  ...list('images', [{ name: 'bytes', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' }, str('path')]),
  { name: 'extra', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' },
]
const COLUMNS = ['conversations', 'chosen', 'rejected', 'images', 'extra'] as const

/** Write rows with hyparquet-writer (pyarrow's layout). `offsetIndex: false` leaves the offset index out. */
async function writeParquet(dst: string, rows: SourceRow[], opts: { rowGroupSize: number; offsetIndex?: boolean; pageSize?: number }) {
  const pq = new ParquetWriter({ writer: fileWriter(dst), schema: SCHEMA as never, codec: 'SNAPPY' })
  await pq.write({
    rowGroupSize: opts.rowGroupSize,
    ...(opts.pageSize ? { pageSize: opts.pageSize } : {}),
    columnData: COLUMNS.map((name) => ({ name, data: rows.map((r) => r[name]), offsetIndex: opts.offsetIndex ?? true })),
  })
  await pq.finish()
}

/** `[start, end)` byte range of each row group's column chunks (all columns, or only `columns`). */
async function groupRanges(path: string, columns?: string[]) {
  const file = await openFileBuffer(path)
  try {
    const md = await parquetMetadataAsync(file)
    return md.row_groups.map((rg) => {
      let start = Infinity
      let end = 0
      for (const c of rg.columns) {
        const m = c.meta_data!
        if (columns && !columns.includes(m.path_in_schema[0]!)) continue
        const s = Number(m.dictionary_page_offset || m.data_page_offset)
        start = Math.min(start, s)
        end = Math.max(end, s + Number(m.total_compressed_size))
      }
      return { start, end, rows: Number(rg.num_rows) }
    })
  }
  finally {
    await file.close()
  }
}

function expectedOf(r: SourceRow) {
  return {
    conversations: r.conversations,
    chosen: r.chosen,
    rejected: r.rejected,
    images: (r.images ?? []).map((img) => ({ sha256: sha256(img.bytes), len: img.bytes.byteLength, path: img.path })),
  }
}

// ---------------------------------------------------------------------------------------------------------
// files written here (hyparquet-writer), so every property is checked without the pyarrow fixtures

let dir: string
let rows: SourceRow[]
const f = { rg100: '', rg1NoIndex: '', rg1Index: '', notParquet: '', empty: '' }

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prefpipe-parquet-'))
  rows = makeRows(250)
  f.rg100 = join(dir, 'rg100.parquet')
  f.rg1NoIndex = join(dir, 'rg1-noindex.parquet')
  f.rg1Index = join(dir, 'rg1-index.parquet')
  f.notParquet = join(dir, 'not.parquet')
  f.empty = join(dir, 'empty.parquet')
  await writeParquet(f.rg100, rows, { rowGroupSize: 100 })
  await writeParquet(f.rg1NoIndex, rows, { rowGroupSize: 1000, offsetIndex: false })
  await writeParquet(f.rg1Index, rows, { rowGroupSize: 1000, pageSize: 16 * 1024 })
  writeFileSync(f.notParquet, '{"conversations": []}\n'.repeat(10))
  writeFileSync(f.empty, '')
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('parquetSource on files written by hyparquet-writer', () => {
  it('reads every row, text byte for byte, image bytes as Uint8Array, in order, with ids', async () => {
    for (const path of [f.rg100, f.rg1NoIndex, f.rg1Index]) {
      const { samples, rejected, stats } = await collect({ path })
      expect(rejected).toEqual([])
      expect(samples.map((s) => s.id)).toEqual(rows.map((_, i) => `${path.split('/').pop()}#${i}`))
      samples.forEach((s, i) => {
        expect(asExpected(s)).toEqual(expectedOf(rows[i]!))
        expect(s.meta.row).toBe(i)
        for (const img of s.images) {
          expect(img.bytes).toBeInstanceOf(Uint8Array)
          // a buffer of its own, not a view pinning the row group
          expect(img.bytes!.byteLength).toBe(img.bytes!.buffer.byteLength)
        }
      })
      expect(stats.counters.rowGroups).toBe(path === f.rg100 ? 3 : 1)
    }
  })

  it('names ids after the name option', async () => {
    const { samples } = await collect({ path: f.rg100, name: 'rlhf_v' })
    expect(samples[0]!.id).toBe('rlhf_v#0')
    expect(samples[249]!.id).toBe('rlhf_v#249')
  })

  it('reads only the mapped columns', async () => {
    const { log, open } = observed()
    await collect({ path: f.rg100, open })
    const extra = await groupRanges(f.rg100, ['extra'])
    const dataSlices = log.slices.filter((s) => !s.footer && s.end - s.start > 4)
    expect(dataSlices.length).toBeGreaterThanOrEqual(3)
    for (const s of dataSlices) for (const g of extra) expect(s.end <= g.start || s.start >= g.end).toBe(true)
  })

  it('reads one row group at a time: nothing of group g+1 before the last row of group g is consumed', async () => {
    const { log, open } = observed()
    const ranges = await groupRanges(f.rg100, ['conversations', 'chosen', 'rejected', 'images'])
    const groupOf = (s: SliceLog) => (s.footer ? -1 : ranges.findIndex((g) => s.start < g.end && s.end > g.start))
    const c = context()
    let consumed = 0
    for await (const _ of parquetSource({ path: f.rg100, open })(c.ctx)) {
      consumed++
      log.consumed = consumed
      await new Promise((r) => setTimeout(r, 1)) // a slow consumer: a prefetching reader would run ahead now
      const currentGroup = Math.floor((consumed - 1) / 100)
      const touched = log.slices.map(groupOf).filter((g) => g >= 0)
      expect(Math.max(...touched)).toBe(currentGroup)
    }
    // each group's chunks were asked for exactly when the previous group was used up
    for (let g = 0; g < ranges.length; g++) {
      const first = log.slices.find((s) => groupOf(s) === g)!
      expect(first.consumed).toBe(g * 100)
    }
    // and each byte of data was read once (no re-reads)
    const dataBytes = log.slices.filter((s) => groupOf(s) >= 0).reduce((n, s) => n + s.end - s.start, 0)
    expect(dataBytes).toBe(ranges.reduce((n, g) => n + g.end - g.start, 0))
  })

  it('reads a big row group with an offset index in row windows (pages only)', async () => {
    const { log, open } = observed()
    const { samples, stats } = await collect({ path: f.rg1Index, open, windowRows: 50, windowMinBytes: 0 })
    expect(samples.map((s) => asExpected(s))).toEqual(rows.map(expectedOf))
    expect(stats.counters.windows).toBe(5)
    expect(stats.counters.rowGroups).toBe(1)
    const [images] = await groupRanges(f.rg1Index, ['images'])
    const chunk = images!.end - images!.start
    const inImages = log.slices.filter((s) => s.start >= images!.start && s.end <= images!.end && s.end - s.start > 1000)
    expect(inImages.length).toBeGreaterThanOrEqual(5)
    for (const s of inImages) expect(s.end - s.start).toBeLessThan(chunk / 2)
  })

  it('reads a row group without an offset index whole, even with windows asked for', async () => {
    const { log, open } = observed()
    const { samples, stats } = await collect({ path: f.rg1NoIndex, open, windowRows: 50, windowMinBytes: 0 })
    expect(samples).toHaveLength(250)
    expect(stats.counters.windows).toBeUndefined()
    const [images] = await groupRanges(f.rg1NoIndex, ['images'])
    expect(log.slices.some((s) => s.start <= images!.start && s.end >= images!.end)).toBe(true)
  })

  it('does not window small row groups by default', async () => {
    const { stats } = await collect({ path: f.rg1Index })
    expect(stats.counters.windows).toBeUndefined()
  })

  it('shard i/n takes whole row groups; the shards together cover every row once', async () => {
    for (const count of [1, 2, 3, 4]) {
      const all: string[] = []
      for (let index = 0; index < count; index++) {
        const { samples, progress } = await collect({ path: f.rg100, name: 'x' }, { shard: { index, count } })
        const rowsOf = samples.map((s) => s.meta.row as number)
        const groups = [0, 1, 2].filter((g) => g % count === index)
        const want = groups.flatMap((g) => Array.from({ length: g === 2 ? 50 : 100 }, (_, i) => g * 100 + i))
        expect(rowsOf).toEqual(want)
        expect(progress.at(-1)).toMatchObject({ done: want.length, total: want.length })
        all.push(...samples.map((s) => s.id))
      }
      expect(all.sort()).toEqual(rows.map((_, i) => `x#${i}`).sort())
    }
  })

  it('reports progress per batch with rows and bytes', async () => {
    const { progress } = await collect({ path: f.rg100 })
    expect(progress.map((p) => p.done)).toEqual([0, 100, 200, 250])
    expect(progress.every((p) => p.total === 250)).toBe(true)
    const last = progress.at(-1)!
    expect(last.bytes).toBe(last.totalBytes)
    expect(last.totalBytes).toBeGreaterThan(250 * 3000)
  })

  it('rejects rows without the ranking shape and goes on', async () => {
    const bad = makeRows(10)
    bad[3]!.chosen = { from: 'robot', value: 'x' }
    bad[6]!.conversations = [{ from: 'human', value: 'hi' }, { from: '???', value: 'x' }]
    const path = join(dir, 'bad-rows.parquet')
    await writeParquet(path, bad, { rowGroupSize: 4 })
    const { samples, rejected } = await collect({ path, name: 'b' })
    expect(samples.map((s) => s.id)).toEqual(['b#0', 'b#1', 'b#2', 'b#4', 'b#5', 'b#7', 'b#8', 'b#9'])
    expect(rejected.map((r: Reject) => [r.id, r.reason, r.stage])).toEqual([
      ['b#3', 'role_unknown', 'parquet'],
      ['b#6', 'role_unknown', 'parquet'],
    ])
  })

  it('closes its one file handle on completion, on a consumer error and on abort', async () => {
    const before = fdsOn(f.rg100)
    expect(before).toBe(0)

    // completion
    const done = observed()
    await collect({ path: f.rg100, open: done.open })
    expect([done.log.opened, done.log.closed, fdsOn(f.rg100)]).toEqual([1, 1, 0])

    // the consumer stops early (break -> return())
    const early = observed()
    const c = context()
    let n = 0
    for await (const _ of parquetSource({ path: f.rg100, open: early.open })(c.ctx)) {
      if (n === 0) expect(fdsOn(f.rg100)).toBe(1) // the handle is really open while reading
      if (++n === 120) break
    }
    expect([early.log.closed, fdsOn(f.rg100)]).toEqual([1, 0])

    // abort in a pipeline, between rows
    const between = observed()
    const ac = new AbortController()
    let got = 0
    const sink: Sink<PreferenceSample, number> = async (input) => {
      for await (const _ of input) if (++got === 150) ac.abort()
      return got
    }
    await expect(pipeline(parquetSource({ path: f.rg100, open: between.open }), sink, { signal: ac.signal })).rejects.toMatchObject({ name: 'AbortError' })
    expect(got).toBe(150)
    expect([between.log.closed, fdsOn(f.rg100)]).toEqual([1, 0])

    // abort while a read is in flight: the source stops at once and closes after the read settles
    const inflight = observed()
    const ac2 = new AbortController()
    inflight.log.onSlice = (s) => {
      if (s.end - s.start > 10_000) ac2.abort()
    }
    const c2 = context({ signal: ac2.signal })
    const it = parquetSource({ path: f.rg100, open: inflight.open })(c2.ctx)[Symbol.asyncIterator]()
    await expect(it.next()).rejects.toMatchObject({ name: 'AbortError' })
    expect([inflight.log.closed, fdsOn(f.rg100)]).toEqual([1, 0])
  })

  it('closes the file when the sink fails', async () => {
    const o = observed()
    const sink: Sink<PreferenceSample, void> = async (input) => {
      for await (const s of input) if (s.meta.row === 42) throw new Error('disk full')
    }
    await expect(pipeline(parquetSource({ path: f.rg100, open: o.open }), sink)).rejects.toThrow(/disk full/)
    expect([o.log.closed, fdsOn(f.rg100)]).toEqual([1, 0])
  })
})

describe('parquetSource errors', () => {
  it('names a path that does not exist', async () => {
    await expect(collect({ path: join(dir, 'nope.parquet') })).rejects.toThrow(/nope\.parquet does not exist/)
  })

  it('says a file is not parquet (bad magic), and closes it', async () => {
    const o = observed()
    await expect(collect({ path: f.notParquet, open: o.open })).rejects.toThrow(/not\.parquet: it is not a parquet file .*PAR1.*starts with "\{\\"co"/)
    expect(o.log.closed).toBe(1)
    await expect(collect({ path: f.empty })).rejects.toThrow(/empty\.parquet: it is not a parquet file.*only 0 bytes/)
  })

  it('lists the missing and the existing columns, and hints at the columns option', async () => {
    const err = await collect({ path: f.rg100, columns: { messages: 'messages', chosen: 'good' } }).catch((e: Error) => e)
    expect(err).toBeInstanceOf(Error)
    const msg = (err as Error).message
    expect(msg).toContain('rg100.parquet has no columns "messages", "good"')
    expect(msg).toContain('(it has: "conversations", "chosen", "rejected", "images", "extra")')
    expect(msg).toContain('`columns` option')
  })

  it('needs an images column only when it is named', async () => {
    const path = join(dir, 'text-only.parquet')
    const schema = [{ name: 'schema', num_children: 3 }, ...list('conversations', [str('from'), str('value')]), ...struct('chosen', [str('from'), str('value')]), ...struct('rejected', [str('from'), str('value')])]
    const pq = new ParquetWriter({ writer: fileWriter(path), schema: schema as never })
    const text = makeRows(5).map((r) => ({ ...r, conversations: [{ from: 'human', value: 'hi' }] }))
    await pq.write({ columnData: (['conversations', 'chosen', 'rejected'] as const).map((name) => ({ name, data: text.map((r) => r[name]) })) })
    await pq.finish()
    const { samples } = await collect({ path })
    expect(samples).toHaveLength(5)
    expect(samples.every((s) => s.images.length === 0)).toBe(true)
    await expect(collect({ path, columns: { images: 'images' } })).rejects.toThrow(/has no column "images"/)
  })
})

describe('parquetInfo', () => {
  it('describes a file from its footer', async () => {
    const info = await parquetInfo(f.rg100)
    expect(info).toMatchObject({
      numRows: 250,
      columns: ['conversations', 'chosen', 'rejected', 'images', 'extra'],
      codecs: ['SNAPPY'],
      hasOffsetIndex: false, // hyparquet-writer leaves the offset index out of single-page chunks
      createdBy: 'hyparquet',
    })
    expect(info.rowGroups.map((g) => g.numRows)).toEqual([100, 100, 50])
    expect(info.rowGroups.every((g) => g.compressedBytes > 0 && g.totalByteSize > 0)).toBe(true)
    expect((await parquetInfo(f.rg1Index)).hasOffsetIndex).toBe(true)
    expect((await parquetInfo(f.rg1NoIndex)).hasOffsetIndex).toBe(false)
    expect(fdsOn(f.rg100)).toBe(0)
    await expect(parquetInfo(f.notParquet)).rejects.toThrow(/not a parquet file/)
  })
})

// ---------------------------------------------------------------------------------------------------------
// the pyarrow-written fixtures (test/fixtures/parquet, made by scripts/make_fixtures.py)

const ROW_FIXTURES = ['rg100', 'rg1500', 'rg1', 'offset-index', 'zstd', 'gzip', 'edge']

interface ExpectedLine {
  row: number
  conversations: { from: string; value: string }[]
  chosen: { from: string; value: string }
  rejected: { from: string; value: string }
  images: { sha256: string; len: number; path: string | null }[] | null
  images_null?: boolean
}

function expectedLines(name: string): ExpectedLine[] {
  return readFileSync(join(FIXTURES, `${name}.expected.jsonl`), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as ExpectedLine)
}

describe('parquetSource on the pyarrow fixtures', () => {
  const modes: [string, Partial<ParquetSourceOptions>][] = [
    ['defaults', {}],
    ['64-row windows wherever they pay off', { windowRows: 64, windowMinBytes: 0 }],
  ]
  describe.each(modes)('%s', (_, extra) => {
    it.each(ROW_FIXTURES)('%s.parquet: every row equals its expected line', async (name) => {
      const path = join(FIXTURES, `${name}.parquet`)
      const expected = expectedLines(name)
      const { samples, rejected } = await collect({ path, ...extra })
      expect(rejected).toEqual([])
      expect(samples.map((s) => s.id)).toEqual(expected.map((e) => `${name}.parquet#${e.row}`))
      samples.forEach((s, i) => {
        const e = expected[i]!
        expect(s.meta.row).toBe(e.row)
        expect(asExpected(s)).toEqual({ conversations: e.conversations, chosen: e.chosen, rejected: e.rejected, images: e.images ?? [] })
        if (e.images_null) expect(s.images).toEqual([])
        for (const img of s.images) expect(img.bytes).toBeInstanceOf(Uint8Array)
      })
      expect(fdsOn(path)).toBe(0)
    })
  })

  it('rg100.parquet is read one row group at a time', async () => {
    const path = join(FIXTURES, 'rg100.parquet')
    const info = await parquetInfo(path)
    const ranges = await groupRanges(path, ['conversations', 'chosen', 'rejected', 'images'])
    const { log, open } = observed()
    const groupOf = (s: SliceLog) => (s.footer ? -1 : ranges.findIndex((g) => s.start < g.end && s.end > g.start))
    const starts = info.rowGroups.map((_, g) => info.rowGroups.slice(0, g).reduce((n, x) => n + x.numRows, 0))
    const c = context()
    let consumed = 0
    for await (const _ of parquetSource({ path, open })(c.ctx)) {
      log.consumed = ++consumed
      await new Promise((r) => setTimeout(r, 0))
      const current = starts.findLastIndex((st) => st < consumed)
      expect(Math.max(...log.slices.map(groupOf))).toBe(current)
    }
    expect(c.stats.counters.rowGroups).toBe(info.rowGroups.length)
  })

  it('offset-index.parquet is read in offset-index windows', async () => {
    const path = join(FIXTURES, 'offset-index.parquet')
    const info = await parquetInfo(path)
    expect(info.hasOffsetIndex).toBe(true)
    const { log, open } = observed()
    const { samples, stats } = await collect({ path, open, windowRows: 50, windowMinBytes: 0 })
    expect(samples).toHaveLength(250)
    expect(stats.counters.windows).toBe(5)
    const [images] = await groupRanges(path, ['images'])
    const inImages = log.slices.filter((s) => s.start >= images!.start && s.end <= images!.end && s.end - s.start > 1000)
    expect(inImages.length).toBeGreaterThanOrEqual(5)
    for (const s of inImages) expect(s.end - s.start).toBeLessThan((images!.end - images!.start) / 2)
  })

  it('rg1500.parquet: shards take whole row groups and together cover every row once', async () => {
    const path = join(FIXTURES, 'rg1500.parquet')
    const info = await parquetInfo(path)
    expect(info.rowGroups.length).toBeGreaterThan(1)
    const starts = info.rowGroups.map((_, g) => info.rowGroups.slice(0, g).reduce((n, x) => n + x.numRows, 0))
    const seen = new Set<string>()
    for (let index = 0; index < 2; index++) {
      const { samples } = await collect({ path }, { shard: { index, count: 2 } })
      const want = info.rowGroups.flatMap((g, gi) => (gi % 2 === index ? Array.from({ length: g.numRows }, (_, i) => starts[gi]! + i) : []))
      expect(samples.map((s) => s.meta.row)).toEqual(want)
      for (const s of samples) {
        expect(seen.has(s.id)).toBe(false)
        seen.add(s.id)
      }
    }
    expect(seen.size).toBe(info.numRows)
  })

  it('not-parquet.parquet and wrong-schema.parquet fail with clear errors', async () => {
    await expect(collect({ path: join(FIXTURES, 'not-parquet.parquet') })).rejects.toThrow(/not-parquet\.parquet: it is not a parquet file/)
    await expect(collect({ path: join(FIXTURES, 'wrong-schema.parquet') })).rejects.toThrow(
      /wrong-schema\.parquet has no columns "conversations", "chosen", "rejected" \(it has: "question", "answer"\).*`columns` option/,
    )
  })

  it('fixtures/rlhf-v-sample.parquet: 48 rows in order, every image as in its expected.json (semantic breaks pass through)', async () => {
    const expected = JSON.parse(readFileSync(RLHF_V_SAMPLE.replace(/\.parquet$/, '.expected.json'), 'utf8')) as { row: number; image_sha256: string[] }[]
    const { samples, rejected } = await collect({ path: RLHF_V_SAMPLE })
    expect(rejected).toEqual([]) // rows with semantic breaks are validateRanking's to reject, not the source's
    expect(samples.map((s) => s.id)).toEqual(expected.map((e) => `rlhf-v-sample.parquet#${e.row}`))
    samples.forEach((s, i) => {
      for (const img of s.images) expect(img.bytes).toBeInstanceOf(Uint8Array)
      expect(s.images.map((img) => sha256(img.bytes!))).toEqual(expected[i]!.image_sha256)
    })
  })
})
