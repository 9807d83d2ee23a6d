/**
 * The size policy of the images stage: Qwen2-VL's `smart_resize`, reproduced exactly, and the size an image
 * gets so that LLaMA-Factory's own pre-resize is a no-op and the processor's `smart_resize` is the identity.
 * See `reference/llamafactory.md` §3.2 (step A: LLaMA-Factory, step B: the HF processor).
 */

/** The vision models the stage knows: the processor's grid factor and its own pixel bounds. */
export interface VisionModel {
  /** `patch_size * merge_size`: both output sides are multiples of it. */
  factor: number
  /** The processor's `min_pixels` (`size.shortest_edge`): smaller images are scaled up by the processor. */
  minPixels: number
  /** The processor's `max_pixels` (`size.longest_edge`): larger images are scaled down by the processor. */
  maxPixels: number
}

/**
 * The models the `model` option accepts, with their published `preprocessor_config.json` values:
 * Qwen2-VL and Qwen2.5-VL: patch 14, merge 2, `min_pixels` 3136 (56²), `max_pixels` 12845056;
 * Qwen3-VL: patch 16, merge 2, `shortest_edge` 65536 (256²), `longest_edge` 16777216.
 *
 * @example
 * VISION_MODELS['qwen3-vl'].factor // 32
 */
export const VISION_MODELS = {
  'qwen2-vl': { factor: 28, minPixels: 3136, maxPixels: 12_845_056 },
  'qwen2.5-vl': { factor: 28, minPixels: 3136, maxPixels: 12_845_056 },
  'qwen3-vl': { factor: 32, minPixels: 65_536, maxPixels: 16_777_216 },
} as const satisfies Record<string, VisionModel>

/** A model name of {@link VISION_MODELS}. */
export type VisionModelName = keyof typeof VISION_MODELS

/** The aspect ratio (long side / short side) above which the Qwen2-VL processor raises (`> 200`). */
export const QWEN_MAX_ASPECT = 200

/** Bounds of {@link smartResize}. */
export interface SmartResizeOptions {
  factor: number
  minPixels: number
  maxPixels: number
}

/** A size, height first as in the Python code. */
export interface Size {
  height: number
  width: number
}

/**
 * Python's `round()` on a float: to the nearest integer, ties to even (`round(0.5) == 0`, `round(1.5) == 2`).
 * Exact for every double the size code meets (`x - floor(x)` is exact for `x >= 0`).
 *
 * @example
 * roundHalfEven(18.5) // 18
 * roundHalfEven(19.5) // 20
 */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x)
  const d = x - f
  if (d > 0.5) return f + 1
  if (d < 0.5) return f
  return f % 2 === 0 ? f : f + 1
}

/**
 * Qwen2-VL's `smart_resize` (transformers `models/qwen2_vl/image_processing_qwen2_vl.py`), operation for
 * operation so the floating point agrees with Python's: round each side to the nearest multiple of `factor`
 * (half to even); if the area is then above `maxPixels`, scale by `beta = sqrt(h*w/maxPixels)` and floor to the
 * grid (never below one `factor`); if below `minPixels`, scale up and ceil to the grid. Throws a `RangeError`
 * where Python raises: a side that is not a positive integer, or an aspect ratio above 200.
 *
 * @example
 * smartResize(512, 512, { factor: 28, minPixels: 3136, maxPixels: 262144 }) // { height: 504, width: 504 }
 * smartResize(20, 20, { factor: 28, minPixels: 3136, maxPixels: 262144 })   // { height: 56, width: 56 }
 */
export function smartResize(height: number, width: number, { factor, minPixels, maxPixels }: SmartResizeOptions): Size {
  if (!Number.isInteger(height) || !Number.isInteger(width) || height < 1 || width < 1) {
    throw new RangeError(`smartResize: height and width must be positive integers (got ${height}x${width})`)
  }
  if (Math.max(height, width) / Math.min(height, width) > QWEN_MAX_ASPECT) {
    throw new RangeError(`smartResize: absolute aspect ratio must be smaller than ${QWEN_MAX_ASPECT}, got ${Math.max(height, width) / Math.min(height, width)}`)
  }
  let hBar = roundHalfEven(height / factor) * factor
  let wBar = roundHalfEven(width / factor) * factor
  if (hBar * wBar > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels)
    hBar = Math.max(factor, Math.floor(height / beta / factor) * factor)
    wBar = Math.max(factor, Math.floor(width / beta / factor) * factor)
  } else if (hBar * wBar < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width))
    hBar = Math.ceil((height * beta) / factor) * factor
    wBar = Math.ceil((width * beta) / factor) * factor
  }
  return { height: hBar, width: wBar }
}

