/**
 * Normalisation: decide whether an image can be kept as is, and otherwise produce the one encoding the
 * output gets (EXIF orientation applied, alpha on white, 8-bit sRGB, on the model grid, no metadata).
 */
import sharp from 'sharp'
import { sharpInput, type DecodeGuard, type ImageProbe } from './decode.js'
import type { Size } from './resize.js'
import { stripJpegMetadata, stripPngMetadata } from './strip.js'

/** Output encodings the stage writes. */
export const OUTPUT_FORMATS = ['jpeg', 'png', 'webp'] as const
/** An output format of {@link OUTPUT_FORMATS}. */
export type OutputFormat = (typeof OUTPUT_FORMATS)[number]

/** How re-encoded images are written. */
export interface EncodeOptions {
  format: OutputFormat
  /** JPEG/WebP quality 1-100. */
  quality: number
  /** JPEG chroma subsampling. */
  chromaSubsampling: '4:2:0' | '4:4:4'
  /** Resampling kernel. Default `cubic` (Catmull-Rom: Pillow's BICUBIC, which LLaMA-Factory and the Qwen-VL processors resize with). */
  kernel?: ResizeKernel
  /** JPEG: optimise the Huffman tables (about 3 % smaller files, about a third more encoding CPU). Default `false`, as Pillow. */
  optimiseCoding?: boolean
}

/** Resampling kernels the stage offers. */
export const RESIZE_KERNELS = ['cubic', 'lanczos3'] as const
/** A kernel of {@link RESIZE_KERNELS}. */
export type ResizeKernel = (typeof RESIZE_KERNELS)[number]

/**
 * Why an image had to be re-encoded. Counted per distinct source image as `reencode.<cause>` counters.
 * `forced` is `reencode: 'always'`; `layout` is a JPEG/PNG whose segments could not be walked for a lossless
 * metadata strip.
 */
export type ReencodeCause =
  | 'format'
  | 'size'
  | 'orientation'
  | 'grey'
  | 'cmyk'
  | 'alpha'
  | 'depth'
  | 'palette'
  | 'colour_space'
  | 'colour_profile'
  | 'frames'
  | 'forced'
  | 'layout'

/**
 * Every reason the image described by `probe` cannot be kept as is at `target` (empty: it can).
 * "Kept as is" needs all of: a JPEG or PNG; 8-bit; three channels, no alpha, not a palette; sRGB (YCbCr JPEGs
 * count as sRGB) with no ICC profile or an sRGB one; EXIF orientation absent or 1; one frame; and a size that
 * {@link targetSize} maps to itself (sides multiples of the factor, area within the budget). A grey image is
 * not kept: the output promises RGB.
 *
 * @example
 * reencodeCauses(probe, { width: 504, height: 504 }, 'auto') // [] or e.g. ['grey', 'size']
 */
export function reencodeCauses(probe: ImageProbe, target: Size, reencode: 'auto' | 'always'): ReencodeCause[] {
  const causes: ReencodeCause[] = []
  if (reencode === 'always') causes.push('forced')
  if (probe.format !== 'jpeg' && probe.format !== 'png') causes.push('format')
  if (probe.orientedWidth !== target.width || probe.orientedHeight !== target.height) causes.push('size')
  if (probe.orientation !== 1) causes.push('orientation')
  if (probe.space === 'cmyk') causes.push('cmyk')
  else if (probe.space === 'b-w' || probe.space === 'grey16' || probe.channels < 3) causes.push('grey')
  else if (probe.space !== 'srgb' && probe.space !== 'rgb16') causes.push('colour_space')
  if (probe.hasAlpha) causes.push('alpha')
  if (probe.depth !== 'uchar') causes.push('depth')
  if (probe.isPalette) causes.push('palette')
  if (probe.icc && !isSrgbProfile(probe.icc)) causes.push('colour_profile')
  if (probe.pages > 1) causes.push('frames')
  return causes
}

/**
 * The kept bytes of an image that needs no re-encoding: its metadata removed losslessly (see `strip.ts`),
 * or the very same bytes if it has none. `null` if the file's layout cannot be walked (re-encode instead).
 *
 * @example
 * const out = keepAsIs(bytes, 'jpeg') ?? (await reencodeImage(bytes, target, guard, enc)).bytes
 */
export function keepAsIs(bytes: Uint8Array, format: 'jpeg' | 'png'): Uint8Array | null {
  return format === 'jpeg' ? stripJpegMetadata(bytes) : stripPngMetadata(bytes)
}

