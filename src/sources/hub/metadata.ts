import { datasetInfo, listFiles, pathsInfo } from '@huggingface/hub'
import { abortError, isAbortError } from '../../pipeline/errors.js'
import type { Logger } from '../../pipeline/types.js'
import { COMMIT_RE, listSnapshot, pointerPath, readRef, repoCache, statPointer, type RepoCache } from './cache.js'
import { convertedConfigs, pickDataFiles, type PickDataFilesOptions } from './data-files.js'
import { hubSettings, type HubSettings, type HubSettingsInput } from './env.js'
import { HubError, HubHttpError, isNetworkError, loginHint, stripQuery, tokenNote } from './errors.js'
import { hubFetch, httpErrorOfMessage, request, retryPolicy, RETRY_STATUS, withRetry, type RetryOptions, type RetryPolicy } from './http.js'

/** Options every Hub call takes. Explicit values win over the environment variables huggingface_hub reads. */
export interface HubOptions extends HubSettingsInput {
  /** Stop everything: requests in flight are cut, the partial download is kept for the next run. */
  signal?: AbortSignal
  /** Retries of network errors and 408/429/5xx (default: 5 retries, 1 s doubling to 8 s). */
  retry?: RetryOptions
  /** Where warnings (cache fallback, low disk space, corrupt partial) and debug lines go. Default: nowhere. */
  log?: Pick<Logger, 'warn' | 'debug'>
  /** Called with the URL of every HTTP request made (never with a token): for debugging and tests. */
  onRequest?: (url: string) => void
}

/** A file of a repo at a commit, as the Hub describes it. */
export interface RemoteFile {
  path: string
  size: number
  /** The LFS oid (sha256 of the bytes), for files in LFS. */
  sha256?: string
  /** The git blob oid, for files not in LFS. */
  gitOid?: string
  /** The blob's name in the cache: the sha256 for LFS files, the git oid otherwise (huggingface_hub's etag). */
  etag: string
  /** Where the bytes are, when a `HEAD` on the resolve URL said so (the CDN URL of its redirect). */
  location?: string
}

/** One resolved Hub call: the repo, its settings and the `fetch` the library's functions use. */
export interface HubCall {
  repo: string
  settings: HubSettings
  retry: RetryPolicy
  cache: RepoCache
  signal?: AbortSignal
  log?: Pick<Logger, 'warn' | 'debug'>
  onRequest?: (url: string) => void
  fetch: typeof fetch
}

