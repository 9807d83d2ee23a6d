/**
 * Options of `processImages`, validated with zod when the stage is made.
 */
import { availableParallelism } from 'node:os'
import { z } from 'zod'
import { INPUT_FORMATS, type FailOn, type InputFormat } from './decode.js'
import { OUTPUT_FORMATS, RESIZE_KERNELS, type OutputFormat, type ResizeKernel } from './normalise.js'
import { QWEN_MAX_ASPECT, VISION_MODELS, type VisionModelName } from './resize.js'
import type { ImageReuse } from './reuse.js'

/** Options of `processImages`. Every one is optional. */
export interface ProcessImagesOptions {
  /**
   * The model the data is for: sets the grid `factor` (28 for `qwen2-vl` and `qwen2.5-vl`, 32 for `qwen3-vl`)
   * and the default `minPixels` (the processor's own minimum: 3136, or 65536 for Qwen3-VL). Default `qwen2-vl`.
   */
  model?: VisionModelName
  /** The grid factor, overriding the model's (`patch_size * merge_size`). */
  factor?: number
  /**
   * The pixel budget of an output image: set LLaMA-Factory's `image_max_pixels` to the same value. Default
   * 262144 (512², the RLHF-V example config). At most the processor's `max_pixels`.
   */
  maxPixels?: number
  /** The smallest output in pixels. Default: the model processor's minimum (see `model`); not below it. */
  minPixels?: number
  /** Refuse images whose long side is more than this many times the short side (`image_aspect`). Default 180 (LLaMA-Factory's cap); at most 200. */
  maxAspectRatio?: number
  /**
   * Refuse images with more pixels than this before decoding them (`image_too_large`). Default 89478485, Pillow's
   * `Image.MAX_IMAGE_PIXELS` (its warning threshold; it refuses at twice that).
   */
  limitInputPixels?: number
  /** sharp's sensitivity to bad pixel data: `error` (default) refuses truncated and corrupt data, `warning` also minor glitches. */
  failOn?: FailOn
  /** Input formats accepted (others: `image_unsupported`). Default: jpeg, png, webp, gif, tiff, avif, heif. */
  inputFormats?: InputFormat[]
  /** Animated GIF/WebP: `reject` the row (`image_animated`, default) or keep the `first` frame. */
  animated?: 'reject' | 'first'
  /** Encoding of re-encoded images. Default `jpeg`. */
  format?: OutputFormat
  /** JPEG/WebP quality. Default 90. */
  quality?: number
  /** JPEG chroma subsampling. Default `4:2:0`. */
  chromaSubsampling?: '4:2:0' | '4:4:4'
  /**
   * Resampling kernel of re-encoded images: `cubic` (default; Catmull-Rom, Pillow's BICUBIC, the filter
   * LLaMA-Factory's `image.resize` and the Qwen-VL processors use) or `lanczos3` (sharper, about 5 % slower).
   */
  resizeKernel?: ResizeKernel
  /**
   * Optimise the JPEG Huffman tables of re-encoded images: about 3 % smaller files for about a third more
   * encoding CPU. Default `false` (Pillow's default too).
   */
  optimiseCoding?: boolean
  /** `auto` (default) keeps conforming JPEG/PNG files as they are; `always` re-encodes every image. */
  reencode?: 'auto' | 'always'
  /** Near-duplicate images: `group` (default) sets `ImageRef.group`; `drop` also rejects rows whose image nearly duplicates an earlier row's (`near_duplicate`). */
  nearDuplicates?: 'group' | 'drop'
  /** Largest Hamming distance between 64-bit pHashes that counts as a near-duplicate (inclusive). Default 6. */
  nearDuplicateDistance?: number
  /** Reject rows identical to an earlier emitted one (`duplicate_row`). Default `true`. */
  dedupeRows?: boolean
  /** Reject rows whose estimated tokens exceed this (`exceeds_cutoff`); `false` turns it off. Default 2048 (LLaMA-Factory's `cutoff_len`). */
  cutoffLen?: number | false
  /** ASCII characters per token in the text estimate. Default 3 (conservative). */
  charsPerToken?: number
  /** Template tokens per turn. Default 5 (Qwen ChatML). */
  turnOverhead?: number
  /** System prompt the template adds when a row has none. Default `You are a helpful assistant.` (template `qwen2_vl`). */
  defaultSystem?: string
  /** The image placeholder in the text. Default `<image>`. */
  placeholder?: string
  /**
   * Images decoded at once. Default `ceil(1.5 × os.availableParallelism())`, at least 2 (each sharp call runs on
   * one libvips thread; the half more keeps the cores busy while some calls wait for the libuv pool or the main
   * thread). On 2 cores, 3 in flight ran as fast as 4 with about 25 MB less peak RSS (BENCHMARKS.md). Up to
   * `2 × concurrency` rows are read ahead.
   */
  concurrency?: number
  /** Memory for finished images kept for reuse by later rows (bytes). Default 256 MiB. */
  cacheBytes?: number
  /**
   * What a later row using an already emitted image carries: `bytes` (default) the output bytes again, so every
   * emitted `ImageRef` has its `bytes`; `reference` no bytes, only `sha256`, `format`, sizes and the rest, for a
   * consumer that keeps what it stored by sha256 (the `llamaFactory` sink does). With `reference` the stage's
   * cache drops an image's bytes once its first row is emitted (about 200 B per image instead of its size), so
   * memory stays flat however long the dataset is.
   */
  repeatedImages?: 'bytes' | 'reference'
  /**
   * Where processed images are looked up before processing and recorded after (see `imageJournal`): a re-run
   * takes an image it already made (verified) instead of decoding it again, and a merge takes the shards'.
   * The rows, files and counters come out the same either way.
   */
  reuse?: ImageReuse
}

