import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, readFile, readlink, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { downloadDatasetFile } from '../../src/sources/hub/download.js'
import { run, VENV_PYTHON } from '../helpers.js'
import { against, DATA, DATA_SHA, FILE, README, recordingLog, REPO, scratch, seen } from '../mock-hub/fixtures.js'
import { startMockHub, type MockHub } from '../mock-hub/server.js'

const ROOT = 'datasets--llamafactory--RLHF-V'
const CONVERTED = 'default/train/0000.parquet'

let hub: MockHub
let s: Awaited<ReturnType<typeof scratch>>

beforeAll(async () => {
  hub = await startMockHub({
    repos: { [REPO]: { files: { [FILE]: DATA, 'README.md': README }, revisions: { 'refs/convert/parquet': { [CONVERTED]: DATA } } } },
  })
})
afterAll(() => hub.close())
beforeEach(async () => {
  s = await scratch()
  hub.requests.length = 0
  delete hub.faults.throttle
})
afterEach(() => s.cleanup())

const cdnRequests = () => hub.requests.filter((r) => r.path.startsWith('/cdn/'))

/** Write a cache entry exactly as huggingface_hub does: refs/main, the blob, a relative symlink. */
async function pythonStyleCache(cacheDir: string, commit: string): Promise<string> {
  const root = join(cacheDir, ROOT)
  await mkdir(join(root, 'refs'), { recursive: true })
  await mkdir(join(root, 'blobs'), { recursive: true })
  await mkdir(join(root, 'snapshots', commit), { recursive: true })
  await writeFile(join(root, 'refs', 'main'), commit)
  await writeFile(join(root, 'blobs', DATA_SHA), DATA)
  const pointer = join(root, 'snapshots', commit, FILE)
  await symlink(`../../blobs/${DATA_SHA}`, pointer)
  return pointer
}

describe('the Python cache layout', () => {
  it('a cache written the Python way is used as is: online with no body request, offline with no request', async () => {
    const pointer = await pythonStyleCache(s.cacheDir, hub.commit(REPO))
    const online = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })
    expect(online).toMatchObject({ path: pointer, sha256: DATA_SHA, size: DATA.length, fromCache: true })
    expect(hub.bodyRequests()).toEqual([])
    hub.requests.length = 0
    const offline = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s, { HF_HUB_OFFLINE: '1' }) })
    expect(offline).toMatchObject({ path: pointer, sha256: DATA_SHA, fromCache: true })
    expect(hub.requests).toEqual([])
  })

  it('a blob fetched at another commit is linked into the new snapshot without a download', async () => {
    await pythonStyleCache(s.cacheDir, 'f'.repeat(40)) // the same file, cached under an older commit
    const f = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })
    expect(f.fromCache).toBe(true)
    expect(await readlink(f.path)).toBe(`../../blobs/${DATA_SHA}`)
    expect(await readFile(join(s.cacheDir, ROOT, 'refs', 'main'), 'utf8')).toBe(hub.commit(REPO))
    expect(hub.bodyRequests()).toEqual([])
  })

  it('refs/convert/parquet is recorded as the nested file refs/refs/convert/parquet', async () => {
    const f = await downloadDatasetFile({ repo: REPO, file: CONVERTED, revision: 'refs/convert/parquet', ...against(hub, s) })
    const commit = hub.commit(REPO, 'refs/convert/parquet')
    expect(f.commit).toBe(commit)
    expect(await readFile(join(s.cacheDir, ROOT, 'refs', 'refs', 'convert', 'parquet'), 'utf8')).toBe(commit)
    expect(await readlink(f.path)).toBe(`../../../../blobs/${DATA_SHA}`)
    expect(seen(hub)).toContain(`HEAD /datasets/${REPO}/resolve/refs/convert/parquet/${CONVERTED}`)
  })
})

// The interop tests need the Python venv with huggingface_hub (scripts/python-venv.sh; `npm test` sets it up
// first, so they never skip there or in CI).
const mustRunPython = !!process.env.CI || process.env.npm_lifecycle_event === 'test'
const hasPython = existsSync(VENV_PYTHON)

/**
 * Run Python's hf_hub_download against our cache and the mock (HF_HOME in the scratch folder), for several
 * files in one interpreter (importing huggingface_hub takes most of a second). Returns the paths.
 */
