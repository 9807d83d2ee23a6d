import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { createWriteStream, type WriteStream } from 'node:fs'
import { mkdir, open, readFile, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import pLimit from 'p-limit'
import { z } from 'zod'
import { DEFAULT_COLUMNS, DEFAULT_TAGS, sampleToSharegpt, type SharegptRankingRow } from '../formats/sharegpt.js'
import { named } from '../pipeline/stage.js'
import type { Sink, StageContext } from '../pipeline/types.js'
import type { ImageRef, PreferenceSample, Reject } from '../record.js'
import { prefpipeVersion } from '../version.js'
import { imageFileWriter } from './image-files.js'

// ---------------------------------------------------------------------------------------------------------------
// Options and results
// ---------------------------------------------------------------------------------------------------------------

/** A JSON value, as recorded in `manifest.json`. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }

/**
 * Options of {@link llamaFactory}, checked (with zod) when the sink is made.
 * @example
 * const opts: LlamaFactoryOptions = { out: 'out/rlhf_v', name: 'rlhf_v', inputs: [{ file: 'rlhf-v.parquet', sha256 }], options: { preset: 'rlhf-v' } }
 */
export interface LlamaFactoryOptions {
  /** The output folder (created if missing). It is LLaMA-Factory's `dataset_dir` and `media_dir`. */
  out: string
  /**
   * The dataset name: files are `<name>_train.jsonl` / `<name>_eval.jsonl`, entries in `dataset_info.json`
   * are `<name>_train` / `<name>_eval`. Letters, digits, `_`, `.`, `-`; starts with a letter or digit.
   */
  name: string
  /** What the data came from (e.g. `[{ file, sha256, size }]`), recorded as is in `manifest.json`. */
  inputs?: JsonValue
  /** The options of the run (preset, filters, ...), recorded as is in `manifest.json`. */
  options?: Record<string, JsonValue>
  /** How many images are read and written at once, and how many samples are in flight (default 8). */
  concurrency?: number
  /**
   * `commit` (default): `manifest.json` is renamed into place as the sink's last step. `defer`: it is written
   * but left under its temporary name, and the result's `commitManifest()` puts it in place; for a run that
   * writes more files after the sink (the YAML, the report), so the manifest still comes last.
   */
  manifest?: 'commit' | 'defer'
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/

const optionsSchema = z.strictObject({
  out: z.string().min(1, 'must not be empty'),
  name: z.string().regex(NAME_RE, 'must start with a letter or digit and hold only letters, digits, "_", "." and "-"'),
  inputs: z.json().optional(),
  options: z.record(z.string(), z.json()).optional(),
  concurrency: z.int().min(1).max(1024).optional(),
  manifest: z.enum(['commit', 'defer']).optional(),
})

/** One dataset (split) the sink wrote. */
export interface LlamaFactoryDataset {
  /** The entry name in `dataset_info.json` (what goes into the YAML's `dataset:` / `eval_dataset:`). */
  name: string
  /** The `file_name` of the entry, relative to `out`. */
  fileName: string
  /** Absolute path of the JSONL file. */
  file: string
  rows: number
  sha256: string
  size: number
}

/** Counts of a run of {@link llamaFactory}. */
export interface LlamaFactoryCounts {
  /** Samples that reached the sink. */
  samplesIn: number
  /** Rows written (train + eval). */
  kept: number
  train: number
  eval: number
  /** Every reject written to `rejects.jsonl` (earlier stages' and the sink's own). */
  rejected: number
  /** The same, by reason code (sorted by code). */
  rejectedByReason: Record<string, number>
  /** Image files this run created (0 on a re-run over a complete folder). */
  imagesWritten: number
  /** Image files that were already in place with the right size, so were not written again. */
  imagesExisting: number
  /** Distinct images the written rows reference (= files under `images/` this output uses). */
  distinctImages: number
  /** Image references in the written rows (one image used by 3 rows counts 3). */
  imageRefs: number
  /** Total size of the distinct images, in bytes. */
  imageBytes: number
  /** Total size of every file of the output (JSONL, rejects, dataset_info.json, distinct images), in bytes. */
  bytes: number
}

/** sha256 and size of a written file. */
export interface FileDigest {
  sha256: string
  size: number
}

/** The content of `<out>/manifest.json`: deterministic (no timestamps, no absolute paths of ours). */
export interface ManifestJson {
  manifestVersion: 1
  prefpipe: { version: string }
  sink: 'llamafactory'
  name: string
  inputs: JsonValue
  options: Record<string, JsonValue>
  /** Entry name -> its file (relative to the folder) and row count. */
  datasets: Record<string, { file_name: string; split: 'train' | 'eval'; rows: number }>
  /** {@link LlamaFactoryCounts} without `imagesWritten`/`imagesExisting`, which differ between a first run and a re-run. */
  counts: Omit<LlamaFactoryCounts, 'imagesWritten' | 'imagesExisting'>
  /**
   * Every file written, relative to the folder. `images` stands for the whole image store: `sha256` is the
   * digest of the sorted list of image paths (`images/ab/<sha256>.<ext>\n` each), which names every byte.
   */
  files: Record<string, FileDigest & { count?: number }>
}

/**
 * What {@link llamaFactory} resolves to: where everything is, for the YAML writer and the launch.
 * All paths are absolute.
 * @example
 * const { result } = await pipeline(source, llamaFactory({ out: 'out/rlhf_v', name: 'rlhf_v' }))
 * const yaml = { dataset_dir: result.datasetDir, media_dir: result.mediaDir, dataset: result.datasets.train.name }
 */
export interface LlamaFactoryManifest {
  /** The output folder: use it as LLaMA-Factory's `dataset_dir` and `media_dir`. */
  out: string
  name: string
  /** `dataset_dir` for the YAML (= `out`). */
  datasetDir: string
  /** `media_dir` for the YAML (= `out`; image paths in the rows are relative to it). */
  mediaDir: string
  datasets: { train: LlamaFactoryDataset; eval?: LlamaFactoryDataset }
  files: { datasetInfo: string; rejects: string; manifest: string; imagesDir: string }
  counts: LlamaFactoryCounts
  /** The content written to `manifest.json`. */
  manifest: ManifestJson
  /** With `manifest: 'defer'`: put `manifest.json` in place (once the run's other files are complete). */
  commitManifest?: () => Promise<void>
}

// ---------------------------------------------------------------------------------------------------------------
// The sink
// ---------------------------------------------------------------------------------------------------------------

/**
 * The LLaMA-Factory sink: writes a folder LLaMA-Factory loads for (multimodal) DPO as is.
 *
 * ```
 * <out>/<name>_train.jsonl        sharegpt ranking rows {conversations, chosen, rejected, images}
 * <out>/<name>_eval.jsonl         only when some sample has meta.split === 'eval'
 * <out>/images/ab/<sha256>.<ext>  one file per distinct image, named by the sha256 of its bytes
 * <out>/rejects.jsonl             every reject of the run, in order: {id, stage, reason, message, detail?}
 * <out>/dataset_info.json         entries <name>_train (and <name>_eval), merged into an existing file
 * <out>/manifest.json             version, inputs, options, counts, sha256 + size of every file
 * ```
 *
 * Rules it keeps (see `reference/llamafactory.md`):
 * - Rows: keys in a fixed order; `chosen`/`rejected` are `{from, value}` objects; `images` is always a list of
 *   strings (`[]` when none), each relative to `<out>` with forward slashes. A system prompt is a leading
 *   `system` turn. Entries have `formatting: "sharegpt"`, `ranking: true`, every column and all seven tags.
 * - Images: `bytes` are used as given; a `path` (already resolved by the source) is read from disk. The file
 *   name comes only from the hash of the bytes and the format found in them (jpg, png, webp, gif, bmp, tiff),
 *   never from a dataset's path. A format it cannot recognise rejects the row (`image_format_unknown`); a path
 *   that cannot be read (missing, a directory) rejects it too (`image_unreadable`); an image with neither
 *   (`image_missing`). A row's images are written only once the whole row is known to be good. Each distinct
 *   image is written once; a file already in place with the right size is kept (re-runs are cheap). It sets
 *   `ImageRef.sha256` and `ImageRef.format` (sharp's names: `jpeg`, `png`, `webp`, `gif`, `bmp`, `tiff`).
 * - Split: a sample with `meta.split === 'eval'` goes to `<name>_eval.jsonl`, everything else to train. With no
 *   eval rows, a `<name>_eval` entry and `<name>_eval.jsonl` left by an earlier run are removed (they would be stale).
 * - `dataset_info.json`: entries `<name>_train`/`<name>_eval` are this sink's and replace same-named ones; every
 *   other entry is kept byte for byte, and so is the text around it (see {@link mergeDatasetInfo}). A file that
 *   is not valid JSON (or not an object) fails the run before anything is written, and is left untouched.
 * - Atomic: every file is written under `.<file>.prefpipe-tmp-<pid>-<n>` in its folder and renamed into place
 *   once all of them are complete (`manifest.json` last). If the run fails or is aborted nothing is renamed,
 *   the temporary files are removed, and an earlier output stays as it was (image files already renamed are
 *   complete and content-addressed, so they are harmless). Re-running over the same input gives byte-identical files.
 * - Rejects: written in row order (the order of the rows in the source, see `RejectQueue.drain`), whatever
 *   the concurrency or how far stages read ahead: as each sample arrives, the rejects of the rows before it are
 *   taken from the run's queue. The sink's own rejects go through `ctx.reject` too (so they count in the report).
 * - Order: with `concurrency > 1` up to that many samples are in flight, but rows and rejects are written in
 *   input order, so the output does not depend on timing.
 *
 * - No row kept: in a fresh folder the output is complete and empty (`kept: 0` in the manifest); over an earlier
 *   complete output (it has `manifest.json`) nothing of it is replaced: this run's rejects go to
 *   `rejects.failed-run.jsonl` and the sink throws a {@link NoRowsKeptError} that says so.
 *
 * The folder is one output: `manifest.json` and `rejects.jsonl` describe the last run. Image files from earlier
 * runs that this output no longer uses are not deleted.
 *
 * @example
 * const { result } = await pipeline(
 *   parquetSource({ path: 'fixtures/rlhf-v-sample.parquet' }),
 *   validateRanking(),
 *   llamaFactory({ out: 'out/rlhf_v', name: 'rlhf_v', inputs: [{ file: 'rlhf-v.parquet', sha256 }] }),
 * )
 * result.datasets.train.name // 'rlhf_v_train', for the YAML's `dataset:`
 */
export function llamaFactory(options: LlamaFactoryOptions): Sink<PreferenceSample, LlamaFactoryManifest> {
  const parsed = optionsSchema.safeParse(options)
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => `${i.path.length ? i.path.map(String).join('.') : 'options'}: ${i.message}`).join('; ')
    throw new TypeError(`[prefpipe] llamaFactory(): invalid options: ${why}`)
  }
  const opts = parsed.data
  const settings: Settings = {
    out: resolve(opts.out),
    name: opts.name,
    inputs: (opts.inputs ?? null) as JsonValue,
    options: (opts.options ?? {}) as Record<string, JsonValue>,
    concurrency: opts.concurrency ?? 8,
    deferManifest: opts.manifest === 'defer',
  }
  return named('llamafactory', (input: AsyncIterable<PreferenceSample>, ctx: StageContext) => runSink(input, ctx, settings))
}