/** The options with every default filled in. */
export interface ResolvedImagesOptions {
  model: VisionModelName
  factor: number
  maxPixels: number
  minPixels: number
  maxAspectRatio: number
  limitInputPixels: number
  failOn: FailOn
  inputFormats: InputFormat[]
  animated: 'reject' | 'first'
  format: OutputFormat
  quality: number
  chromaSubsampling: '4:2:0' | '4:4:4'
  resizeKernel: ResizeKernel
  optimiseCoding: boolean
  reencode: 'auto' | 'always'
  nearDuplicates: 'group' | 'drop'
  nearDuplicateDistance: number
  dedupeRows: boolean
  cutoffLen: number | false
  charsPerToken: number
  turnOverhead: number
  defaultSystem: string
  placeholder: string
  concurrency: number
  cacheBytes: number
  repeatedImages: 'bytes' | 'reference'
  reuse: ImageReuse | undefined
}

const posInt = z.number().int().positive()

const schema = z.strictObject({
  model: z.enum(Object.keys(VISION_MODELS) as [VisionModelName, ...VisionModelName[]]).optional(),
  factor: z.number().int().min(2).max(1024).optional(),
  maxPixels: posInt.optional(),
  minPixels: posInt.optional(),
  maxAspectRatio: z.number().min(1).max(QWEN_MAX_ASPECT).optional(),
  limitInputPixels: posInt.optional(),
  failOn: z.enum(['none', 'truncated', 'error', 'warning']).optional(),
  inputFormats: z.array(z.enum(INPUT_FORMATS)).min(1).optional(),
  animated: z.enum(['reject', 'first']).optional(),
  format: z.enum(OUTPUT_FORMATS).optional(),
  quality: z.number().int().min(1).max(100).optional(),
  chromaSubsampling: z.enum(['4:2:0', '4:4:4']).optional(),
  resizeKernel: z.enum(RESIZE_KERNELS).optional(),
  optimiseCoding: z.boolean().optional(),
  reencode: z.enum(['auto', 'always']).optional(),
  nearDuplicates: z.enum(['group', 'drop']).optional(),
  nearDuplicateDistance: z.number().int().min(0).max(32).optional(),
  dedupeRows: z.boolean().optional(),
  cutoffLen: z.union([posInt, z.literal(false)]).optional(),
  charsPerToken: z.number().min(1).max(10).optional(),
  turnOverhead: z.number().int().min(0).max(64).optional(),
  defaultSystem: z.string().optional(),
  placeholder: z.string().min(1).optional(),
  concurrency: z.number().int().min(1).max(1024).optional(),
  cacheBytes: z.number().int().min(0).optional(),
  repeatedImages: z.enum(['bytes', 'reference']).optional(),
  reuse: z.custom<ImageReuse>((v) => typeof v === 'object' && v !== null && typeof (v as ImageReuse).lookup === 'function' && typeof (v as ImageReuse).record === 'function', 'an ImageReuse (see imageJournal)').optional(),
})

