import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { pipeline } from '../../src/pipeline/index.js'
import type { PipelineEvent, Sink } from '../../src/pipeline/types.js'
import type { PreferenceSample } from '../../src/record.js'
import { hubParquet, type HubDownloadProgress } from '../../src/sources/hub/hub-parquet.js'
import { resolveDataFiles } from '../../src/sources/hub/resolve.js'
import { parquetSource } from '../../src/sources/parquet.js'
import { SAMPLE } from '../helpers.js'
import { against, README, REPO, scratch } from '../mock-hub/fixtures.js'
import { startMockHub, type MockHub } from '../mock-hub/server.js'

const BYTES = readFileSync(SAMPLE)
const SHA = createHash('sha256').update(BYTES).digest('hex')
const SHARDED = 'acme/sharded-prefs'
const COLUMNS = { messages: 'conversations', chosen: 'chosen', rejected: 'rejected', images: 'images' }

let hub: MockHub
let s: Awaited<ReturnType<typeof scratch>>
let local: { ids: string[]; rejected: number }

const collect: Sink<PreferenceSample, PreferenceSample[]> = async (input) => {
  const out: PreferenceSample[] = []
  for await (const x of input) out.push(x)
  return out
}

beforeAll(async () => {
  hub = await startMockHub({
    repos: {
      [REPO]: {
        files: { 'rlhf-v.parquet': BYTES, 'README.md': README, '.gitattributes': '*.parquet filter=lfs\n' },
        revisions: { 'refs/convert/parquet': { 'default/train/0000.parquet': BYTES, 'other/train/0000.parquet': Buffer.from('not parquet') } },
      },
      [SHARDED]: {
        files: {
          'README.md': README,
          'data/train-00001-of-00002.parquet': BYTES,
          'data/train-00000-of-00002.parquet': BYTES,
          'data/test-00000-of-00001.parquet': Buffer.from('the test split is not read'),
        },
      },
    },
  })
  const { result, report } = await pipeline(parquetSource({ path: SAMPLE, name: 'rlhf-v.parquet', columns: COLUMNS }), collect)
  local = { ids: result.map((x) => x.id), rejected: Object.values(report.stages[0]!.dropped).reduce((a, b) => a + b, 0) }
})
afterAll(() => hub.close())
beforeEach(async () => {
  s = await scratch()
  hub.requests.length = 0
})
afterEach(() => s.cleanup())

