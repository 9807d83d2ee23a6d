/**
 * The images stage: every image of every row decoded safely, normalised, sized for the Qwen-VL grid within the
 * pixel budget, encoded once (or kept as is), deduplicated exactly and grouped by near-duplicates; rows that
 * repeat an earlier row or exceed the token budget left out.
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import pLimit from 'p-limit'
import sharp from 'sharp'
import { named } from '../../pipeline/stage.js'
import type { StageContext, StageStats, Transform } from '../../pipeline/types.js'
import type { ImageRef, ImageSource, PreferenceSample, Reject } from '../../record.js'
import { classifyDecodeError, probeImage, type DecodeGuard, type ImageFailure, type ImageRejectReason } from './decode.js'
import { makeHistogram, observe, powersOfTwo, type Histogram } from './histogram.js'
import { probeJpegHeader } from './jpeg-probe.js'
import { ImageGroups, type NearMatch } from './near-dup-index.js'
import { keepAsIs, reencodeCauses, reencodeImage, type EncodeOptions, type ReencodeCause } from './normalise.js'
import { resolveImagesOptions, type ProcessImagesOptions, type ResolvedImagesOptions } from './options.js'
import { perceptualHash } from './phash.js'
import { targetSize, type SizePolicy } from './resize.js'
import type { ReusableImage, ReusableOutcome } from './reuse.js'
import { estimateRowTokens, visualTokens, type RowTokenEstimate, type TokenBudgetOptions } from './token-budget.js'

/** What the images stage measured in its last run, beyond the flat counters. JSON-serialisable. */
export interface ImageStats {
  /** A copy of the stage's counters (the same as `report.stages[i].counters`). */
  counters: Record<string, number>
  histograms: {
    /** Final pixel count (w·h) of each distinct image written. */
    pixels: Histogram
    /** Visual tokens of each image occurrence in an emitted row. */
    visualTokens: Histogram
    /** Estimated tokens of each emitted row (what is compared with `cutoffLen`). */
    rowTokens: Histogram
  }
  /** Distinct images written, by final size `"<width>x<height>"`. */
  sizes: Record<string, number>
  /** Near-duplicate grouping: distinct images, groups of two or more, merges of earlier groups. */
  groups: { distinct: number; multi: number; merges: number }
}

/** The images transform, with a way to read its statistics after (or during) a run. */
export type ImagesTransform = Transform<PreferenceSample, PreferenceSample> & {
  /** Statistics of the latest run (empty before any). */
  imageStats(): ImageStats
}

/**
 * A distinct source image, processed (or reused: then `bytes` is null and `path` says where they are). `bytes`
 * also becomes null once its first row was emitted, with `repeatedImages: 'reference'`; `size` stays.
 */
type Processed = ReusableImage

type Outcome = Processed | ImageFailure

const ADVICE: Record<ImageRejectReason, string> = {
  image_missing: 'fix the images column, or drop the row',
  image_unreadable: 'fix the path or the media folder, or drop the row',
  image_empty: 're-export the image, or drop the row',
  image_unsupported: 'convert it to JPEG or PNG (or add its format to inputFormats), or drop the row',
  image_corrupt: 're-download or re-export it, or drop the row',
  image_too_large: 'downscale it first, or raise limitInputPixels if you trust the source',
  image_animated: "pass animated: 'first' to keep the first frame, or drop the row",
  image_aspect: 'crop or pad it, or raise maxAspectRatio (at most 200)',
  image_unfit: 'raise maxPixels, or crop the image',
  duplicate_row: 'drop it (pass dedupeRows: false to keep duplicates)',
  exceeds_cutoff: 'shorten the text, lower maxPixels, or raise cutoffLen (and LLaMA-Factory\'s cutoff_len with it)',
  near_duplicate: "pass nearDuplicates: 'group' to keep such rows, or lower nearDuplicateDistance",
}

const PIXEL_BOUNDS = powersOfTwo(4096, 16_777_216)
const VISUAL_TOKEN_BOUNDS = powersOfTwo(16, 16_384)
const ROW_TOKEN_BOUNDS = powersOfTwo(64, 65_536)

const PATH_ERRORS = new Set(['ENOENT', 'ENOTDIR', 'EISDIR', 'EACCES', 'EPERM', 'ELOOP', 'ENAMETOOLONG'])

