/**
 * A header probe for plain JPEGs in JavaScript, so the common case does not pay for a sharp call (about 1 ms
 * of CPU per image, the cost of `sharp().metadata()`) before the one that decodes. It answers only for files
 * whose header it fully understands and that {@link probeImage} would describe the same way; for anything
 * else it returns `null` and the caller asks sharp (`probeImage`).
 */
import type { DecodeGuard, ImageProbe } from './decode.js'

/**
 * The {@link ImageProbe} of a baseline/extended/progressive 8-bit, 3-component JPEG without EXIF, ICC or
 * Adobe segments, read from its markers up to the first SOS; `null` when the file is anything else (then
 * `probeImage` decides, with sharp). A file it answers for is one `probeImage` describes identically:
 * `jpeg`, stored size = oriented size, orientation 1, `srgb`, 3 channels, `uchar`, no alpha, no palette,
 * one page, no ICC. Guards that refuse (format not accepted, too many pixels) are left to `probeImage` as
 * well, so refusals keep their messages.
 *
 * @example
 * const probe = probeJpegHeader(bytes, guard) ?? (await probeImage(bytes, guard))
 */
export function probeJpegHeader(bytes: Uint8Array, guard: Pick<DecodeGuard, 'limitInputPixels' | 'inputFormats'>): ({ ok: true } & ImageProbe) | null {
  const n = bytes.byteLength
  if (n < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) return null
  if (!(guard.inputFormats as readonly string[]).includes('jpeg')) return null
  let i = 2
  let sof: { width: number; height: number; progressive: boolean } | null = null
  let dqt = false
  for (;;) {
    if (i + 4 > n || bytes[i] !== 0xff) return null
    let marker = bytes[i + 1]!
    // Fill bytes (0xff 0xff ...) may precede a marker.
    while (marker === 0xff) {
      i++
      if (i + 4 > n) return null
      marker = bytes[i + 1]!
    }
    if (marker === 0xd8 || marker === 0xd9 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01 || marker === 0x00) return null
    const len = (bytes[i + 2]! << 8) | bytes[i + 3]!
    if (len < 2 || i + 2 + len > n) return null
    const seg = i + 4
    if (marker === 0xda) {
      // SOS: the header is over. A frame and quantisation tables must have come first.
      if (!sof || !dqt) return null
      break
    }
    if (marker === 0xc0 || marker === 0xc1 || marker === 0xc2) {
      if (sof || len !== 8 + 3 * 3) return null // a second frame, or not 3 components
      const precision = bytes[seg]!
      const height = (bytes[seg + 1]! << 8) | bytes[seg + 2]!
      const width = (bytes[seg + 3]! << 8) | bytes[seg + 4]!
      const components = bytes[seg + 5]!
      if (precision !== 8 || components !== 3 || width === 0 || height === 0) return null
      sof = { width, height, progressive: marker === 0xc2 }
    } else if (marker >= 0xc3 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return null // lossless, hierarchical or arithmetic-coded frames: leave them to sharp
    } else if (marker === 0xdb) {
      dqt = true
    } else if (marker === 0xe1 && ascii(bytes, seg, 'Exif\0')) {
      return null // EXIF (orientation): sharp reads it
    } else if (marker === 0xe2 && ascii(bytes, seg, 'ICC_PROFILE\0')) {
      return null // an ICC profile: sharp assembles it
    } else if (marker === 0xee && ascii(bytes, seg, 'Adobe')) {
      return null // Adobe transform flags: sharp interprets them
    } else if (marker === 0xdc || marker === 0xde || marker === 0xdf) {
      return null // DNL, DHP, EXP
    }
    i += 2 + len
  }
  const { width, height, progressive } = sof
  if (width * height > guard.limitInputPixels) return null
  return {
    ok: true,
    format: 'jpeg',
    width,
    height,
    orientedWidth: width,
    orientedHeight: height,
    orientation: 1,
    space: 'srgb',
    channels: 3,
    depth: 'uchar',
    hasAlpha: false,
    isPalette: false,
    isProgressive: progressive,
    pages: 1,
  }
}

function ascii(b: Uint8Array, at: number, s: string): boolean {
  if (at + s.length > b.byteLength) return false
  for (let k = 0; k < s.length; k++) if (b[at + k] !== s.charCodeAt(k)) return false
  return true
}