/** What {@link targetSize} needs: the grid, the pixel budget, and the aspect cap. */
export interface SizePolicy {
  /** Grid factor (28 for Qwen2/2.5-VL, 32 for Qwen3-VL). */
  factor: number
  /** Lower pixel bound of the output (and LLaMA-Factory's `image_min_pixels` in the emulation). */
  minPixels: number
  /** Upper pixel bound of the output: LLaMA-Factory's `image_max_pixels`. */
  maxPixels: number
  /** Sources with a larger long/short ratio are refused. At most {@link QWEN_MAX_ASPECT}. */
  maxAspectRatio: number
}

/** The outcome of {@link targetSize}: the output size, or why the image cannot get one. */
export type TargetSize =
  | ({ ok: true } & Size)
  | { ok: false; reason: 'aspect' | 'unfit'; message: string }

/** LLaMA-Factory's minimum side (`Qwen2VLPlugin._preprocess_image`: `min(w, h) < 28` is raised to 28). */
const LF_MIN_SIDE = 28

/**
 * The size an image of `height`x`width` (after EXIF orientation) is written at:
 * 1. refuse an aspect ratio above `maxAspectRatio` (`reason: 'aspect'`);
 * 2. emulate LLaMA-Factory step A with `image_max_pixels = maxPixels`, `image_min_pixels = minPixels`:
 *    above the budget scale by `sqrt(max/(w*h))` and truncate (`int(w*f)`), below it scale up the same way;
 *    then raise a side under 28 to 28 (as LLaMA-Factory does, this distorts very thin images);
 * 3. apply {@link smartResize} with the model's factor, `minPixels` and `maxPixels` (so when the 28-rounding
 *    would go past the budget it floors instead, and the result never exceeds `maxPixels`);
 * 4. check the result is one both take as is (`reason: 'unfit'` otherwise, e.g. a very thin image under a
 *    small `maxPixels`): sides multiples of `factor`, area within `[minPixels, maxPixels]`, aspect ≤ 200.
 *
 * For an image already on the grid within the budget, this is the identity: such an image can be kept as is.
 *
 * @example
 * targetSize(600, 512, { factor: 28, minPixels: 3136, maxPixels: 262144, maxAspectRatio: 180 })
 * // { ok: true, height: 532, width: 448 }
 */
export function targetSize(height: number, width: number, policy: SizePolicy): TargetSize {
  const { factor, minPixels, maxPixels, maxAspectRatio } = policy
  const aspect = Math.max(height, width) / Math.min(height, width)
  if (aspect > maxAspectRatio) {
    return { ok: false, reason: 'aspect', message: `its aspect ratio is ${aspect.toFixed(1)}:1, above the limit of ${maxAspectRatio}:1` }
  }
  // Step A (LLaMA-Factory), on (w, h) as Pillow sizes are.
  let w = width
  let h = height
  if (w * h > maxPixels) {
    const f = Math.sqrt(maxPixels / (w * h))
    w = Math.trunc(w * f)
    h = Math.trunc(h * f)
  } else if (w * h < minPixels) {
    const f = Math.sqrt(minPixels / (w * h))
    w = Math.trunc(w * f)
    h = Math.trunc(h * f)
  }
  if (Math.min(w, h) < LF_MIN_SIDE) {
    w = Math.max(w, LF_MIN_SIDE)
    h = Math.max(h, LF_MIN_SIDE)
  }
  let out: Size
  try {
    out = smartResize(Math.max(1, h), Math.max(1, w), { factor, minPixels, maxPixels })
  } catch (err) {
    return { ok: false, reason: 'unfit', message: (err as Error).message }
  }
  const problem = fitProblem(out.height, out.width, policy)
  if (problem) return { ok: false, reason: 'unfit', message: `it would be ${out.width}x${out.height}, which ${problem}` }
  return { ok: true, ...out }
}

/**
 * Why an output of `height`x`width` is not one LLaMA-Factory and the processor take as is, or `null` if it is:
 * sides multiples of `factor` and at least `factor`, area within `[minPixels, maxPixels]`, aspect ≤ 200.
 *
 * @example
 * fitProblem(504, 504, { factor: 28, minPixels: 3136, maxPixels: 262144 }) // null
 * fitProblem(500, 504, { factor: 28, minPixels: 3136, maxPixels: 262144 }) // 'has a side that is not a multiple of 28'
 */
export function fitProblem(height: number, width: number, { factor, minPixels, maxPixels }: Omit<SizePolicy, 'maxAspectRatio'>): string | null {
  if (height % factor !== 0 || width % factor !== 0) return `has a side that is not a multiple of ${factor}`
  if (height < factor || width < factor) return `has a side under ${factor}`
  if (height * width > maxPixels) return `has more than ${maxPixels} pixels`
  if (height * width < minPixels) return `has fewer than ${minPixels} pixels`
  if (Math.max(height, width) / Math.min(height, width) > QWEN_MAX_ASPECT) return `has an aspect ratio above ${QWEN_MAX_ASPECT}:1`
  return null
}