/**
 * Make the images stage (named `images`). For every image of every row, in order:
 * 1. **Decode safely** with sharp: zero bytes (`image_empty`), not an image or not an accepted format
 *    (`image_unsupported`), more than `limitInputPixels` (`image_too_large`, checked from the header before
 *    decoding), animated GIF/WebP (`image_animated`, or the first frame with `animated: 'first'`), truncated or
 *    corrupt data under `failOn` (`image_corrupt`). A row with a bad image is rejected with that reason.
 * 2. **Size** it for the model ({@link targetSize}): LLaMA-Factory's own pre-resize is emulated with
 *    `image_max_pixels = maxPixels`, then Qwen2-VL's `smart_resize` (exact, with `maxPixels` as its bound) puts
 *    both sides on the `factor` grid. Aspect ratios above `maxAspectRatio` are refused (`image_aspect`).
 *    LLaMA-Factory's pre-resize is then a no-op, and the processor's `smart_resize` the identity.
 * 3. **Keep or re-encode**: a JPEG/PNG that is already 8-bit sRGB (or YCbCr) RGB, without alpha, palette,
 *    non-sRGB ICC profile or EXIF rotation, and already at its target size, is kept: its bytes are copied,
 *    with metadata segments removed losslessly (a file without metadata stays byte-identical). Anything else
 *    is decoded once, EXIF-rotated, flattened onto white, converted to 8-bit sRGB through its ICC profile,
 *    resized with `resizeKernel` (cubic: Pillow's BICUBIC, as LLaMA-Factory) and encoded once as `format`
 *    without metadata.
 * 4. **Dedupe**: the output bytes are content-addressed by sha256. A source (by sha256 of its bytes) is
 *    processed once per run however many rows use it (`imageCacheHits`), as long as its result stays in the
 *    `cacheBytes` cache. A row identical to an earlier emitted row (system, prompt, chosen, rejected, image
 *    hashes) is rejected (`duplicate_row`); only a 16-byte hash per row is kept.
 * 5. **Near-duplicates**: a 64-bit pHash per image, searched with multi-index hashing within
 *    `nearDuplicateDistance` (inclusive) among the images of rows already emitted. `ImageRef.group` is fixed
 *    when an image is first emitted and never changes: the image's own sha256 if it matches nothing, else the
 *    group of its closest match, so every row with the same image has the same group (see {@link ImageGroups}
 *    for bridges between groups). With `nearDuplicates: 'drop'`, a row with an image near (not identical) to
 *    an earlier emitted row's is rejected (`near_duplicate`).
 * 6. **Token budget**: image tokens `(h/f)·(w/f)+2` exactly, text conservatively ({@link estimateRowTokens});
 *    a row above `cutoffLen` is rejected (`exceeds_cutoff`), since LLaMA-Factory would truncate it and cutting
 *    into image tokens breaks training.
 *
 * Output images carry the final `bytes` (no `path`), `sha256`, `width`, `height`, `format`, `perceptual`,
 * `group`, `original` (source sha256, size, format, dimensions, orientation) and `reencoded`. With
 * `repeatedImages: 'reference'`, only the first emitted row with an image carries its `bytes`; later rows carry the
 * rest without them (the `llamaFactory` sink resolves them by `sha256`), and the cache keeps no bytes after that. Rows come out in
 * input order; work runs `concurrency` images at a time with at most `2 × concurrency` rows read ahead, and the
 * output does not depend on it. Counters: `imagesSeen`, `imagesDecoded`, `imageCacheHits`,
 * `imageCacheEvictions`, `imagesKept`, `imagesStripped`, `imagesReencoded`, `reencode.<cause>`, `imageBytesIn`,
 * `imageBytesOut`, `imagesOut`, `imagesDistinct`, `imageBytesDistinct`, `nearDuplicateImages`,
 * `nearDuplicateGroups`, `nearDuplicateMerges`, `visualTokens`; histograms via `imageStats()`.
 *
 * @example
 * const images = processImages({ maxPixels: 262144, cutoffLen: 2048 })
 * const { report } = await pipeline(parquetSource({ path: 'rlhf-v.parquet' }), validateRanking(), images, llamaFactory({ out: 'out', name: 'rlhf_v' }))
 * console.log(report.stages.find((s) => s.name === 'images')?.dropped, images.imageStats().histograms.visualTokens)
 */