/**
 * Check `options` and fill in the defaults. Throws a `TypeError` naming `processImages` and the option.
 *
 * @example
 * resolveImagesOptions({ model: 'qwen3-vl' }).factor // 32
 */
export function resolveImagesOptions(options: unknown): ResolvedImagesOptions {
  const parsed = schema.safeParse(options ?? {})
  const fail = (option: string, why: string): never => {
    throw new TypeError(`[prefpipe] processImages(): option "${option}" is invalid: ${why}`)
  }
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    if (issue.code === 'unrecognized_keys') {
      throw new TypeError(`[prefpipe] processImages(): unknown option "${issue.keys.join('", "')}" (known options: ${Object.keys(schema.shape).join(', ')})`)
    }
    fail(issue.path.map(String).join('.') || 'options', issue.message)
  }
  const o = parsed.data!
  const model = o.model ?? 'qwen2-vl'
  const m = VISION_MODELS[model]
  const factor = o.factor ?? m.factor
  const maxPixels = o.maxPixels ?? 262_144
  const minPixels = o.minPixels ?? m.minPixels
  if (maxPixels > m.maxPixels) fail('maxPixels', `${maxPixels} is above the ${model} processor's max_pixels (${m.maxPixels}), which would resize the image again`)
  if (maxPixels < factor * factor) fail('maxPixels', `${maxPixels} is below one grid cell (${factor}x${factor})`)
  if (minPixels < m.minPixels) fail('minPixels', `${minPixels} is below the ${model} processor's min_pixels (${m.minPixels}), which would resize smaller images again`)
  if (minPixels > maxPixels) fail('minPixels', `${minPixels} is above maxPixels (${maxPixels})`)
  return {
    model,
    factor,
    maxPixels,
    minPixels,
    maxAspectRatio: o.maxAspectRatio ?? 180,
    limitInputPixels: o.limitInputPixels ?? 89_478_485,
    failOn: o.failOn ?? 'error',
    inputFormats: o.inputFormats ?? [...INPUT_FORMATS],
    animated: o.animated ?? 'reject',
    format: o.format ?? 'jpeg',
    quality: o.quality ?? 90,
    chromaSubsampling: o.chromaSubsampling ?? '4:2:0',
    resizeKernel: o.resizeKernel ?? 'cubic',
    optimiseCoding: o.optimiseCoding ?? false,
    reencode: o.reencode ?? 'auto',
    nearDuplicates: o.nearDuplicates ?? 'group',
    nearDuplicateDistance: o.nearDuplicateDistance ?? 6,
    dedupeRows: o.dedupeRows ?? true,
    cutoffLen: o.cutoffLen ?? 2048,
    charsPerToken: o.charsPerToken ?? 3,
    turnOverhead: o.turnOverhead ?? 5,
    defaultSystem: o.defaultSystem ?? 'You are a helpful assistant.',
    placeholder: o.placeholder ?? '<image>',
    concurrency: o.concurrency ?? Math.max(2, Math.ceil(1.5 * availableParallelism())),
    cacheBytes: o.cacheBytes ?? 256 * 1024 * 1024,
    repeatedImages: o.repeatedImages ?? 'bytes',
    reuse: o.reuse,
  }
}