describe('hubParquet', () => {
  it('downloads rlhf-v.parquet from the Hub and reads its 48 rows, as parquetSource reads the local file', async () => {
    const events: PipelineEvent[] = []
    const downloads: HubDownloadProgress[] = []
    const source = hubParquet({ repo: REPO, columns: COLUMNS, ...against(hub, s), onDownloadProgress: (p) => downloads.push(p) })
    expect(source.inputs()).toBeUndefined()
    const { result, report } = await pipeline(source, collect, { onEvent: (e) => events.push(e) })
    const stage = report.stages[0]!
    expect(stage.name).toBe('hub')
    expect(stage.out + Object.values(stage.dropped).reduce((a, b) => a + b, 0)).toBe(48)
    expect(result.map((x) => x.id)).toEqual(local.ids)
    expect(result[0]!.id).toBe('rlhf-v.parquet#0')
    expect(stage.counters).toMatchObject({ filesDownloaded: 1, bytesDownloaded: BYTES.length })
    expect(source.inputs()).toEqual({
      source: 'hub',
      repo: REPO,
      revision: 'main',
      commit: hub.commit(REPO),
      files: [{ path: 'rlhf-v.parquet', size: BYTES.length, sha256: SHA }],
    })
    // progress: bytes while downloading (done === bytes), then rows
    const progress = events.filter((e) => e.type === 'progress')
    expect(progress[0]).toMatchObject({ stage: 'hub', done: 0, total: BYTES.length, bytes: 0, totalBytes: BYTES.length })
    expect(progress.some((e) => e.done === BYTES.length && e.total === BYTES.length)).toBe(true)
    expect(progress.at(-1)).toMatchObject({ done: 48, total: 48 })
    expect(downloads.at(-1)).toEqual({ file: 'rlhf-v.parquet', done: BYTES.length, total: BYTES.length, index: 0, files: 1, allDone: BYTES.length, allTotal: BYTES.length })
  })

  it('resolve() gives the inputs before the run, with one metadata resolution for both', async () => {
    const source = hubParquet({ repo: REPO, ...against(hub, s) })
    const resolved = await source.resolve()
    expect(resolved).toEqual({ repo: REPO, revision: 'main', commit: hub.commit(REPO), files: [{ path: 'rlhf-v.parquet', size: BYTES.length, sha256: SHA, gitOid: null }], fromCache: false })
    await pipeline(source, collect)
    expect(hub.requests.filter((r) => r.path.includes('/revision/'))).toHaveLength(1)
    expect(source.inputs()?.commit).toBe(resolved.commit)
  })

  it('a second run reads from the cache; offline too, with no request', async () => {
    await pipeline(hubParquet({ repo: REPO, ...against(hub, s) }), collect)
    hub.requests.length = 0
    const again = await pipeline(hubParquet({ repo: REPO, ...against(hub, s) }), collect)
    expect(again.report.stages[0]!.counters.filesFromCache).toBe(1)
    expect(hub.bodyRequests()).toEqual([])
    hub.requests.length = 0
    const offline = hubParquet({ repo: REPO, ...against(hub, s, { HF_HUB_OFFLINE: '1' }) })
    const { result } = await pipeline(offline, collect)
    expect(result.map((x) => x.id)).toEqual(local.ids)
    expect(offline.inputs()?.files[0]?.sha256).toBe(SHA)
    expect(hub.requests).toEqual([])
  })

  it('reads sharded data files in order (the train split), with rows progress over all of them', async () => {
    const events: PipelineEvent[] = []
    const { result } = await pipeline(hubParquet({ repo: SHARDED, ...against(hub, s) }), collect, { onEvent: (e) => events.push(e) })
    const files = [...new Set(result.map((x) => x.id.split('#')[0]))]
    expect(files).toEqual(['data/train-00000-of-00002.parquet', 'data/train-00001-of-00002.parquet'])
    expect(result).toHaveLength(2 * local.ids.length)
    expect(result[local.ids.length]!.id).toBe(local.ids[0]!.replace('rlhf-v.parquet', 'data/train-00001-of-00002.parquet'))
    const rows = events.filter((e) => e.type === 'progress' && e.total === 96)
    expect(rows.at(-1)).toMatchObject({ done: 96, total: 96 })
    expect(hub.requests.some((r) => r.path.includes('test-00000'))).toBe(false)
  })

  it('takes whole row groups of every file for a shard (as parquetSource)', async () => {
    const ids: string[] = []
    for (const index of [0, 1]) {
      const { result } = await pipeline(hubParquet({ repo: REPO, ...against(hub, s) }), collect, { shard: { index, count: 2 } })
      ids.push(...result.map((x) => x.id))
    }
    expect(ids.sort()).toEqual([...local.ids].sort())
  })

  it('reads the Hub parquet conversion (refs/convert/parquet), default config', async () => {
    const source = hubParquet({ repo: REPO, revision: 'refs/convert/parquet', ...against(hub, s) })
    const { result } = await pipeline(source, collect)
    expect(result[0]!.id).toBe('default/train/0000.parquet#0')
    expect(result).toHaveLength(local.ids.length)
    expect(source.inputs()).toMatchObject({ revision: 'refs/convert/parquet', commit: hub.commit(REPO, 'refs/convert/parquet') })
  })

  it('fails the run with the Hub error (a missing file lists what exists)', async () => {
    await expect(pipeline(hubParquet({ repo: REPO, file: 'nope.parquet', ...against(hub, s) }), collect)).rejects.toThrow(
      /stage "hub" failed: (\[prefpipe\] )?nope\.parquet is not in llamafactory\/RLHF-V at revision "main" .*It has: \.gitattributes, README\.md, rlhf-v\.parquet/,
    )
  })
})

describe('resolveDataFiles', () => {
  it('picks the parquet data files; names them when asked', async () => {
    expect((await resolveDataFiles({ repo: SHARDED, ...against(hub, s) })).files.map((f) => f.path)).toEqual(['data/train-00000-of-00002.parquet', 'data/train-00001-of-00002.parquet'])
    expect((await resolveDataFiles({ repo: SHARDED, split: 'test', ...against(hub, s) })).files.map((f) => f.path)).toEqual(['data/test-00000-of-00001.parquet'])
    const named = await resolveDataFiles({ repo: REPO, file: 'README.md', ...against(hub, s) })
    expect(named.files).toEqual([{ path: 'README.md', size: README.length, sha256: null, gitOid: hub.file(REPO, 'README.md').gitOid }])
  })

  it('says when there is no parquet file, and how to get one', async () => {
    const other = await startMockHub({ repos: { 'acme/jsonl': { files: { 'README.md': README, 'data.jsonl': '{}\n' } } } })
    try {
      await expect(resolveDataFiles({ repo: 'acme/jsonl', ...against(other, s) })).rejects.toMatchObject({
        code: 'no-data-files',
        message: expect.stringMatching(/has no parquet data file\. It has: README\.md, data\.jsonl\. Name a file \(--file\), or read the Hub's parquet conversion with --revision refs\/convert\/parquet/),
      })
    } finally {
      await other.close()
    }
  })
})
