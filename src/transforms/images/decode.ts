/**
 * Safe decoding: read an image's header with sharp, refuse what should not be decoded (empty, not an image,
 * a format we do not accept, too many pixels, animated), and turn sharp's errors into stable reason codes.
 */
import sharp, { type Metadata, type SharpOptions } from 'sharp'

/**
 * Every reason code the images stage rejects a row with, and what it means. Stable: they appear in
 * `rejects.jsonl` and in the run report.
 *
 * @example
 * Object.keys(IMAGE_REJECT_REASONS) // ['image_missing', 'image_unreadable', 'image_empty', ...]
 */
export const IMAGE_REJECT_REASONS = {
  image_missing: 'an image has neither bytes nor a path',
  image_unreadable: 'an image path could not be read',
  image_empty: 'an image has zero bytes',
  image_unsupported: 'the bytes are not an image, or not in a format the stage accepts (`inputFormats`)',
  image_corrupt: 'the image is truncated or its data is corrupt (it fails to decode under `failOn`)',
  image_too_large: 'the image has more pixels than `limitInputPixels` (a decompression-bomb guard)',
  image_animated: 'the image is animated (GIF/WebP with several frames) and `animated` is "reject"',
  image_aspect: 'the image is more than `maxAspectRatio` times as long as it is wide (or the other way round)',
  image_unfit: 'no size on the model grid fits the pixel budget (a very thin image under a small `maxPixels`)',
  duplicate_row: 'an earlier emitted row has the same system prompt, prompt, chosen, rejected and images',
  exceeds_cutoff: 'the estimated token count of the row (text + image tokens + template) is above `cutoffLen`',
  near_duplicate: 'an image is a near-duplicate of an image of an earlier emitted row (`nearDuplicates: "drop"`)',
} as const

/** A reason code of {@link IMAGE_REJECT_REASONS}. */
export type ImageRejectReason = keyof typeof IMAGE_REJECT_REASONS

/** Input formats (sharp's names) the stage can be told to accept. */
export const INPUT_FORMATS = ['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif', 'heif'] as const
/** An input format of {@link INPUT_FORMATS}. */
export type InputFormat = (typeof INPUT_FORMATS)[number]

/** How sensitive decoding is to bad data (sharp's `failOn`, least to most sensitive). */
export type FailOn = 'none' | 'truncated' | 'error' | 'warning'

/** What {@link probeImage} needs. */
export interface DecodeGuard {
  limitInputPixels: number
  failOn: FailOn
  inputFormats: readonly InputFormat[]
  animated: 'reject' | 'first'
}

/** The header facts of an image the rest of the stage decides on. */
export interface ImageProbe {
  format: InputFormat
  /** As stored (before EXIF orientation). */
  width: number
  height: number
  /** After EXIF orientation (5-8 swap the sides). */
  orientedWidth: number
  orientedHeight: number
  /** EXIF orientation, 1 when absent. */
  orientation: number
  /** sharp's interpretation: `srgb`, `b-w`, `cmyk`, `rgb16`, `grey16`, ... */
  space: string
  channels: number
  /** sharp's band format: `uchar` for 8-bit. */
  depth: string
  hasAlpha: boolean
  isPalette: boolean
  isProgressive: boolean
  /** Frames (animated GIF/WebP) or pages (TIFF, HEIF); 1 when single. */
  pages: number
  /** The embedded ICC profile, if any. */
  icc?: Buffer
}

/** A refusal: the reason code and a readable cause (without the row context). */
export interface ImageFailure {
  ok: false
  reason: ImageRejectReason
  message: string
  detail?: Record<string, unknown>
}

/**
 * Options for every sharp constructor of the stage: the pixel limit, `failOn`, and the first frame only.
 *
 * @example
 * await sharp(bytes, sharpInput({ limitInputPixels: 89_478_485, failOn: 'error' })).toBuffer()
 */
export function sharpInput(guard: Pick<DecodeGuard, 'limitInputPixels' | 'failOn'>): SharpOptions {
  return { limitInputPixels: guard.limitInputPixels, failOn: guard.failOn, pages: 1, page: 0 }
}

