import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, rename, stat } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { blobPath, checkRepoPath, COMMIT_RE, findCached, incompletePath, linkPointer, lockPath, pointerPath, statPointer, writeCachedirTag, writeRef } from './cache.js'
import { acquireLock } from './lock.js'
import { explain, headFiles, hubCall, resolveFiles, resolveUrl, type HubCall, type HubOptions, type RemoteFile, type Resolution } from './metadata.js'
import { toDataFile, type ResolveDataFilesOptions, type ResolvedDataFiles } from './resolve.js'
import { transferBlob } from './transfer.js'

/** A progress update of one file's download. `done` counts bytes on disk, a resumed prefix included. */
export interface DownloadProgress {
  /** The file's path in the repo. */
  file: string
  done: number
  total: number
}

/** Options of {@link downloadDatasetFile}. */
export interface DownloadFileOptions extends HubOptions {
  /** `owner/name` of a dataset repo. */
  repo: string
  /** The file's path in the repo (`rlhf-v.parquet`, `data/train-00000-of-00004.parquet`). */
  file: string
  /** Branch, tag, `refs/convert/parquet` or commit sha (default `main`). */
  revision?: string
  onProgress?: (p: DownloadProgress) => void
  /** Least time between two progress calls, in ms (default 100). The first and the last always come. */
  progressIntervalMs?: number
}

/** A file in the cache, ready to read. */
export interface DownloadedFile {
  repo: string
  /** The file's path in the repo. */
  file: string
  /** The revision asked for. */
  revision: string
  /** The commit sha the revision resolved to (the snapshot folder's name). */
  commit: string
  /** `<cache>/datasets--owner--name/snapshots/<commit>/<file>`: a symlink to the blob, as huggingface_hub makes. */
  path: string
  size: number
  sha256: string
  /** Nothing was downloaded by this call (the cache had it, or another process fetched it while we waited). */
  fromCache: boolean
}

/**
 * Download one file of a dataset repo into the Hugging Face cache, the way `huggingface-cli download` does,
 * and better: the Python cache layout (a file fetched here is found by Python's `hf_hub_download` offline,
 * and one fetched by Python is used here with no download), resume of a partial download across runs with
 * `Range`, size and sha256 verification against the LFS oid (a mismatch re-downloads), retries with backoff
 * and `Retry-After` on network errors and 408/429/5xx, a lock so two processes never write the same blob,
 * `HF_ENDPOINT` mirrors, `HF_HUB_OFFLINE`, and the token from `HF_TOKEN` / the token file. The body streams
 * to disk: memory stays flat whatever the file's size.
 *
 * Online, the metadata is one `HEAD` on the file's resolve URL, as huggingface_hub's `hf_hub_download` makes:
 * its `X-Repo-Commit`, `X-Linked-Etag`/`ETag` and `X-Linked-Size`/`Content-Length` say which commit, blob and
 * size, and the body GET goes straight to the CDN URL of its redirect (`Location`, without the token). A file
 * already cached for that commit needs nothing more.
 *
 * With a commit sha as `revision` and the file cached, or offline, no request is made. When the Hub cannot be
 * reached (not on 401/403/404), a cached copy is used with a warning. Failures are {@link HubError}s whose
 * message says what to do.
 *
 * @example
 * const f = await downloadDatasetFile({
 *   repo: 'llamafactory/RLHF-V',
 *   file: 'rlhf-v.parquet',
 *   onProgress: ({ done, total }) => process.stderr.write(`\r${Math.round((100 * done) / total)} %`),
 * })
 * console.log(f.path, f.commit, f.sha256, f.fromCache)
 */
export async function downloadDatasetFile(o: DownloadFileOptions): Promise<DownloadedFile> {
  const call = hubCall(o.repo, o)
  const revision = o.revision ?? 'main'
  checkRepoPath(o.file)
  if (!call.settings.offline && COMMIT_RE.test(revision)) {
    // huggingface_hub's shortcut: a commit's files never change, so a cached one needs no request.
    const hit = await findCached(call.cache, revision, o.file)
    if (hit) {
      const remote: RemoteFile = hit.blob && /^[0-9a-f]{64}$/.test(hit.blob) ? { path: o.file, size: hit.size, sha256: hit.blob, etag: hit.blob } : { path: o.file, size: hit.size, etag: hit.blob ?? '' }
      return fetchFile(call, revision, { commit: revision, files: [remote], fromCache: true }, remote, o)
    }
  }
  // huggingface_hub's way: one HEAD on the resolve URL gives the commit, the blob name, the size and the CDN URL
  const resolution = await headFiles(call, revision, [o.file])
  return fetchFile(call, revision, resolution, resolution.files[0]!, o)
}

/**
 * Bring one resolved file into the cache (or find it there) and describe it. Shared by
 * {@link downloadDatasetFile} and the hub source, which resolves all its files first.
 */
