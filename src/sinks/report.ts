import { createReadStream } from 'node:fs'
import { open, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises'
import { basename, dirname, isAbsolute, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import pLimit from 'p-limit'
import sharp from 'sharp'
import type { RunReport } from '../pipeline/types.js'
import { RANKING_REJECT_REASONS } from '../transforms/validate-ranking.js'
import { probeJpegHeader } from '../transforms/images/jpeg-probe.js'
import type { JsonValue, LlamaFactoryManifest, ManifestJson } from './llamafactory.js'
import { renderReportHtml, type GalleryReject, type GalleryRow } from './report-html.js'
import { Tally, distribution, roundHalfEven, type Distribution, type DistributionStats } from './report-stats.js'
import { formatInt } from './svg-charts.js'

export type { Distribution, DistributionStats, HistogramBucket } from './report-stats.js'

// ---------------------------------------------------------------------------------------------------------------
// Visual tokens (Qwen2-VL through LLaMA-Factory)
// ---------------------------------------------------------------------------------------------------------------

/**
 * How images are resized before Qwen2-VL counts their tokens. The defaults are LLaMA-Factory's
 * (`image_max_pixels` 768², `image_min_pixels` 32²) and the published Qwen2/2.5-VL processor's
 * (`min_pixels` 3136, `max_pixels` 12 845 056, patch 14 × merge 2 = factor 28). Pass the `image_max_pixels` of
 * your training YAML (e.g. 262144) to get the numbers that run will see; use `factor: 32` for Qwen3-VL.
 */
export interface VisualTokenOptions {
  /** Patch size × merge size: 28 for Qwen2-VL / Qwen2.5-VL, 32 for Qwen3-VL. */
  factor?: number
  /** LLaMA-Factory's `image_max_pixels` (default 589 824 = 768²): larger images are shrunk to it first. */
  imageMaxPixels?: number
  /** LLaMA-Factory's `image_min_pixels` (default 1 024 = 32²): smaller images are enlarged to it first. */
  imageMinPixels?: number
  /** The processor's `min_pixels` (default 3 136 = 56²). */
  minPixels?: number
  /** The processor's `max_pixels` (default 12 845 056). */
  maxPixels?: number
}

const VISUAL_DEFAULTS: Required<VisualTokenOptions> = {
  factor: 28,
  imageMaxPixels: 768 * 768,
  imageMinPixels: 32 * 32,
  minPixels: 3136,
  maxPixels: 12845056,
}

/**
 * The number of tokens one image takes in a Qwen2-VL prompt when trained with LLaMA-Factory:
 * `(h'/28)·(w'/28) + 2` (the `<|image_pad|>` run plus `<|vision_start|>` and `<|vision_end|>`), where `w'×h'` is the
 * size after LLaMA-Factory's `_preprocess_image` (shrink to `image_max_pixels` / grow to `image_min_pixels` by
 * `sqrt`, truncating like Python's `int()`; each side at least 28; aspect ratio at most 200:1, else 180:1) and the
 * processor's `smart_resize` (each side rounded to a multiple of 28 with Python's ties-to-even `round`, then
 * floored/ceiled into `[min_pixels, max_pixels]`). See `reference/llamafactory.md` §3.2.
 *
 * @example
 * qwen2VlVisualTokens(512, 512, { imageMaxPixels: 262144 }) // 326: 504×504 → 18·18 + 2
 * qwen2VlVisualTokens(4000, 3000) // 770: shrunk to 886×665, then 896×672 → 32·24 + 2
 */
export function qwen2VlVisualTokens(width: number, height: number, options: VisualTokenOptions = {}): number {
  const o = { ...VISUAL_DEFAULTS, ...options }
  let w = Math.max(1, Math.floor(width))
  let h = Math.max(1, Math.floor(height))
  // LLaMA-Factory MMPluginMixin._preprocess_image
  if (w * h > o.imageMaxPixels) {
    const f = Math.sqrt(o.imageMaxPixels / (w * h))
    w = Math.floor(w * f)
    h = Math.floor(h * f)
  }
  if (w * h < o.imageMinPixels) {
    const f = Math.sqrt(o.imageMinPixels / (w * h))
    w = Math.floor(w * f)
    h = Math.floor(h * f)
  }
  // Qwen2VLPlugin._preprocess_image (28 is literal there, whatever the model's factor)
  if (Math.min(w, h) < 28) {
    w = Math.max(w, 28)
    h = Math.max(h, 28)
  }
  if (w / h > 200) w = h * 180
  else if (h / w > 200) h = w * 180
  // transformers Qwen2VLImageProcessor smart_resize
  const f = o.factor
  let hBar = Math.max(f, roundHalfEven(h, f) * f)
  let wBar = Math.max(f, roundHalfEven(w, f) * f)
  if (hBar * wBar > o.maxPixels) {
    const beta = Math.sqrt((h * w) / o.maxPixels)
    hBar = Math.max(f, Math.floor(h / beta / f) * f)
    wBar = Math.max(f, Math.floor(w / beta / f) * f)
  } else if (hBar * wBar < o.minPixels) {
    const beta = Math.sqrt(o.minPixels / (h * w))
    hBar = Math.ceil((h * beta) / f) * f
    wBar = Math.ceil((w * beta) / f) * f
  }
  return (hBar / f) * (wBar / f) + 2
}

// ---------------------------------------------------------------------------------------------------------------
// Reject reasons
// ---------------------------------------------------------------------------------------------------------------

/**
 * A one-line description of every reject reason prefpipe's own stages use (sources, `validateRanking()`, the
 * LLaMA-Factory sink), shown next to the counts in `report.html`. Add your stages' codes with the
 * `reasonDescriptions` option of {@link writeReport}.
 * @example
 * REJECT_REASON_DESCRIPTIONS.image_count_mismatch // 'the number of image placeholders in the prompt differs ...'
 */
export const REJECT_REASON_DESCRIPTIONS: Readonly<Record<string, string>> = Object.freeze({
  row_shape: 'the row does not have the sharegpt ranking shape (a missing column, a turn without its role or content key, text that is not a string)',
  text_not_utf8: 'a text field (or a JSONL line) is not valid UTF-8; re-export it as UTF-8',
  response_not_object: 'chosen or rejected is a string, not a {from, value} object (LLaMA-Factory drops such rows)',
  role_unknown: 'a turn has a role tag outside the mapping',
  json_invalid: 'a JSONL line is not valid JSON',
  ...RANKING_REJECT_REASONS,
  image_format_unknown: 'the image bytes are not a JPEG, PNG, WebP, GIF, BMP or TIFF file',
  image_unreadable: 'an image could not be read from its path (missing, a directory, permission denied, ...)',
})

// ---------------------------------------------------------------------------------------------------------------
// report.json
// ---------------------------------------------------------------------------------------------------------------

/** A stage's counters in `report.json` (the run report without its timings; keys sorted). */
export interface ReportStage {
  name: string
  kind: 'source' | 'transform' | 'sink' | 'after'
  in: number
  out: number
  dropped: Record<string, number>
  counters: Record<string, number>
}

/** One reject reason in `report.json`. */
export interface ReportReason {
  reason: string
  count: number
  /** The stages that rejected rows for this reason (from `rejects.jsonl`), sorted. */
  stages: string[]
  /** From {@link REJECT_REASON_DESCRIPTIONS} or the `reasonDescriptions` option; `null` for an unknown code. */
  description: string | null
}

/** One written split. */
export interface ReportSplit {
  split: 'train' | 'eval'
  /** Entry name in `dataset_info.json`. */
  dataset: string
  /** File name, relative to the folder. */
  file: string
  /** Rows read from the file. */
  rows: number
}

/**
 * Everything in `report.json` that may differ from one run to the next over the same input: the start time, the
 * wall times, and the counters that depend on what was already on disk (`imagesWritten`, `imagesExisting`).
 * `null` when {@link writeReport} was given no run report.
 */
export interface ReportTimings {
  startedAt: string
  wallMs: number
  stages: { name: string; selfMs: number; wallMs: number; counters: Record<string, number> }[]
  imagesWritten: number | null
  imagesExisting: number | null
}

/**
 * The content of `<out>/report.json`. Everything except `timings` is a function of the folder's files, the
 * manifest and the run's counters, so it is the same on every run over the same input (keys in a fixed order).
 */
export interface ReportJson {
  reportVersion: 1
  prefpipe: { version: string }
  name: string
  /** As recorded in `manifest.json`. */
  inputs: JsonValue
  options: Record<string, JsonValue>
  summary: {
    /** Rows the source read: what it produced plus what it could not map (those are rejects too). */
    rowsIn: number
    /** Rows in the written JSONL files (train + eval). */
    kept: number
    /** Lines of `rejects.jsonl`. */
    rejected: number
    train: number
    eval: number
    /** Distinct image paths the rows reference. */
    distinctImages: number
    /** Image references in the rows (one image used by 3 rows counts 3). */
    imageRefs: number
    /** Total size of the distinct image files, in bytes. */
    imageBytes: number
    /** Qwen2-VL visual tokens summed over every image reference (see `visualTokens`). */
    visualTokens: number
  }
  splits: ReportSplit[]
  stages: ReportStage[]
  rejected: { total: number; byReason: Record<string, number>; reasons: ReportReason[] }
  /**
   * Lengths are in Unicode code points. `promptChars` counts every turn of `conversations` (a system turn
   * included, `<image>` placeholders as written); `turnsPerRow` counts the prompt turns without a system turn.
   * Image distributions are over distinct images; `visualTokensPerRow` sums a row's images; `rowsPerImage` is how
   * many rows use each distinct image (exact duplicates share one file, so this is the reuse histogram).
   */
  distributions: {
    promptChars: Distribution
    chosenChars: Distribution
    rejectedChars: Distribution
    turnsPerRow: Distribution
    imagesPerRow: Distribution
    imageWidth: Distribution
    imageHeight: Distribution
    imagePixels: Distribution
    visualTokensPerImage: Distribution
    visualTokensPerRow: Distribution
    rowsPerImage: Distribution
  }
  images: {
    distinct: number
    /** Images used by more than one row. */
    reused: number
    /** By the format sharp reads from the file (`jpeg`, `png`, ...). */
    formats: Record<string, number>
    /** The 20 most common sizes, most common first. */
    dimensions: { width: number; height: number; images: number }[]
    /** Images whose header could not be read (missing or corrupt files); the first 20 paths. */
    unreadable: number
    unreadablePaths: string[]
  }
  visualTokens: { model: 'qwen2-vl'; total: number } & Required<VisualTokenOptions>
  /** Which rows the HTML gallery shows (1-based line numbers) and which rejects. */
  gallery: { samples: { split: 'train' | 'eval'; line: number }[]; rejects: { id: string; reason: string }[] }
  /** Run-dependent values only: see {@link ReportTimings}. */
  timings: ReportTimings | null
}

/** Options of {@link writeReport}. */
/** Counters that depend on what was on disk before the run (kept in `timings`, out of the stable part). */
const VOLATILE_COUNTERS = ['imagesWritten', 'imagesExisting', 'filesDownloaded', 'filesFromCache', 'bytesDownloaded']

export interface WriteReportOptions {
  /** The output folder the LLaMA-Factory sink wrote. */
  out: string
  /** The run report `pipeline()` resolved to: stage counters and timings. Without it the stage table is empty. */
  run?: RunReport
  /** What the sink resolved to, or the content of `manifest.json`. Read from `<out>/manifest.json` when absent. */
  manifest?: LlamaFactoryManifest | ManifestJson
  /** How many rows the HTML gallery shows, picked evenly across the files (default 24). */
  samples?: number
  /** How many rejects the HTML lists at most (default 48), at most `rejectsPerReason` (default 4) per reason. */
  rejects?: number
  rejectsPerReason?: number
  visualTokens?: VisualTokenOptions
  /** Descriptions of reject codes of your own stages (merged over {@link REJECT_REASON_DESCRIPTIONS}). */
  reasonDescriptions?: Record<string, string>
  /**
   * Stage counters that depend on what was on disk before the run, moved to `timings` so the rest stays the same
   * between a first run and a re-run (default: the sink's `imagesWritten`, `imagesExisting` and the Hub source's
   * `filesDownloaded`, `filesFromCache`, `bytesDownloaded`).
   */
  volatileCounters?: string[]
}

/** What {@link writeReport} resolves to. Paths are absolute. */
export interface WriteReportResult {
  json: string
  html: string
  report: ReportJson
}

interface Row {
  conversations: { from: string; value: string }[]
  chosen: { from: string; value: string }
  rejected: { from: string; value: string }
  images: string[]
}

interface ImageInfo {
  width: number
  height: number
  format: string
  bytes: number
  tokens: number
}

let reportSeq = 0

/**
 * Write `<out>/report.json` and `<out>/report.html` for a folder the LLaMA-Factory sink wrote: stage counters,
 * rejects by reason, distributions read from the written `<name>_train.jsonl` / `<name>_eval.jsonl` (streamed)
 * and the stored images' headers, a gallery of sample rows and a list of rejected rows.
 *
 * - `report.html` is one self-contained file (inline CSS and SVG, no script, a Content-Security-Policy that allows
 *   none); images are referenced by their relative path, so open it from the folder. All data text is escaped.
 * - Determinism: `report.html` holds no timings, dates or absolute paths, so it is byte-identical between runs over
 *   the same input, like the rest of the folder. `report.json` is identical too except its `timings` key.
 * - Both files are written under temporary names and renamed into place; they are not listed in `manifest.json`
 *   (which is written before them). Writing the report again replaces both.
 * - Memory: the rows are streamed; what is kept is one count per distinct value of each distribution, the distinct
 *   image paths, 4 bytes per row and per image use, and the gallery rows.
 *
 * @example
 * const { result, report } = await prepareRlhfV({ input: 'fixtures/rlhf-v-sample.parquet', out: 'out/rlhf_v' })
 * const written = await writeReport({ out: 'out/rlhf_v', run: report, manifest: result })
 * console.log(formatSummaryTable(written.report, { html: written.html }))
 */
export async function writeReport(options: WriteReportOptions): Promise<WriteReportResult> {
  const out = resolve(options.out)
  const manifest = await manifestOf(out, options.manifest)
  const visual = { ...VISUAL_DEFAULTS, ...options.visualTokens }
  const sampleCount = Math.max(0, Math.floor(options.samples ?? 24))
  const volatile = new Set(options.volatileCounters ?? VOLATILE_COUNTERS)
  const descriptions: Record<string, string> = { ...REJECT_REASON_DESCRIPTIONS, ...options.reasonDescriptions }

  // Splits, train first.
  const splitEntries = Object.entries(manifest.datasets).sort(([, a], [, b]) => (a.split === b.split ? 0 : a.split === 'train' ? -1 : 1))
  const totalRowsHint = splitEntries.reduce((n, [, d]) => n + d.rows, 0)
  const pick = new Set<number>()
  const n = Math.min(sampleCount, totalRowsHint)
  for (let i = 0; i < n; i++) pick.add(Math.floor((i * totalRowsHint) / n))

  // Pass over the rows.
  const tallies = {
    promptChars: new Tally(),
    chosenChars: new Tally(),
    rejectedChars: new Tally(),
    turnsPerRow: new Tally(),
    imagesPerRow: new Tally(),
  }
  const imageIndex = new Map<string, number>()
  const imagePaths: string[] = []
  const rowsPerImage: number[] = []
  // Each row's image ids, flattened (4 bytes per image use), with each row's count: for the per-row visual tokens.
  const rowImageIds = new U32List()
  const rowImageCounts = new U32List()
  const galleryRows: { split: 'train' | 'eval'; line: number; row: Row }[] = []
  const splits: ReportSplit[] = []
  let globalRow = 0
  for (const [dataset, d] of splitEntries) {
    const file = join(out, d.file_name)
    let line = 0
    let rows = 0
    for await (const text of lines(file)) {
      line++
      if (text.trim() === '') continue
      let row: Row
      try {
        row = JSON.parse(text) as Row
      } catch (err) {
        throw new Error(`[prefpipe] report: ${d.file_name} line ${line} is not JSON (${(err as Error).message})`)
      }
      const convs = Array.isArray(row.conversations) ? row.conversations : []
      tallies.promptChars.add(convs.reduce((s, t) => s + chars(t?.value), 0))
      tallies.turnsPerRow.add(convs.filter((t, i) => !(i === 0 && t?.from === 'system')).length)
      tallies.chosenChars.add(chars(row.chosen?.value))
      tallies.rejectedChars.add(chars(row.rejected?.value))
      const imgs = Array.isArray(row.images) ? row.images.map(String) : []
      tallies.imagesPerRow.add(imgs.length)
      const ids: number[] = []
      for (const p of imgs) {
        let id = imageIndex.get(p)
        if (id === undefined) {
          id = imagePaths.length
          imageIndex.set(p, id)
          imagePaths.push(p)
          rowsPerImage.push(0)
        }
        if (!ids.includes(id)) rowsPerImage[id]!++
        ids.push(id)
      }
      for (const id of ids) rowImageIds.push(id)
      rowImageCounts.push(ids.length)
      rows++
      if (pick.has(globalRow)) galleryRows.push({ split: d.split, line, row })
      globalRow++
    }
    splits.push({ split: d.split, dataset, file: d.file_name, rows })
  }

  // Image headers (width, height, format) and sizes, a few at a time: plain JPEGs (what the images stage
  // writes) from their markers in JS, anything else with sharp.
  const imageHeader = async (file: string): Promise<{ width?: number; height?: number; format?: string }> => {
    const fh = await open(file, 'r')
    let head: Buffer
    try {
      const buf = Buffer.alloc(65_536)
      const { bytesRead } = await fh.read(buf, 0, buf.byteLength, 0)
      head = buf.subarray(0, bytesRead)
    } finally {
      await fh.close()
    }
    const probe = probeJpegHeader(head, { limitInputPixels: Number.MAX_SAFE_INTEGER, inputFormats: ['jpeg'] })
    if (probe) return { width: probe.width, height: probe.height, format: probe.format }
    return sharp(file).metadata()
  }
  const limit = pLimit(8)
  const infos: (ImageInfo | undefined)[] = await Promise.all(
    imagePaths.map((p) =>
      limit(async () => {
        const file = isAbsolute(p) ? p : join(out, p)
        try {
          const [meta, st] = await Promise.all([imageHeader(file), stat(file)])
          if (!meta.width || !meta.height) return undefined
          return { width: meta.width, height: meta.height, format: meta.format ?? 'unknown', bytes: st.size, tokens: qwen2VlVisualTokens(meta.width, meta.height, visual) }
        } catch {
          return undefined
        }
      }),
    ),
  )
  const imageTallies = { width: new Tally(), height: new Tally(), pixels: new Tally(), tokens: new Tally(), reuse: new Tally() }
  const formats: Record<string, number> = {}
  const dims = new Map<string, { width: number; height: number; images: number }>()
  const unreadablePaths: string[] = []
  let unreadable = 0
  let imageBytes = 0
  infos.forEach((info, i) => {
    imageTallies.reuse.add(rowsPerImage[i]!)
    if (!info) {
      unreadable++
      if (unreadablePaths.length < 20) unreadablePaths.push(imagePaths[i]!)
      return
    }
    imageTallies.width.add(info.width)
    imageTallies.height.add(info.height)
    imageTallies.pixels.add(info.width * info.height)
    imageTallies.tokens.add(info.tokens)
    formats[info.format] = (formats[info.format] ?? 0) + 1
    imageBytes += info.bytes
    const key = `${info.width}x${info.height}`
    const dim = dims.get(key) ?? { width: info.width, height: info.height, images: 0 }
    dim.images++
    dims.set(key, dim)
  })
  const tokensPerRow = new Tally()
  let visualTotal = 0
  let imageRefs = 0
  for (let r = 0, at = 0; r < rowImageCounts.length; r++) {
    const count = rowImageCounts.get(r)
    let t = 0
    for (let k = 0; k < count; k++) t += infos[rowImageIds.get(at + k)]?.tokens ?? 0
    at += count
    tokensPerRow.add(t)
    visualTotal += t
    imageRefs += count
  }

  // Rejects.
  const rejects = await readRejects(join(out, 'rejects.jsonl'), options.rejects ?? 48, options.rejectsPerReason ?? 4)
  const byReason = sortKeys(rejects.byReason)
  const reasons: ReportReason[] = Object.entries(byReason).map(([reason, count]) => ({
    reason,
    count,
    stages: [...(rejects.stages.get(reason) ?? [])].sort(),
    description: descriptions[reason] ?? null,
  }))

  // Stages and timings.
  const run = options.run
  const stages: ReportStage[] = (run?.stages ?? []).map((s) => ({
    name: s.name,
    kind: s.kind,
    in: s.in,
    out: s.out,
    dropped: sortKeys(s.dropped),
    counters: sortKeys(Object.fromEntries(Object.entries(s.counters).filter(([k]) => !volatile.has(k)))),
  }))
  const sinkCounts = options.manifest && !('manifestVersion' in options.manifest) ? options.manifest.counts : undefined
  const timings: ReportTimings | null = run
    ? {
        startedAt: run.startedAt,
        wallMs: run.wallMs,
        stages: run.stages.map((s) => ({
          name: s.name,
          selfMs: s.selfMs,
          wallMs: s.wallMs,
          counters: sortKeys(Object.fromEntries(Object.entries(s.counters).filter(([k]) => volatile.has(k)))),
        })),
        imagesWritten: sinkCounts?.imagesWritten ?? null,
        imagesExisting: sinkCounts?.imagesExisting ?? null,
      }
    : null

  const train = splits.filter((s) => s.split === 'train').reduce((a, s) => a + s.rows, 0)
  const evalRows = splits.filter((s) => s.split === 'eval').reduce((a, s) => a + s.rows, 0)
  const source = run?.stages[0]
  const rowsIn =
    source && source.kind === 'source'
      ? source.out + Object.values(source.dropped).reduce((a, b) => a + b, 0)
      : train + evalRows + rejects.total

  const report: ReportJson = {
    reportVersion: 1,
    prefpipe: { version: manifest.prefpipe.version },
    name: manifest.name,
    inputs: manifest.inputs,
    options: manifest.options,
    summary: {
      rowsIn,
      kept: train + evalRows,
      rejected: rejects.total,
      train,
      eval: evalRows,
      distinctImages: imagePaths.length,
      imageRefs,
      imageBytes,
      visualTokens: visualTotal,
    },
    splits,
    stages,
    rejected: { total: rejects.total, byReason, reasons },
    distributions: {
      promptChars: distribution(tallies.promptChars),
      chosenChars: distribution(tallies.chosenChars),
      rejectedChars: distribution(tallies.rejectedChars),
      turnsPerRow: distribution(tallies.turnsPerRow),
      imagesPerRow: distribution(tallies.imagesPerRow),
      imageWidth: distribution(imageTallies.width),
      imageHeight: distribution(imageTallies.height),
      imagePixels: distribution(imageTallies.pixels),
      visualTokensPerImage: distribution(imageTallies.tokens),
      visualTokensPerRow: distribution(tokensPerRow),
      rowsPerImage: distribution(imageTallies.reuse),
    },
    images: {
      distinct: imagePaths.length,
      reused: rowsPerImage.filter((c) => c > 1).length,
      formats: sortKeys(formats),
      dimensions: [...dims.values()]
        .sort((a, b) => b.images - a.images || a.width - b.width || a.height - b.height)
        .slice(0, 20),
      unreadable,
      unreadablePaths,
    },
    visualTokens: { model: 'qwen2-vl', ...visual, total: visualTotal },
    gallery: {
      samples: galleryRows.map((g) => ({ split: g.split, line: g.line })),
      rejects: rejects.samples.map((r) => ({ id: r.id, reason: r.reason })),
    },
    timings,
  }

  const gallery: GalleryRow[] = galleryRows.map((g) => ({
    split: g.split,
    line: g.line,
    conversations: (Array.isArray(g.row.conversations) ? g.row.conversations : []).map((t) => ({ from: String(t?.from ?? ''), value: String(t?.value ?? '') })),
    chosen: String(g.row.chosen?.value ?? ''),
    rejected: String(g.row.rejected?.value ?? ''),
    images: (Array.isArray(g.row.images) ? g.row.images.map(String) : []).map((p) => {
      const info = infos[imageIndex.get(p) ?? -1]
      return { path: p, src: safeRelative(p) ? p : null, ...(info ? { width: info.width, height: info.height, tokens: info.tokens } : {}) }
    }),
  }))
  const html = renderReportHtml(report, { rows: gallery, rejects: rejects.samples }, descriptions)
  const json = JSON.stringify(report, null, 2) + '\n'

  const paths = { json: join(out, 'report.json'), html: join(out, 'report.html') }
  const seq = ++reportSeq
  const tmpOf = (final: string) => join(dirname(final), `.${basename(final)}.prefpipe-tmp-${process.pid}-r${seq}`)
  const tmps = [tmpOf(paths.json), tmpOf(paths.html)] as const
  try {
    await writeFile(tmps[0], json, { flush: true })
    await writeFile(tmps[1], html, { flush: true })
    await rename(tmps[0], paths.json)
    await rename(tmps[1], paths.html)
  } catch (err) {
    await Promise.allSettled(tmps.map((t) => unlink(t)))
    throw err
  }
  return { ...paths, report }
}

/** A growable list of unsigned 32-bit integers. */
class U32List {
  private data = new Uint32Array(1024)
  length = 0

  push(v: number): void {
    if (this.length === this.data.length) {
      const bigger = new Uint32Array(this.data.length * 2)
      bigger.set(this.data)
      this.data = bigger
    }
    this.data[this.length++] = v
  }

  get(i: number): number {
    return this.data[i]!
  }
}

async function manifestOf(out: string, given: LlamaFactoryManifest | ManifestJson | undefined): Promise<ManifestJson> {
  if (given) return 'manifestVersion' in given ? given : given.manifest
  const file = join(out, 'manifest.json')
  try {
    return JSON.parse(await readFile(file, 'utf8')) as ManifestJson
  } catch (err) {
    throw new Error(`[prefpipe] report: cannot read ${file} (${(err as Error).message}); run the LLaMA-Factory sink into this folder first`, { cause: err })
  }
}

/** The lines of a UTF-8 text file, streamed; none if the file does not exist. */
async function* lines(file: string): AsyncGenerator<string> {
  const stream = createReadStream(file, { encoding: 'utf8' })
  const opened = await new Promise<boolean>((res, rej) => {
    stream.once('open', () => res(true))
    stream.once('error', (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? res(false) : rej(err)))
  })
  if (!opened) return
  const rl = createInterface({ input: stream, crlfDelay: Infinity })
  try {
    for await (const l of rl) yield l
  } finally {
    rl.close()
    stream.destroy()
  }
}

interface RejectsRead {
  total: number
  byReason: Record<string, number>
  stages: Map<string, Set<string>>
  samples: GalleryReject[]
}

async function readRejects(file: string, max: number, perReason: number): Promise<RejectsRead> {
  const byReason: Record<string, number> = {}
  const stages = new Map<string, Set<string>>()
  const kept = new Map<string, GalleryReject[]>()
  let total = 0
  let line = 0
  for await (const text of lines(file)) {
    line++
    if (text.trim() === '') continue
    let r: { id?: unknown; stage?: unknown; reason?: unknown; message?: unknown; detail?: unknown }
    try {
      r = JSON.parse(text) as typeof r
    } catch (err) {
      throw new Error(`[prefpipe] report: rejects.jsonl line ${line} is not JSON (${(err as Error).message})`)
    }
    total++
    const reason = String(r.reason ?? 'unknown')
    const stage = String(r.stage ?? 'unknown')
    byReason[reason] = (byReason[reason] ?? 0) + 1
    let set = stages.get(reason)
    if (!set) stages.set(reason, (set = new Set()))
    set.add(stage)
    let list = kept.get(reason)
    if (!list) kept.set(reason, (list = []))
    if (list.length < perReason) {
      list.push({
        id: String(r.id ?? ''),
        stage,
        reason,
        message: String(r.message ?? ''),
        ...(r.detail !== undefined ? { detail: JSON.stringify(r.detail) } : {}),
      })
    }
  }
  // Sorted by reason; round-robin over reasons until `max`, so every reason shows up when it fits.
  const reasons = [...kept.keys()].sort()
  const samples: GalleryReject[] = []
  for (let round = 0; samples.length < max; round++) {
    let added = false
    for (const reason of reasons) {
      const r = kept.get(reason)![round]
      if (r && samples.length < max) {
        samples.push(r)
        added = true
      }
    }
    if (!added) break
  }
  samples.sort((a, b) => (a.reason < b.reason ? -1 : a.reason > b.reason ? 1 : 0))
  return { total, byReason, stages, samples }
}

/** Length in Unicode code points (a surrogate pair counts once). */
function chars(value: unknown): number {
  if (typeof value !== 'string') return 0
  let pairs = 0
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = value.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) {
        pairs++
        i++
      }
    }
  }
  return value.length - pairs
}

