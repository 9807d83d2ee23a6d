import type { PickDataFilesOptions } from './data-files.js'
import { hubCall, resolveFiles, type HubOptions, type RemoteFile } from './metadata.js'

/** Options of {@link resolveDataFiles}. */
export interface ResolveDataFilesOptions extends HubOptions, Pick<PickDataFilesOptions, 'split' | 'config'> {
  /** `owner/name` of a dataset repo. */
  repo: string
  /** Branch, tag, `refs/convert/parquet` or commit sha (default `main`). */
  revision?: string
  /** The files to read. Default: the repo's parquet data files (see {@link pickDataFiles}). */
  file?: string | string[]
}

/** One data file, as recorded in a manifest. */
export interface HubDataFile {
  /** Path in the repo. */
  path: string
  size: number
  /** sha256 of the bytes: the LFS oid. `null` for a file not in LFS until it is downloaded (the Hub gives only its git oid). */
  sha256: string | null
  /** The git blob oid of a file not in LFS (`null` for LFS files). */
  gitOid: string | null
}

/** What a revision of a repo resolves to. */
export interface ResolvedDataFiles {
  repo: string
  /** The revision asked for. */
  revision: string
  /** The commit sha it points to. */
  commit: string
  files: HubDataFile[]
  /** Answered from the cache (offline, or the Hub unreachable). */
  fromCache: boolean
}

export function toDataFile(f: RemoteFile): HubDataFile {
  return { path: f.path, size: f.size, sha256: f.sha256 ?? null, gitOid: f.sha256 ? null : (f.gitOid ?? null) }
}

/**
 * Resolve a revision to its commit and the data files to read, with their sizes and sha256, without
 * downloading anything (two requests: the revision, the tree or paths-info). With no `file`, the parquet data
 * files are picked from the listing (RLHF-V: `rlhf-v.parquet`; sharded repos: every `train-0000N-of-0000M`
 * shard in order; `refs/convert/parquet`: the `default` config's files). Offline, or when the Hub cannot be
 * reached, the cache answers.
 *
 * @example
 * const { commit, files } = await resolveDataFiles({ repo: 'llamafactory/RLHF-V' })
 * // files: [{ path: 'rlhf-v.parquet', size: 365_000_000, sha256: '…', gitOid: null }]
 */
export async function resolveDataFiles(o: ResolveDataFilesOptions): Promise<ResolvedDataFiles> {
  const call = hubCall(o.repo, o)
  const revision = o.revision ?? 'main'
  const files = o.file === undefined ? undefined : Array.isArray(o.file) ? o.file : [o.file]
  const pick = { ...(o.split !== undefined ? { split: o.split } : {}), ...(o.config !== undefined ? { config: o.config } : {}) }
  const r = await resolveFiles(call, revision, files, pick)
  return { repo: call.repo, revision, commit: r.commit, files: r.files.map(toDataFile), fromCache: r.fromCache }
}