interface Settings {
  out: string
  name: string
  inputs: JsonValue
  options: Record<string, JsonValue>
  concurrency: number
  deferManifest: boolean
}

type Split = 'train' | 'eval'
type Outcome = { kind: 'row'; split: Split; line: string; imageRefs: number } | { kind: 'reject'; reject: Reject }
interface Slot {
  id: string
  /** Rejects of the rows before this one, not yet written (in row order). */
  upstream: Reject[]
  outcome: Promise<Outcome>
}
interface StoredImage {
  rel: string
  size: number
}

let runSeq = 0

async function runSink(input: AsyncIterable<PreferenceSample>, ctx: StageContext, s: Settings): Promise<LlamaFactoryManifest> {
  const { out, name } = s
  const paths = {
    train: join(out, `${name}_train.jsonl`),
    eval: join(out, `${name}_eval.jsonl`),
    rejects: join(out, 'rejects.jsonl'),
    datasetInfo: join(out, 'dataset_info.json'),
    manifest: join(out, 'manifest.json'),
    images: join(out, 'images'),
  }
  const tmpSuffix = `.prefpipe-tmp-${process.pid}-${++runSeq}`
  const tmpOf = (final: string) => join(dirname(final), `.${basename(final)}${tmpSuffix}`)
  const tmps = new Set<string>()

  // Fail before writing anything if the existing dataset_info.json cannot be merged into.
  await readDatasetInfo(paths.datasetInfo)
  await mkdir(out, { recursive: true })
  await removeStaleTemporaries(out)

  const limit = pLimit({ concurrency: s.concurrency, rejectOnClear: true })
  const images = new Map<string, Promise<StoredImage>>()
  const files = imageFileWriter()
  const writers: { train?: LineWriter; eval?: LineWriter; rejects?: LineWriter } = {}
  const window: Slot[] = []
  const counts = { samplesIn: 0, train: 0, eval: 0, imageRefs: 0, imagesWritten: 0, imagesExisting: 0 }
  const byReason: Record<string, number> = {}
  let rejected = 0
  let ok = false
  /** Set once the run has failed: image work not yet started does not start. */
  let stopped = false

  const writerFor = (which: 'train' | 'eval' | 'rejects'): LineWriter => {
    let w = writers[which]
    if (!w) {
      w = new LineWriter(tmpOf(paths[which]))
      tmps.add(w.tmp)
      writers[which] = w
    }
    return w
  }

  const writeRejects = async (list: Reject[]) => {
    for (const r of list) {
      await writerFor('rejects').write(rejectLine(r), ctx.signal)
      rejected++
      byReason[r.reason] = (byReason[r.reason] ?? 0) + 1
    }
  }

  /** Store one image (once per hash) through the writer thread; kept as is when already in place (size and sha256). */
  const store = (sha: string, ext: string, bytes: Uint8Array): Promise<StoredImage> => {
    let p = images.get(sha)
    if (!p) {
      p = limit(async () => {
        const rel = `images/${sha.slice(0, 2)}/${sha}.${ext}`
        if (stopped) throw new Error('[prefpipe] the run stopped')
        ctx.signal.throwIfAborted()
        const final = join(out, rel)
        const tmp = tmpOf(final)
        tmps.add(tmp)
        const result = await files.write(final, tmp, sha, bytes)
        tmps.delete(tmp)
        if (result === 'existing') {
          counts.imagesExisting++
        } else {
          counts.imagesWritten++
          ctx.stats.count('imagesWritten')
        }
        return { rel, size: bytes.byteLength }
      })
      p.catch(() => {})
      images.set(sha, p)
    }
    return p
  }

  /** The one durability step for the images: every file written is synced, and the folders renamed into. */
  const imagesDurable = () => files.durable([paths.images, out])

  /** Read, check and hash every image of a sample; store them only if all are good; build the row. */
  const prepare = async (sample: PreferenceSample): Promise<Outcome> => {
    const found: { ref: ImageRef; sha: string; format: ImageFormat; bytes: Uint8Array | null }[] = []
    for (const [index, ref] of sample.images.entries()) {
      let bytes: Uint8Array
      if (ref.bytes) {
        bytes = ref.bytes
      } else if (ref.sha256 !== undefined && ref.original !== undefined && (ref.path === undefined || ref.path === '')) {
        // A later occurrence of an image the images stage already emitted (`repeatedImages: 'reference'`):
        // no bytes, resolved by its sha256 to the file an earlier row stored.
        const format = ref.format !== undefined ? FORMAT_EXT[ref.format] : undefined
        if (!images.has(ref.sha256) || format === undefined) {
          return rejectOf(sample.id, 'image_missing', `images[${index}] has no bytes and refers to image ${ref.sha256.slice(0, 12)}…, which no earlier row of this run carried`, { index, sha256: ref.sha256 })
        }
        found.push({ ref, sha: ref.sha256, format, bytes: null })
        continue
      } else if (ref.path !== undefined && ref.path !== '') {
        const path = ref.path
        try {
          bytes = await limit(() => readFile(path))
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code
          if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR' || code === 'ELOOP' || code === 'ENAMETOOLONG') {
            return rejectOf(sample.id, 'image_unreadable', `images[${index}] cannot be read from its path (${code})`, { index, code })
          }
          throw err
        }
      } else {
        return rejectOf(sample.id, 'image_missing', `images[${index}] has neither bytes nor a path`, { index })
      }
      const format = detectImageFormat(bytes)
      if (!format) {
        const head = Buffer.from(bytes.subarray(0, 8)).toString('hex')
        return rejectOf(sample.id, 'image_format_unknown', `images[${index}] is not a JPEG, PNG, WebP, GIF, BMP or TIFF file (first bytes: ${head || 'none'})`, { index, head })
      }
      // The images stage (it sets `original`) hashed the bytes it wrote: trust its sha256 rather than hash again.
      const sha = ref.original !== undefined && ref.sha256 !== undefined ? ref.sha256 : createHash('sha256').update(bytes).digest('hex')
      found.push({ ref, sha, format, bytes })
    }
    const stored = await Promise.all(found.map((f) => (f.bytes === null ? images.get(f.sha)! : store(f.sha, f.format.ext, f.bytes))))
    for (const f of found) {
      f.ref.sha256 = f.sha
      f.ref.format = f.format.format
    }
    const split: Split = sample.meta?.split === 'eval' ? 'eval' : 'train'
    return { kind: 'row', split, line: rowLine(sampleToSharegpt(sample, stored.map((x) => x.rel))), imageRefs: stored.length }
  }

  /** Write one slot's rejects and row, in input order. */
  const emit = async (slot: Slot) => {
    await writeRejects(slot.upstream)
    const o = await slot.outcome
    if (o.kind === 'reject') ctx.reject(o.reject)
    // This row's own reject, if any; taking it also forgets the row's position.
    await writeRejects(ctx.rejects.drainBefore(slot.id, true))
    if (o.kind === 'row') {
      await writerFor(o.split).write(o.line, ctx.signal)
      counts[o.split]++
      counts.imageRefs += o.imageRefs
      ctx.stats.count(o.split === 'train' ? 'rowsTrain' : 'rowsEval')
    }
    ctx.progress({ done: counts.samplesIn - window.length, bytes: (writers.train?.size ?? 0) + (writers.eval?.size ?? 0) })
  }

  try {
    for await (const sample of input) {
      counts.samplesIn++
      const slot: Slot = { id: sample.id, upstream: ctx.rejects.drainBefore(sample.id), outcome: prepare(sample) }
      slot.outcome.catch(() => {})
      window.push(slot)
      if (window.length >= s.concurrency) await emit(window.shift()!)
    }
    // Rejects made as the input ended come after every row already pulled, whatever the concurrency.
    const atEnd = ctx.rejects.drain()
    while (window.length > 0) await emit(window.shift()!)
    await writeRejects(atEnd)
    await writeRejects(ctx.rejects.drain())
    writerFor('rejects')
    writerFor('train')

    // Every file complete: close them (flushed to disk), then build dataset_info.json and manifest.json.
    const train = await writers.train!.close()
    const evalDigest = writers.eval ? await writers.eval.close() : undefined
    const rejectsDigest = await writers.rejects!.close()

    // Nothing kept, over an earlier complete output: keep that output whole (a wrong input or a schema change
    // upstream must not replace a good dataset with an empty one), and put this run's rejects beside it.
    if (counts.train + counts.eval === 0 && (await stat(paths.manifest).catch(() => undefined))?.isFile()) {
      const failed = join(out, 'rejects.failed-run.jsonl')
      await rename(writers.rejects!.tmp, failed)
      tmps.delete(writers.rejects!.tmp)
      const reasons = Object.entries(sortKeys(byReason)).map(([r, n]) => `${r} ${n}`).join(', ')
      throw new NoRowsKeptError(
        `every row was rejected (${rejected} of ${rejected}${reasons ? `: ${reasons}` : ''}); nothing to train on. The earlier output in ${out} was left as it was; this run's rejects are in ${failed}`,
        failed,
      )
    }

    const storedList = await Promise.all(images.values())
    await imagesDurable()
    const imageRels = storedList.map((x) => x.rel).sort()
    const imageBytes = storedList.reduce((n, x) => n + x.size, 0)
    const imagesDigest = {
      sha256: createHash('sha256').update(imageRels.map((r) => `${r}\n`).join('')).digest('hex'),
      size: imageBytes,
      count: imageRels.length,
    }

    const trainName = `${name}_train`
    const evalName = `${name}_eval`
    const entries = new Map<string, unknown>([[trainName, datasetEntry(basename(paths.train))]])
    if (evalDigest) entries.set(evalName, datasetEntry(basename(paths.eval)))
    const existing = await readDatasetInfo(paths.datasetInfo)
    const infoText = mergeDatasetInfo(existing, entries, evalDigest ? [] : [evalName])
    const infoBytes = Buffer.from(infoText, 'utf8')
    const infoDigest = { sha256: sha256(infoBytes), size: infoBytes.byteLength }
    const infoTmp = tmpOf(paths.datasetInfo)
    tmps.add(infoTmp)
    await writeFile(infoTmp, infoBytes, { flush: true })

    const rejectedByReason = sortKeys(byReason)
    const kept = counts.train + counts.eval
    const bytes = train.size + (evalDigest?.size ?? 0) + rejectsDigest.size + infoDigest.size + imageBytes
    const version = await prefpipeVersion()
    const datasets: ManifestJson['datasets'] = { [trainName]: { file_name: basename(paths.train), split: 'train', rows: counts.train } }
    if (evalDigest) datasets[evalName] = { file_name: basename(paths.eval), split: 'eval', rows: counts.eval }
    const files: ManifestJson['files'] = { [basename(paths.train)]: train }
    if (evalDigest) files[basename(paths.eval)] = evalDigest
    files['rejects.jsonl'] = rejectsDigest
    files['dataset_info.json'] = infoDigest
    files.images = imagesDigest
    const manifest: ManifestJson = {
      manifestVersion: 1,
      prefpipe: { version },
      sink: 'llamafactory',
      name,
      inputs: s.inputs,
      options: s.options,
      datasets,
      counts: {
        samplesIn: counts.samplesIn,
        kept,
        train: counts.train,
        eval: counts.eval,
        rejected,
        rejectedByReason,
        distinctImages: imageRels.length,
        imageRefs: counts.imageRefs,
        imageBytes,
        bytes,
      },
      files,
    }
    const manifestTmp = tmpOf(paths.manifest)
    tmps.add(manifestTmp)
    await writeFile(manifestTmp, JSON.stringify(manifest, null, 2) + '\n', { flush: true })

    // Commit: nothing was renamed so far. The old manifest goes first, so a crash during the renames leaves a
    // folder without one (incomplete, and said so) rather than an old manifest over new files.
    ctx.signal.throwIfAborted()
    const commit = async (tmp: string, final: string) => {
      await rename(tmp, final)
      tmps.delete(tmp)
    }
    await unlink(paths.manifest).catch(ignoreEnoent)
    await syncDir(out)
    await commit(writers.train!.tmp, paths.train)
    if (writers.eval) await commit(writers.eval.tmp, paths.eval)
    await commit(writers.rejects!.tmp, paths.rejects)
    await commit(infoTmp, paths.datasetInfo)
    if (!evalDigest) await unlink(paths.eval).catch(ignoreEnoent)
    let commitManifest: (() => Promise<void>) | undefined
    if (s.deferManifest) {
      tmps.delete(manifestTmp)
      commitManifest = async () => {
        await syncDir(out)
        await rename(manifestTmp, paths.manifest)
        await syncDir(out)
      }
    } else {
      await syncDir(out)
      await commit(manifestTmp, paths.manifest)
      await syncDir(out)
    }
    ok = true

    const dataset = (entry: string, file: string, rows: number, d: FileDigest): LlamaFactoryDataset => ({
      name: entry,
      fileName: basename(file),
      file,
      rows,
      ...d,
    })
    return {
      out,
      name,
      datasetDir: out,
      mediaDir: out,
      datasets: {
        train: dataset(trainName, paths.train, counts.train, train),
        ...(evalDigest ? { eval: dataset(evalName, paths.eval, counts.eval, evalDigest) } : {}),
      },
      files: { datasetInfo: paths.datasetInfo, rejects: paths.rejects, manifest: paths.manifest, imagesDir: paths.images },
      counts: { ...manifest.counts, imagesWritten: counts.imagesWritten, imagesExisting: counts.imagesExisting },
      manifest,
      ...(commitManifest ? { commitManifest } : {}),
    }
  } finally {
    if (!ok) {
      // Stop queued image work, wait for what is running, then remove every temporary file.
      stopped = true
      limit.clearQueue()
    }
    await files.close()
    if (!ok) {
      await Promise.allSettled([...window.map((w) => w.outcome), ...images.values()])
      await Promise.allSettled(Object.values(writers).map((w) => w?.destroy()))
      await Promise.allSettled([...tmps].map((t) => unlink(t).catch(ignoreEnoent)))
    }
  }
}

