/**
 * A 64-bit perceptual hash (pHash, as imagededup computes it) for near-duplicate detection.
 *
 * The 32x32 grey image it is taken from is the mean luma of each 8x8 block, resampled by area. For a JPEG
 * those means are its DC coefficients (`jpeg-dc.ts`: no decode, a fraction of a millisecond on the main thread),
 * so the images stage hashes the JPEG it just encoded without decoding it again. Other images are decoded with
 * sharp and averaged the same way, padding partial blocks by repeating the last row and column as a JPEG
 * encoder does.
 */
import sharp from 'sharp'
import { sharpInput, type DecodeGuard } from './decode.js'
import { JpegDataError, jpegBlockMeans } from './jpeg-dc.js'

const N = 32
const K = 8

// Scratch memory of the (synchronous) hash functions, reused: typed arrays above 64 bytes live outside V8's heap,
// and allocating a few per image made the garbage collector run a full collection every few dozen images.
const ROWS = new Float64Array(N * K)
const COEF = new Float64Array(K * K)
const GREY = new Float64Array(N * N)
let across = new Float64Array(64 * N)
const blockMeans = new Float64Array(128 * 128)
/** Area weights by axis length (output sizes of the stage repeat). */
const WEIGHTS = new Map<number, [number, number, number][]>()

/**
 * The version of the hash's definition. It is part of the image journal's fingerprint, so that hashes made under
 * another definition are not reused. 1: Lanczos-3 to 32x32 of the decoded image; 2: 8x8 block means.
 */
export const PHASH_VERSION = 2

/** cos((2x+1)uπ/2N) for u < 8, x < 32: the rows of the DCT-II basis we need. */
const BASIS: Float64Array = (() => {
  const t = new Float64Array(K * N)
  for (let u = 0; u < K; u++) for (let x = 0; x < N; x++) t[u * N + x] = Math.cos(((2 * x + 1) * u * Math.PI) / (2 * N))
  return t
})()

/**
 * The pHash of a 32x32 greyscale image (row-major bytes): the 8x8 lowest frequencies of its 2-D DCT-II,
 * each bit set when the coefficient is at least the median of the 63 non-DC ones (imagededup's `PHash`).
 * Bit 63 (the most significant) is coefficient (0,0), then row by row.
 *
 * @example
 * phashFromGrey(new Uint8Array(32 * 32).fill(128)) // 0xffffffffffffffffn for a flat image
 */
export function phashFromGrey(pixels: Uint8Array): bigint {
  if (pixels.length !== N * N) throw new RangeError(`phashFromGrey: expected ${N * N} pixels, got ${pixels.length}`)
  return phashOf32(pixels)
}

/** The DCT and median bits of {@link phashFromGrey}, for any 32x32 grey values. */
function phashOf32(pixels: ArrayLike<number>): bigint {
  // Rows first: r[y][u] = Σx p[y][x]·C[u][x]; then columns: c[v][u] = Σy C[v][y]·r[y][u].
  const rows = ROWS
  for (let y = 0; y < N; y++) {
    for (let u = 0; u < K; u++) {
      let s = 0
      for (let x = 0; x < N; x++) s += pixels[y * N + x]! * BASIS[u * N + x]!
      rows[y * K + u] = s
    }
  }
  const coef = COEF
  for (let v = 0; v < K; v++) {
    for (let u = 0; u < K; u++) {
      let s = 0
      for (let y = 0; y < N; y++) s += BASIS[v * N + y]! * rows[y * K + u]!
      // Rounded so that float noise (±1e-12 where the exact value is 0, e.g. a flat image) cannot flip bits.
      coef[v * K + u] = Math.round(s * 1e6) / 1e6
    }
  }
  const median = [...coef.subarray(1)].sort((a, b) => a - b)[31]!
  let hash = 0n
  for (let i = 0; i < K * K; i++) hash = (hash << 1n) | (coef[i]! >= median ? 1n : 0n)
  return hash
}

/**
 * The pHash of a grid of 8x8-block mean lumas (`cols` x `rows`, row-major): the grid resampled to 32x32 by area
 * (each output cell the overlap-weighted mean of the blocks it covers; a grid under 32 is enlarged the same
 * way), then {@link phashFromGrey}'s DCT and median bits.
 *
 * @example
 * phashFromBlockMeans(new Float64Array(64 * 48).fill(128), 64, 48) // 0xffffffffffffffffn for a flat image
 */
export function phashFromBlockMeans(means: ArrayLike<number>, cols: number, rows: number): bigint {
  if (!(cols >= 1 && rows >= 1 && means.length === cols * rows)) throw new RangeError(`phashFromBlockMeans: expected ${cols}x${rows} means, got ${means.length}`)
  const wx = areaWeights(cols)
  const wy = areaWeights(rows)
  // Across first: each grid row to 32 values; then down.
  if (across.length < rows * N) across = new Float64Array(rows * N)
  across.fill(0, 0, rows * N)
  for (let r = 0; r < rows; r++) {
    for (const [o, i, w] of wx) across[r * N + o] = across[r * N + o]! + means[r * cols + i]! * w
  }
  const grey = GREY.fill(0)
  for (const [o, r, w] of wy) {
    for (let x = 0; x < N; x++) grey[o * N + x] = grey[o * N + x]! + across[r * N + x]! * w
  }
  return phashOf32(grey)
}

