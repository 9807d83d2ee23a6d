import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { rlaifVMapper } from '../../src/formats/rlaif-v.js'
import { pipeline } from '../../src/pipeline/index.js'
import { RLAIF_V, prepareRlaifV } from '../../src/presets/rlaif-v.js'
import type { LlamaFactoryManifest } from '../../src/sinks/llamafactory.js'
import { llamaFactory } from '../../src/sinks/llamafactory.js'
import { parquetSource } from '../../src/sources/parquet.js'
import { validateRanking } from '../../src/transforms/validate-ranking.js'
import type { PipelineResult } from '../../src/pipeline/index.js'
import { treeDigest } from '../helpers.js'
import { PRESET_FIXTURES, checkFolder, expectedRows, readJsonl, type ExpectedRow } from './helpers.js'

const INPUT = join(PRESET_FIXTURES, 'rlaif-v-sample.parquet')

interface Row {
  conversations: { from: string; value: string }[]
  chosen: { from: string; value: string }
  rejected: { from: string; value: string }
  images: string[]
}

describe('preset rlaif-v on its fixture (openbmb/RLAIF-V-Dataset schema)', () => {
  let dir: string
  let expected: ExpectedRow[]
  let run: PipelineResult<LlamaFactoryManifest>
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prefpipe-rlaif-'))
    expected = await expectedRows('rlaif-v-sample.parquet')
    run = await prepareRlaifV({ input: INPUT, out: join(dir, 'a') })
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('keeps every valid row and rejects each broken one with its reason, at the right stage', async () => {
    const valid = expected.filter((e) => e.valid)
    expect(run.result.name).toBe(RLAIF_V.name)
    expect(run.result.counts.kept).toBe(valid.length)
    expect(run.result.datasets.train.rows).toBe(valid.length)
    const rejects = await readJsonl<{ id: string; stage: string; reason: string }>(run.result.files.rejects)
    expect(rejects.map((r) => [r.id, r.reason, r.stage])).toEqual(
      expected.filter((e) => !e.valid).map((e) => [`rlaif-v-sample.parquet#${e.row}`, e.reason, e.reason === 'image_missing' ? 'parquet' : 'validate']),
    )
    expect(run.report.rejected).toEqual({ image_missing: 1, response_empty: 1, responses_identical: 1 })
  })

  it('writes sharegpt ranking rows: one "<image>\\n" + question turn, the answers, one stored image per distinct photo', async () => {
    const rows = await readJsonl<Row>(run.result.datasets.train.file)
    const valid = expected.filter((e) => e.valid)
    rows.forEach((r, i) => {
      expect(r.conversations).toHaveLength(1)
      expect(r.conversations[0]!.from).toBe('human')
      expect(r.conversations[0]!.value).toMatch(/^<image>\n\S/)
      expect(r.chosen.from).toBe('gpt')
      expect(r.rejected.from).toBe('gpt')
      const h = valid[i]!.image_sha256!
      expect(r.images).toEqual([`images/${h.slice(0, 2)}/${h}.jpg`])
    })
    // the row whose question already had the placeholder keeps exactly one
    expect(rows.filter((r) => r.conversations[0]!.value.startsWith('<image>\nWhat can be seen on the right')).length).toBe(1)
    const stored = Object.keys(await treeDigest(run.result.out)).filter((p) => p.startsWith('images/'))
    expect(stored.length).toBe(new Set(valid.map((e) => e.image_sha256)).size)
    const info = JSON.parse(await readFile(run.result.files.datasetInfo, 'utf8')) as Record<string, unknown>
    expect(info.rlaif_v_train).toMatchObject({ file_name: 'rlaif_v_train.jsonl', formatting: 'sharegpt', ranking: true })
    expect(run.result.manifest.options).toEqual({ preset: 'rlaif-v', name: 'rlaif_v' })
  })

  it('gives the same folder as the pipeline spelled out (source with the mapper, validate, sink)', async () => {
    const { result } = await pipeline(parquetSource({ path: INPUT, mapRow: rlaifVMapper() }), validateRanking(), llamaFactory({ out: join(dir, 'b'), name: 'rlaif_v' }))
    const a = await treeDigest(join(dir, 'a'))
    const b = await treeDigest(result.out)
    delete a['manifest.json']
    delete b['manifest.json']
    expect(b).toEqual(a)
  })

  it('is read by LLaMA-Factory as is (datasets + converter rules + Pillow)', async () => {
    const { code, report, stderr } = await checkFolder(run.result.out, 'rlaif_v_train')
    expect(report.errors).toEqual([])
    expect(report.warnings).toEqual([])
    expect(code, stderr).toBe(0)
    expect(report.datasets.rlaif_v_train!.rows).toBe(expected.filter((e) => e.valid).length)
  })

  it('names a missing input clearly', async () => {
    await expect(prepareRlaifV({ input: join(dir, 'nope.parquet'), out: join(dir, 'c') })).rejects.toThrow(/nope\.parquet/)
    await expect(prepareRlaifV({ input: 'x.csv', out: join(dir, 'c') })).rejects.toThrow(/\.csv/)
  })
})