/** A path the HTML may use as an `<img src>`: relative, inside the folder, no scheme, no backslash. */
function safeRelative(p: string): boolean {
  if (p === '' || isAbsolute(p) || p.includes('\\') || /^[A-Za-z][A-Za-z0-9+.-]*:/.test(p)) return false
  return !p.split('/').some((seg) => seg === '..')
}

function sortKeys<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

// ---------------------------------------------------------------------------------------------------------------
// Terminal summary
// ---------------------------------------------------------------------------------------------------------------

/** Options of {@link formatSummaryTable}. */
export interface SummaryTableOptions {
  /** The path of `report.html` for the last line (printed as given: pass a relative one for short output). */
  html?: string
  /** Add the wall time from `timings` (default true). */
  timings?: boolean
}

/**
 * The compact terminal summary of a {@link ReportJson}: counts, rejects by reason, images, then p50 / p90 / max of
 * the lengths and visual tokens, and where the HTML report is. Plain text (no colours), every line ends with `\n`.
 * @example
 * const { report, html } = await writeReport({ out, run, manifest })
 * process.stdout.write(formatSummaryTable(report, { html: relative(process.cwd(), html) }))
 * // prefpipe report: rlhf_v
 * // rows in                         48
 * // kept                            39
 * //   train                         39
 * //   eval                           0
 * // rejected                         9
 * //   image_count_mismatch           1
 * // ...
 * // images written                  14 new of 14 distinct; 39 uses, 0.8 MB
 * //                                p50       p90       max
 * // prompt chars                    45        89       167
 * // ...
 */
