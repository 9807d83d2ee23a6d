import { randomBytes } from 'node:crypto'
import { copyFile, lstat, mkdir, readdir, readFile, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { basename, dirname, join, relative, sep } from 'node:path'

/**
 * huggingface_hub's cache layout, which prefpipe reads and writes as is so that Python and prefpipe share
 * downloads both ways:
 *
 * ```
 * <cacheDir>/CACHEDIR.TAG
 * <cacheDir>/datasets--llamafactory--RLHF-V/
 *   refs/main                                  the commit sha `main` pointed to (no newline)
 *   blobs/<sha256>                             LFS files are named by their sha256; other files by their git oid
 *   blobs/<sha256>.incomplete                  a partial download: always a prefix of the blob
 *   snapshots/<commit>/rlhf-v.parquet -> ../../blobs/<sha256>    relative symlinks
 * <cacheDir>/.locks/datasets--llamafactory--RLHF-V/<sha256>.prefpipe.lock
 * ```
 */
export const COMMIT_RE = /^[0-9a-f]{40}$/

/** Where one repo lives in the cache. */
export interface RepoCache {
  cacheDir: string
  /** `datasets--owner--name` */
  folder: string
  /** `<cacheDir>/datasets--owner--name` */
  root: string
}

/** `datasets--owner--name`, huggingface_hub's `repo_folder_name`. */
export function repoFolderName(repo: string): string {
  return ['datasets', ...repo.split('/')].join('--')
}

/** The cache paths of a dataset repo. */
export function repoCache(cacheDir: string, repo: string): RepoCache {
  const folder = repoFolderName(repo)
  return { cacheDir, folder, root: join(cacheDir, folder) }
}

export const blobPath = (rc: RepoCache, etag: string) => join(rc.root, 'blobs', etag)
/** The resumable partial of a blob (the name huggingface_hub < 1.x resumes too, so it must stay a strict prefix). */
export const incompletePath = (rc: RepoCache, etag: string) => `${blobPath(rc, etag)}.incomplete`
/** Our lock: not Python's `<etag>.lock`, which Python's filelock opens, truncates and flocks. */
export const lockPath = (rc: RepoCache, etag: string) => join(rc.cacheDir, '.locks', rc.folder, `${etag}.prefpipe.lock`)

/** Check a repo file path is safe to join under a snapshot (no `..`, not absolute), as huggingface_hub does. */
export function checkRepoPath(file: string): void {
  const parts = file.split('/')
  if (!file || file.startsWith('/') || file.includes('\\') || file.includes('\0') || parts.some((p) => p === '..' || p === '.' || p === '')) {
    throw new Error(`[prefpipe] "${file}" is not a valid file path in a repo (give it relative to the repo root, with "/" separators)`)
  }
}

/** `snapshots/<commit>/<file>`: the path a user (and Python's `hf_hub_download`) gets. */
export function pointerPath(rc: RepoCache, commit: string, file: string): string {
  checkRepoPath(file)
  return join(rc.root, 'snapshots', commit, ...file.split('/'))
}

/** The commit a branch or tag pointed to when it was last resolved online, from `refs/<revision>`. */
export async function readRef(rc: RepoCache, revision: string): Promise<string | undefined> {
  if (revision.split('/').some((p) => p === '..' || p === '.' || p === '')) return undefined
  try {
    const sha = (await readFile(join(rc.root, 'refs', ...revision.split('/')), 'utf8')).trim()
    return COMMIT_RE.test(sha) ? sha : undefined
  } catch {
    return undefined
  }
}

/**
 * Record `refs/<revision>` = commit (atomically: temp file + rename, so a concurrent reader never sees half a
 * sha), only when it changed, and never for a revision that is itself a commit sha (as huggingface_hub).
 * `refs/convert/parquet` becomes the nested file `refs/refs/convert/parquet`, as in Python.
 */
export async function writeRef(rc: RepoCache, revision: string, commit: string): Promise<void> {
  if (revision === commit) return
  if (revision.split('/').some((p) => p === '..' || p === '.' || p === '')) return
  if ((await readRef(rc, revision)) === commit) return
  const path = join(rc.root, 'refs', ...revision.split('/'))
  await mkdir(dirname(path), { recursive: true })
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`
  await writeFile(tmp, commit)
  await rename(tmp, path)
}

/** The resolved cache entry of a file: its snapshot path, and the blob it points to when that is known. */
export interface CachedFile {
  path: string
  commit: string
  size: number
  /** The blob's name: the sha256 for LFS files, the git oid otherwise. */
  blob?: string
}

/** Look a pointer up: it exists and resolves to a regular file (a dangling symlink is not a hit). */
export async function statPointer(path: string): Promise<{ size: number; blob?: string } | undefined> {
  try {
    const st = await stat(path)
    if (!st.isFile()) return undefined
    let blob: string | undefined
    try {
      const target = await readlink(path)
      if (basename(dirname(target)) === 'blobs') blob = basename(target)
    } catch {
      // a copied file (no symlinks on this file system): no blob name
    }
    return blob === undefined ? { size: st.size } : { size: st.size, blob }
  } catch {
    return undefined
  }
}

/**
 * Find a file in the cache with no network: a commit sha is used as is, a branch or tag through
 * `refs/<revision>`. This is huggingface_hub's offline lookup.
 */
export async function findCached(rc: RepoCache, revision: string, file: string): Promise<CachedFile | undefined> {
  const commit = COMMIT_RE.test(revision) ? revision : await readRef(rc, revision)
  if (!commit) return undefined
  const path = pointerPath(rc, commit, file)
  const hit = await statPointer(path)
  return hit && { path, commit, ...hit }
}

/** Every file of a cached snapshot, as repo paths (`data/train-00000-of-00001.parquet`), sorted. */
export async function listSnapshot(rc: RepoCache, commit: string): Promise<string[]> {
  const root = join(rc.root, 'snapshots', commit)
  const out: string[] = []
  const walk = async (dir: string): Promise<void> => {
    let entries
    try {
      entries = await readdir(dir, { withFileTypes: true })
    } catch {
      return
    }
    for (const e of entries) {
      const p = join(dir, e.name)
      if (e.isDirectory()) await walk(p)
      else if (e.isFile() || e.isSymbolicLink()) out.push(relative(root, p).split(sep).join('/'))
    }
  }
  await walk(root)
  return out.sort()
}

/**
 * Point `snapshots/<commit>/<file>` at `blobs/<etag>` with a relative symlink (as huggingface_hub), replacing
 * whatever was there. Where symlinks are not allowed (Windows without developer mode), copy the blob instead,
 * which is also what Python does.
 */
export async function linkPointer(rc: RepoCache, etag: string, commit: string, file: string): Promise<string> {
  const dst = pointerPath(rc, commit, file)
  const src = blobPath(rc, etag)
  await mkdir(dirname(dst), { recursive: true })
  const target = relative(dirname(dst), src)
  try {
    if ((await lstat(dst)).isSymbolicLink() && (await readlink(dst)) === target) return dst
    await rm(dst, { force: true })
  } catch {
    // nothing there yet
  }
  try {
    await symlink(target, dst)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST') {
      // another process linked it between our rm and symlink: fine if it points at the same blob
      if ((await readlink(dst).catch(() => '')) === target) return dst
      throw err
    }
    if (code !== 'EPERM' && code !== 'ENOSYS' && code !== 'ENOTSUP') throw err
    await copyFile(src, dst)
  }
  return dst
}

const CACHEDIR_TAG =
  'Signature: 8a477f597d28d172789f06886806bc55\n' +
  '# This file is a cache directory tag created by huggingface_hub.\n' +
  '# For information about cache directory tags, see:\n' +
  '#\thttps://bford.info/cachedir/\n'

/** Tag the cache so backup tools skip it (what huggingface_hub ≥ 1.x writes, byte for byte). Best effort. */
export async function writeCachedirTag(cacheDir: string): Promise<void> {
  const path = join(cacheDir, 'CACHEDIR.TAG')
  try {
    await writeFile(path, CACHEDIR_TAG, { flag: 'wx' })
  } catch {
    // exists already, or the cache is read-only
  }
}
