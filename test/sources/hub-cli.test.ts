import { Command } from 'commander'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { byteProgress } from '../../src/cli/byte-progress.js'
import { registerDownload } from '../../src/cli/commands/download.js'
import { DATA, DATA_SHA, FILE, README, REPO, scratch } from '../mock-hub/fixtures.js'
import { startMockHub, type MockHub } from '../mock-hub/server.js'

let hub: MockHub
let s: Awaited<ReturnType<typeof scratch>>

beforeAll(async () => {
  hub = await startMockHub({ repos: { [REPO]: { files: { [FILE]: DATA, 'README.md': README } } } })
})
afterAll(() => hub.close())
beforeEach(async () => {
  s = await scratch()
  hub.requests.length = 0
})
afterEach(() => s.cleanup())

/** Run `prefpipe download ...` in-process, with captured stdout/stderr and an isolated environment. */
async function prefpipeDownload(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  const program = new Command('prefpipe').exitOverride()
  registerDownload(program, {
    stdout: { write: (t: string) => (stdout += t) },
    stderr: { write: (t: string) => (stderr += t), isTTY: false },
    env: { HF_HOME: s.home, HF_HUB_CACHE: s.cacheDir, HF_ENDPOINT: hub.url, ...env },
  })
  await program.parseAsync(['node', 'prefpipe', 'download', ...args])
  return { stdout, stderr }
}

describe('prefpipe download', () => {
  it('downloads the parquet data files into the cache and prints their paths; progress as plain lines off a terminal', async () => {
    const first = await prefpipeDownload([REPO])
    const commit = hub.commit(REPO)
    expect(first.stdout).toBe(`${s.cacheDir}/datasets--llamafactory--RLHF-V/snapshots/${commit}/${FILE}\n`)
    expect(first.stderr).toContain(`  ${FILE}: 0 B / 5.2 MB (0%)`)
    expect(first.stderr).toMatch(/ {2}rlhf-v\.parquet: 5\.2 MB \/ 5\.2 MB \(100%\), .*, \d+\.\d s\n/)
    expect(first.stderr).toContain(`prefpipe download: ${REPO}@main (commit ${commit.slice(0, 7)}): 1 file, 5.2 MB downloaded and sha256-verified`)
    const again = await prefpipeDownload([REPO, '--json', '--no-progress'])
    expect(JSON.parse(again.stdout)).toEqual({ path: first.stdout.trim(), repo: REPO, file: FILE, revision: 'main', commit, size: DATA.length, sha256: DATA_SHA, fromCache: true })
    expect(again.stderr).toBe(`prefpipe download: ${REPO}@main (commit ${commit.slice(0, 7)}): 1 file, all in the cache\n`)
  })

  it('takes --file, --revision, --offline; errors come out as HubErrors for the CLI to print', async () => {
    const readme = await prefpipeDownload([REPO, '--file', 'README.md', '--revision', 'main', '--no-progress'])
    expect(readme.stdout).toMatch(/\/snapshots\/[0-9a-f]{40}\/README\.md\n$/)
    hub.requests.length = 0
    const offline = await prefpipeDownload([REPO, '--file', 'README.md', '--offline', '--no-progress'])
    expect(offline.stdout).toBe(readme.stdout)
    expect(hub.requests).toEqual([])
    await expect(prefpipeDownload([REPO, '--file', 'nope.parquet'])).rejects.toMatchObject({ name: 'HubError', code: 'file-not-found' })
    await expect(prefpipeDownload([REPO], { HF_HUB_OFFLINE: '1', HF_HUB_CACHE: `${s.dir}/empty` })).rejects.toMatchObject({ code: 'not-cached' })
  })

  it('draws a cli-progress bar with bytes, speed and ETA on a terminal', () => {
    let out = ''
    const bar = byteProgress({ write: (t: string) => (out += t), isTTY: true })
    bar.update({ file: FILE, done: 0, total: 10_000_000 })
    bar.update({ file: FILE, done: 10_000_000, total: 10_000_000 })
    bar.stop()
    expect(out).toContain(`${FILE} [`)
    expect(out).toContain('100% | 10.0 MB / 10.0 MB |')
    expect(out).toMatch(/ETA \d+s/)
  })
})