/**
 * Read the header of `bytes` (no pixel decoding) and check it against the guards: empty bytes
 * (`image_empty`), not an image or a format outside `inputFormats` (`image_unsupported`), a header sharp
 * cannot parse (`image_corrupt`), more pixels than `limitInputPixels` (`image_too_large`), several frames of a
 * GIF or WebP with `animated: 'reject'` (`image_animated`). Truncated or corrupt pixel data is only found when
 * the pixels are decoded (see {@link classifyDecodeError}).
 *
 * @example
 * const probe = await probeImage(bytes, { limitInputPixels: 89_478_485, failOn: 'error', inputFormats: ['jpeg', 'png'], animated: 'reject' })
 * if (probe.ok) console.log(probe.orientedWidth, probe.orientedHeight)
 */
export async function probeImage(bytes: Uint8Array, guard: DecodeGuard): Promise<({ ok: true } & ImageProbe) | ImageFailure> {
  if (bytes.byteLength === 0) return { ok: false, reason: 'image_empty', message: 'it has zero bytes' }
  let md: Metadata
  try {
    // The header only: no pixel limit here, so an oversized image is reported as such, not as an error.
    md = await sharp(bytes, { limitInputPixels: false, failOn: guard.failOn }).metadata()
  } catch (err) {
    return classifyDecodeError(err, bytes)
  }
  const format = md.format as string
  if (!(guard.inputFormats as readonly string[]).includes(format)) {
    return { ok: false, reason: 'image_unsupported', message: `it is ${format.toUpperCase()}, not one of the accepted formats (${guard.inputFormats.join(', ')})`, detail: { format } }
  }
  if (format === 'heif' && md.compression === 'hevc') {
    return { ok: false, reason: 'image_unsupported', message: 'it is HEIC (HEVC-coded HEIF), which this build of sharp cannot decode', detail: { format: 'heic' } }
  }
  const pages = md.pages ?? 1
  const pixels = md.width * (md.pageHeight && pages > 1 ? md.pageHeight : md.height)
  if (pixels > guard.limitInputPixels) {
    return { ok: false, reason: 'image_too_large', message: `it has ${md.width}x${md.height} = ${pixels} pixels, above limitInputPixels (${guard.limitInputPixels})`, detail: { width: md.width, height: md.height, limitInputPixels: guard.limitInputPixels } }
  }
  if (pages > 1 && (format === 'gif' || format === 'webp') && guard.animated === 'reject') {
    return { ok: false, reason: 'image_animated', message: `it is an animated ${format.toUpperCase()} with ${pages} frames (pass animated: 'first' to keep the first frame)`, detail: { format, frames: pages } }
  }
  const orientation = md.orientation ?? 1
  const height = pages > 1 && md.pageHeight ? md.pageHeight : md.height
  const swap = orientation >= 5 && orientation <= 8
  return {
    ok: true,
    format: format as InputFormat,
    width: md.width,
    height,
    orientedWidth: swap ? height : md.width,
    orientedHeight: swap ? md.width : height,
    orientation,
    space: md.space,
    channels: md.channels,
    depth: md.depth,
    hasAlpha: md.hasAlpha,
    isPalette: md.isPalette,
    isProgressive: md.isProgressive,
    pages,
    ...(md.icc ? { icc: md.icc } : {}),
  }
}

/**
 * Turn an error thrown by sharp while reading `bytes` into a reason code: an empty buffer (`image_empty`),
 * an unknown format (`image_unsupported`), the pixel limit (`image_too_large`), anything else (truncated
 * data, bad markers, CRC errors) `image_corrupt`.
 *
 * @example
 * classifyDecodeError(new Error('Input buffer contains unsupported image format'), bytes).reason // 'image_unsupported'
 */
export function classifyDecodeError(err: unknown, bytes: Uint8Array): ImageFailure {
  const text = err instanceof Error ? err.message : String(err)
  const cause = text.split('\n')[0]!.trim()
  if (/buffer is empty/i.test(text) || bytes.byteLength === 0) return { ok: false, reason: 'image_empty', message: 'it has zero bytes' }
  if (/unsupported image format/i.test(text)) {
    const head = Buffer.from(bytes.subarray(0, 8)).toString('hex')
    return { ok: false, reason: 'image_unsupported', message: `its bytes are not an image sharp can read (first bytes: ${head})`, detail: { head } }
  }
  if (/exceeds pixel limit/i.test(text)) return { ok: false, reason: 'image_too_large', message: `it has more pixels than limitInputPixels (${cause})` }
  return { ok: false, reason: 'image_corrupt', message: `it is truncated or corrupt (${cause})`, detail: { cause } }
}
