import { z } from 'zod'
import { checkOptions } from '../../pipeline/options.js'
import type { SharegptMapping } from '../../formats/sharegpt.js'
import { named } from '../../pipeline/stage.js'
import type { Source, StageContext } from '../../pipeline/types.js'
import type { PreferenceSample } from '../../record.js'
import { parquetInfo, parquetSource, type ParquetSourceOptions } from '../parquet.js'
import type { PickDataFilesOptions } from './data-files.js'
import { fetchFile, type DownloadedFile, type DownloadProgress } from './download.js'
import { hubCall, normalizeRepo, resolveFiles, type HubOptions, type Resolution } from './metadata.js'
import { toDataFile, type ResolvedDataFiles } from './resolve.js'

/** Byte progress of the hub source's downloads: one file's, and all files' together. */
export interface HubDownloadProgress extends DownloadProgress {
  /** 0-based index of the file among `files`. */
  index: number
  files: number
  /** Bytes of every file so far (files before this one count whole). */
  allDone: number
  allTotal: number
}

// The keys a user types; callbacks, the signal and the parquet pass-through are checked where they are used.
const hubOptionsSchema = z.looseObject({
  repo: z.string().regex(/^[\w.-]+\/[\w.-]+$/, 'must be "owner/name" of a dataset repo, e.g. llamafactory/RLHF-V'),
  revision: z.string().min(1).optional(),
  file: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
  split: z.string().min(1).optional(),
  config: z.string().min(1).optional(),
  token: z.string().min(1).optional(),
  endpoint: z.url().optional(),
  cacheDir: z.string().min(1).optional(),
  offline: z.boolean().optional(),
})

/** Options of {@link hubParquet}. `columns` and `tags` are spelled as in LLaMA-Factory's `dataset_info.json`. */
export interface HubParquetOptions extends HubOptions, SharegptMapping, Pick<PickDataFilesOptions, 'split' | 'config'> {
  /** `owner/name` of a dataset repo (`llamafactory/RLHF-V`). */
  repo: string
  /** Branch, tag, `refs/convert/parquet` or commit sha (default `main`). */
  revision?: string
  /** The parquet file(s) to read, in order. Default: the repo's parquet data files (see {@link pickDataFiles}). */
  file?: string | string[]
  /** Byte progress of the downloads (also sent as `ctx.progress` with `done === bytes`). */
  onDownloadProgress?: (p: HubDownloadProgress) => void
  /** Other options of {@link parquetSource}, passed to it for every file (window sizes, decompressors, ...). */
  parquet?: Omit<ParquetSourceOptions, 'path' | 'name' | 'columns' | 'tags' | 'open'>
}

/** What the hub source read, for the manifest: every value is JSON. */
export interface HubInputs {
  source: 'hub'
  repo: string
  /** The revision asked for (`main`). */
  revision: string
  /** The commit sha it resolved to: the exact data read. */
  commit: string
  files: { path: string; size: number; sha256: string }[]
}

/** A source that also tells what it read. */
export interface HubParquetSource extends Source<PreferenceSample> {
  /**
   * Resolve the revision and the files (metadata only, memoized; the run reuses it, so the commit is the same).
   * Call it before building the sink to put the inputs in its manifest. A file's `sha256` is `null` only for a
   * file not in LFS (parquet files on the Hub are in LFS).
   */
  resolve(signal?: AbortSignal): Promise<ResolvedDataFiles>
  /** After the downloads (before the first row is yielded): the repo, revision, commit and every file's size and sha256. */
  inputs(): HubInputs | undefined
}

/**
 * Read a sharegpt ranking dataset (RLHF-V's shape) from the Hugging Face Hub: resolve the revision, download
 * the parquet files into the Hugging Face cache (shared with Python; resumed, verified, retried, locked; see
 * {@link downloadDatasetFile}), reporting byte progress, then read each file in order with
 * {@link parquetSource}: ids are `<file>#<row>` (`rlhf-v.parquet#12`), shards take whole row groups of every
 * file, rows without the ranking shape are rejected, not fatal.
 *
 * Progress: while downloading, `ctx.progress({ done: bytes, total: totalBytes, bytes, totalBytes })` over all
 * files (and `onDownloadProgress` with per-file detail); while reading, the rows of all files (the totals are
 * read from the footers first when there are several files). Counters: `filesDownloaded`, `filesFromCache`,
 * `bytesDownloaded`, then the parquet source's own.
 *
 * @example
 * const source = hubParquet({ repo: 'llamafactory/RLHF-V' })
 * const resolved = await source.resolve()
 * const { result } = await pipeline(
 *   source,
 *   validateRanking(),
 *   llamaFactory({ out: 'data/rlhf_v', name: 'rlhf_v', inputs: { repo: resolved.repo, commit: resolved.commit, files: resolved.files } }),
 * )
 * console.log(source.inputs())
 */
