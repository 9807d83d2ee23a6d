import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI, SAMPLE, run, treeDigest } from '../helpers.js'
import { README, REPO, scratch } from '../mock-hub/fixtures.js'
import { startMockHub, type MockHub } from '../mock-hub/server.js'

const TOKEN = 'hf_prefpipeSecretTokenThatMustNeverShow'

/** `npx prefpipe rlhf-v` with no --input reads llamafactory/RLHF-V from the Hub (here: the loopback mock). */
describe('prefpipe rlhf-v from the Hub (mock on 127.0.0.1)', () => {
  let hub: MockHub
  let s: Awaited<ReturnType<typeof scratch>>
  let env: NodeJS.ProcessEnv
  beforeAll(async () => {
    hub = await startMockHub({ repos: { [REPO]: { files: { 'rlhf-v.parquet': readFileSync(SAMPLE), 'README.md': README }, gated: [TOKEN] } } })
    s = await scratch()
    env = { ...process.env, HF_ENDPOINT: hub.url, HF_HUB_CACHE: s.cacheDir, HF_HOME: s.home, HF_TOKEN: TOKEN }
    delete env.HF_HUB_OFFLINE
  })
  afterAll(async () => {
    await hub.close()
    await s.cleanup()
  })

  it('downloads into the cache, prepares the folder and records repo, commit and file sha256', async () => {
    const out = join(s.dir, 'out')
    const r = await run(process.execPath, [CLI, 'rlhf-v', '--out', out, '--no-progress'], { env })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/rows in\s+48\n/)
    expect(r.stdout).toMatch(/kept\s+39\n/)
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as { inputs: Record<string, unknown> }
    const file = hub.file(REPO, 'rlhf-v.parquet')
    expect(manifest.inputs).toEqual({
      source: 'hub',
      repo: REPO,
      revision: 'main',
      commit: hub.commit(REPO),
      files: [{ path: 'rlhf-v.parquet', size: file.size, sha256: file.sha256 }],
    })
    expect(hub.bodyRequests().filter((q) => q.path.startsWith('/cdn/'))).toHaveLength(1)

    // The token went to the Hub, and appears in no output, file or message.
    expect(hub.requests.some((q) => q.authorization === `Bearer ${TOKEN}`)).toBe(true)
    for (const [path] of Object.entries(await treeDigest(out))) {
      if (path.startsWith('images/')) continue
      expect(await readFile(join(out, path), 'utf8'), path).not.toContain(TOKEN)
    }
    expect(r.stdout + r.stderr).not.toContain(TOKEN)
  })

  it('runs again offline (HF_HUB_OFFLINE=1) from the cache with no request at all, to the same folder', async () => {
    const before = hub.requests.length
    const a = await treeDigest(join(s.dir, 'out'))
    const r = await run(process.execPath, [CLI, 'rlhf-v', '--out', join(s.dir, 'out'), '--no-progress'], { env: { ...env, HF_HUB_OFFLINE: '1' } })
    expect(r.code, r.stderr).toBe(0)
    expect(hub.requests.length).toBe(before)
    const b = await treeDigest(join(s.dir, 'out'))
    delete a['report.json']
    delete b['report.json']
    expect(Object.fromEntries(Object.entries(b).filter(([k, v]) => a[k] !== v))).toEqual({})
  })

  it('says which file is missing when offline with an empty cache', async () => {
    const r = await run(process.execPath, [CLI, 'rlhf-v', '--out', join(s.dir, 'none'), '--no-progress'], {
      env: { ...env, HF_HUB_OFFLINE: '1', HF_HUB_CACHE: join(s.dir, 'empty-cache') },
    })
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/offline|HF_HUB_OFFLINE/i)
    expect(r.stderr).toMatch(/llamafactory\/RLHF-V/)
  })
})
