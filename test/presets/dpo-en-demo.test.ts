import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { PipelineResult } from '../../src/pipeline/index.js'
import { DPO_EN_DEMO, prepareDpoEnDemo } from '../../src/presets/dpo-en-demo.js'
import type { LlamaFactoryManifest } from '../../src/sinks/llamafactory.js'
import { PRESET_FIXTURES, checkFolder, expectedRows, readJsonl, type ExpectedRow } from './helpers.js'

const DEMO = join(PRESET_FIXTURES, 'dpo-en-demo.json')
const ALPACA = join(PRESET_FIXTURES, 'alpaca-ranking.json')

interface Row {
  conversations: { from: string; value: string }[]
  chosen: { from: string; value: string }
  rejected: { from: string; value: string }
  images: string[]
}

describe("preset dpo-en-demo on its fixture (LLaMA-Factory's dpo_en_demo.json shape: sharegpt ranking)", () => {
  let dir: string
  let expected: ExpectedRow[]
  let run: PipelineResult<LlamaFactoryManifest>
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prefpipe-dpo-'))
    expected = await expectedRows('dpo-en-demo.json')
    run = await prepareDpoEnDemo({ input: DEMO, out: join(dir, 'a') })
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('keeps the valid rows and rejects the broken one (string answers) when reading it', async () => {
    expect(run.result.name).toBe(DPO_EN_DEMO.name)
    expect(run.result.counts.kept).toBe(expected.filter((e) => e.valid).length)
    const rejects = await readJsonl<{ id: string; stage: string; reason: string; message: string }>(run.result.files.rejects)
    expect(rejects.map((r) => [r.id, r.reason, r.stage])).toEqual(expected.filter((e) => !e.valid).map((e) => [`dpo-en-demo.json#${e.row}`, e.reason, 'json']))
    expect(rejects[0]!.message).toMatch(/chosen is a string/)
  })

  it('writes the rows as sharegpt ranking, text only, system turn and multi-turn kept', async () => {
    const src = (JSON.parse(await readFile(DEMO, 'utf8')) as Row[]).filter((_, i) => expected[i]!.valid)
    const rows = await readJsonl<Row>(run.result.datasets.train.file)
    expect(rows.map((r) => ({ conversations: r.conversations, chosen: r.chosen, rejected: r.rejected }))).toEqual(
      src.map((r) => ({ conversations: r.conversations, chosen: r.chosen, rejected: r.rejected })),
    )
    for (const r of rows) expect(r.images).toEqual([])
    expect(rows[1]!.conversations[0]).toEqual({ from: 'system', value: 'You are a patient teacher. Explain step by step.' })
    expect(rows[3]!.conversations[0]!.value).toBe('用一句话解释什么是机器学习。')
    expect(run.result.manifest.options).toEqual({ preset: 'dpo-en-demo', name: 'dpo_en_demo', eval: null, seed: 0, format: 'auto' })
  })

  it('is read by LLaMA-Factory as is', async () => {
    const { code, report, stderr } = await checkFolder(run.result.out, 'dpo_en_demo_train')
    expect(report.errors).toEqual([])
    // The sink writes `images: []` on every row of a text-only dataset (datasets infers list<null>); LLaMA-Factory
    // reads an empty list as no images, so this is the one warning a text dataset gets.
    expect(report.warnings).toEqual([expect.objectContaining({ code: 'feature_type', message: 'images is list<null>: no row has any images' })])
    expect(code, stderr).toBe(0)
    expect(report.datasets.dpo_en_demo_train!.rows).toBe(expected.filter((e) => e.valid).length)
  })

  it('reads alpaca ranking rows too (auto, or format: alpaca), prompt = instruction + "\\n" + input', async () => {
    const exp = await expectedRows('alpaca-ranking.json')
    for (const format of ['auto', 'alpaca'] as const) {
      const { result } = await prepareDpoEnDemo({ input: ALPACA, out: join(dir, `alpaca-${format}`), name: 'pairs', format })
      expect(result.counts.kept).toBe(exp.filter((e) => e.valid).length)
      expect(result.counts.rejectedByReason).toEqual({ row_shape: 1 })
      const rows = await readJsonl<Row>(result.datasets.train.file)
      expect(rows[0]!.conversations).toEqual([{ from: 'human', value: 'Translate the word into French.\ncat' }])
      expect(rows[0]!.chosen).toEqual({ from: 'gpt', value: 'chat' })
      expect(rows[2]!.conversations[0]).toEqual({ from: 'system', value: 'Answer tersely.' })
      expect(rows[3]!.conversations.map((t) => t.from)).toEqual(['human', 'gpt', 'human'])
    }
    const { code, report } = await checkFolder(join(dir, 'alpaca-auto'), 'pairs_train')
    expect(report.errors).toEqual([])
    expect(code).toBe(0)
  })

  it('format: sharegpt reads only sharegpt (the alpaca file is all rejected); a bad format is refused', async () => {
    const { result } = await prepareDpoEnDemo({ input: ALPACA, out: join(dir, 'forced'), format: 'sharegpt' })
    expect(result.counts.kept).toBe(0)
    expect(result.counts.rejected).toBe(6)
    await expect(prepareDpoEnDemo({ input: DEMO, out: join(dir, 'x'), format: 'csv' as never })).rejects.toThrow(/format must be auto, sharegpt or alpaca/)
  })
})
