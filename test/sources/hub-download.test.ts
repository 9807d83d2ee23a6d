import { createHash } from 'node:crypto'
import { lstat, mkdir, readFile, readlink, readdir, stat, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { downloadDatasetFile, type DownloadProgress } from '../../src/sources/hub/download.js'
import { HubError } from '../../src/sources/hub/errors.js'
import { against, DATA, DATA_SHA, FILE, README, recordingLog, REPO, scratch, seen } from '../mock-hub/fixtures.js'
import { startMockHub, type MockHub } from '../mock-hub/server.js'

const ROOT = 'datasets--llamafactory--RLHF-V'

let hub: MockHub
let s: Awaited<ReturnType<typeof scratch>>

beforeAll(async () => {
  hub = await startMockHub({ repos: { [REPO]: { files: { [FILE]: DATA, 'README.md': README } } } })
})
afterAll(() => hub.close())
beforeEach(async () => {
  s = await scratch()
  hub.requests.length = 0
  hub.faults.fail.length = 0
  for (const k of ['cut', 'throttle', 'ignoreRange', 'corrupt', 'noApi', 'down'] as const) delete hub.faults[k]
})
afterEach(() => s.cleanup())

const partialOf = () => join(s.cacheDir, ROOT, 'blobs', `${DATA_SHA}.incomplete`)

describe('downloadDatasetFile: a fresh download', () => {
  it('writes the Python cache layout and verifies the file', async () => {
    const f = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })
    const commit = hub.commit(REPO)
    const root = join(s.cacheDir, ROOT)
    expect(f).toEqual({ repo: REPO, file: FILE, revision: 'main', commit, path: join(root, 'snapshots', commit, FILE), size: DATA.length, sha256: DATA_SHA, fromCache: false })
    expect(await readFile(join(root, 'refs', 'main'), 'utf8')).toBe(commit) // no newline, as Python writes it
    expect((await lstat(f.path)).isSymbolicLink()).toBe(true)
    expect(await readlink(f.path)).toBe(`../../blobs/${DATA_SHA}`)
    expect((await readFile(f.path)).equals(DATA)).toBe(true)
    expect(await readdir(join(root, 'blobs'))).toEqual([DATA_SHA]) // the partial was renamed, nothing left over
    expect(await readFile(join(s.cacheDir, 'CACHEDIR.TAG'), 'utf8')).toMatch(/^Signature: 8a477f597d28d172789f06886806bc55\n/)
    expect(await readdir(join(s.cacheDir, '.locks', ROOT))).toEqual([]) // the lock was released
    // huggingface_hub's sequence: one HEAD on the resolve URL (X-Repo-Commit, X-Linked-Etag, X-Linked-Size, and
    // the CDN's Location), then the body straight from the CDN, without the token
    expect(seen(hub)).toEqual([`HEAD /datasets/${REPO}/resolve/main/${FILE}`, `GET /cdn/${DATA_SHA}`])
    expect(hub.requests.find((r) => r.path.startsWith('/cdn/'))!.authorization).toBeUndefined()
  })

  it('a second run makes no body request; a commit sha revision makes no request at all', async () => {
    await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })
    hub.requests.length = 0
    const again = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })
    expect(again.fromCache).toBe(true)
    expect(again.sha256).toBe(DATA_SHA)
    expect(hub.bodyRequests()).toEqual([])
    expect(seen(hub)).toEqual([`HEAD /datasets/${REPO}/resolve/main/${FILE}`]) // the HEAD alone decides, as in Python

    hub.requests.length = 0
    const pinned = await downloadDatasetFile({ repo: REPO, file: FILE, revision: hub.commit(REPO), ...against(hub, s) })
    expect(pinned).toMatchObject({ fromCache: true, path: again.path, sha256: DATA_SHA })
    expect(hub.requests).toEqual([])
  })

  it('reports progress in bytes, ending at the total', async () => {
    hub.faults.throttle = { bytes: 512 << 10, everyMs: 5 }
    const events: DownloadProgress[] = []
    await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s), progressIntervalMs: 0, onProgress: (p) => events.push(p) })
    expect(events.length).toBeGreaterThan(5)
    expect(events[0]).toEqual({ file: FILE, done: 0, total: DATA.length })
    expect(events.at(-1)).toEqual({ file: FILE, done: DATA.length, total: DATA.length })
    for (let i = 1; i < events.length; i++) expect(events[i]!.done).toBeGreaterThan(events[i - 1]!.done)
  })

  it('verifies a file that is not in LFS by its git oid', async () => {
    const f = await downloadDatasetFile({ repo: REPO, file: 'README.md', ...against(hub, s) })
    const m = hub.file(REPO, 'README.md')
    expect(m.lfs).toBe(false)
    expect(await readlink(f.path)).toBe(`../../blobs/${m.gitOid}`)
    expect(f.sha256).toBe(createHash('sha256').update(README).digest('hex'))
    expect(await readFile(f.path, 'utf8')).toBe(README)
  })
})

