import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { alpacaMapper } from '../../src/formats/alpaca.js'
import { rowMapper, type RowMapper } from '../../src/formats/mapper.js'
import { rlaifVMapper } from '../../src/formats/rlaif-v.js'
import { Rejects, Stats, makeContext } from '../../src/pipeline/context.js'
import type { Logger, Source } from '../../src/pipeline/types.js'
import type { PreferenceSample } from '../../src/record.js'
import { jsonSource } from '../../src/sources/json.js'
import { parquetSource } from '../../src/sources/parquet.js'
import { fdsOn } from '../helpers.js'

const PRESETS = join(import.meta.dirname, '..', 'fixtures', 'presets')
const RLAIF = join(PRESETS, 'rlaif-v-sample.parquet')
const ALPACA = join(PRESETS, 'alpaca-ranking.json')

interface Expected {
  row: number
  valid: boolean
  reason: string | null
  image_sha256?: string | null
}
let expected: Record<string, Expected[]>

async function collect(source: Source<PreferenceSample>) {
  const rejects = new Rejects()
  const warnings: string[] = []
  const log: Logger = { debug() {}, info() {}, warn: (m) => warnings.push(m) }
  const ctx = makeContext(
    { signal: new AbortController().signal, log, events: new EventEmitter(), shard: { index: 0, count: 1 }, rejects, emit() {} },
    new Stats('source'),
  )
  const samples: PreferenceSample[] = []
  for await (const s of source(ctx)) samples.push(s)
  return { samples, rejected: rejects.drain(), warnings }
}

/** Wrap a mapper to record the keys of every row it is given. */
function spy(m: RowMapper): { mapper: RowMapper; keys: string[][] } {
  const keys: string[][] = []
  const mapper = rowMapper(
    (row, id, resolvePath) => {
      keys.push(Object.keys(row as object))
      return m(row, id, resolvePath)
    },
    {
      ...(m.columns ? { columns: m.columns } : {}),
      ...(m.optionalColumns ? { optionalColumns: m.optionalColumns } : {}),
      ...(m.imageColumns ? { imageColumns: m.imageColumns } : {}),
    },
  )
  return { mapper, keys }
}

beforeAll(async () => {
  const { readFile } = await import('node:fs/promises')
  expected = JSON.parse(await readFile(join(PRESETS, 'expected.json'), 'utf8')) as Record<string, Expected[]>
})

describe('parquetSource with mapRow', () => {
  it('maps every RLAIF-V row with the mapper; ids, meta.row, image bytes detached and intact', async () => {
    const { samples, rejected } = await collect(parquetSource({ path: RLAIF, mapRow: rlaifVMapper() }))
    const exp = expected['rlaif-v-sample.parquet']!
    const unmappable = exp.filter((e) => e.reason === 'image_missing').map((e) => e.row)
    expect(rejected.map((r) => [r.id, r.reason])).toEqual(unmappable.map((row) => [`rlaif-v-sample.parquet#${row}`, 'image_missing']))
    const rows = exp.filter((e) => !unmappable.includes(e.row))
    expect(samples.map((s) => s.id)).toEqual(rows.map((e) => `rlaif-v-sample.parquet#${e.row}`))
    samples.forEach((s, i) => {
      expect(s.meta.row).toBe(rows[i]!.row)
      expect(s.meta.ds_name).toBe('RLAIF-V')
      expect(s.meta.idx).toBe(String(1000 + rows[i]!.row))
      const img = s.images[0]!.bytes!
      expect(img).toBeInstanceOf(Uint8Array)
      expect(img.byteOffset === 0 && img.buffer.byteLength === img.byteLength).toBe(true)
      expect(createHash('sha256').update(img).digest('hex')).toBe(rows[i]!.image_sha256)
      expect(s.messages).toHaveLength(1)
      expect(s.messages[0]!.content.startsWith('<image>')).toBe(true)
      expect(s.messages[0]!.content.match(/<image>/g)).toHaveLength(1)
    })
  })

  it('reads only the columns the mapper declares (and the optional ones the file has)', async () => {
    const inner = rowMapper((row, id) => ({ ok: true, sample: { id, messages: [], chosen: { role: 'assistant', content: '' }, rejected: { role: 'assistant', content: '' }, images: [], meta: { row } } }), {
      columns: ['question', 'chosen'],
      optionalColumns: ['idx', 'no_such_column'],
    })
    const { mapper, keys } = spy(inner)
    const { samples } = await collect(parquetSource({ path: RLAIF, mapRow: mapper }))
    expect(samples).toHaveLength(12)
    for (const k of keys) expect(k.sort()).toEqual(['chosen', 'idx', 'question'])
  })

  it('reads every column for a mapper that declares none', async () => {
    const { mapper, keys } = spy((row, id, resolvePath) => rlaifVMapper()(row, id, resolvePath))
    expect(mapper.columns).toBeUndefined()
    await collect(parquetSource({ path: RLAIF, mapRow: mapper }))
    expect(keys[0]).toEqual(['ds_name', 'image', 'question', 'chosen', 'rejected', 'origin_dataset', 'origin_split', 'idx', 'image_path'])
  })

  it('fails the run naming the missing columns, and closes the file', async () => {
    const err = await collect(parquetSource({ path: RLAIF, mapRow: alpacaMapper() })).catch((e: Error) => e)
    expect(err).toBeInstanceOf(Error)
    expect((err as Error).message).toMatch(/has no column "instruction" \(it has: "ds_name", "image", .*\), which the row mapper \(mapRow\) reads/)
    expect(fdsOn(RLAIF)).toBe(0)
  })

  it('refuses mapRow together with columns or tags', () => {
    expect(() => parquetSource({ path: RLAIF, mapRow: rlaifVMapper(), columns: { messages: 'm' } })).toThrow(/either mapRow or columns\/tags/)
    expect(() => jsonSource({ path: ALPACA, mapRow: alpacaMapper(), tags: { role_tag: 'role' } })).toThrow(/either mapRow or columns\/tags/)
  })
})

