/**
 * Network faults on the way from the Hub to the cache (issue 8, point 3), against the real loopback mock Hub.
 *
 * Every fault must end in a verified file or a clear error, never a corrupt blob: after every run,
 * `blobs/` holds only files whose sha256 (or git oid) is their name, plus at most one `.incomplete` after a
 * failure; and a run after the fault is gone completes.
 *
 * The full list, and where each case is covered:
 * - connection reset before the answer (RST on the CDN GET, and on the Hub's resolve): here
 * - connection reset mid-body (RST): here; a close (FIN) mid-body, resumed with Range:
 *   test/sources/hub-download.test.ts "resumes after a connection cut mid-body", "keeps going while each
 *   attempt brings bytes"; an abort, resumed: "keeps the partial when aborted"
 * - slow drip and `HF_HUB_DOWNLOAD_TIMEOUT`: a steady slow body finishes, a drip with gaps longer than the
 *   timeout resumes, a silent CDN or API gives up with a clear error: here; 2 MiB then silence, resumed:
 *   hub-download.test.ts "cuts a stalled body after HF_HUB_DOWNLOAD_TIMEOUT and resumes"
 * - 429 with Retry-After (on the API and on the body, and the cap on long waits): here; 503 + Retry-After:
 *   hub-download.test.ts "honours Retry-After"
 * - bursts of 500: within the retries, and longer than them (clear error, rerun completes): here; 2×500 on the
 *   API + 502 on the body: hub-download.test.ts "retries injected 500s"; 503 forever on resolve:
 *   "gives up after the retries with a message that says what to do"
 * - a wrong Content-Length, shorter and longer than the body: here
 * - a body that does not match its sha256: once (downloaded again) and twice (checksum error, rerun): here;
 *   a corrupt partial from an earlier run: hub-download.test.ts "detects a corrupt partial by its sha256"
 * - the token never appears in an error, a log line or a file under the cache: here
 */
import { createHash, randomBytes } from 'node:crypto'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { inspect } from 'node:util'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { downloadDatasetFile } from '../../src/sources/hub/download.js'
import { against, DATA, DATA_SHA, FILE, README, recordingLog, REPO, scratch } from '../mock-hub/fixtures.js'
import { startMockHub, type MockHub } from '../mock-hub/server.js'

const ROOT = 'datasets--llamafactory--RLHF-V'
/** Above the size from which the sha256 may be computed on a worker thread (16 MiB): that path is covered too. */
const BIG = 'big.parquet'
const BIG_DATA = randomBytes(20 << 20)
const BIG_SHA = createHash('sha256').update(BIG_DATA).digest('hex')
const PRIVATE = 'acme/private-prefs'
const TOKEN = `hf_secret_${randomBytes(12).toString('hex')}`
const WRONG_TOKEN = `hf_secret_wrong_${randomBytes(12).toString('hex')}`

let hub: MockHub
let s: Awaited<ReturnType<typeof scratch>>

beforeAll(async () => {
  hub = await startMockHub({
    repos: {
      [REPO]: { files: { [FILE]: DATA, [BIG]: BIG_DATA, 'README.md': README } },
      [PRIVATE]: { files: { [FILE]: DATA }, token: TOKEN },
    },
    validTokens: [WRONG_TOKEN],
  })
})
afterAll(() => hub.close())
beforeEach(async () => {
  s = await scratch()
  hub.requests.length = 0
  hub.faults.fail.length = 0
  for (const k of ['cut', 'throttle', 'ignoreRange', 'corrupt', 'noApi', 'down', 'reset', 'hang', 'contentLength'] as const) delete hub.faults[k]
})
afterEach(() => s.cleanup())