export function hubParquet(o: HubParquetOptions): HubParquetSource {
  checkOptions('hubParquet()', hubOptionsSchema, o)
  const revision = o.revision ?? 'main'
  const files = o.file === undefined ? undefined : Array.isArray(o.file) ? o.file : [o.file]
  const pick = { ...(o.split !== undefined ? { split: o.split } : {}), ...(o.config !== undefined ? { config: o.config } : {}) }
  let resolving: Promise<Resolution> | undefined
  let recorded: HubInputs | undefined

  const resolution = (signal: AbortSignal | undefined, log: HubOptions['log']): Promise<Resolution> => {
    resolving ??= resolveFiles(hubCall(o.repo, { ...o, ...opt(signal, log) }), revision, files, pick).catch((err: unknown) => {
      resolving = undefined // a failed or aborted resolution may be tried again
      throw err
    })
    return resolving
  }

  const run = named('hub', async function* (ctx: StageContext): AsyncGenerator<PreferenceSample> {
    const signal = o.signal ? AbortSignal.any([o.signal, ctx.signal]) : ctx.signal
    const log = o.log ?? ctx.log
    const r = await resolution(signal, log)
    const call = hubCall(o.repo, { ...o, ...opt(signal, log) })
    const allTotal = r.files.reduce((n, f) => n + f.size, 0)
    let before = 0
    ctx.progress({ done: 0, total: allTotal, bytes: 0, totalBytes: allTotal })
    const got: DownloadedFile[] = []
    for (const [index, f] of r.files.entries()) {
      const d = await fetchFile(call, revision, r, f, {
        onProgress: (p) => {
          const allDone = before + p.done
          ctx.progress({ done: allDone, total: allTotal, bytes: allDone, totalBytes: allTotal })
          o.onDownloadProgress?.({ ...p, index, files: r.files.length, allDone, allTotal })
        },
      })
      before += f.size
      got.push(d)
      ctx.stats.count(d.fromCache ? 'filesFromCache' : 'filesDownloaded')
      if (!d.fromCache) ctx.stats.count('bytesDownloaded', d.size)
    }
    recorded = { source: 'hub', repo: call.repo, revision, commit: r.commit, files: got.map((d) => ({ path: d.file, size: d.size, sha256: d.sha256 })) }

    if (got.length === 1) {
      yield* readFile(got[0]!, ctx)
      return
    }
    // Several files: rows progress over all of them, totals from the footers (this shard's row groups).
    const rowsOf = await Promise.all(
      got.map(async (d) => (await parquetInfo(d.path)).rowGroups.filter((g) => g.index % ctx.shard.count === ctx.shard.index).reduce((n, g) => n + g.numRows, 0)),
    )
    const total = rowsOf.reduce((a, b) => a + b, 0)
    let rowsBefore = 0
    let bytesBefore = 0
    for (const [i, d] of got.entries()) {
      let bytes = 0
      const sub: StageContext = {
        ...ctx,
        progress: (u) => {
          bytes = u.bytes ?? bytes
          ctx.progress({ done: rowsBefore + u.done, total, bytes: bytesBefore + bytes })
        },
      }
      yield* readFile(d, sub)
      rowsBefore += rowsOf[i]!
      bytesBefore += bytes
    }
  })

  function readFile(d: DownloadedFile, ctx: StageContext): AsyncIterable<PreferenceSample> {
    const mapping = { ...(o.columns ? { columns: o.columns } : {}), ...(o.tags ? { tags: o.tags } : {}) }
    return parquetSource({ path: d.path, name: d.file, ...mapping, ...o.parquet })(ctx)
  }

  return Object.assign(run, {
    async resolve(signal?: AbortSignal): Promise<ResolvedDataFiles> {
      const r = await resolution(signal ?? o.signal, o.log)
      return { repo: normalizeRepo(o.repo), revision, commit: r.commit, files: r.files.map(toDataFile), fromCache: r.fromCache }
    },
    inputs(): HubInputs | undefined {
      return recorded
    },
  })
}

function opt(signal: AbortSignal | undefined, log: HubOptions['log']): Pick<HubOptions, 'signal' | 'log'> {
  return { ...(signal ? { signal } : {}), ...(log ? { log } : {}) }
}
