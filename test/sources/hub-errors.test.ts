import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { downloadDatasetFile } from '../../src/sources/hub/download.js'
import { HubError } from '../../src/sources/hub/errors.js'
import { against, DATA, DATA_SHA, FILE, README, recordingLog, REPO, scratch, seen } from '../mock-hub/fixtures.js'
import { startMockHub, type MockHub } from '../mock-hub/server.js'

const PRIVATE = 'acme/private-prefs'
const GATED = 'acme/gated-prefs'
const PRIVATE_TOKEN = 'hf_private_token_1234567890'
const GRANTED = 'hf_granted_token_1234567890'
const NOT_GRANTED = 'hf_valid_not_granted_12345'
const SMALL = Buffer.alloc(4096, 1)

let hub: MockHub
let s: Awaited<ReturnType<typeof scratch>>

beforeAll(async () => {
  hub = await startMockHub({
    repos: {
      [REPO]: { files: { [FILE]: DATA, 'README.md': README } },
      [PRIVATE]: { files: { 'data.parquet': SMALL }, token: PRIVATE_TOKEN },
      [GATED]: { files: { 'data.parquet': SMALL }, gated: [GRANTED] },
    },
    validTokens: [NOT_GRANTED],
  })
})
afterAll(() => hub.close())
beforeEach(async () => {
  s = await scratch()
  hub.requests.length = 0
  hub.faults.fail.length = 0
  delete hub.faults.down
})
afterEach(() => s.cleanup())

/** Everything an error can show a person or a log: message, stack, causes, JSON. */
function shown(err: unknown): string {
  const parts: string[] = []
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    parts.push(String(e), (e as Error).stack ?? '', JSON.stringify(e) ?? '')
  }
  return parts.join('\n')
}

