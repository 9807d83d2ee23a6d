import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { rlaifVMapper } from '../../src/formats/rlaif-v.js'
import { pipeline } from '../../src/pipeline/index.js'
import { RLAIF_V, prepareRlaifV } from '../../src/presets/rlaif-v.js'
import type { PreparedFolder } from '../../src/presets/prepare.js'
import { llamaFactory } from '../../src/sinks/llamafactory.js'
import { parquetSource } from '../../src/sources/parquet.js'
import { processImages } from '../../src/transforms/images/index.js'
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
  let run: PipelineResult<PreparedFolder>
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
      // images are resized for Qwen2-VL: stored under the hash of the bytes written
      expect(r.images).toEqual([expect.stringMatching(/^images\/([0-9a-f]{2})\/\1[0-9a-f]{62}\.jpg$/)])
    })
    // the row whose question already had the placeholder keeps exactly one
    expect(rows.filter((r) => r.conversations[0]!.value.startsWith('<image>\nWhat can be seen on the right')).length).toBe(1)
    const stored = Object.keys(await treeDigest(run.result.out)).filter((p) => p.startsWith('images/'))
    expect(stored.length).toBe(new Set(valid.map((e) => e.image_sha256)).size)
    const info = JSON.parse(await readFile(run.result.files.datasetInfo, 'utf8')) as Record<string, unknown>
    expect(info.rlaif_v_train).toMatchObject({ file_name: 'rlaif_v_train.jsonl', formatting: 'sharegpt', ranking: true })
    expect(run.result.manifest.options).toEqual({ preset: 'rlaif-v', name: 'rlaif_v', eval: null, seed: 0, maxPixels: 262144, cutoffLen: 2048, model: 'qwen2-vl' })
    expect(run.result.trainingConfig?.path).toBe(join(run.result.out, 'train_dpo.yaml'))
  })

  it('gives the same rows and images as the pipeline spelled out (source with the mapper, validate, images, sink)', async () => {
    const { result } = await pipeline(
      parquetSource({ path: INPUT, mapRow: rlaifVMapper() }),
      validateRanking(),
      processImages({ maxPixels: 262144 }),
      llamaFactory({ out: join(dir, 'b'), name: 'rlaif_v' }),
    )
    const a = await treeDigest(join(dir, 'a'))
    const b = await treeDigest(result.out)
    // The preset also writes the YAML and the report, records its inputs and options in the manifest, and keeps
    // the journal of the images it made (for a re-run).
    for (const f of ['manifest.json', 'train_dpo.yaml', 'report.json', 'report.html', '.prefpipe/images.jsonl']) delete a[f]
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