function rejectOf(id: string, reason: string, message: string, detail: Record<string, unknown>): Outcome {
  return { kind: 'reject', reject: { id, reason, message, detail } }
}

/** One `rejects.jsonl` line, keys in a fixed order. */
function rejectLine(r: Reject): string {
  const base = { id: r.id, stage: r.stage ?? 'unknown', reason: r.reason, message: r.message }
  if (r.detail === undefined) return JSON.stringify(base)
  try {
    return JSON.stringify({ ...base, detail: r.detail })
  } catch {
    return JSON.stringify({ ...base, detail: { unserialisable: true } })
  }
}

/** One `<name>_*.jsonl` line: keys in a fixed order whatever the row object's order. */
function rowLine(r: SharegptRankingRow): string {
  const turn = (t: { from: string; value: string }) => ({ from: t.from, value: t.value })
  return JSON.stringify({
    conversations: r.conversations.map(turn),
    chosen: turn(r.chosen),
    rejected: turn(r.rejected),
    images: r.images.map(String),
  })
}

/** The `dataset_info.json` entry for one of our files: every column and all seven tags spelled out. */
function datasetEntry(fileName: string) {
  return {
    file_name: fileName,
    formatting: 'sharegpt',
    ranking: true,
    // Every column and all seven tags, spelled out: LLaMA-Factory sets the ones left out to None.
    columns: { ...DEFAULT_COLUMNS },
    tags: { ...DEFAULT_TAGS },
  }
}

