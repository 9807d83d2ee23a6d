/**
 * Lossless metadata removal for images kept as is: the compressed pixel data is copied byte for byte, only
 * metadata (EXIF, XMP, IPTC, ICC profiles, comments, text chunks, timestamps) and anything after the end marker go.
 * A file with none of these comes back as the very same bytes.
 */

/**
 * Remove the metadata of a JPEG: every APP1-APP15 segment except APP14 (`Adobe`, which tells decoders the
 * colour transform) and every COM segment, plus fill bytes and any data after EOI. SOI, APP0 (JFIF), DQT,
 * DHT, SOF, DRI, SOS and the entropy-coded data are kept as they are. Returns `null` for a stream it cannot
 * walk with confidence (no SOI, a bad segment length, no EOI: e.g. a truncated file); the caller then
 * re-encodes, which reports the damage.
 *
 * Only call it for an image whose ICC profile (if any) is sRGB: the profile is dropped with the rest.
 *
 * @example
 * const clean = stripJpegMetadata(bytes) ?? (await reencode(bytes))
 */
export function stripJpegMetadata(b: Uint8Array): Uint8Array | null {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return null
  const parts: Uint8Array[] = [b.subarray(0, 2)]
  let i = 2
  while (i < b.length) {
    if (b[i] !== 0xff) return null
    let j = i + 1
    while (j < b.length && b[j] === 0xff) j++ // fill bytes
    if (j >= b.length) return null
    const marker = b[j]!
    const start = j - 1 // one 0xFF, without the fill
    if (marker === 0xd9) {
      parts.push(b.subarray(start, j + 1))
      return joinIfChanged(b, parts)
    }
    // Standalone markers (TEM, RSTn) never come between segments of a sane file; SOI again is not sane either.
    if (marker === 0x00 || marker === 0x01 || marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7)) return null
    if (j + 2 >= b.length) return null
    const length = (b[j + 1]! << 8) | b[j + 2]!
    if (length < 2) return null
    const end = j + 1 + length
    if (end > b.length) return null
    const metadata = (marker >= 0xe1 && marker <= 0xef && marker !== 0xee) || marker === 0xfe
    if (!metadata) parts.push(b.subarray(start, end))
    i = end
    if (marker === 0xda) {
      // Entropy-coded data runs to the next marker that is not byte stuffing (FF 00) or a restart (FF D0-D7).
      let k = i
      for (;;) {
        while (k < b.length && b[k] !== 0xff) k++
        if (k >= b.length) return null // no EOI: truncated
        let n = k + 1
        while (n < b.length && b[n] === 0xff) n++
        if (n >= b.length) return null
        const x = b[n]!
        if (x === 0x00 || (x >= 0xd0 && x <= 0xd7)) {
          k = n + 1
          continue
        }
        break
      }
      parts.push(b.subarray(i, k))
      i = k
    }
  }
  return null
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]

/** Ancillary PNG chunks that only describe how to display the pixels, and are kept. */
const PNG_KEPT_ANCILLARY = new Set(['pHYs', 'sRGB', 'gAMA', 'cHRM', 'sBIT'])

/**
 * Remove the metadata of a PNG: every ancillary chunk except the display hints `pHYs`, `sRGB`, `gAMA`,
 * `cHRM` and `sBIT` (so `tEXt`, `zTXt`, `iTXt`, `eXIf`, `iCCP`, `tIME`, `bKGD`, APNG's `acTL`/`fcTL`/`fdAT`
 * and private chunks go), and anything after IEND. Critical chunks (IHDR, PLTE, IDAT, IEND) are copied byte for
 * byte, CRCs included. Returns `null` for a stream it cannot walk (bad signature, a chunk running past the
 * end, no IEND).
 *
 * Only call it for an 8-bit RGB image without transparency whose colour profile (if any) is sRGB.
 *
 * @example
 * const clean = stripPngMetadata(bytes) ?? (await reencode(bytes))
 */
export function stripPngMetadata(b: Uint8Array): Uint8Array | null {
  if (b.length < 8 || PNG_SIGNATURE.some((x, k) => b[k] !== x)) return null
  const parts: Uint8Array[] = [b.subarray(0, 8)]
  let i = 8
  while (i + 12 <= b.length) {
    const length = ((b[i]! << 24) >>> 0) + (b[i + 1]! << 16) + (b[i + 2]! << 8) + b[i + 3]!
    const end = i + 12 + length
    if (end > b.length) return null
    const type = String.fromCharCode(b[i + 4]!, b[i + 5]!, b[i + 6]!, b[i + 7]!)
    const critical = (b[i + 4]! & 0x20) === 0
    if (critical || PNG_KEPT_ANCILLARY.has(type)) parts.push(b.subarray(i, end))
    if (type === 'IEND') return joinIfChanged(b, parts)
    i = end
  }
  return null
}

/** The original bytes when nothing was removed (so kept files stay byte-identical), else the joined parts. */
function joinIfChanged(original: Uint8Array, parts: Uint8Array[]): Uint8Array {
  const total = parts.reduce((n, p) => n + p.byteLength, 0)
  if (total === original.byteLength) return original
  return Buffer.concat(parts, total)
}