describe('downloadDatasetFile: resume, retries, verification', () => {
  it('resumes after a connection cut mid-body, with a Range request', async () => {
    hub.faults.cut = { bytes: 2 << 20, times: 1 }
    const f = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })
    expect(f.sha256).toBe(DATA_SHA)
    const cdn = hub.requests.filter((r) => r.path.startsWith('/cdn/'))
    expect(cdn).toHaveLength(2)
    expect(cdn[0]!.range).toBeUndefined()
    expect(cdn[1]!.range).toBe(`bytes=${2 << 20}-`)
    expect((await readFile(f.path)).equals(DATA)).toBe(true)
  })

  it('resumes a partial left by an earlier run', async () => {
    // an earlier run that stopped after 3 MiB: the next one asks only for the rest
    await mkdir(join(s.cacheDir, ROOT, 'blobs'), { recursive: true })
    await writeFile(partialOf(), DATA.subarray(0, 3 << 20))
    const f = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })
    expect(f).toMatchObject({ sha256: DATA_SHA, fromCache: false })
    expect(hub.requests.filter((r) => r.path.startsWith('/cdn/')).map((r) => r.range)).toEqual([`bytes=${3 << 20}-`])
  })

  it('detects a corrupt partial by its sha256 and downloads again from the start', async () => {
    await mkdir(join(s.cacheDir, ROOT, 'blobs'), { recursive: true })
    await writeFile(partialOf(), Buffer.alloc(1 << 20, 7)) // garbage
    const log = recordingLog()
    const f = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s), log })
    expect(f.sha256).toBe(DATA_SHA)
    expect((await readFile(f.path)).equals(DATA)).toBe(true)
    expect(hub.requests.filter((r) => r.path.startsWith('/cdn/')).map((r) => r.range)).toEqual([`bytes=${1 << 20}-`, undefined])
    expect(log.lines.join('\n')).toMatch(/does not match the Hub's sha256 .*downloading again from the start/)
  })

  it('fails with a checksum error when the bytes are wrong twice', async () => {
    hub.faults.corrupt = 2
    const err = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(HubError)
    expect(err).toMatchObject({ code: 'checksum' })
    expect((err as Error).message).toContain(DATA_SHA)
    expect(await stat(join(s.cacheDir, ROOT, 'blobs', DATA_SHA)).catch(() => null)).toBeNull() // no bad blob
  })

  it('starts over when a server ignores Range', async () => {
    await mkdir(join(s.cacheDir, ROOT, 'blobs'), { recursive: true })
    await writeFile(partialOf(), DATA.subarray(0, 1 << 20))
    hub.faults.ignoreRange = true
    const f = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })
    expect(f.sha256).toBe(DATA_SHA)
    expect(hub.requests.filter((r) => r.path.startsWith('/cdn/'))).toHaveLength(1)
  })

  it('retries injected 500s on metadata and body requests', async () => {
    hub.faults.fail.push({ match: /^HEAD \/datasets\/.*\/resolve\//, status: 500, times: 2 }, { match: /^GET \/cdn\//, status: 502, times: 1 })
    const f = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })
    expect(f.sha256).toBe(DATA_SHA)
    expect(seen(hub).filter((r) => r.startsWith('HEAD /datasets/'))).toHaveLength(3)
    expect(seen(hub).filter((r) => r.startsWith('GET /cdn/'))).toHaveLength(2)
  })

  it('resolves again after a CDN 403 (an expired signed URL); a 403 from the Hub itself is final', async () => {
    hub.faults.fail.push({ match: /^GET \/cdn\//, status: 403, times: 1 })
    const f = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })
    expect(f.sha256).toBe(DATA_SHA)
    // the HEAD's Location first; after the CDN's 403, a fresh redirect from the resolve URL (at the commit)
    expect(seen(hub)).toEqual([
      `HEAD /datasets/${REPO}/resolve/main/${FILE}`,
      `GET /cdn/${DATA_SHA}`,
      `GET /datasets/${REPO}/resolve/${hub.commit(REPO)}/${FILE}`,
      `GET /cdn/${DATA_SHA}`,
    ])
    const other = await scratch()
    try {
      hub.faults.fail.push({ match: /^HEAD \/datasets\/.*\/resolve\//, status: 403, times: 1 })
      await expect(downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, other) })).rejects.toMatchObject({ name: 'HubError', code: 'forbidden' })
      // a file served by the Hub itself (not in LFS): a 403 on its body GET is final too
      hub.requests.length = 0
      hub.faults.fail.push({ match: /^GET \/datasets\/.*\/resolve\//, status: 403, times: 1 })
      await expect(downloadDatasetFile({ repo: REPO, file: 'README.md', ...against(hub, other) })).rejects.toMatchObject({ name: 'HubError', code: 'forbidden' })
      expect(seen(hub)).toEqual([`HEAD /datasets/${REPO}/resolve/main/README.md`, `GET /datasets/${REPO}/resolve/${hub.commit(REPO)}/README.md`])
    } finally {
      await other.cleanup()
    }
  })

  it('honours Retry-After', async () => {
    hub.faults.fail.push({ match: /^GET \/cdn\//, status: 503, times: 1, retryAfter: '1' })
    const t0 = Date.now()
    await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })
    // the backoff alone would be ~5 ms
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950)
    expect(seen(hub).filter((r) => r.startsWith('GET /cdn/'))).toHaveLength(2)
  })

  it('keeps going while each attempt brings bytes (only attempts without progress count)', async () => {
    hub.faults.cut = { bytes: 1 << 20, times: 99 } // every body is cut after 1 MiB: 5+ attempts, retries is 3
    const f = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })
    expect(f.sha256).toBe(DATA_SHA)
    const ranges = hub.requests.filter((r) => r.path.startsWith('/cdn/')).map((r) => r.range)
    expect(ranges.slice(0, 5)).toEqual([undefined, 'bytes=1048576-', 'bytes=2097152-', 'bytes=3145728-', 'bytes=4194304-'])
  })

  it('gives up after the retries with a message that says what to do', async () => {
    hub.faults.fail.push({ match: /^GET \/cdn\//, status: 503, times: 99 })
    const err = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) }).catch((e: unknown) => e)
    expect(err).toMatchObject({ name: 'HubError', code: 'network' })
    expect((err as Error).message).toMatch(/rlhf-v\.parquet: the download failed 4 times in a row \(HTTP 503.*run again to resume/)
    expect(seen(hub).filter((r) => r.startsWith('GET /cdn/'))).toHaveLength(4)
  })

  it('cuts a stalled body after HF_HUB_DOWNLOAD_TIMEOUT and resumes', async () => {
    hub.faults.throttle = { bytes: 2 << 20, everyMs: 60_000 } // 2 MiB, then silence
    const f = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s, { HF_HUB_DOWNLOAD_TIMEOUT: '0.3' }) })
    expect(f.sha256).toBe(DATA_SHA)
    expect(hub.requests.filter((r) => r.path.startsWith('/cdn/')).map((r) => r.range)).toEqual([undefined, 'bytes=2097152-', 'bytes=4194304-'])
  })

  it('keeps the partial when aborted, and resumes from it', async () => {
    hub.faults.throttle = { bytes: 256 << 10, everyMs: 10 }
    const controller = new AbortController()
    const p = downloadDatasetFile({
      repo: REPO,
      file: FILE,
      ...against(hub, s),
      signal: controller.signal,
      progressIntervalMs: 0,
      onProgress: ({ done }) => {
        if (done >= 1 << 20) controller.abort()
      },
    })
    await expect(p).rejects.toMatchObject({ name: 'AbortError' })
    const kept = (await stat(partialOf())).size
    expect(kept).toBeGreaterThanOrEqual(1 << 20)
    delete hub.faults.throttle
    hub.requests.length = 0
    const f = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })
    expect(f.sha256).toBe(DATA_SHA)
    expect(hub.requests.filter((r) => r.path.startsWith('/cdn/')).map((r) => r.range)).toEqual([`bytes=${kept}-`])
  })

  it('says how much space was needed when the disk is full (ENOSPC)', async () => {
    // /dev/full answers every write with ENOSPC: a real disk-full error without filling a disk
    await mkdir(join(s.cacheDir, ROOT, 'blobs'), { recursive: true })
    await symlink('/dev/full', partialOf())
    const err = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) }).catch((e: unknown) => e)
    expect(err).toMatchObject({ name: 'HubError', code: 'disk-full' })
    expect((err as Error).message).toMatch(/disk is full \(ENOSPC\).*needs 5\.2 MB more \(5\.2 MB in all/)
    expect((err as Error).message).toMatch(/run again: the download resumes/)
  })

  it('needs nothing but /resolve: a mirror without the /api/ routes works', async () => {
    hub.faults.noApi = true
    const f = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })
    expect(f).toMatchObject({ commit: hub.commit(REPO), sha256: DATA_SHA })
    expect(seen(hub)).toEqual([`HEAD /datasets/${REPO}/resolve/main/${FILE}`, `GET /cdn/${DATA_SHA}`])
  })

  it('a HEAD without the Hub headers (a proxy that strips them): asks the API instead', async () => {
    hub.faults.bareHead = true
    try {
      const f = await downloadDatasetFile({ repo: REPO, file: FILE, ...against(hub, s) })
      expect(f).toMatchObject({ commit: hub.commit(REPO), sha256: DATA_SHA, fromCache: false })
      expect(seen(hub)).toEqual([
        `HEAD /datasets/${REPO}/resolve/main/${FILE}`,
        `GET /api/datasets/${REPO}/revision/main`,
        `POST /api/datasets/${REPO}/paths-info/${hub.commit(REPO)}`,
        `GET /datasets/${REPO}/resolve/${hub.commit(REPO)}/${FILE}`,
        `GET /cdn/${DATA_SHA}`,
      ])
    } finally {
      delete hub.faults.bareHead
    }
  })
})