describe('jsonSource with mapRow', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prefpipe-maprow-'))
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('maps alpaca ranking rows; the broken one is rejected by the mapper', async () => {
    const { samples, rejected, warnings } = await collect(jsonSource({ path: ALPACA, mapRow: alpacaMapper() }))
    const exp = expected['alpaca-ranking.json']!
    expect(warnings).toEqual([])
    expect(samples.map((s) => s.meta.row)).toEqual(exp.filter((e) => e.valid).map((e) => e.row))
    expect(rejected.map((r) => [r.id, r.reason])).toEqual(exp.filter((e) => !e.valid).map((e) => [`alpaca-ranking.json#${e.row}`, e.reason]))
    expect(samples[0]!.messages).toEqual([{ role: 'user', content: 'Translate the word into French.\ncat' }])
    expect(samples[2]!.system).toBe('Answer tersely.')
    expect(samples[3]!.messages.map((t) => t.role)).toEqual(['user', 'assistant', 'user'])
    expect(samples[4]!.messages).toEqual([{ role: 'user', content: 'What color is the sky on a clear day?' }])
  })

  it('gives the mapper the media-dir resolver, and warns once when the first row lacks a mapper column', async () => {
    const file = join(dir, 'rlaif.jsonl')
    await writeFile(file, [
      JSON.stringify({ image: 'imgs/a.jpg', question: 'Q?', chosen: 'a', rejected: 'b' }),
      JSON.stringify({ image: '/abs/b.jpg', question: 'Q2?', chosen: 'a', rejected: 'b' }),
      JSON.stringify({ img: 'x.jpg', question: 'Q3?', chosen: 'a', rejected: 'b' }),
    ].join('\n'))
    const { samples, rejected, warnings } = await collect(jsonSource({ path: file, mediaDir: '/media', mapRow: rlaifVMapper() }))
    expect(samples.map((s) => s.images)).toEqual([[{ path: '/media/imgs/a.jpg' }], [{ path: '/abs/b.jpg' }]])
    expect(rejected.map((r) => r.reason)).toEqual(['image_missing'])
    expect(warnings).toEqual([])

    const other = join(dir, 'other.jsonl')
    await writeFile(other, `${JSON.stringify({ prompt: 'Q', chosen: 'a', rejected: 'b' })}\n${JSON.stringify({ prompt: 'Q', chosen: 'a', rejected: 'b' })}\n`)
    const r = await collect(jsonSource({ path: other, mapRow: alpacaMapper() }))
    expect(r.warnings).toHaveLength(1)
    expect(r.warnings[0]).toMatch(/the first row has no "instruction" \(it has "prompt", "chosen", "rejected"\); the row mapper \(mapRow\) reads them/)
  })
})