const cdnRanges = () => hub.requests.filter((r) => r.path.startsWith('/cdn/')).map((r) => r.range)
const get = (file = FILE, env: NodeJS.ProcessEnv = {}, extra: Record<string, unknown> = {}) => downloadDatasetFile({ repo: REPO, file, ...against(hub, s, env), ...extra })
/** Run `fn` with the sha256 forced onto a worker thread (it is automatic only from 4 CPUs). */
async function withHashWorker<T>(fn: () => Promise<T>): Promise<T> {
  const before = process.env.PREFPIPE_HASH_WORKER
  process.env.PREFPIPE_HASH_WORKER = '1'
  try {
    return await fn()
  } finally {
    if (before === undefined) delete process.env.PREFPIPE_HASH_WORKER
    else process.env.PREFPIPE_HASH_WORKER = before
  }
}
const failure = (p: Promise<unknown>) => p.then(() => expect.fail('expected the download to fail'), (e: unknown) => e as Error)

/**
 * The cache invariant: every blob is named by its own hash, and nothing else is there but (after a failed run,
 * when `failed` says so) a single `.incomplete`.
 */
async function expectSaneCache(cacheDir: string, o: { failed?: boolean; repoRoot?: string } = {}): Promise<string[]> {
  const dir = join(cacheDir, o.repoRoot ?? ROOT, 'blobs')
  const names = await readdir(dir).catch(() => [] as string[])
  const partials = names.filter((n) => n.endsWith('.incomplete'))
  expect(partials.length, `partials in ${dir}: ${partials.join(', ')}`).toBeLessThanOrEqual(o.failed ? 1 : 0)
  for (const name of names) {
    if (name.endsWith('.incomplete')) continue
    const bytes = await readFile(join(dir, name))
    if (name.length === 64) expect(createHash('sha256').update(bytes).digest('hex'), `blob ${name}`).toBe(name)
    else expect(createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex'), `blob ${name}`).toBe(name)
  }
  return names
}

/** A download that must complete and be verified, with the cache sane afterwards. */
async function expectVerified(p: Promise<{ sha256: string; path: string }>, sha = DATA_SHA, data = DATA) {
  const f = await p
  expect(f.sha256).toBe(sha)
  expect((await readFile(f.path)).equals(data)).toBe(true)
  expect(await expectSaneCache(s.cacheDir)).toContain(sha)
  return f
}

/** After a failure: the cache is sane, then with the fault gone a rerun completes. */
async function expectRerunCompletes(file = FILE, sha = DATA_SHA, data = DATA) {
  await expectSaneCache(s.cacheDir, { failed: true })
  for (const k of ['cut', 'throttle', 'corrupt', 'reset', 'hang', 'contentLength'] as const) delete hub.faults[k]
  hub.faults.fail.length = 0
  await expectVerified(get(file), sha, data)
}

describe('connection resets', () => {
  it('a reset before the answer (CDN and Hub) is retried', async () => {
    hub.faults.reset = { match: /^GET \/cdn\//, times: 2 }
    await expectVerified(get())
    expect(cdnRanges()).toEqual([undefined, undefined, undefined])
    hub.requests.length = 0
    const other = await scratch()
    try {
      hub.faults.reset = { match: /^HEAD \/datasets\/.*\/resolve\//, times: 1 }
      const f = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, other) })
      expect(f.sha256).toBe(DATA_SHA)
      expect(hub.requests.filter((r) => r.path.includes('/resolve/'))).toHaveLength(2)
      await expectSaneCache(other.cacheDir)
    } finally {
      await other.cleanup()
    }
  })

  it('a reset mid-body resumes with Range from what arrived (hashing on a worker thread, 20 MiB)', async () => {
    hub.faults.reset = { match: /^GET \/cdn\//, times: 2, afterBytes: 6 << 20 }
    await withHashWorker(() => expectVerified(get(BIG), BIG_SHA, BIG_DATA))
    const ranges = cdnRanges()
    expect(ranges).toHaveLength(3)
    expect(ranges[0]).toBeUndefined()
    // An RST drops what the client's kernel had not handed over yet, so how much each attempt kept depends on
    // timing: each resume starts where the partial ended, never before the previous one, never past the end.
    const starts = ranges.map((r) => (r === undefined ? 0 : Number(/^bytes=(\d+)-$/.exec(r)![1])))
    for (let i = 1; i < starts.length; i++) expect(starts[i]).toBeGreaterThanOrEqual(starts[i - 1]!)
    expect(starts.at(-1)).toBeLessThan(BIG_DATA.length)
    expect(starts.at(-1)).toBeLessThanOrEqual(12 << 20) // two cuts after at most 6 MiB each
  })

  it('resets on every attempt end in a clear error that keeps the partial; a rerun resumes it', async () => {
    hub.faults.reset = { match: /^GET \/cdn\//, times: 99 }
    const err = await failure(get())
    expect(err).toMatchObject({ name: 'HubError', code: 'network' })
    expect(err.message).toMatch(/rlhf-v\.parquet: the download failed 4 times in a row \(ECONNRESET.*run again to resume/)
    await expectRerunCompletes()
  })
})

describe('slow bodies and timeouts (HF_HUB_DOWNLOAD_TIMEOUT, HF_HUB_ETAG_TIMEOUT)', () => {
  it('a slow but steady body is not cut: the timeout is on silence, not on the whole transfer', async () => {
    // 5 MiB at 256 KiB every 60 ms: ~1.2 s in all, longer than the 0.5 s timeout, never silent that long
    hub.faults.throttle = { bytes: 256 << 10, everyMs: 60 }
    await expectVerified(get(FILE, { HF_HUB_DOWNLOAD_TIMEOUT: '0.5' }))
    expect(cdnRanges()).toEqual([undefined])
  })

  it('a drip with gaps longer than the timeout resumes after each gap', async () => {
    hub.faults.throttle = { bytes: 1 << 20, everyMs: 400 }
    const log = recordingLog()
    await expectVerified(get(FILE, { HF_HUB_DOWNLOAD_TIMEOUT: '0.15' }, { log }))
    const ranges = cdnRanges()
    expect(ranges.length).toBeGreaterThan(2)
    expect(ranges.slice(1).every((r) => /^bytes=\d+-$/.test(r!))).toBe(true)
    expect(log.lines.join('\n')).toMatch(/no data from .* for 150 ms; retrying/)
  })

  it('a CDN that never answers ends in a clear timeout error; a rerun completes', async () => {
    hub.faults.hang = { match: /^GET \/cdn\//, times: 99 }
    const t0 = Date.now()
    const err = await failure(get(FILE, { HF_HUB_DOWNLOAD_TIMEOUT: '0.1' }))
    expect(Date.now() - t0).toBeLessThan(5000)
    expect(err).toMatchObject({ name: 'HubError', code: 'network' })
    expect(err.message).toMatch(/failed 4 times in a row \(no data from http:\/\/127\.0\.0\.\d+:\d+\/cdn\/[0-9a-f]{64} for 100 ms\)/)
    await expectRerunCompletes()
  })

  it('a silent metadata HEAD is cut by HF_HUB_ETAG_TIMEOUT and retried', async () => {
    hub.faults.hang = { match: /^HEAD \/datasets\/.*\/resolve\//, times: 1 }
    await expectVerified(get(FILE, { HF_HUB_ETAG_TIMEOUT: '0.1' }))
    expect(hub.requests.filter((r) => r.method === 'HEAD' && r.path.includes('/resolve/'))).toHaveLength(2)
  })
})

describe('429 and 500s', () => {
  it('429 with Retry-After is honoured on the metadata HEAD and on the body', async () => {
    hub.faults.fail.push({ match: /^HEAD \/datasets\/.*\/resolve\//, status: 429, times: 1, retryAfter: '0.4' }, { match: /^GET \/cdn\//, status: 429, times: 1, retryAfter: '0.4' })
    const t0 = Date.now()
    await expectVerified(get())
    // the backoff alone would be ~5 ms per retry
    expect(Date.now() - t0).toBeGreaterThanOrEqual(750)
    expect(hub.requests.filter((r) => r.method === 'HEAD' && r.path.includes('/resolve/'))).toHaveLength(2)
    expect(cdnRanges()).toHaveLength(2)
  })

  it('a Retry-After longer than retry.maxRetryAfterMs is cut to it', async () => {
    hub.faults.fail.push({ match: /^GET \/cdn\//, status: 429, times: 1, retryAfter: '3600' })
    const t0 = Date.now()
    await expectVerified(get(FILE, {}, { retry: { retries: 3, minDelayMs: 5, maxDelayMs: 20, maxRetryAfterMs: 200 } }))
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190)
    expect(Date.now() - t0).toBeLessThan(3000)
  })

  it('a burst of 500s within the retries ends in a verified file', async () => {
    hub.faults.fail.push({ match: /^GET \/cdn\//, status: 500, times: 3 }, { match: /^HEAD \/datasets\/.*\/resolve\//, status: 500, times: 3 })
    await expectVerified(get())
    expect(cdnRanges()).toHaveLength(4)
  })

  it('a burst longer than the retries ends in a clear error; a rerun completes', async () => {
    hub.faults.fail.push({ match: /^GET \/cdn\//, status: 500, times: 50 })
    const err = await failure(get())
    expect(err).toMatchObject({ name: 'HubError', code: 'network' })
    expect(err.message).toMatch(/failed 4 times in a row \(HTTP 500 injected 500\).*run again to resume/)
    await expectRerunCompletes()
  })
})

describe('a wrong Content-Length', () => {
  it('shorter than the body: the rest is fetched with Range, and the file verifies', async () => {
    hub.faults.contentLength = { delta: -(1 << 20), times: 1 }
    await expectVerified(get())
    expect(cdnRanges()).toEqual([undefined, `bytes=${DATA.length - (1 << 20)}-`])
  })

  it('longer than the body: the early close is a cut, and the bytes that came verify', async () => {
    hub.faults.contentLength = { delta: 1 << 20, times: 1 }
    await expectVerified(get())
    // every byte arrived before the close: the retry has nothing left to fetch
    expect(cdnRanges()).toEqual([undefined])
  })

  it('shorter on every answer ends in a verified file or a clear error, never a corrupt blob', async () => {
    hub.faults.contentLength = { delta: -(2 << 20), times: 99 }
    const r = await get().then(
      (f) => ({ f }),
      (e: unknown) => ({ e: e as Error }),
    )
    if ('e' in r) {
      expect(r.e).toMatchObject({ name: 'HubError', code: 'network' })
      expect(r.e.message).toMatch(/the body ended at byte \d+ of 5242880.*run again to resume/)
      await expectRerunCompletes()
    } else {
      expect(r.f.sha256).toBe(DATA_SHA)
      await expectSaneCache(s.cacheDir)
    }
  })
})

describe('a body that does not match its sha256', () => {
  it('once: downloaded again from the start, verified', async () => {
    hub.faults.corrupt = 1
    const log = recordingLog()
    await expectVerified(get(FILE, {}, { log }))
    expect(cdnRanges()).toEqual([undefined, undefined])
    expect(log.lines.join('\n')).toMatch(/does not match the Hub's sha256/)
  })

  it('twice: a checksum error, no blob and no partial left; a rerun completes (worker hashing, 20 MiB)', async () => {
    hub.faults.corrupt = 2
    await withHashWorker(async () => {
      const err = await failure(get(BIG))
      expect(err).toMatchObject({ name: 'HubError', code: 'checksum' })
      expect(err.message).toContain(BIG_SHA)
      expect(await expectSaneCache(s.cacheDir, { failed: true })).toEqual([])
      await expectRerunCompletes(BIG, BIG_SHA, BIG_DATA)
    })
  })
})

describe('the token never leaks', () => {
  /** Every file under `dir`, recursively (symlinks not followed: the blobs are read once, as blobs). */
  async function allFiles(dir: string): Promise<string[]> {
    const out: string[] = []
    const walk = async (d: string) => {
      for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
        const p = join(d, e.name)
        if (e.isDirectory()) await walk(p)
        else if (e.isFile()) out.push(p)
      }
    }
    await walk(dir)
    return out
  }

  it('not in errors, log lines, or any file written under the cache; never sent to the CDN', async () => {
    const env = { HF_TOKEN: TOKEN }
    const log = recordingLog()
    const seenText: string[] = []
    let n = 0
    /** One download into a cache of its own (all under the scratch folder, grepped below); whether it failed. */
    const run = async (o: { env?: NodeJS.ProcessEnv } = {}): Promise<boolean> => {
      const cacheDir = join(s.dir, `cache-${n++}`)
      try {
        await downloadDatasetFile({ repo: PRIVATE, file: FILE, endpoint: hub.url, cacheDir, env: { HF_HOME: s.home, ...(o.env ?? env) }, retry: { retries: 2, minDelayMs: 5, maxDelayMs: 20 }, log })
        return false
      } catch (err) {
        // the message, the stack, the cause chain and every own property
        seenText.push(String(err), (err as Error).stack ?? '', inspect(err, { depth: 10, showHidden: true }), JSON.stringify(err))
        return true
      }
    }
    // failures of every kind, with the token sent
    hub.faults.fail.push({ match: /^GET \/cdn\//, status: 500, times: 50 })
    expect(await run()).toBe(true)
    hub.faults.fail.length = 0
    hub.faults.corrupt = 2
    expect(await run()).toBe(true)
    hub.faults.reset = { match: /^GET \/cdn\//, times: 99, afterBytes: 0 }
    expect(await run()).toBe(true)
    hub.faults.reset = { match: /^(GET|HEAD) \/datasets\//, times: 99 }
    expect(await run()).toBe(true)
    delete hub.faults.reset
    hub.faults.hang = { match: /^GET \/cdn\//, times: 99 }
    expect(await run({ env: { ...env, HF_HUB_DOWNLOAD_TIMEOUT: '0.05' } })).toBe(true)
    delete hub.faults.hang
    hub.faults.fail.push({ match: /^HEAD \/datasets\//, status: 503, times: 50 })
    expect(await run()).toBe(true)
    hub.faults.fail.length = 0
    // a wrong token, and none at all
    expect(await run({ env: { HF_TOKEN: WRONG_TOKEN } })).toBe(true)
    expect(await run({ env: { HF_TOKEN_PATH: join(s.dir, 'no-such-token') } })).toBe(true)
    // a cut mid-body that resumes, then a success from the cache
    hub.faults.cut = { bytes: 1 << 20, times: 1 }
    expect(await run()).toBe(false)
    n--
    expect(await run()).toBe(false)
    expect((await stat(join(s.dir, `cache-${n - 1}`, 'datasets--acme--private-prefs', 'blobs', DATA_SHA))).size).toBe(DATA.length)

    for (const secret of [TOKEN, WRONG_TOKEN]) {
      for (const text of [...seenText, ...log.lines]) expect(text.includes(secret), text.slice(0, 300)).toBe(false)
      // also the part after `hf_`, in case something trimmed the prefix
      for (const text of [...seenText, ...log.lines]) expect(text.includes(secret.slice(3))).toBe(false)
      for (const file of await allFiles(s.dir)) {
        const bytes = await readFile(file)
        expect(bytes.includes(secret.slice(3)), file).toBe(false)
      }
    }
    expect(log.lines.length).toBeGreaterThan(0)
    // the token went to the Hub and nowhere else
    expect(hub.requests.filter((r) => r.path.startsWith('/cdn/')).some((r) => r.authorization)).toBe(false)
    expect(hub.requests.some((r) => r.authorization === `Bearer ${TOKEN}`)).toBe(true)
    for (let i = 0; i < n; i++) await expectSaneCache(join(s.dir, `cache-${i}`), { repoRoot: 'datasets--acme--private-prefs', failed: true })
  })
})
