/**
 * examples/: each script runs with node against the built package (`import 'prefpipe'` resolves to this
 * repository by self-reference) and writes the folder it says.
 */
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROOT, run } from './helpers.js'

describe('examples/', () => {
  let dir: string
  beforeAll(async () => {
    await mkdir(join(ROOT, 'out'), { recursive: true })
    dir = await mkdtemp(join(ROOT, 'out', 'examples-test-'))
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('custom-filter.mjs: a custom stage rejects short answers with its own reason', async () => {
    const out = join(dir, 'custom-filter')
    const r = await run(process.execPath, [join(ROOT, 'examples', 'custom-filter.mjs'), out])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(
      `33 rows written to ${out}\n` +
        'left out by min-chosen-words: 6\n' +
        'stage counters: parquet 0->48, validate 48->39, min-chosen-words 39->33, images 33->33, split 33->33, llamafactory 33->0\n',
    )
    const rejects = (await readFile(join(out, 'rejects.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { stage: string; reason: string; detail?: { words: number } })
    const mine = rejects.filter((x) => x.reason === 'chosen_too_short')
    expect(mine).toHaveLength(6)
    for (const x of mine) {
      expect(x.stage).toBe('min-chosen-words')
      expect(x.detail!.words).toBeLessThan(15)
    }
    expect(existsSync(join(out, 'rlhf_v_eval.jsonl'))).toBe(true)
  })

  it('embed.mjs: your own source through the stages, and a colleague\'s JSONL validated with its rejects', async () => {
    const out = join(dir, 'embed')
    const r = await run(process.execPath, [join(ROOT, 'examples', 'embed.mjs'), out])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines[0]).toMatch(new RegExp(`^1\\. my records: 39 kept in ${join(out, 'mine').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, rejected \\{`))
    expect(lines.slice(1)).toEqual([
      '2. colleague.jsonl: 2 rows pass, 4 would be refused:',
      '   colleague.jsonl#1  response_empty  (validate)',
      '   colleague.jsonl#2  responses_identical  (validate)',
      '   colleague.jsonl#4  role_order  (validate)',
      '   colleague.jsonl#5  image_count_mismatch  (validate)',
    ])
    const manifest = JSON.parse(await readFile(join(out, 'mine', 'manifest.json'), 'utf8')) as { counts: { kept: number } }
    expect(manifest.counts.kept).toBe(39)
    const train = (await readFile(join(out, 'mine', 'mine_train.jsonl'), 'utf8')).trim().split('\n')
    expect(train).toHaveLength(39)
  })
})
