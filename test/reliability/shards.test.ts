/**
 * Sharding: the same job run as n separate shard processes (whole row groups each), merged, gives the folder a
 * single process writes, byte for byte (the YAML and the report name the folder's own absolute path, which is
 * the only difference, and report.json's `timings`).
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseShard } from '../../src/presets/shard.js'
import { CLI, ROOT, SAMPLE, prefpipe, run, stableTree } from '../helpers.js'

let dir: string
const ARGS = ['--input', SAMPLE, '--eval', '0.3', '--seed', '7']


beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prefpipe-shards-'))
  const single = await prefpipe(['rlhf-v', ...ARGS, '--out', join(dir, 'single')])
  expect(single.code, single.stderr).toBe(0)
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('sharded runs', () => {
  for (const n of [1, 2, 3, 5]) {
    it(`n = ${n}: ${n} shard processes + merge give the single run's folder, byte for byte`, async () => {
      const parts = join(dir, `parts-${n}`)
      const shards = await Promise.all(Array.from({ length: n }, (_, i) => prefpipe(['rlhf-v', ...ARGS, '--out', parts, '--shard', `${i}/${n}`])))
      for (const s of shards) expect(s.code, s.stderr).toBe(0)
      expect((await readdir(parts)).sort()).toEqual(Array.from({ length: n }, (_, i) => `shard-${String(i).padStart(5, '0')}-of-${String(n).padStart(5, '0')}`))
      const out = join(dir, `merged-${n}`)
      const merged = await prefpipe(['merge', parts, '--out', out, '--verbose'])
      expect(merged.code, merged.stderr).toBe(0)
      // Every image came from the shards: none was made again.
      expect(merged.stderr).toMatch(/images: 14 processed images reused/)
      const single = await stableTree(join(dir, 'single'))
      const mine = await stableTree(out)
      expect(Object.keys(mine)).toEqual(Object.keys(single))
      expect(mine).toEqual(single)
    })
  }

  it('takes the index from JOB_COMPLETION_INDEX / SLURM_ARRAY_TASK_ID with --shards n', async () => {
    const parts = join(dir, 'parts-env')
    const env = (extra: Record<string, string>) => ({ ...process.env, JOB_COMPLETION_INDEX: '', SLURM_ARRAY_TASK_ID: '', ...extra })
    const a = await run(process.execPath, [CLI, 'rlhf-v', ...ARGS, '--out', parts, '--shards', '2'], { env: env({ JOB_COMPLETION_INDEX: '0' }) })
    const b = await run(process.execPath, [CLI, 'rlhf-v', ...ARGS, '--out', parts, '--shards', '2'], { env: env({ SLURM_ARRAY_TASK_ID: '4', SLURM_ARRAY_TASK_MIN: '3' }) })
    expect(a.code, a.stderr).toBe(0)
    expect(b.code, b.stderr).toBe(0)
    const out = join(dir, 'merged-env')
    expect((await prefpipe(['merge', parts, '--out', out])).code).toBe(0)
    expect(await stableTree(out)).toEqual(await stableTree(join(dir, 'single')))
    const none = await run(process.execPath, [CLI, 'rlhf-v', ...ARGS, '--out', parts, '--shards', '2'], { env: env({}) })
    expect(none.code).toBe(1)
    expect(none.stderr).toMatch(/no shard index in the environment \(JOB_COMPLETION_INDEX .*SLURM_ARRAY_TASK_ID/)
  })

  it('refuses to merge a missing or unfinished shard, parts of other runs, or a changed input; writing nothing', async () => {
    const parts = join(dir, 'parts-bad')
    expect((await prefpipe(['rlhf-v', ...ARGS, '--out', parts, '--shard', '0/3'])).code).toBe(0)
    expect((await prefpipe(['rlhf-v', ...ARGS, '--out', parts, '--shard', '2/3'])).code).toBe(0)
    const out = join(dir, 'merged-bad')
    const missing = await prefpipe(['merge', parts, '--out', out])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/shard 1 of 3 is missing or unfinished: run it \(--shard 1\/3\), then merge/)
    // A shard that died before part.json: its folder is there, unfinished.
    expect((await prefpipe(['rlhf-v', ...ARGS, '--out', parts, '--shard', '1/3'])).code).toBe(0)
    await rm(join(parts, 'shard-00001-of-00003', 'part.json'))
    const unfinished = await prefpipe(['merge', parts, '--out', out])
    expect(unfinished.stderr).toMatch(/shard-00001-of-00003 has no part\.json: that shard did not finish\. Run it again \(it resumes\)/)
    // Run again: it resumes (every image already made is kept), and the merge goes through.
    const again = await prefpipe(['rlhf-v', ...ARGS, '--out', parts, '--shard', '1/3', '--verbose'])
    expect(again.code, again.stderr).toBe(0)
    expect(again.stderr).toMatch(/processed images reused/)
    // A part of another run (other options) is refused.
    const other = join(dir, 'parts-other')
    expect((await prefpipe(['rlhf-v', ...ARGS, '--max-pixels', '200000', '--out', other, '--shard', '1/3'])).code).toBe(0)
    const mixed = await prefpipe(['merge', join(parts, 'shard-00000-of-00003'), join(other, 'shard-00001-of-00003'), join(parts, 'shard-00002-of-00003'), '--out', out])
    expect(mixed.code).toBe(1)
    expect(mixed.stderr).toMatch(/the shards do not belong to one run: .* has another set of options/)
    // The input changed since the shards ran.
    const copy = join(dir, 'copy.parquet')
    await writeFile(copy, await readFile(SAMPLE))
    const p2 = join(dir, 'parts-copy')
    expect((await prefpipe(['rlhf-v', '--input', copy, '--out', p2, '--shard', '0/1'])).code).toBe(0)
    await writeFile(copy, await readFile(join(ROOT, 'test', 'fixtures', 'parquet', 'edge.parquet'))) // another valid file
    const changed = await prefpipe(['merge', p2, '--out', out])
    expect(changed.code).toBe(1)
    expect(changed.stderr).toMatch(/the input is not the one the shards read/)
    await expect(readdir(out)).rejects.toThrow(/ENOENT/)
    // And the good parts merge.
    expect((await prefpipe(['merge', parts, '--out', out])).code).toBe(0)
    expect(await stableTree(out)).toEqual(await stableTree(join(dir, 'single')))
  })

  it('parses shard specs, and refuses bad ones clearly', () => {
    expect(parseShard('2/8')).toEqual({ index: 2, count: 8 })
    expect(parseShard(undefined, 8, { JOB_COMPLETION_INDEX: '5' })).toEqual({ index: 5, count: 8 })
    expect(parseShard(undefined, 4, { SLURM_ARRAY_TASK_ID: '13', SLURM_ARRAY_TASK_MIN: '10' })).toEqual({ index: 3, count: 4 })
    expect(() => parseShard('8/8')).toThrow(/index must be 0\.\.7, got 8/)
    expect(() => parseShard('1-4')).toThrow(/give it as i\/n/)
    expect(() => parseShard(undefined, 4, { JOB_COMPLETION_INDEX: '4' })).toThrow(/index must be 0\.\.3/)
  })
})