export function formatSummaryTable(report: ReportJson, options: SummaryTableOptions = {}): string {
  const s = report.summary
  const d = report.distributions
  const written = report.timings?.imagesWritten
  const imageNote = `${formatInt(s.imageRefs)} uses, ${(s.imageBytes / 1e6).toFixed(1)} MB`
  const counts: [string, number, string][] = [
    ['rows in', s.rowsIn, ''],
    ['kept', s.kept, ''],
    ['  train', s.train, ''],
    ['  eval', s.eval, ''],
    ['rejected', s.rejected, ''],
    ...report.rejected.reasons.map((r): [string, number, string] => [`  ${r.reason}`, r.count, '']),
    typeof written === 'number'
      ? ['images written', written, `new of ${formatInt(s.distinctImages)} distinct; ${imageNote}`]
      : ['images', s.distinctImages, `distinct; ${imageNote}`],
  ]
  const spreads: [string, Distribution][] = [
    ['prompt chars', d.promptChars],
    ['chosen chars', d.chosenChars],
    ['rejected chars', d.rejectedChars],
    ['image pixels', d.imagePixels],
    ['visual tokens/image', d.visualTokensPerImage],
    ['visual tokens/row', d.visualTokensPerRow],
  ]
  const width = Math.max(...counts.map(([k]) => k.length), ...spreads.map(([k]) => k.length)) + 2
  const col = (v: string) => v.padStart(9)
  const lines = [`prefpipe report: ${report.name}`]
  for (const [k, n, note] of counts) lines.push(`${k.padEnd(width)}${col(formatInt(n))}${note ? ` ${note}` : ''}`)
  lines.push(`${''.padEnd(width)}${col('p50')} ${col('p90')} ${col('max')}`)
  for (const [k, dist] of spreads) {
    const st = dist.stats
    lines.push(`${k.padEnd(width)}${st ? `${col(formatInt(st.p50))} ${col(formatInt(st.p90))} ${col(formatInt(st.max))}` : col('-')}`)
  }
  lines.push(`(visual tokens: Qwen2-VL with image_max_pixels ${formatInt(report.visualTokens.imageMaxPixels)}; ${formatInt(s.visualTokens)} in all)`)
  if (options.timings !== false && report.timings) lines.push(`took ${(report.timings.wallMs / 1000).toFixed(1)} s`)
  if (options.html) lines.push(`report: ${options.html}`)
  return lines.map((l) => l.trimEnd()).join('\n') + '\n'
}