describe('the metadata HEAD (huggingface_hub\'s get_hf_file_metadata)', () => {
  const head = (path: string, token?: string) =>
    fetch(`${hub.url}/datasets/${REPO}/resolve/main/${path}`, { method: 'HEAD', redirect: 'manual', headers: token ? { authorization: `Bearer ${token}` } : {} })

  it('the mock answers it as the Hub does', async () => {
    const commit = hub.commit(REPO)
    const lfs = await head(FILE)
    expect(lfs.status).toBe(302)
    expect(lfs.headers.get('x-repo-commit')).toBe(commit)
    expect(lfs.headers.get('x-linked-etag')).toBe(`"${DATA_SHA}"`)
    expect(lfs.headers.get('x-linked-size')).toBe(String(DATA.length))
    expect(lfs.headers.get('etag')).toBe(`"${hub.file(REPO, FILE).gitOid}"`) // the pointer's git oid
    expect(lfs.headers.get('location')).toMatch(new RegExp(`^${hub.cdnUrl}/cdn/${DATA_SHA}\\?`))
    const small = await head('README.md')
    expect(small.status).toBe(200)
    expect(small.headers.get('x-repo-commit')).toBe(commit)
    expect(small.headers.get('etag')).toBe(`"${hub.file(REPO, 'README.md').gitOid}"`)
    expect(small.headers.get('content-length')).toBe(String(Buffer.byteLength(README)))
    expect(small.headers.get('x-linked-etag')).toBeNull()
    const missing = await head('nope.parquet')
    expect(missing.status).toBe(404)
    expect(missing.headers.get('x-error-code')).toBe('EntryNotFound')
    expect(missing.headers.get('x-repo-commit')).toBe(commit)
  })

  it('a file not in LFS: HEAD, then its body from the Hub at the commit, checked against its git oid', async () => {
    const f = await downloadDatasetFile({ repo: REPO, file: 'README.md', ...against(hub, s) })
    const commit = hub.commit(REPO)
    expect(f).toMatchObject({ commit, size: Buffer.byteLength(README), fromCache: false })
    expect(await readlink(f.path)).toBe(`../../blobs/${hub.file(REPO, 'README.md').gitOid}`)
    expect(seen(hub)).toEqual([`HEAD /datasets/${REPO}/resolve/main/README.md`, `GET /datasets/${REPO}/resolve/${commit}/README.md`])
  })

  it('a Location on another origin is fetched without the token; the HEAD carries it', async () => {
    const other = await scratch()
    try {
      const h = await startMockHub({ repos: { 'acme/private': { token: 'hf_head_token', files: { [FILE]: DATA } } } })
      try {
        const f = await downloadDatasetFile({ repo: 'acme/private', file: FILE, ...against(h, other, { HF_TOKEN: 'hf_head_token' }) })
        expect(f.sha256).toBe(DATA_SHA)
        expect(h.requests.map((r) => [`${r.method} ${r.path}`, r.authorization])).toEqual([
          [`HEAD /datasets/acme/private/resolve/main/${FILE}`, 'Bearer hf_head_token'],
          [`GET /cdn/${DATA_SHA}`, undefined],
        ])
      } finally {
        await h.close()
      }
    } finally {
      await other.cleanup()
    }
  })
})