/** `owner/name`, also accepting `datasets/owner/name` and a Hub URL of the dataset. */
export function normalizeRepo(repo: string): string {
  const r = repo
    .trim()
    .replace(/^https?:\/\/[^/]+\//, '')
    .replace(/^datasets\//, '')
    .replace(/\/+$/, '')
  if (!/^[\w.-]+\/[\w.-]+$/.test(r) || r.includes('..') || r.includes('--')) {
    throw new Error(`[prefpipe] "${repo}" is not a dataset repo id; give it as owner/name (e.g. llamafactory/RLHF-V)`)
  }
  return r
}

export function hubCall(repo: string, o: HubOptions, retry?: RetryOptions): HubCall {
  const name = normalizeRepo(repo)
  const settings = hubSettings(o)
  const policy = retryPolicy(retry ?? o.retry)
  const call: HubCall = {
    repo: name,
    settings,
    retry: policy,
    cache: repoCache(settings.cacheDir, name),
    fetch: hubFetch(settings, { retry: policy, ...(o.signal ? { signal: o.signal } : {}), ...(o.onRequest ? { onRequest: o.onRequest } : {}), ...(o.log ? { log: o.log } : {}) }),
  }
  if (o.signal) call.signal = o.signal
  if (o.log) call.log = o.log
  if (o.onRequest) call.onRequest = o.onRequest
  return call
}

/** The same call with another retry policy (a first, quick try before falling back to the cache). */
function withPolicy(call: HubCall, retry: RetryPolicy): HubCall {
  const extra = { ...(call.signal ? { signal: call.signal } : {}), ...(call.onRequest ? { onRequest: call.onRequest } : {}), ...(call.log ? { log: call.log } : {}) }
  return { ...call, retry, fetch: hubFetch(call.settings, { retry, ...extra }) }
}

const datasetRepo = (call: HubCall) => ({ type: 'dataset' as const, name: call.repo })

/** `<endpoint>/datasets/<repo>/resolve/<revision>/<file>`, every part encoded as huggingface_hub does. */
export function resolveUrl(call: Pick<HubCall, 'repo' | 'settings'>, revision: string, file: string): string {
  return `${call.settings.endpoint}/datasets/${call.repo}/resolve/${encodeURIComponent(revision)}/${file.split('/').map(encodeURIComponent).join('/')}`
}

/** The commit a revision points to now (no request for a commit sha). */
export async function resolveCommit(call: HubCall, revision: string): Promise<string> {
  if (COMMIT_RE.test(revision)) return revision
  const info = await datasetInfo({ name: call.repo, revision, additionalFields: ['sha'], hubUrl: call.settings.endpoint, fetch: call.fetch })
  if (typeof info.sha !== 'string' || !COMMIT_RE.test(info.sha)) {
    throw new HubError('bad-response', `[prefpipe] ${call.repo}: the Hub gave no commit sha for revision "${revision}"`)
  }
  return info.sha
}

function toRemote(e: { path: string; size: number; oid?: string; lfs?: { oid: string; size: number } | undefined }): RemoteFile {
  if (e.lfs) return { path: e.path, size: e.lfs.size, sha256: e.lfs.oid, etag: e.lfs.oid }
  if (!e.oid) throw new HubError('bad-response', `[prefpipe] the Hub listed ${e.path} without an oid`)
  return { path: e.path, size: e.size, gitOid: e.oid, etag: e.oid }
}

/** Every file of the repo at `commit` (the tree API, paged). */
export async function listRepoFiles(call: HubCall, commit: string): Promise<RemoteFile[]> {
  const out: RemoteFile[] = []
  // listFiles puts the revision in the path as is: encode it (refs/convert/parquet -> refs%2Fconvert%2Fparquet).
  for await (const e of listFiles({ repo: datasetRepo(call), revision: encodeURIComponent(commit), recursive: true, hubUrl: call.settings.endpoint, fetch: call.fetch })) {
    if (e.type === 'file') out.push(toRemote(e))
  }
  return out
}

/** Size and oid of named files at `commit` (paths-info); a missing one is a `file-not-found` error. */
export async function statFiles(call: HubCall, revision: string, commit: string, files: string[]): Promise<RemoteFile[]> {
  const infos = await pathsInfo({ repo: datasetRepo(call), paths: files, revision: commit, hubUrl: call.settings.endpoint, fetch: call.fetch })
  const byPath = new Map(infos.filter((i) => i.type === 'file').map((i) => [i.path, i]))
  const missing = files.filter((f) => !byPath.has(f))
  if (missing.length > 0) throw await fileNotFound(call, revision, commit, missing)
  return files.map((f) => toRemote(byPath.get(f)!))
}

/** What one `HEAD` on a resolve URL tells: the commit, the file, and where its bytes are. */
export interface HeadAnswer {
  commit: string
  file: RemoteFile
}

/**
 * A file's commit, blob name and size from one `HEAD` on its resolve URL, stopping at the redirect to the CDN:
 * huggingface_hub's own way (`get_hf_file_metadata`). `X-Repo-Commit` is the commit, `X-Linked-Etag` (LFS: the
 * sha256) or `ETag` (the git blob oid) the blob's name, `X-Linked-Size` or `Content-Length` the size, and the
 * redirect's `Location` (an LFS file's CDN URL) becomes `file.location`, fetched without the token. Same-origin
 * redirects that are not the file's answer (a renamed repo) are followed. Retried like every metadata request
 * (network errors, 408/429/5xx, `Retry-After`, `HF_HUB_ETAG_TIMEOUT` per attempt). A 404 `EntryNotFound`
 * carries the commit the Hub looked in (`repoCommit`).
 */
export async function headFile(call: HubCall, revision: string, file: string): Promise<HeadAnswer> {
  const url = resolveUrl(call, revision, file)
  return withRetry(
    async () => {
      const { res, url: at } = await request(url, {
        settings: call.settings,
        method: 'HEAD',
        follow: 'hub-head',
        timeoutMs: call.settings.metadataTimeoutMs,
        ...(call.signal ? { signal: call.signal } : {}),
        ...(call.onRequest ? { onRequest: call.onRequest } : {}),
      })
      const status = res.statusCode ?? 0
      const h = res.headers
      const one = (k: string) => (typeof h[k] === 'string' ? (h[k] as string) : undefined)
      if (status >= 400) {
        const err = await httpErrorOfMessage(res, at)
        const commit = one('x-repo-commit')
        if (commit && COMMIT_RE.test(commit)) err.repoCommit = commit
        throw err
      }
      res.resume()
      const commit = one('x-repo-commit')
      const linked = one('x-linked-etag')
      const etag = (linked ?? one('etag'))?.replace(/^W\//, '').replace(/"/g, '')
      const size = Number(one('x-linked-size') ?? (status < 300 ? one('content-length') : undefined))
      if (!commit || !COMMIT_RE.test(commit) || !etag || !Number.isFinite(size)) {
        throw new HubError('bad-response', `[prefpipe] ${call.repo}: ${stripQuery(at)} answered without X-Repo-Commit, ETag or size headers (is ${call.settings.endpoint} a Hub mirror?)`)
      }
      const location = status >= 300 && status < 400 && one('location') ? new URL(one('location')!, at).href : undefined
      const base: RemoteFile = linked && /^[0-9a-f]{64}$/.test(etag) ? { path: file, size, sha256: etag, etag } : { path: file, size, gitOid: etag, etag }
      return { commit, file: location ? { ...base, location } : base }
    },
    call.retry,
    call.signal,
  )
}

/**
 * Resolve named files the way huggingface_hub's `hf_hub_download` does: one `HEAD` per file on its resolve URL
 * (the first at `revision`, the others at the commit it answered, so all share one commit), no `/api/` call.
 * Each file keeps the CDN URL its `HEAD` was redirected to, so the body GET goes straight there. Offline, or
 * when the Hub cannot be reached (network errors, 408/429/5xx; not 401/403/404) and the cache has the files,
 * the cache answers, as in {@link resolveFiles}. A server whose `HEAD` lacks the Hub's headers (a proxy that
 * strips them) is asked through the API instead.
 */
export async function headFiles(call: HubCall, revision: string, files: string[]): Promise<Resolution> {
  if (call.settings.offline) return fromCache(call, revision, files, {}, 'offline')
  const cached = await cachedAnswer(call, revision, files)
  const first = cached ? withPolicy(call, { ...call.retry, retries: 0 }) : call
  try {
    let commit: string | undefined
    const out: RemoteFile[] = []
    for (const f of files) {
      const h = await headFile(first, commit ?? revision, f)
      commit ??= h.commit
      out.push(h.file)
    }
    return { commit: commit!, files: out, fromCache: false }
  } catch (err) {
    if (isAbortError(err) || call.signal?.aborted) throw call.signal ? abortError(call.signal) : err
    if ((err instanceof HubError && err.code === 'bad-response') || (err instanceof HubHttpError && (err.status === 405 || err.status === 501))) {
      call.log?.debug(`${call.settings.endpoint} does not answer HEAD like the Hub (${describeError(err)}); using the API`)
      return resolveFiles(call, revision, files)
    }
    if (cached && isUnreachable(err)) {
      try {
        const r = await fromCache(call, revision, files, {}, 'unreachable', err)
        call.log?.warn(`${call.repo}: the Hub (${call.settings.endpoint}) cannot be reached (${describeError(err)}); using the cached files of commit ${r.commit.slice(0, 7)}`)
        return r
      } catch {
        // the cache did not have everything after all: report the network error
      }
    }
    throw await explain(err, call, { revision, ...(files.length === 1 ? { file: files[0]! } : {}) })
  }
}

/** A mirror without the `/api/` routes answers them 404 without a Hub error code (or 405/501). */
function apiMissing(err: unknown): boolean {
  return err instanceof HubHttpError && err.url.includes('/api/') && ((err.status === 404 && !err.errorCode) || err.status === 405 || err.status === 501)
}

/** The Hub could not be reached or kept failing: the case where the cache may stand in (not 401/403/404). */
export function isUnreachable(err: unknown): boolean {
  return isNetworkError(err) || (err instanceof HubHttpError && RETRY_STATUS.has(err.status))
}

/** How a resolution was answered. */
export interface Resolution {
  commit: string
  files: RemoteFile[]
  /** Answered from the cache alone (offline, or the Hub unreachable): the files are there, nothing to download. */
  fromCache: boolean
}

/**
 * Resolve a revision to a commit and the files to read: the named `files`, or the parquet data files picked
 * from the repo's listing. Offline (`HF_HUB_OFFLINE`) it answers from the cache alone; online, when the Hub
 * cannot be reached (network errors, 408/429/5xx) and the cache has an answer, the cache is used with a
 * warning, as huggingface_hub does. When there is a cached answer the Hub gets one quick try (no retries),
 * so a down Hub does not delay a cached run by the whole backoff.
 */
export async function resolveFiles(call: HubCall, revision: string, files: string[] | undefined, pick: PickDataFilesOptions = {}): Promise<Resolution> {
  if (call.settings.offline) return fromCache(call, revision, files, pick, 'offline')
  const cached = await cachedAnswer(call, revision, files)
  const first = cached ? withPolicy(call, { ...call.retry, retries: 0 }) : call
  try {
    return await resolveOnline(first, revision, files, pick)
  } catch (err) {
    if (isAbortError(err) || call.signal?.aborted) throw call.signal ? abortError(call.signal) : err
    if (cached && isUnreachable(err)) {
      try {
        const r = await fromCache(call, revision, files, pick, 'unreachable', err)
        call.log?.warn(`${call.repo}: the Hub (${call.settings.endpoint}) cannot be reached (${describeError(err)}); using the cached files of commit ${r.commit.slice(0, 7)}`)
        return r
      } catch {
        // the cache did not have everything after all: report the network error
      }
    }
    throw await explain(err, call, { revision, ...(files?.length === 1 ? { file: files[0]! } : {}) })
  }
}

async function resolveOnline(call: HubCall, revision: string, files: string[] | undefined, pick: PickDataFilesOptions): Promise<Resolution> {
  let commit: string
  try {
    commit = await resolveCommit(call, revision)
    if (files) return { commit, files: await statFiles(call, revision, commit, files), fromCache: false }
  } catch (err) {
    if (!apiMissing(err) || !files) throw err
    // A mirror without /api/: HEAD each file like huggingface_hub; the commit comes from X-Repo-Commit.
    call.log?.debug(`${call.settings.endpoint} does not serve the Hub API (${describeError(err)}); using HEAD requests`)
    const heads = []
    for (const f of files) heads.push(await headFile(call, revision, f))
    return { commit: heads[0]!.commit, files: heads.map((h) => h.file), fromCache: false }
  }
  const all = await listRepoFiles(call, commit)
  const picked = pickDataFiles(
    all.map((f) => f.path),
    { ...pick, converted: pick.converted ?? revision === 'refs/convert/parquet' },
  )
  if (picked.length === 0) throw noDataFiles(call, revision, commit, all.map((f) => f.path), pick)
  const byPath = new Map(all.map((f) => [f.path, f]))
  return { commit, files: picked.map((p) => byPath.get(p)!), fromCache: false }
}

/** Whether the cache can answer this resolution (a commit for the revision, and the files or a snapshot). */
async function cachedAnswer(call: HubCall, revision: string, files: string[] | undefined): Promise<boolean> {
  const commit = COMMIT_RE.test(revision) ? revision : await readRef(call.cache, revision)
  if (!commit) return false
  if (!files) return (await listSnapshot(call.cache, commit)).length > 0
  for (const f of files) if (!(await statPointer(pointerPath(call.cache, commit, f)))) return false
  return true
}

/** Answer from the cache alone; a miss is a `not-cached` error naming the file and what to do. */
async function fromCache(call: HubCall, revision: string, files: string[] | undefined, pick: PickDataFilesOptions, why: 'offline' | 'unreachable', cause?: unknown): Promise<Resolution> {
  const rc = call.cache
  const why_ =
    why === 'offline'
      ? 'HF_HUB_OFFLINE is set (offline mode), so nothing can be downloaded'
      : `the Hub (${call.settings.endpoint}) cannot be reached (${describeError(cause)})`
  const todo =
    why === 'offline'
      ? `Run once with network access (\`prefpipe download ${call.repo}${files?.length === 1 ? ` --file ${files[0]}` : ''}${revision === 'main' ? '' : ` --revision ${revision}`}\`), or unset HF_HUB_OFFLINE`
      : 'Check the connection, or set HF_ENDPOINT to a reachable mirror'
  const commit = COMMIT_RE.test(revision) ? revision : await readRef(rc, revision)
  if (!commit) {
    throw new HubError('not-cached', `[prefpipe] ${call.repo}: ${why_}, and the cache ${rc.root} has no record of revision "${revision}" (no refs/${revision}). ${todo}`, { cause })
  }
  const paths = files ?? pickDataFiles(await listSnapshot(rc, commit), { ...pick, converted: pick.converted ?? revision === 'refs/convert/parquet' })
  if (paths.length === 0) {
    throw new HubError('not-cached', `[prefpipe] ${call.repo}: ${why_}, and the cached snapshot ${commit.slice(0, 7)} of revision "${revision}" in ${rc.root} holds no parquet data file. ${todo}`, { cause })
  }
  const out: RemoteFile[] = []
  for (const path of paths) {
    const hit = await statPointer(pointerPath(rc, commit, path))
    if (!hit) {
      throw new HubError('not-cached', `[prefpipe] ${call.repo}: ${why_}, and ${path} (revision "${revision}", commit ${commit.slice(0, 7)}) is not in the cache ${rc.root}. ${todo}`, { cause })
    }
    const blob = hit.blob ?? ''
    out.push(/^[0-9a-f]{64}$/.test(blob) ? { path, size: hit.size, sha256: blob, etag: blob } : { path, size: hit.size, ...(blob ? { gitOid: blob } : {}), etag: blob })
  }
  return { commit, files: out, fromCache: true }
}

export function describeError(err: unknown): string {
  if (err instanceof HubHttpError) return `HTTP ${err.status}${err.serverMessage ? `: ${err.serverMessage}` : ''}`
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code ?? (err.cause as NodeJS.ErrnoException | undefined)?.code
    const msg = err.message === 'fetch failed' && err.cause instanceof Error ? err.cause.message : err.message
    return code && !msg.includes(code) ? `${code}: ${msg}` : msg
  }
  return String(err)
}

/** Paths of the repo at a revision for a message, best effort (empty when even that fails). */
async function filesForMessage(call: HubCall, revision: string): Promise<string[]> {
  try {
    return (await listRepoFiles(withPolicy(call, { ...call.retry, retries: 1 }), revision)).map((f) => f.path)
  } catch {
    return []
  }
}

function listing(paths: string[], max = 30): string {
  if (paths.length === 0) return '(the file list could not be fetched)'
  const shown = [...paths].sort().slice(0, max).join(', ')
  return paths.length > max ? `${shown}, ... (${paths.length} files)` : shown
}

async function fileNotFound(call: HubCall, revision: string, commit: string, missing: string[]): Promise<HubError> {
  const paths = await filesForMessage(call, commit)
  const parquet = paths.filter((p) => p.endsWith('.parquet'))
  const rev = COMMIT_RE.test(revision) ? revision.slice(0, 7) : `"${revision}" (commit ${commit.slice(0, 7)})`
  return new HubError(
    'file-not-found',
    `[prefpipe] ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not in ${call.repo} at revision ${rev}. ` +
      `It has: ${listing(paths)}${parquet.length > 0 ? `. Parquet files: ${listing(parquet, 10)}` : ''}`,
    { status: 404, token: call.settings.token },
  )
}

function noDataFiles(call: HubCall, revision: string, commit: string, paths: string[], pick: PickDataFilesOptions): HubError {
  const configs = revision === 'refs/convert/parquet' ? convertedConfigs(paths) : []
  const hints = [
    pick.split ? `no parquet file of split "${pick.split}"` : 'no parquet data file',
    configs.length > 0 ? `configs: ${configs.join(', ')}` : '',
  ].filter(Boolean)
  return new HubError(
    'no-data-files',
    `[prefpipe] ${call.repo} at revision "${revision}" (commit ${commit.slice(0, 7)}) has ${hints.join('; ')}. It has: ${listing(paths)}. ` +
      `Name a file (--file), or read the Hub's parquet conversion with --revision refs/convert/parquet`,
    { token: call.settings.token },
  )
}

/** Branches, tags and conversions of the repo for a message, best effort. */
async function refsForMessage(call: HubCall): Promise<string> {
  try {
    const res = await withPolicy(call, { ...call.retry, retries: 1 }).fetch(`${call.settings.endpoint}/api/datasets/${call.repo}/refs`)
    const refs = (await res.json()) as { branches?: { name: string }[]; tags?: { name: string }[]; converts?: { name: string; ref?: string }[] }
    const names = (l?: { name: string }[]) => (l ?? []).map((r) => r.name).join(', ')
    const parts = [
      refs.branches?.length ? `branches: ${names(refs.branches)}` : '',
      refs.tags?.length ? `tags: ${names(refs.tags)}` : '',
      refs.converts?.length ? `conversions: ${(refs.converts ?? []).map((c) => c.ref ?? `refs/convert/${c.name}`).join(', ')}` : '',
    ].filter(Boolean)
    return parts.length > 0 ? `. It has ${parts.join('; ')}` : ''
  } catch {
    return ''
  }
}

/**
 * Turn what a Hub call threw into a {@link HubError} a person can act on: 401 says how to log in, 403 that
 * access was not granted, 404 lists what exists, network errors say the Hub could not be reached. Never
 * includes the token.
 */
export async function explain(err: unknown, call: HubCall, target: { revision: string; file?: string }): Promise<unknown> {
  if (err instanceof HubError || isAbortError(err)) return err
  const s = call.settings
  const token = s.token
  const where = `${call.repo} on ${s.endpoint}`
  if (err instanceof HubHttpError) {
    const server = err.serverMessage ? ` ("${err.serverMessage}")` : ''
    if (err.status === 401) {
      const gated = err.errorCode === 'GatedRepo'
      const why = gated
        ? `is gated and ${tokenNote(s)}`
        : s.token
          ? `answered 401${server}: the dataset does not exist, or ${tokenNote(s)} and was refused (expired, revoked, or mistyped?)`
          : `answered 401${server}: the dataset does not exist (check the name), or it is private or gated and ${tokenNote(s)}`
      return new HubError('unauthorized', `[prefpipe] ${where} ${why}. ${loginHint(s)}`, { status: 401, cause: err, token })
    }
    if (err.status === 403) {
      return new HubError(
        'forbidden',
        `[prefpipe] access to ${where} is not granted (403${server}); ${tokenNote(s)}. If the dataset is gated, open ${s.endpoint}/datasets/${call.repo} ` +
          `while logged in as the token's owner and accept its conditions (approval may take time); a fine-grained token also needs read access to this repo`,
        { status: 403, cause: err, token },
      )
    }
    if (err.status === 404) {
      if (err.errorCode === 'RevisionNotFound' || /rev/i.test(err.serverMessage ?? '')) {
        return new HubError('revision-not-found', `[prefpipe] revision "${target.revision}" does not exist in ${where}${await refsForMessage(call)}`, { status: 404, cause: err, token })
      }
      if (err.errorCode === 'RepoNotFound' || /repo/i.test(err.serverMessage ?? '')) {
        const access = s.token ? `, or it is private and ${tokenNote(s)} but has no access to it` : ''
        return new HubError('repo-not-found', `[prefpipe] the dataset ${where} does not exist (404${server})${access}; check the name (owner/name)`, { status: 404, cause: err, token })
      }
      if (err.errorCode === 'EntryNotFound' && target.file && err.repoCommit) {
        return await fileNotFound(call, target.revision, err.repoCommit, [target.file])
      }
      if (err.errorCode === 'EntryNotFound' && target.file) {
        const paths = await filesForMessage(call, target.revision)
        return new HubError('file-not-found', `[prefpipe] ${target.file} is not in ${call.repo} at revision "${target.revision}". It has: ${listing(paths)}`, { status: 404, cause: err, token })
      }
    }
    return new HubError('http', `[prefpipe] ${where}: the Hub answered ${err.status}${server} for ${stripQuery(err.url)}`, { status: err.status, cause: err, token })
  }
  if (isNetworkError(err)) {
    return new HubError(
      'network',
      `[prefpipe] ${where}: the Hub cannot be reached (${describeError(err)}) after ${call.retry.retries} retries. Check the connection, ` +
        `or set HF_ENDPOINT to a reachable mirror; with HF_HUB_OFFLINE=1 the files already in the cache (${call.cache.root}) are used`,
      { cause: err, token },
    )
  }
  return err
}