export function processImages(options?: ProcessImagesOptions): ImagesTransform {
  const opts = resolveImagesOptions(options)
  let latest: RunState | null = null
  const stage = named('images', async function* (input: AsyncIterable<PreferenceSample>, ctx: StageContext) {
    const run = new RunState(opts, ctx.stats)
    latest = run
    const previousThreads = sharp.concurrency()
    // libvips' operation cache never hits here (every source is a new buffer, each processed once) and holds
    // up to 100 operations with their pixel buffers: off while the stage runs.
    const previousCache = sharp.cache()
    sharp.cache(false)
    sharp.concurrency(Math.max(1, Math.floor(availableParallelism() / opts.concurrency)))
    const window = opts.concurrency * 2
    const queue: { sample: PreferenceSample; outcomes: Promise<Outcome[]>; settled: boolean }[] = []
    let done = 0
    const emit = (head: (typeof queue)[number], outcomes: Outcome[]): PreferenceSample | null => {
      const out = run.finalise(head.sample, outcomes, ctx)
      if (++done % 16 === 0) ctx.progress({ done })
      return out
    }
    let completed = false
    try {
      for await (const sample of input) {
        if (ctx.signal.aborted) return
        const entry = { sample, outcomes: run.start(sample), settled: false }
        entry.outcomes.then(
          () => (entry.settled = true),
          () => (entry.settled = true),
        )
        queue.push(entry)
        while (queue.length > 0 && (queue[0]!.settled || queue.length >= window)) {
          const head = queue.shift()!
          const outcomes = await head.outcomes
          if (ctx.signal.aborted) return
          const out = emit(head, outcomes)
          if (out) yield out
        }
      }
      while (queue.length > 0) {
        const head = queue.shift()!
        const outcomes = await head.outcomes
        if (ctx.signal.aborted) return
        const out = emit(head, outcomes)
        if (out) yield out
      }
      ctx.progress({ done })
      completed = true
    } finally {
      await run.close(completed)
      sharp.concurrency(previousThreads)
      sharp.cache({ memory: previousCache.memory.max, files: previousCache.files.max, items: previousCache.items.max })
      if (opts.reuse && opts.reuse.reused > 0) ctx.log.info(`images: ${opts.reuse.reused} processed images reused from earlier runs (verified), not made again`)
    }
  })
  return Object.assign(stage, { imageStats: () => (latest ? latest.snapshot() : emptyStats()) })
}

/** A finished (or in-flight) image in the cache, with its size for the memory budget. */
interface CacheEntry {
  promise: Promise<Outcome>
  /** 0 while in flight; 256 + the bytes it holds once finished. */
  size: number
  /** The finished outcome (to drop its bytes once emitted, with `repeatedImages: 'reference'`). */
  outcome?: Outcome
}

/** Everything one run of the stage keeps. */
class RunState {
  private readonly guard: DecodeGuard
  private readonly policy: SizePolicy
  private readonly enc: EncodeOptions
  private readonly tokens: TokenBudgetOptions
  private readonly limit: ReturnType<typeof pLimit>
  private readonly running = new Set<Promise<unknown>>()
  private readonly cache = new Map<string, CacheEntry>()
  private cacheSize = 0
  private readonly rows = new Map<string, string>()
  private readonly groups: ImageGroups
  /** The id of the row each distinct image was first emitted in, by image id. */
  private readonly firstRow: string[] = []
  private readonly counters: Record<string, number>
  private readonly histograms = {
    pixels: makeHistogram('pixels', PIXEL_BOUNDS),
    visualTokens: makeHistogram('tokens', VISUAL_TOKEN_BOUNDS),
    rowTokens: makeHistogram('tokens', ROW_TOKEN_BOUNDS),
  }
  private readonly sizes: Record<string, number> = {}

  constructor(
    private readonly o: ResolvedImagesOptions,
    private readonly stats: StageStats,
  ) {
    this.guard = { limitInputPixels: o.limitInputPixels, failOn: o.failOn, inputFormats: o.inputFormats, animated: o.animated }
    this.policy = { factor: o.factor, minPixels: o.minPixels, maxPixels: o.maxPixels, maxAspectRatio: o.maxAspectRatio }
    this.enc = { format: o.format, quality: o.quality, chromaSubsampling: o.chromaSubsampling, kernel: o.resizeKernel, optimiseCoding: o.optimiseCoding }
    this.tokens = { factor: o.factor, charsPerToken: o.charsPerToken, turnOverhead: o.turnOverhead, defaultSystem: o.defaultSystem, placeholder: o.placeholder }
    this.limit = pLimit(o.concurrency)
    this.groups = new ImageGroups(o.nearDuplicateDistance)
    this.counters = stats.counters
  }