function sortKeys(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex')
}

/** The file extension of each format `ImageRef.format` can name (sharp's names, as {@link detectImageFormat} gives them). */
const FORMAT_EXT: Record<string, ImageFormat> = {
  jpeg: { format: 'jpeg', ext: 'jpg' },
  png: { format: 'png', ext: 'png' },
  webp: { format: 'webp', ext: 'webp' },
  gif: { format: 'gif', ext: 'gif' },
  bmp: { format: 'bmp', ext: 'bmp' },
  tiff: { format: 'tiff', ext: 'tiff' },
}

/** fsync a file (`r+`) or a folder (`r`). */
async function fsyncPath(path: string, flags: 'r' | 'r+'): Promise<void> {
  const fh = await open(path, flags)
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/** Some platforms cannot fsync a folder (Windows: EPERM/EISDIR); the renames are then as durable as they get. */
function ignoreDirSyncError(err: NodeJS.ErrnoException): void {
  if (err.code !== 'EPERM' && err.code !== 'EISDIR' && err.code !== 'EINVAL' && err.code !== 'EBADF' && err.code !== 'EACCES') throw err
}

/**
 * A run that kept no row over an earlier complete output: the sink leaves that output as it was and writes this
 * run's rejects to `rejectsFile` (`rejects.failed-run.jsonl`) instead.
 */
export class NoRowsKeptError extends Error {
  override name = 'NoRowsKeptError'
  constructor(
    message: string,
    readonly rejectsFile: string,
  ) {
    super(`[prefpipe] ${message}`)
  }
}

/** fsync a folder, so the renames in it are on disk before what depends on them. */
async function syncDir(dir: string): Promise<void> {
  await fsyncPath(dir, 'r').catch(ignoreDirSyncError)
}

const TMP_RE = /\.prefpipe-tmp-(\d+)(?:-\d+)?$/

/**
 * Remove the temporary files a killed run left in `out` (its top level, `.prefpipe/` and `images/<xx>/`): those of
 * processes no longer running. A live run's (another process writing the same folder) are left alone.
 */
export async function removeStaleTemporaries(out: string): Promise<number> {
  const alive = (pid: number) => {
    if (pid === process.pid) return true
    try {
      process.kill(pid, 0)
      return true
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM'
    }
  }
  const dirs = [out, join(out, '.prefpipe')]
  const shards = await readdir(join(out, 'images')).catch(() => [] as string[])
  for (const d of shards) if (/^[0-9a-f]{2}$/.test(d)) dirs.push(join(out, 'images', d))
  let removed = 0
  for (const dir of dirs) {
    const names = await readdir(dir).catch(() => [] as string[])
    for (const name of names) {
      const m = TMP_RE.exec(name)
      if (!m || alive(Number(m[1]))) continue
      await unlink(join(dir, name)).catch(() => {})
      removed++
    }
  }
  return removed
}

function ignoreEnoent(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err
}

// ---------------------------------------------------------------------------------------------------------------
// Streaming JSONL writer with backpressure, hashing as it goes
// ---------------------------------------------------------------------------------------------------------------

class LineWriter {
  private readonly stream: WriteStream
  private readonly hash = createHash('sha256')
  private error: Error | undefined
  size = 0
  lines = 0

  constructor(readonly tmp: string) {
    this.stream = createWriteStream(tmp, { flush: true })
    this.stream.on('error', (err: NodeJS.ErrnoException) => {
      // A failed write (ENOSPC, EIO) carries no path: name the file being written, as the caller will show it.
      err.path ??= join(dirname(tmp), basename(tmp).replace(/^\./, '').replace(/\.prefpipe-tmp-.*$/, ''))
      this.error ??= err
    })
  }

  /** Append one line; waits for `drain` when the stream's buffer is full. */
  async write(text: string, signal: AbortSignal): Promise<void> {
    if (this.error) throw this.error
    const buf = Buffer.from(`${text}\n`, 'utf8')
    this.hash.update(buf)
    this.size += buf.byteLength
    this.lines++
    if (!this.stream.write(buf)) await once(this.stream, 'drain', { signal })
  }

  /** Finish the file (flushed to disk and closed) and return its digest. */
  async close(): Promise<FileDigest> {
    if (this.error) throw this.error
    const closed = once(this.stream, 'close')
    this.stream.end()
    await closed
    if (this.error) throw this.error
    return { sha256: this.hash.digest('hex'), size: this.size }
  }

  async destroy(): Promise<void> {
    if (this.stream.closed) return
    const closed = once(this.stream, 'close').catch(() => {})
    this.stream.destroy()
    await closed
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Image formats
// ---------------------------------------------------------------------------------------------------------------

/** An image format found from a file's first bytes: `format` as sharp names it, `ext` for the file name. */
export interface ImageFormat {
  format: 'jpeg' | 'png' | 'webp' | 'gif' | 'bmp' | 'tiff'
  ext: 'jpg' | 'png' | 'webp' | 'gif' | 'bmp' | 'tiff'
}

/**
 * Tell an image's format from its magic number (JPEG, PNG, WebP, GIF, BMP, TIFF), or `undefined`.
 * Only the signature is checked, not that the rest decodes.
 * @example
 * detectImageFormat(await readFile('a.jpg')) // { format: 'jpeg', ext: 'jpg' }
 */
export function detectImageFormat(b: Uint8Array): ImageFormat | undefined {
  const at = (i: number, ...bytes: number[]) => bytes.every((x, k) => b[i + k] === x)
  const ascii = (i: number, s: string) => at(i, ...[...s].map((c) => c.charCodeAt(0)))
  if (at(0, 0xff, 0xd8, 0xff)) return { format: 'jpeg', ext: 'jpg' }
  if (at(0, 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return { format: 'png', ext: 'png' }
  if (ascii(0, 'RIFF') && ascii(8, 'WEBP')) return { format: 'webp', ext: 'webp' }
  if (ascii(0, 'GIF87a') || ascii(0, 'GIF89a')) return { format: 'gif', ext: 'gif' }
  if (at(0, 0x49, 0x49, 0x2a, 0x00) || at(0, 0x4d, 0x4d, 0x00, 0x2a)) return { format: 'tiff', ext: 'tiff' }
  // BMP: "BM", then a DIB header size of 12, 40, 52, 56, 64, 108 or 124 at offset 14 (a bare "BM" is too weak).
  if (ascii(0, 'BM') && b.length >= 18 && [12, 40, 52, 56, 64, 108, 124].includes(b[14]! | (b[15]! << 8)) && b[16] === 0 && b[17] === 0) {
    return { format: 'bmp', ext: 'bmp' }
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------------------------
// dataset_info.json: read, and merge by splicing the text
// ---------------------------------------------------------------------------------------------------------------

/**
 * Read `dataset_info.json` as text, or `null` if there is none. Throws a clear error (and never touches the
 * file) if it is not UTF-8, not JSON, or not a JSON object.
 */
async function readDatasetInfo(path: string): Promise<string | null> {
  let buf: Buffer
  try {
    buf = await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(buf)
  } catch {
    throw new Error(`[prefpipe] ${path} is not valid UTF-8; prefpipe will not overwrite it. Fix the file (or move it away) and run again.`)
  }
  checkDatasetInfo(text, path)
  return text
}

function checkDatasetInfo(text: string, where: string): void {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    const bom = text.startsWith('\uFEFF') ? ' (it starts with a byte order mark, which LLaMA-Factory cannot read either)' : ''
    throw new Error(
      `[prefpipe] ${where} is not valid JSON${bom}: ${(err as Error).message}. prefpipe merges its entries into this file and will not overwrite it; fix it (or move it away) and run again.`,
    )
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(`[prefpipe] ${where} is valid JSON but not an object of dataset entries; prefpipe will not overwrite it. Fix it (or move it away) and run again.`)
  }
}

interface Member {
  key: string
  /** Where the text between the previous member (or `{`) and this key starts. */
  sepStart: number
  keyStart: number
  valueStart: number
  valueEnd: number
}

/**
 * Merge entries into the text of a `dataset_info.json` without re-serialising anything that is not ours.
 *
 * The approach: find the span of every top-level member (key text, value text, and the separator text
 * before it) with a small scanner over the already-validated JSON, then rebuild the text from those spans:
 * - a member whose key (after unescaping, so `"\u0072lhf_v_train"` counts as `rlhf_v_train`) is one of
 *   `entries` gets its value text replaced in place (the last occurrence, as JSON.parse and Python read it;
 *   earlier duplicates are dropped); its key text and separator are kept;
 * - members named in `remove` are dropped together with their separator;
 * - entries not present are appended after the last member, with the separator and indentation of the file;
 * - every other byte (other entries, whitespace, escapes, key order, the text after `}`) is kept as is.
 * A re-run over its own output therefore gives the same bytes. `existing === null` gives a fresh file
 * (`JSON.stringify(…, null, 2)` and a newline). `existing` must be valid JSON holding an object.
 *
 * @example
 * mergeDatasetInfo('{"other": {"file_name": "o.json"}}\n', new Map([['mine_train', { file_name: 'mine_train.jsonl' }]]))
 * // '{"other": {"file_name": "o.json"}, "mine_train": {"file_name":"mine_train.jsonl"}}\n'
 */
export function mergeDatasetInfo(existing: string | null, entries: ReadonlyMap<string, unknown>, remove: Iterable<string> = []): string {
  if (existing === null) return JSON.stringify(Object.fromEntries(entries), null, 2) + '\n'
  checkDatasetInfo(existing, 'dataset_info.json')
  const removeSet = new Set(remove)
  const text = existing
  const eol = text.includes('\r\n') ? '\r\n' : '\n'
  const { open, close, members } = scanObject(text)
  const lastIndex = new Map<string, number>()
  members.forEach((m, i) => lastIndex.set(m.key, i))
  // After a separator with a line break: pretty, indented like the key; on a single line: compact.
  const valueText = (v: unknown, sep: string) => {
    if (!sep.includes('\n')) return JSON.stringify(v)
    const indent = sep.slice(sep.lastIndexOf('\n') + 1).replace(/[^ \t]/g, '')
    return JSON.stringify(v, null, 2).split('\n').join(eol + indent)
  }

  const pieces: string[] = []
  const sepOf = (m: Member) => text.slice(m.sepStart, m.keyStart)
  const firstSep = members.length > 0 ? sepOf(members[0]!) : `${eol}  `
  const commaSep = members.length > 1 ? sepOf(members[members.length - 1]!) : firstSep.includes('\n') ? `,${firstSep}` : ', '
  for (const [i, m] of members.entries()) {
    const ours = entries.has(m.key)
    if (removeSet.has(m.key) && !ours) continue
    if (ours && lastIndex.get(m.key) !== i) continue
    // The first member written takes the file's first separator (no comma); the others keep their own.
    const sep = pieces.length === 0 ? firstSep : sepOf(m)
    const body = ours ? text.slice(m.keyStart, m.valueStart) + valueText(entries.get(m.key), sep) : text.slice(m.keyStart, m.valueEnd)
    pieces.push(sep + body)
  }
  for (const [key, value] of entries) {
    if (lastIndex.has(key)) continue
    const sep = pieces.length === 0 ? firstSep : commaSep
    pieces.push(`${sep}${JSON.stringify(key)}: ${valueText(value, sep)}`)
  }
  const tail = members.length > 0 ? text.slice(members[members.length - 1]!.valueEnd) : eol + text.slice(close)
  return text.slice(0, open) + pieces.join('') + (pieces.length === 0 && members.length > 0 ? eol + text.slice(close) : tail)
}

/** Spans of the top-level members of a JSON object text (already validated by JSON.parse). */
function scanObject(text: string): { open: number; close: number; members: Member[] } {
  let i = skipWs(text, 0)
  if (text[i] !== '{') throw new Error('[prefpipe] dataset_info.json: expected an object')
  const open = i + 1
  i = open
  const members: Member[] = []
  for (;;) {
    const sepStart = i
    i = skipWs(text, i)
    if (text[i] === '}') return { open, close: i, members }
    if (text[i] === ',') i = skipWs(text, i + 1)
    const keyStart = i
    const keyEnd = scanString(text, i)
    const key = JSON.parse(text.slice(keyStart, keyEnd)) as string
    i = skipWs(text, keyEnd) + 1 // past ':'
    const valueStart = skipWs(text, i)
    const valueEnd = scanValue(text, valueStart)
    members.push({ key, sepStart, keyStart, valueStart, valueEnd })
    i = valueEnd
  }
}

function skipWs(text: string, i: number): number {
  while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++
  return i
}

/** `i` is at a `"`; returns the index after the closing quote. */
function scanString(text: string, i: number): number {
  let j = i + 1
  while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1
  return j + 1
}

function scanValue(text: string, i: number): number {
  const c = text[i]
  if (c === '"') return scanString(text, i)
  if (c === '{' || c === '[') {
    let depth = 0
    let j = i
    for (;;) {
      const ch = text[j]
      if (ch === '"') {
        j = scanString(text, j)
        continue
      }
      if (ch === '{' || ch === '[') depth++
      else if (ch === '}' || ch === ']') {
        depth--
        if (depth === 0) return j + 1
      }
      j++
    }
  }
  let j = i
  while (j < text.length && !',}] \t\n\r'.includes(text[j]!)) j++
  return j
}