/**
 * Decode (first frame only, under the guards), apply the EXIF orientation, composite alpha onto white,
 * convert to 8-bit sRGB (CMYK and other profiles through the embedded ICC profile, else sharp's defaults;
 * grey to RGB; 16-bit to 8-bit; palettes expanded), resample to `target` with `enc.kernel` (cubic unless set),
 * and encode once with no metadata (baseline JPEG, Huffman tables optimised only with `enc.optimiseCoding`). Throws sharp's error for data that fails to decode (see `classifyDecodeError`).
 *
 * @example
 * const { bytes } = await reencodeImage(input, { width: 504, height: 504 }, guard, { format: 'jpeg', quality: 90, chromaSubsampling: '4:2:0' })
 */
export async function reencodeImage(bytes: Uint8Array, target: Size, guard: Pick<DecodeGuard, 'limitInputPixels' | 'failOn'>, enc: EncodeOptions): Promise<{ bytes: Buffer; width: number; height: number }> {
  let img = sharp(bytes, sharpInput(guard))
    .autoOrient()
    .resize(target.width, target.height, { fit: 'fill', kernel: enc.kernel ?? 'cubic' })
    .flatten({ background: { r: 255, g: 255, b: 255 } })
    .toColourspace('srgb')
  if (enc.format === 'jpeg') img = img.jpeg({ quality: enc.quality, chromaSubsampling: enc.chromaSubsampling, progressive: false, mozjpeg: false, optimiseCoding: enc.optimiseCoding ?? false })
  else if (enc.format === 'png') img = img.png({ compressionLevel: 9, palette: false })
  else img = img.webp({ quality: enc.quality })
  const { data, info } = await img.toBuffer({ resolveWithObject: true })
  if (info.width !== target.width || info.height !== target.height || info.channels !== 3) {
    throw new Error(`[prefpipe] processImages: sharp wrote ${info.width}x${info.height}x${info.channels}, expected ${target.width}x${target.height}x3`)
  }
  return { bytes: data, width: info.width, height: info.height }
}

/**
 * Whether an ICC profile describes sRGB, by its description tag (`desc` or `mluc`): "sRGB IEC61966-2.1",
 * "sRGB built-in", "Nikon sRGB 4.0.0.3001", ... A profile that cannot be read counts as not sRGB (the image is
 * then converted, which is always safe).
 *
 * @example
 * isSrgbProfile((await sharp(bytes).metadata()).icc!) // true for most camera JPEGs
 */
export function isSrgbProfile(icc: Uint8Array): boolean {
  const description = iccDescription(icc)
  return description !== null && /\bs ?RGB\b/i.test(description)
}

/**
 * The description of an ICC profile (its `desc` tag, v2 `desc` or v4 `mluc`), or `null` if it has none
 * that can be read.
 *
 * @example
 * iccDescription((await sharp(bytes).metadata()).icc!) // 'sRGB IEC61966-2.1'
 */
export function iccDescription(icc: Uint8Array): string | null {
  if (icc.byteLength < 132) return null
  const view = new DataView(icc.buffer, icc.byteOffset, icc.byteLength)
  const ascii = (at: number, n: number) => String.fromCharCode(...icc.subarray(at, at + n))
  const count = view.getUint32(128)
  for (let t = 0; t < count && 132 + t * 12 + 12 <= icc.byteLength; t++) {
    const at = 132 + t * 12
    if (ascii(at, 4) !== 'desc') continue
    const off = view.getUint32(at + 4)
    const size = view.getUint32(at + 8)
    if (off + size > icc.byteLength || size < 12) return null
    const type = ascii(off, 4)
    if (type === 'desc') {
      const n = view.getUint32(off + 8)
      if (off + 12 + n > icc.byteLength) return null
      return ascii(off + 12, Math.min(256, Math.max(0, n - 1)))
    }
    if (type === 'mluc') {
      const records = view.getUint32(off + 8)
      if (records < 1 || off + 28 > icc.byteLength) return null
      const len = Math.min(512, view.getUint32(off + 20))
      const start = off + view.getUint32(off + 24)
      if (start + len > icc.byteLength) return null
      let s = ''
      for (let k = 0; k + 1 < len; k += 2) s += String.fromCharCode(view.getUint16(start + k))
      return s
    }
    return null
  }
  return null
}