  private count(name: string, n = 1): void {
    this.stats.count(name, n)
  }

  /** Start processing every image of a row; resolves (never rejects for bad images) in image order. */
  start(sample: PreferenceSample): Promise<Outcome[]> {
    const p = Promise.all(sample.images.map((ref) => this.image(ref)))
    p.catch(() => {}) // observed by the loop; this keeps an early exit from leaving it unhandled
    return p
  }

  private async image(ref: ImageRef): Promise<Outcome> {
    this.count('imagesSeen')
    let bytes: Uint8Array
    if (ref.bytes != null) {
      bytes = ref.bytes
    } else if (typeof ref.path === 'string' && ref.path !== '') {
      try {
        bytes = await readFile(ref.path)
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'UNKNOWN'
        if (!PATH_ERRORS.has(code)) throw err
        return { ok: false, reason: 'image_unreadable', message: `cannot be read from ${JSON.stringify(ref.path)} (${code})`, detail: { path: ref.path, code } }
      }
    } else {
      return { ok: false, reason: 'image_missing', message: 'has neither bytes nor a path' }
    }
    if (bytes.byteLength === 0) return { ok: false, reason: 'image_empty', message: 'has zero bytes' }
    const sha = createHash('sha256').update(bytes).digest('hex')
    const hit = this.cache.get(sha)
    if (hit) {
      this.cache.delete(sha)
      this.cache.set(sha, hit)
      this.count('imageCacheHits')
      return hit.promise
    }
    this.count('imagesDecoded') // or taken from `reuse`: the counters come out the same
    // The journal line is written after the slot is freed: the next image need not wait for the file system.
    const promise = this.limit(() => this.track(this.processOrLookup(bytes, sha))).then(({ outcome, fresh }) =>
      fresh && this.o.reuse ? this.track(this.o.reuse.record(sha, outcome as ReusableOutcome)).then(() => outcome) : outcome,
    )
    const entry: CacheEntry = { promise, size: 0 }
    this.cache.set(sha, entry)
    promise.then(
      (o) => {
        entry.outcome = o
        entry.size = 256 + (o.ok && o.bytes ? o.bytes.byteLength : 0)
        this.cacheSize += entry.size
        this.evict()
      },
      () => {},
    )
    return promise
  }

  /** Drop the oldest finished entries while the cache is over its budget. */
  private evict(): void {
    for (const [sha, e] of this.cache) {
      if (this.cacheSize <= this.o.cacheBytes) break
      if (e.size === 0) continue // still in flight
      this.cache.delete(sha)
      this.cacheSize -= e.size
      this.count('imageCacheEvictions')
    }
  }

  /** Keep `work` in `running` until it settles (so that `close` can wait for it). */
  private track<T>(work: Promise<T>): Promise<T> {
    this.running.add(work)
    return work.finally(() => this.running.delete(work))
  }

  /** One distinct source: from `reuse` when it has it (verified), else processed (`fresh`: to record there). */
  private async processOrLookup(bytes: Uint8Array, sourceSha: string): Promise<{ outcome: Outcome; fresh: boolean }> {
    const known = this.o.reuse ? await this.o.reuse.lookup(sourceSha) : undefined
    if (known) {
      if (known.ok) this.countProcessed(known as Processed)
      return { outcome: known as Outcome, fresh: false }
    }
    return { outcome: await this.process(bytes, sourceSha), fresh: true }
  }

  /** The counters of one processed image (the same for a reused one). */
  private countProcessed(p: Processed): void {
    if (!p.reencoded) {
      this.count('imagesKept')
      if (p.size !== p.original.bytes) this.count('imagesStripped')
    } else {
      this.count('imagesReencoded')
      for (const c of p.causes) this.count(`reencode.${c}`)
    }
    this.count('imageBytesIn', p.original.bytes)
    this.count('imageBytesOut', p.size)
  }