export async function fetchFile(
  call: HubCall,
  revision: string,
  resolution: Resolution,
  remote: RemoteFile,
  o: Pick<DownloadFileOptions, 'onProgress' | 'progressIntervalMs'> = {},
): Promise<DownloadedFile> {
  const { commit } = resolution
  const rc = call.cache
  const pointer = pointerPath(rc, commit, remote.path)
  const progress = reporter(remote.path, remote.size, o.onProgress, o.progressIntervalMs ?? 100)
  const done = async (fromCache: boolean, sha256?: string): Promise<DownloadedFile> => {
    progress(remote.size, true)
    return {
      repo: call.repo,
      file: remote.path,
      revision,
      commit,
      path: pointer,
      size: remote.size,
      sha256: sha256 ?? remote.sha256 ?? (await sha256File(pointer)),
      fromCache,
    }
  }
  if (resolution.fromCache) return done(true)

  const hit = await statPointer(pointer)
  if (hit && hit.size === remote.size) {
    // Already there; the ref update is best effort (the cache may be mounted read-only), as in Python.
    await writeRef(rc, revision, commit).catch(() => {})
    return done(true)
  }
  await mkdir(join(rc.root, 'blobs'), { recursive: true })
  await writeCachedirTag(rc.cacheDir)
  await writeRef(rc, revision, commit)
  const blob = blobPath(rc, remote.etag)
  if ((await sizeOf(blob)) === remote.size) {
    await linkPointer(rc, remote.etag, commit, remote.path)
    return done(true)
  }

  const partial = incompletePath(rc, remote.etag)
  let told = false
  const lock = await acquireLock(lockPath(rc, remote.etag), {
    ...(call.signal ? { signal: call.signal } : {}),
    onWait: async (holder) => {
      if (!told) {
        const who = holder ? `process ${holder.pid}${holder.host === hostname() ? '' : ` on ${holder.host}`}` : 'another process'
        call.log?.warn(`${remote.path}: ${who} is downloading it into the same cache; waiting for it to finish`)
        told = true
      }
      progress((await sizeOf(partial)) ?? 0)
    },
  })
  try {
    // Whoever held the lock may have finished the blob.
    if ((await sizeOf(blob)) === remote.size) {
      await linkPointer(rc, remote.etag, commit, remote.path)
      return await done(true)
    }
    const spec = {
      url: resolveUrl(call, commit, remote.path),
      ...(remote.location ? { directUrl: remote.location } : {}),
      size: remote.size,
      label: remote.path,
      ...(remote.sha256 ? { sha256: remote.sha256 } : {}),
      ...(remote.gitOid ? { gitOid: remote.gitOid } : {}),
    }
    const result = await transferBlob(spec, {
      settings: call.settings,
      retry: call.retry,
      partial,
      onBytes: (n) => progress(n),
      ...(call.signal ? { signal: call.signal } : {}),
      ...(call.onRequest ? { onRequest: call.onRequest } : {}),
      ...(call.log ? { log: call.log } : {}),
    }).catch(async (err: unknown) => {
      // e.g. a token revoked between the metadata and the body: the same actionable errors as for metadata
      throw await explain(err, call, { revision, file: remote.path })
    })
    await rename(partial, blob)
    await linkPointer(rc, remote.etag, commit, remote.path)
    return await done(false, result.sha256)
  } finally {
    await lock.release()
  }
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size
  } catch {
    return undefined
  }
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) hash.update(chunk)
  return hash.digest('hex')
}

/** Rate-limit progress calls: at most one per `intervalMs`, but the first and the completion always pass. */
function reporter(file: string, total: number, cb: ((p: DownloadProgress) => void) | undefined, intervalMs: number): (done: number, force?: boolean) => void {
  let last = -Infinity
  let lastDone = -1
  return (done, force = false) => {
    if (!cb || done === lastDone) return
    const now = Date.now()
    if (!force && done !== total && now - last < intervalMs) return
    last = now
    lastDone = done
    cb({ file, done, total })
  }
}

/** Options of {@link downloadDataFiles}. */
export interface DownloadDataFilesOptions extends ResolveDataFilesOptions {
  onProgress?: (p: DownloadProgress & { index: number; files: number }) => void
  progressIntervalMs?: number
}

/**
 * Resolve a revision and bring its data files (or the named `file`s) into the cache, one after the other:
 * {@link resolveDataFiles} then {@link downloadDatasetFile} for each, sharing one resolution (one commit).
 *
 * @example
 * const { resolved, files } = await downloadDataFiles({ repo: 'llamafactory/RLHF-V' })
 * for (const f of files) console.log(f.path, f.sha256)
 */
export async function downloadDataFiles(o: DownloadDataFilesOptions): Promise<{ resolved: ResolvedDataFiles; files: DownloadedFile[] }> {
  const call = hubCall(o.repo, o)
  const revision = o.revision ?? 'main'
  const names = o.file === undefined ? undefined : Array.isArray(o.file) ? o.file : [o.file]
  const pick = { ...(o.split !== undefined ? { split: o.split } : {}), ...(o.config !== undefined ? { config: o.config } : {}) }
  // named files: a HEAD each, as huggingface_hub; otherwise the listing picks them
  const r = names ? await headFiles(call, revision, names) : await resolveFiles(call, revision, names, pick)
  const files: DownloadedFile[] = []
  for (const [index, f] of r.files.entries()) {
    const onProgress = o.onProgress
    files.push(
      await fetchFile(call, revision, r, f, {
        ...(onProgress ? { onProgress: (p: DownloadProgress) => onProgress({ ...p, index, files: r.files.length }) } : {}),
        ...(o.progressIntervalMs !== undefined ? { progressIntervalMs: o.progressIntervalMs } : {}),
      }),
    )
  }
  return { resolved: { repo: call.repo, revision, commit: r.commit, files: r.files.map(toDataFile), fromCache: r.fromCache }, files }
}