/** For a length-`n` axis resampled to 32 by area: [output cell, input index, weight] with weights summing to 1 per cell. */
function areaWeights(n: number): [number, number, number][] {
  const cached = WEIGHTS.get(n)
  if (cached) return cached
  const out: [number, number, number][] = []
  for (let o = 0; o < N; o++) {
    const start = (o * n) / N
    const end = ((o + 1) * n) / N
    for (let i = Math.floor(start); i < Math.min(n, Math.ceil(end)); i++) {
      const overlap = Math.min(end, i + 1) - Math.max(start, i)
      if (overlap > 0) out.push([o, i, overlap / (end - start)])
    }
  }
  if (WEIGHTS.size < 4096) WEIGHTS.set(n, out)
  return out
}

/**
 * The 8x8-block mean lumas of decoded pixels (1 channel: grey; 3 or more: Rec. 601 luma of the first three, as a
 * JPEG encoder computes Y), a partial block at the right or bottom edge padded by repeating the last column and
 * row (as a JPEG encoder pads). The grid {@link phashFromBlockMeans} takes.
 *
 * @example
 * blockMeansFromPixels(new Uint8Array(16 * 8 * 3).fill(200), 16, 8, 3) // { cols: 2, rows: 1, means: [200, 200] }
 */
export function blockMeansFromPixels(data: Uint8Array, width: number, height: number, channels: number): { cols: number; rows: number; means: Float64Array } {
  if (data.length < width * height * channels || width < 1 || height < 1) throw new RangeError(`blockMeansFromPixels: ${data.length} bytes for ${width}x${height}x${channels}`)
  const cols = Math.ceil(width / 8)
  const rows = Math.ceil(height / 8)
  const sums = new Float64Array(cols * rows)
  const luma = new Float64Array(width)
  for (let y = 0; y < rows * 8; y++) {
    const sy = Math.min(y, height - 1)
    // One source row is reused for every padding row below the image.
    if (y === sy) {
      for (let x = 0; x < width; x++) {
        const o = (sy * width + x) * channels
        luma[x] = channels < 3 ? data[o]! : 0.299 * data[o]! + 0.587 * data[o + 1]! + 0.114 * data[o + 2]!
      }
    }
    const base = (y >> 3) * cols
    for (let x = 0; x < cols * 8; x++) sums[base + (x >> 3)] = sums[base + (x >> 3)]! + luma[Math.min(x, width - 1)]!
  }
  for (let i = 0; i < sums.length; i++) sums[i] = sums[i]! / 64
  return { cols, rows, means: sums }
}

/**
 * The pHash of an encoded image. A JPEG that `jpegBlockMeans` reads is hashed from its DC coefficients; any
 * other image (and a JPEG whose entropy data that reader refuses) is decoded with sharp under the guards,
 * flattened onto white, converted to sRGB and averaged by block. So a file whose pixel data does not decode
 * throws sharp's error (see `classifyDecodeError`).
 *
 * @example
 * const a = await perceptualHash(await readFile('a.jpg'), { limitInputPixels: 1e8, failOn: 'error' })
 */
export async function perceptualHash(bytes: Uint8Array, guard: Pick<DecodeGuard, 'limitInputPixels' | 'failOn'>): Promise<bigint> {
  let blocks: ReturnType<typeof jpegBlockMeans> = null
  try {
    blocks = jpegBlockMeans(bytes, blockMeans)
  } catch (err) {
    if (!(err instanceof JpegDataError)) throw err
    // sharp decides whether it is corrupt (and says how), or decodes it leniently.
  }
  if (blocks) return phashFromBlockMeans(blocks.means, blocks.cols, blocks.rows)
  const { data, info } = await sharp(bytes, sharpInput(guard))
    .flatten({ background: { r: 255, g: 255, b: 255 } })
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true })
  const grid = blockMeansFromPixels(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), info.width, info.height, info.channels)
  return phashFromBlockMeans(grid.means, grid.cols, grid.rows)
}

/**
 * The number of differing bits of two 64-bit hashes.
 *
 * @example
 * hammingDistance(0b1011n, 0b0001n) // 2
 */
export function hammingDistance(a: bigint, b: bigint): number {
  const x = BigInt.asUintN(64, a ^ b)
  return popcount32(Number(x & 0xffffffffn)) + popcount32(Number(x >> 32n))
}

/**
 * Set bits of a 32-bit integer.
 *
 * @example
 * popcount32(0xff) // 8
 */
export function popcount32(v: number): number {
  v = v - ((v >>> 1) & 0x55555555)
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333)
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24
}

/**
 * A 64-bit hash as 16 hex digits (for messages and JSON).
 *
 * @example
 * hashHex(255n) // '00000000000000ff'
 */
export function hashHex(h: bigint): string {
  return BigInt.asUintN(64, h).toString(16).padStart(16, '0')
}