  /** Probe, size, keep or re-encode, hash: one distinct source. */
  private async process(bytes: Uint8Array, sourceSha: string): Promise<Outcome> {
    // Plain JPEGs are probed from their markers in JS; anything else (and every refusal) by sharp.
    const probe = probeJpegHeader(bytes, this.guard) ?? (await probeImage(bytes, this.guard))
    if (!probe.ok) return probe
    const original: ImageSource = { sha256: sourceSha, bytes: bytes.byteLength, format: probe.format, width: probe.width, height: probe.height, orientation: probe.orientation }
    const target = targetSize(probe.orientedHeight, probe.orientedWidth, this.policy)
    if (!target.ok) {
      return { ok: false, reason: target.reason === 'aspect' ? 'image_aspect' : 'image_unfit', message: `(${probe.orientedWidth}x${probe.orientedHeight}) cannot be sized for the model: ${target.message}`, detail: { width: probe.orientedWidth, height: probe.orientedHeight } }
    }
    let causes: ReencodeCause[] = reencodeCauses(probe, target, this.o.reencode)
    let out: Uint8Array | null = null
    if (causes.length === 0) {
      out = keepAsIs(bytes, probe.format as 'jpeg' | 'png')
      if (out === null) causes = ['layout']
      // A view into a bigger buffer (a parquet page) would keep all of it alive in the cache: copy it.
      else if (out.byteLength !== out.buffer.byteLength) out = Buffer.from(out)
    }
    let format: string = probe.format
    let phash: bigint
    try {
      if (out === null) {
        out = (await reencodeImage(bytes, target, this.guard, this.enc)).bytes
        format = this.enc.format
      }
      // Decodes the output under the guards: for a kept file, this is what proves its pixel data is whole.
      phash = await perceptualHash(out, this.guard)
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('[prefpipe]')) throw err
      return classifyDecodeError(err, bytes)
    }
    const processed: Processed = {
      ok: true,
      bytes: out,
      size: out.byteLength,
      sha256: createHash('sha256').update(out).digest('hex'),
      width: target.width,
      height: target.height,
      format,
      reencoded: causes.length > 0,
      causes,
      original,
      phash,
    }
    this.countProcessed(processed)
    return processed
  }

  /** Decide a row in input order: image failures, duplicate row, token budget, near-duplicates; then emit. */
  finalise(sample: PreferenceSample, outcomes: Outcome[], ctx: StageContext): PreferenceSample | null {
    const bad = outcomes.findIndex((o) => !o.ok)
    if (bad !== -1) {
      const f = outcomes[bad] as ImageFailure
      ctx.reject(reject(sample.id, f.reason, `image ${bad} ${f.message}; ${ADVICE[f.reason]}`, { image: bad, ...f.detail }))
      return null
    }
    const images = outcomes as Processed[]

    let rowKey: string | null = null
    if (this.o.dedupeRows) {
      rowKey = rowHash(sample, images)
      const first = this.rows.get(rowKey)
      if (first !== undefined) {
        ctx.reject(reject(sample.id, 'duplicate_row', `the row is identical to the earlier row ${first} (same system prompt, prompt, chosen, rejected and images); ${ADVICE.duplicate_row}`, { duplicateOf: first }))
        return null
      }
    }

    const estimate = estimateRowTokens(sample, images, this.tokens)
    if (this.o.cutoffLen !== false && estimate.total > this.o.cutoffLen) {
      ctx.reject(reject(sample.id, 'exceeds_cutoff', `the row needs about ${estimate.total} tokens (${describe(estimate)}), above cutoffLen ${this.o.cutoffLen}; LLaMA-Factory would truncate it, and cutting into image tokens breaks training. ${cap(ADVICE.exceeds_cutoff)}`, { estimate: { ...estimate }, cutoffLen: this.o.cutoffLen }))
      return null
    }

    if (this.o.nearDuplicates === 'drop') {
      for (const [i, img] of images.entries()) {
        if (this.groups.idOf(img.sha256) !== undefined) continue
        const near = nearest(this.groups.matches(img.phash))
        if (near) {
          const sha = this.groups.shaOf(near.id)
          ctx.reject(reject(sample.id, 'near_duplicate', `image ${i} is a near-duplicate of image ${sha.slice(0, 12)}… of the earlier row ${this.firstRow[near.id]} (pHash distance ${near.distance} ≤ ${this.o.nearDuplicateDistance}); ${ADVICE.near_duplicate}`, { image: i, nearest: sha, row: this.firstRow[near.id], distance: near.distance }))
          return null
        }
      }
    }

    if (rowKey !== null) this.rows.set(rowKey, sample.id)
    const refs: ImageRef[] = images.map((img) => {
      let id = this.groups.idOf(img.sha256)
      if (id === undefined) {
        const multiBefore = this.groups.multiGroups
        const a = this.groups.add(img.sha256, img.phash)
        id = a.id
        this.firstRow.push(sample.id)
        this.count('imagesDistinct')
        this.count('imageBytesDistinct', img.size)
        if (a.nearest) this.count('nearDuplicateImages')
        if (a.merged) this.count('nearDuplicateMerges')
        if (this.groups.multiGroups !== multiBefore) this.count('nearDuplicateGroups', this.groups.multiGroups - multiBefore)
        observe(this.histograms.pixels, img.width * img.height)
        const key = `${img.width}x${img.height}`
        this.sizes[key] = (this.sizes[key] ?? 0) + 1
      }
      const tokens = visualTokens(img.width, img.height, this.o.factor)
      observe(this.histograms.visualTokens, tokens)
      this.count('imagesOut')
      this.count('visualTokens', tokens)
      return {
        ...(img.bytes ? { bytes: img.bytes } : img.path !== undefined ? { path: img.path } : {}),
        sha256: img.sha256,
        width: img.width,
        height: img.height,
        format: img.format,
        perceptual: img.phash,
        group: this.groups.groupOf(id),
        original: img.original,
        reencoded: img.reencoded,
      }
    })
    observe(this.histograms.rowTokens, estimate.total)
    if (this.o.repeatedImages === 'reference') for (const img of images) this.dropBytes(img)
    return { ...sample, images: refs }
  }

  /**
   * With `repeatedImages: 'reference'`: the image's first row is out, so later rows get it without bytes
   * (the consumer resolves it by sha256) and the cache keeps only its metadata.
   */
  private dropBytes(img: Processed): void {
    if (img.bytes === null) return
    img.bytes = null
    const e = this.cache.get(img.original.sha256)
    if (e && e.outcome === img && e.size > 256) {
      this.cacheSize -= e.size - 256
      e.size = 256
    }
  }

  /** Stop queued work and wait for what already runs (so no sharp call outlives the stage); settle the journal. */
  async close(completed: boolean): Promise<void> {
    this.limit.clearQueue()
    // An image that finishes then records its journal line: wait until nothing runs, microtasks drained between.
    do {
      await Promise.allSettled([...this.running])
      await new Promise((resolve) => setImmediate(resolve))
    } while (this.running.size > 0)
    await this.o.reuse?.finish(completed)
  }

  snapshot(): ImageStats {
    return JSON.parse(
      JSON.stringify({
        counters: this.counters,
        histograms: this.histograms,
        sizes: Object.fromEntries(Object.entries(this.sizes).sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))),
        groups: { distinct: this.groups.size, multi: this.groups.multiGroups, merges: this.groups.merges },
      }),
    ) as ImageStats
  }
}

