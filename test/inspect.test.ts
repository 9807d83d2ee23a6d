import { Command } from 'commander'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { formatInspect, registerInspect } from '../src/cli/commands/inspect.js'
import { formatPresets, registerPresets } from '../src/cli/commands/presets.js'
import { inspectFile } from '../src/inspect.js'
import { PRESETS } from '../src/presets/index.js'
import { ROOT, SAMPLE, fdsOn, SAMPLE_REASON_OF } from './helpers.js'
import { PRESET_FIXTURES, expectedRows } from './presets/helpers.js'

const RLAIF = join(PRESET_FIXTURES, 'rlaif-v-sample.parquet')
const DEMO = join(PRESET_FIXTURES, 'dpo-en-demo.json')

interface SampleExpected {
  row: number
  valid: boolean
  breaks: string | null
  image_sha256: string[]
}
const REASON_OF = SAMPLE_REASON_OF

const TURN = 'struct<from: string, value: string>'

describe('inspectFile', () => {
  let sample: SampleExpected[]
  let dir: string
  beforeAll(async () => {
    sample = JSON.parse(await readFile(join(ROOT, 'fixtures', 'rlhf-v-sample.expected.json'), 'utf8')) as SampleExpected[]
    dir = await mkdtemp(join(tmpdir(), 'prefpipe-inspect-'))
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('rlhf-v sample: schema, datasets features, row groups, first rows mapped, every reject of the file', async () => {
    const r = await inspectFile(SAMPLE, { rows: 3 })
    expect(r).toMatchObject({ type: 'parquet', format: 'sharegpt', numRows: 48 })
    expect(r.preset).toBeUndefined()
    expect(r.columns).toEqual([
      { name: 'conversations', type: `list<${TURN}>` },
      { name: 'chosen', type: TURN },
      { name: 'rejected', type: TURN },
      { name: 'images', type: 'list<struct<bytes: binary, path: string>>' },
    ])
    expect(r.hfFeatures?.images).toEqual([{ _type: 'Image' }])
    expect(r.parquet!.rowGroups.map((g) => g.numRows)).toEqual([16, 16, 16])
    expect(r.rows.map((x) => x.row)).toEqual([0, 1, 2])
    r.rows.forEach((row, i) => {
      const e = sample[i]!
      expect(row.id).toBe(`rlhf-v-sample.parquet#${i}`)
      expect(row.ok).toBe(e.valid)
      expect(row.sample!.images).toEqual(e.image_sha256.map((h) => expect.objectContaining({ sha256: h.slice(0, 16), format: expect.stringMatching(/^(jpeg|png)$/) })))
      expect(row.sample!.images[0]!.bytes).toBeGreaterThan(1000)
    })
    const invalid = sample.filter((e) => !e.valid)
    expect(r.validation).toMatchObject({ rowsChecked: 48, complete: true, kept: 48 - invalid.length, rejected: invalid.length })
    expect(r.validation.rejects.map((x) => [x.id, x.reason])).toEqual(invalid.map((e) => [`rlhf-v-sample.parquet#${e.row}`, REASON_OF[e.breaks!]]))
    expect(Object.keys(r.validation.byReason)).toEqual(Object.keys(r.validation.byReason).sort())
    // images are summarised, never dumped
    const json = JSON.stringify(r)
    expect(json.length).toBeLessThan(20_000)
    expect(json).not.toMatch(/"bytes":\{/)
  })

  it('checks only the first rows when asked, and leaves the file closed', async () => {
    const r = await inspectFile(SAMPLE, { rows: 2, check: 10 })
    const invalid = sample.filter((e) => !e.valid && e.row < 10)
    expect(r.validation).toMatchObject({ rowsChecked: 10, complete: false, kept: 10 - invalid.length, rejected: invalid.length })
    expect(r.numRows).toBe(48)
    expect(r.rows).toHaveLength(2)
    expect(fdsOn(SAMPLE)).toBe(0)
  })

  it('rlaif-v fixture: detects the RLAIF-V shape (or reads it as the preset), maps the image question', async () => {
    const exp = await expectedRows('rlaif-v-sample.parquet')
    for (const preset of [undefined, 'rlaif-v']) {
      const r = await inspectFile(RLAIF, { rows: 12, ...(preset ? { preset } : {}) })
      expect(r.format).toBe('rlaif-v')
      expect(r.preset).toBe(preset)
      expect(r.numRows).toBe(12)
      expect(r.parquet!.rowGroups.map((g) => g.numRows)).toEqual([8, 4])
      expect(r.columns.map((c) => c.name)).toEqual(['ds_name', 'image', 'question', 'chosen', 'rejected', 'origin_dataset', 'origin_split', 'idx', 'image_path'])
      expect(r.columns[1]).toEqual({ name: 'image', type: 'struct<bytes: binary, path: string>' })
      expect(r.hfFeatures?.image).toEqual({ _type: 'Image' })
      expect(r.hfFeatures?.question).toEqual({ dtype: 'string', _type: 'Value' })
      expect(r.rows.map((x) => [x.row, x.ok, x.reject?.reason ?? null])).toEqual(exp.map((e) => [e.row, e.valid, e.reason]))
      expect(r.rows[0]!.sample!.messages).toEqual([{ role: 'user', content: '<image>\nWhat is the person in the image wearing?' }])
      expect(r.rows[0]!.sample!.meta).toMatchObject({ ds_name: 'RLAIF-V', idx: '1000', row: 0 })
      expect(r.rows[10]!.sample).toBeUndefined()
      expect(r.rows[10]!.reject).toMatchObject({ reason: 'image_missing', stage: 'parquet' })
      expect(r.rows[9]!.sample!.rejected.content).toBe('')
      expect(r.rows[9]!.reject).toMatchObject({ reason: 'response_empty', stage: 'validate' })
      expect(r.validation).toMatchObject({ rowsChecked: 12, complete: true, kept: 9, rejected: 3 })
    }
  })

  it('dpo-en-demo json: infers the schema from the rows, detects sharegpt, reports the broken row', async () => {
    const exp = await expectedRows('dpo-en-demo.json')
    const r = await inspectFile(DEMO, { rows: 8 })
    expect(r).toMatchObject({ type: 'json', format: 'sharegpt', numRows: 8 })
    expect(r.parquet).toBeUndefined()
    expect(r.columns).toEqual([
      { name: 'conversations', type: `list<${TURN}>` },
      { name: 'chosen', type: `${TURN} | string` },
      { name: 'rejected', type: `${TURN} | string` },
    ])
    expect(r.rows.map((x) => [x.row, x.ok, x.reject?.reason ?? null])).toEqual(exp.map((e) => [e.row, e.valid, e.reason]))
    expect(r.rows[1]!.sample!.system).toBe('You are a patient teacher. Explain step by step.')
    expect(r.rows[1]!.sample!.images).toEqual([])
    expect(r.validation).toMatchObject({ rowsChecked: 8, complete: true, kept: 7, rejected: 1, byReason: { response_not_object: 1 } })
    const asPreset = await inspectFile(DEMO, { preset: 'dpo-en-demo' })
    expect(asPreset).toMatchObject({ format: 'sharegpt', preset: 'dpo-en-demo', validation: { kept: 7, rejected: 1 } })
  })

  it('a JSON Lines file longer than the check: not complete, no row count', async () => {
    const file = join(dir, 'long.jsonl')
    const line = (i: number) => JSON.stringify({ instruction: `Q${i}`, input: '', chosen: `yes ${i}`, rejected: i === 3 ? `yes ${i}` : `no ${i}` })
    await writeFile(file, Array.from({ length: 30 }, (_, i) => line(i)).join('\n') + '\n')
    const r = await inspectFile(file, { rows: 2, check: 10 })
    expect(r).toMatchObject({ type: 'jsonl', format: 'alpaca' })
    expect(r.numRows).toBeUndefined()
    expect(r.validation).toMatchObject({ rowsChecked: 10, complete: false, kept: 9, rejected: 1, byReason: { responses_identical: 1 } })
    expect(fdsOn(file)).toBe(0)
    expect(r.warnings).toEqual([])
    const other = join(dir, 'other.jsonl')
    await writeFile(other, `${JSON.stringify({ prompt: 'Q', chosen: 'a', rejected: 'b' })}\n`)
    const o = await inspectFile(other)
    expect(o.warnings).toEqual([expect.stringMatching(/the rows' keys \(prompt, chosen, rejected\) match no known row shape .* read as sharegpt/)])
    expect(o.validation.byReason).toEqual({ row_shape: 1 })
    expect(formatInspect(o)).toMatch(/warning: the rows' keys/)
    expect(r.columns).toEqual([
      { name: 'instruction', type: 'string' },
      { name: 'input', type: 'string' },
      { name: 'chosen', type: 'string' },
      { name: 'rejected', type: 'string' },
    ])
  })

  it('a parquet file of no known shape: schema only, and a note', async () => {
    const r = await inspectFile(join(ROOT, 'test', 'fixtures', 'parquet', 'wrong-schema.parquet'))
    expect(r.format).toBeUndefined()
    expect(r.columns).toEqual([
      { name: 'question', type: 'string' },
      { name: 'answer', type: 'string' },
    ])
    expect(r.rows).toEqual([])
    expect(r.note).toMatch(/no row shape matches the columns \(question, answer\)/)
    expect(formatInspect(r)).toMatch(/note: no row shape matches/)
  })

  it('fails clearly on a missing file, an unknown extension or preset', async () => {
    await expect(inspectFile(join(dir, 'none.parquet'))).rejects.toThrow(/none\.parquet does not exist/)
    await expect(inspectFile(join(dir, 'none.json'))).rejects.toThrow(/none\.json does not exist/)
    await expect(inspectFile(join(dir, 'x.csv'))).rejects.toThrow(/cannot tell the format from "\.csv"/)
    await expect(inspectFile(SAMPLE, { preset: 'nope' })).rejects.toThrow(/no preset "nope"/)
  })
})

describe('prefpipe inspect / prefpipe presets (commands)', () => {
  let out: string[]
  const program = () => {
    const p = new Command('prefpipe').exitOverride().configureOutput({ writeErr: () => {} })
    registerInspect(p)
    registerPresets(p)
    return p
  }
  const cli = async (...args: string[]) => {
    out = []
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      out.push(String(chunk))
      return true
    })
    try {
      await program().parseAsync(['node', 'prefpipe', ...args])
    } finally {
      spy.mockRestore()
    }
    return out.join('')
  }
  afterEach(() => vi.restoreAllMocks())

  it('inspect --json prints what inspectFile returns', async () => {
    const json = JSON.parse(await cli('inspect', RLAIF, '--json', '-n', '2')) as unknown
    expect(json).toEqual(JSON.parse(JSON.stringify(await inspectFile(RLAIF, { rows: 2 }))))
  })

  it('inspect prints a readable summary', async () => {
    const text = await cli('inspect', SAMPLE, '--rows', '2', '--check', '48')
    expect(text).toContain('format    sharegpt')
    expect(text).toContain('rows      48')
    expect(text).toMatch(/parquet {3}3 row groups, SNAPPY, offset index: no/)
    expect(text).toMatch(/images {9}list<struct<bytes: binary, path: string>> {2}\(datasets: \[Image\]\)\n/)
    expect(text).toMatch(/conversations {2}list<struct<from: string, value: string>>\n/)
    expect(text).toMatch(/#0 {2}16 rows/)
    expect(text).toMatch(/first 2 rows\n {2}#0 (ok|REJECTED)/)
    expect(text).toMatch(/image 0 {4}(jpeg|png), \d+ bytes, sha256 [0-9a-f]{16}/)
    expect(text).toMatch(/validation of all 48 rows: 39 kept, 9 rejected/)
    expect(text).toMatch(/response_empty\s+1/)
    const demo = await cli('inspect', DEMO, '--preset', 'dpo-en-demo', '-n', '8')
    expect(demo).toContain('format    sharegpt (preset dpo-en-demo)')
    expect(demo).toMatch(/#5 REJECTED response_not_object \(json\)\n {6}chosen is a string/)
    expect(demo).toContain('system     You are a patient teacher.')
  })

  it('inspect rejects bad numbers and unknown presets', async () => {
    await expect(cli('inspect', SAMPLE, '--rows', 'x')).rejects.toThrow(/not a whole number/)
    await expect(cli('inspect', SAMPLE, '--preset', 'nope')).rejects.toThrow(/no preset "nope"/)
  })

  it('presets lists every preset with kind, repo and description; --json too', async () => {
    const text = await cli('presets')
    for (const p of Object.values(PRESETS)) expect(text).toMatch(new RegExp(`^${p.name}\\s+${p.kind}\\s+${p.repo}\\s+${p.description.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'))
    expect(text).toBe(formatPresets(Object.values(PRESETS)))
    const json = JSON.parse(await cli('presets', '--json')) as { name: string; kind: string; repo: string; description: string; defaults: unknown }[]
    expect(json.map((p) => p.name)).toEqual(['rlhf-v', 'rlaif-v', 'dpo-en-demo'])
    expect(json[1]).toEqual({ name: 'rlaif-v', kind: 'image', repo: 'openbmb/RLAIF-V-Dataset', description: PRESETS['rlaif-v'].description, defaults: PRESETS['rlaif-v'].defaults })
  })
})