async function pythonDownload(calls: { file: string; revision?: string; localOnly: boolean }[]): Promise<string[]> {
  const code = [
    'import json, sys',
    'from huggingface_hub import hf_hub_download',
    'for c in json.loads(sys.argv[2]):',
    '    print(hf_hub_download(repo_id=sys.argv[1], filename=c["file"], repo_type="dataset", revision=c["revision"], local_files_only=c["localOnly"]))',
  ].join('\n')
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: s.dir,
    HF_HOME: s.home,
    HF_HUB_CACHE: s.cacheDir,
    HF_ENDPOINT: hub.url,
    HF_HUB_DISABLE_TELEMETRY: '1',
    HF_HUB_DISABLE_UPDATE_CHECK: '1',
    HF_HUB_DISABLE_PROGRESS_BARS: '1',
    NO_PROXY: '127.0.0.1,127.0.0.2',
  }
  const args = JSON.stringify(calls.map((c) => ({ revision: 'main', ...c })))
  const r = await run(VENV_PYTHON, ['-c', code, REPO, args], { env })
  expect(r.code, r.stderr).toBe(0)
  return r.stdout.trim().split('\n')
}

describe.skipIf(!hasPython && !mustRunPython)('interop with Python huggingface_hub (hf_hub_download)', () => {
  it('Python finds files prefpipe downloaded, offline (local_files_only=True)', async () => {
    expect(hasPython, 'run `bash scripts/python-venv.sh` (npm test does)').toBe(true)
    const ours = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })
    const converted = await downloadDatasetFile({ repo: REPO, file: CONVERTED, revision: 'refs/convert/parquet', ...against(hub, s) })
    hub.requests.length = 0
    const theirs = await pythonDownload([
      { file: FILE, localOnly: true },
      { file: CONVERTED, revision: 'refs/convert/parquet', localOnly: true },
    ])
    expect(theirs).toEqual([ours.path, converted.path])
    expect(hub.requests).toEqual([])
  })

  it('prefpipe uses a file Python downloaded, with no body request', async () => {
    expect(hasPython).toBe(true)
    const [theirs] = await pythonDownload([{ file: FILE, localOnly: false }])
    expect(cdnRequests()).toHaveLength(1) // Python's own download from the mock
    hub.requests.length = 0
    const ours = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })
    expect(ours).toMatchObject({ path: theirs, sha256: DATA_SHA, fromCache: true })
    expect(hub.bodyRequests()).toEqual([])
    const offline = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s, { HF_HUB_OFFLINE: '1' }) })
    expect(offline.path).toBe(theirs)
  })
})

describe('the lock: one writer per blob', () => {
  const lockFile = () => join(s.cacheDir, '.locks', ROOT, `${DATA_SHA}.prefpipe.lock`)

  it('two concurrent downloads of the same blob: one body request, both get the file', async () => {
    hub.faults.throttle = { bytes: 1 << 20, everyMs: 20 }
    const [a, b] = await Promise.all([
      downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) }),
      downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) }),
    ])
    expect(a.path).toBe(b.path)
    expect([a.fromCache, b.fromCache].sort()).toEqual([false, true])
    expect(cdnRequests()).toHaveLength(1)
    expect((await readFile(a.path)).equals(DATA)).toBe(true)
    expect(existsSync(lockFile())).toBe(false)
  })

  it('takes over a lock left by a dead process', async () => {
    await mkdir(join(s.cacheDir, '.locks', ROOT), { recursive: true })
    await writeFile(lockFile(), JSON.stringify({ pid: 2 ** 22 + 12345, host: hostname(), nonce: 'dead', since: '2020-01-01T00:00:00Z' }))
    const f = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })
    expect(f.fromCache).toBe(false)
  })

  it('takes over a lock from another host once its heartbeat is stale', async () => {
    await mkdir(join(s.cacheDir, '.locks', ROOT), { recursive: true })
    await writeFile(lockFile(), JSON.stringify({ pid: 1, host: 'another-host', nonce: 'x', since: '2020-01-01T00:00:00Z' }))
    const old = new Date(Date.now() - 120_000)
    await utimes(lockFile(), old, old)
    const f = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })
    expect(f.fromCache).toBe(false)
  })

  it('waits for a live holder, then uses the blob it finished without downloading', async () => {
    const holder = spawn('sleep', ['30'], { stdio: 'ignore' })
    try {
      await mkdir(join(s.cacheDir, '.locks', ROOT), { recursive: true })
      await writeFile(lockFile(), JSON.stringify({ pid: holder.pid, host: hostname(), nonce: 'other', since: new Date().toISOString() }))
      const log = recordingLog()
      const p = downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s), log })
      await new Promise((r) => setTimeout(r, 400))
      expect(cdnRequests()).toEqual([])
      // the other process finishes: the blob appears, the lock goes
      await mkdir(join(s.cacheDir, ROOT, 'blobs'), { recursive: true })
      await writeFile(join(s.cacheDir, ROOT, 'blobs', DATA_SHA), DATA)
      await rm(lockFile())
      const f = await p
      expect(f).toMatchObject({ fromCache: true, sha256: DATA_SHA })
      expect(cdnRequests()).toEqual([])
      expect(log.lines.join('\n')).toContain(`process ${holder.pid} is downloading it into the same cache; waiting`)
      expect((await stat(f.path)).size).toBe(DATA.length)
    } finally {
      holder.kill()
    }
  })
})