/** The statistics of a stage that has not run. */
function emptyStats(): ImageStats {
  return {
    counters: {},
    histograms: { pixels: makeHistogram('pixels', PIXEL_BOUNDS), visualTokens: makeHistogram('tokens', VISUAL_TOKEN_BOUNDS), rowTokens: makeHistogram('tokens', ROW_TOKEN_BOUNDS) },
    sizes: {},
    groups: { distinct: 0, multi: 0, merges: 0 },
  }
}

function reject(id: string, reason: ImageRejectReason, message: string, detail?: Record<string, unknown>): Reject {
  return detail ? { id, reason, message, detail } : { id, reason, message }
}

function nearest(matches: NearMatch[]): NearMatch | undefined {
  let best: NearMatch | undefined
  for (const m of matches) if (!best || m.distance < best.distance) best = m
  return best
}

/** 16 bytes of sha256 over the row's content and its images' output hashes: equal rows, equal keys. */
function rowHash(s: PreferenceSample, images: Processed[]): string {
  const content = [s.system ?? null, s.messages.map((t) => [t.role, t.content]), [s.chosen.role, s.chosen.content], [s.rejected.role, s.rejected.content], images.map((i) => i.sha256)]
  return createHash('sha256').update(JSON.stringify(content)).digest().subarray(0, 16).toString('base64')
}

function describe(e: RowTokenEstimate): string {
  return `text ≈${e.system + e.prompt + Math.max(e.chosen, e.rejected)}, images ${e.images}, template ${e.template}`
}

function cap(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1)
}

