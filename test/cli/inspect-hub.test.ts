/**
 * `prefpipe inspect owner/name`: a Hub dataset (here the loopback mock) is downloaded into the cache and its
 * first parquet data file inspected; `--file` and `--revision` pick another.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI, ROOT, SAMPLE, run } from '../helpers.js'
import { README, REPO, scratch } from '../mock-hub/fixtures.js'
import { startMockHub, type MockHub } from '../mock-hub/server.js'

const RLAIF = join(ROOT, 'test', 'fixtures', 'presets', 'rlaif-v-sample.parquet')

describe('prefpipe inspect <owner/name> (mock Hub on 127.0.0.1)', () => {
  let hub: MockHub
  let s: Awaited<ReturnType<typeof scratch>>
  let env: NodeJS.ProcessEnv
  const cli = (args: string[], extra: NodeJS.ProcessEnv = {}) => run(process.execPath, [CLI, ...args], { env: { ...env, ...extra } })
  beforeAll(async () => {
    hub = await startMockHub({
      repos: {
        [REPO]: {
          files: { 'data/train-00000-of-00002.parquet': readFileSync(SAMPLE), 'data/train-00001-of-00002.parquet': readFileSync(SAMPLE), 'README.md': README },
          revisions: { v2: { 'other.parquet': readFileSync(RLAIF), 'README.md': README } },
        },
      },
    })
    s = await scratch()
    env = { ...process.env, HF_ENDPOINT: hub.url, HF_HUB_CACHE: s.cacheDir, HF_HOME: s.home }
    delete env.HF_HUB_OFFLINE
    delete env.HF_TOKEN
  })
  afterAll(async () => {
    await hub.close()
    await s.cleanup()
  })

  it('downloads the parquet data files into the cache and inspects the first', async () => {
    const r = await cli(['inspect', REPO, '--rows', '2', '--json', '--no-progress'])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const result = JSON.parse(r.stdout) as { path: string; numRows: number; format: string; rows: unknown[]; validation: { rowsChecked: number; kept: number; rejected: number }; hub: Record<string, unknown> }
    expect(result.hub).toEqual({
      repo: REPO,
      revision: 'main',
      commit: hub.commit(REPO),
      file: 'data/train-00000-of-00002.parquet',
      files: ['data/train-00000-of-00002.parquet', 'data/train-00001-of-00002.parquet'],
    })
    expect(result.path.startsWith(join(s.cacheDir, 'datasets--llamafactory--RLHF-V', 'snapshots'))).toBe(true)
    expect(result.numRows).toBe(48)
    expect(result.format).toBe('sharegpt')
    expect(result.rows).toHaveLength(2)
    expect(result.validation).toMatchObject({ rowsChecked: 48, kept: 39, rejected: 9 })
    // Both data files are downloaded; they hold the same bytes here, so the cache fetches the blob once.
    expect(hub.bodyRequests().filter((q) => q.path.startsWith('/cdn/'))).toHaveLength(1)
  })

  it('text output says where the file came from; progress lines go to stderr unless --quiet', async () => {
    const r = await cli(['inspect', REPO, '--rows', '1'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout.split('\n')[0]).toBe(`${REPO}@main (commit ${hub.commit(REPO).slice(0, 7)}): data/train-00000-of-00002.parquet (1 of 2 data files)`)
    expect(r.stdout).toMatch(/validation of all 48 rows: 39 kept, 9 rejected/)
    const quiet = await cli(['inspect', REPO, '--rows', '1', '--quiet'], { HF_HUB_CACHE: join(s.dir, 'fresh-cache') })
    expect(quiet.code).toBe(0)
    expect(quiet.stderr).toBe('')
    const loud = await cli(['inspect', REPO, '--rows', '1'], { HF_HUB_CACHE: join(s.dir, 'fresh-cache-2') })
    expect(loud.stderr).toMatch(/data\/train-00000-of-00002\.parquet: .* \(100%\)/)
  })

  it('--revision and --file pick the file', async () => {
    const r = await cli(['inspect', REPO, '--revision', 'v2', '--file', 'other.parquet', '--json', '--rows', '1'])
    expect(r.code, r.stderr).toBe(0)
    const result = JSON.parse(r.stdout) as { format: string; hub: { revision: string; file: string; files: string[] } }
    expect(result.hub).toMatchObject({ revision: 'v2', file: 'other.parquet', files: ['other.parquet'] })
    expect(result.format).toBe('rlaif-v')
  })

  it('a local path wins; --file on a local file and an unknown repo are refused', async () => {
    const local = await cli(['inspect', 'fixtures/rlhf-v-sample.parquet', '--rows', '0', '--json'])
    expect(local.code, local.stderr).toBe(0)
    expect((JSON.parse(local.stdout) as { hub?: unknown }).hub).toBeUndefined()
    const bad = await cli(['inspect', 'fixtures/rlhf-v-sample.parquet', '--file', 'x.parquet'])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toMatch(/--revision and --file are for a Hub dataset/)
    const missing = await cli(['inspect', 'nobody/nothing', '--no-progress'])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/nobody\/nothing/)
  })
})