async function failure(p: Promise<unknown>): Promise<HubError> {
  const err = await p.then(
    () => {
      throw new Error('expected a failure')
    },
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(HubError)
  return err as HubError
}

describe('401: private or gated, without a (valid) token', () => {
  it('says how to log in when no token was sent', async () => {
    const err = await failure(downloadDatasetFile({ repo: PRIVATE, file: 'data.parquet', ...against(hub, s) }))
    expect(err).toMatchObject({ code: 'unauthorized', status: 401 })
    expect(err.message).toContain('no token was sent')
    expect(err.message).toContain('set HF_TOKEN')
    expect(err.message).toContain(join(s.home, 'token'))
    expect(err.message).toContain('hf auth login')
    expect(hub.requests.every((r) => r.authorization === undefined)).toBe(true)
  })

  it('works with the token from HF_TOKEN, HUGGING_FACE_HUB_TOKEN or the token file, in that order', async () => {
    const viaEnv = await downloadDatasetFile({ repo: PRIVATE, file: 'data.parquet', ...against(hub, s, { HF_TOKEN: PRIVATE_TOKEN }) })
    expect(viaEnv.fromCache).toBe(false)
    expect(hub.requests[0]!.authorization).toBe(`Bearer ${PRIVATE_TOKEN}`)
    // the token goes to the Hub, never to the CDN the file redirects to
    const cdn = hub.requests.filter((r) => r.path.startsWith('/cdn/'))
    expect(cdn).toHaveLength(1)
    expect(cdn[0]!.authorization).toBeUndefined()

    await mkdir(s.home, { recursive: true })
    await writeFile(join(s.home, 'token'), `${PRIVATE_TOKEN}\n`)
    const other = await scratch()
    try {
      const viaFile = await downloadDatasetFile({ repo: PRIVATE, file: 'data.parquet', ...against(hub, { cacheDir: other.cacheDir, home: s.home }) })
      expect(viaFile.fromCache).toBe(false)
      // HF_TOKEN wins over the file; a wrong HF_TOKEN is refused even though the file holds a good one
      const wrong = await failure(downloadDatasetFile({ repo: PRIVATE, file: 'data.parquet', ...against(hub, { cacheDir: other.cacheDir, home: s.home }, { HF_TOKEN: NOT_GRANTED }) }))
      expect(wrong).toMatchObject({ code: 'repo-not-found', status: 404 }) // a valid token without access: 404, as the Hub
      expect(wrong.message).toContain('or it is private and the token from $HF_TOKEN was sent but has no access to it')
      const legacy = await downloadDatasetFile({ repo: PRIVATE, file: 'data.parquet', ...against(hub, { cacheDir: other.cacheDir, home: s.dir }, { HUGGING_FACE_HUB_TOKEN: PRIVATE_TOKEN }) })
      expect(legacy.fromCache).toBe(true)
    } finally {
      await other.cleanup()
    }
  })

  it('names the token source, never the token, when a token is refused', async () => {
    const bad = 'hf_this_token_does_not_exist_42'
    const log = recordingLog()
    const err = await failure(downloadDatasetFile({ repo: PRIVATE, file: 'data.parquet', ...against(hub, s, { HF_TOKEN: bad }), log }))
    expect(err.code).toBe('unauthorized')
    expect(err.message).toContain('the token from $HF_TOKEN was sent and was refused')
    expect(shown(err)).not.toContain(bad)
    expect(log.lines.join('\n')).not.toContain(bad)
    const viaFile = await failure(downloadDatasetFile({ repo: PRIVATE, file: 'data.parquet', ...against(hub, s), token: bad }))
    expect(viaFile.message).toContain('the token from the token option was sent')
    expect(shown(viaFile)).not.toContain(bad)
  })

  it('a gated dataset without a token: 401 that says it is gated', async () => {
    const err = await failure(downloadDatasetFile({ repo: GATED, file: 'data.parquet', ...against(hub, s) }))
    expect(err).toMatchObject({ code: 'unauthorized', status: 401 })
    expect(err.message).toContain(`${GATED} on ${hub.url} is gated and no token was sent`)
  })
})

describe('403: access not granted', () => {
  it('says to accept the conditions with the token owner account', async () => {
    const err = await failure(downloadDatasetFile({ repo: GATED, file: 'data.parquet', ...against(hub, s, { HF_TOKEN: NOT_GRANTED }) }))
    expect(err).toMatchObject({ code: 'forbidden', status: 403 })
    expect(err.message).toContain('is not granted (403')
    expect(err.message).toContain(`open ${hub.url}/datasets/${GATED}`)
    expect(err.message).toContain('accept its conditions')
    expect(shown(err)).not.toContain(NOT_GRANTED)
    const ok = await downloadDatasetFile({ repo: GATED, file: 'data.parquet', ...against(hub, s, { HF_TOKEN: GRANTED }) })
    expect(ok.size).toBe(SMALL.length)
  })
})

describe('404: lists what exists', () => {
  it('a missing file: lists the files of the repo', async () => {
    const err = await failure(downloadDatasetFile({ repo: REPO, file: 'train.parquet', ...against(hub, s) }))
    expect(err).toMatchObject({ code: 'file-not-found', status: 404 })
    expect(err.message).toBe(
      `[prefpipe] train.parquet is not in ${REPO} at revision "main" (commit ${hub.commit(REPO).slice(0, 7)}). It has: README.md, rlhf-v.parquet. Parquet files: rlhf-v.parquet`,
    )
  })

  it('a missing revision: lists the branches', async () => {
    const err = await failure(downloadDatasetFile({ repo: REPO, file: FILE, revision: 'v9', ...against(hub, s) }))
    expect(err).toMatchObject({ code: 'revision-not-found', status: 404 })
    expect(err.message).toContain('revision "v9" does not exist in llamafactory/RLHF-V')
    expect(err.message).toContain('It has branches: main')
  })

  it('an unknown repo: 401 without a token (as the Hub), 404 with one', async () => {
    const anon = await failure(downloadDatasetFile({ repo: 'nobody/nothing', file: FILE, ...against(hub, s) }))
    expect(anon.code).toBe('unauthorized')
    expect(anon.message).toContain('the dataset does not exist (check the name), or it is private or gated and no token was sent')
    const authed = await failure(downloadDatasetFile({ repo: 'nobody/nothing', file: FILE, ...against(hub, s, { HF_TOKEN: NOT_GRANTED }) }))
    expect(authed).toMatchObject({ code: 'repo-not-found', status: 404 })
  })

  it('rejects a malformed repo id or file path before any request', async () => {
    await expect(downloadDatasetFile({ repo: 'RLHF-V', file: FILE, ...against(hub, s) })).rejects.toThrow(/not a dataset repo id; give it as owner\/name/)
    await expect(downloadDatasetFile({ repo: REPO, file: '../x.parquet', ...against(hub, s) })).rejects.toThrow(/not a valid file path/)
    expect(hub.requests).toEqual([])
  })
})

describe('offline and unreachable', () => {
  it('HF_HUB_OFFLINE with nothing cached: names the missing file, makes no request', async () => {
    const err = await failure(downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s, { HF_HUB_OFFLINE: '1' }) }))
    expect(err.code).toBe('not-cached')
    expect(err.message).toContain('HF_HUB_OFFLINE is set')
    expect(err.message).toContain('revision "main"')
    expect(err.message).toContain('prefpipe download llamafactory/RLHF-V --file rlhf-v.parquet')
    expect(hub.requests).toEqual([])

    await downloadDatasetFile({ repo: REPO, file: 'README.md', ...against(hub, s) })
    hub.requests.length = 0
    const missing = await failure(downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s, { HF_HUB_OFFLINE: 'true' }) }))
    expect(missing.message).toContain(`rlhf-v.parquet (revision "main", commit ${hub.commit(REPO).slice(0, 7)}) is not in the cache`)
    expect(hub.requests).toEqual([])
  })

  it('HF_HUB_OFFLINE with the file cached: no request, same file', async () => {
    const online = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })
    hub.requests.length = 0
    const offline = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s, { HF_HUB_OFFLINE: 'YES' }) })
    expect(offline).toEqual({ ...online, fromCache: true })
    expect(hub.requests).toEqual([])
  })

  it('the Hub unreachable: the cached file is used, at once (one quick try, no backoff)', async () => {
    const online = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })
    hub.faults.down = true
    const log = recordingLog()
    const t0 = Date.now()
    // default retry policy (5 retries from 1 s): a fallback only after the backoff would take > 20 s
    const { retry: _, ...opts } = against(hub, s)
    const cached = await downloadDatasetFile({ repo: REPO, file: FILE, ...opts, log })
    expect(Date.now() - t0).toBeLessThan(3000)
    expect(cached).toMatchObject({ path: online.path, sha256: DATA_SHA, fromCache: true })
    expect(log.lines.join('\n')).toMatch(/the Hub \(http:\/\/127\.0\.0\.1:\d+\) cannot be reached .*using the cached files of commit/)
  })

  it('the Hub answering 5xx: the cached file is used; 401/403/404 are not papered over', async () => {
    await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })
    hub.faults.fail.push({ match: /^HEAD \/datasets\/.*\/resolve\//, status: 503, times: 1 })
    const cached = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })
    expect(cached.fromCache).toBe(true)
    hub.faults.fail.push({ match: /^HEAD \/datasets\/.*\/resolve\//, status: 401, times: 1 })
    await expect(downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })).rejects.toMatchObject({ code: 'unauthorized' })
    hub.faults.fail.push({ match: /^HEAD \/datasets\/.*\/resolve\//, status: 403, times: 1 })
    await expect(downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })).rejects.toMatchObject({ code: 'forbidden' })
  })

  it('the Hub unreachable and nothing cached: a network error after the retries', async () => {
    hub.faults.down = true
    const err = await failure(downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) }))
    expect(err.code).toBe('network')
    expect(err.message).toMatch(/the Hub cannot be reached \(.*\) after 3 retries\. Check the connection, or set HF_ENDPOINT/)
    expect(seen(hub)).toEqual([]) // connections were refused before any request arrived
  })
})
