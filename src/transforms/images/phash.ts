/**
 * A 64-bit perceptual hash (pHash, as imagededup computes it) for near-duplicate detection.
 */
import sharp from 'sharp'
import { sharpInput, type DecodeGuard } from './decode.js'

const N = 32
const K = 8

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
  // Rows first: r[y][u] = Σx p[y][x]·C[u][x]; then columns: c[v][u] = Σy C[v][y]·r[y][u].
  const rows = new Float64Array(N * K)
  for (let y = 0; y < N; y++) {
    for (let u = 0; u < K; u++) {
      let s = 0
      for (let x = 0; x < N; x++) s += pixels[y * N + x]! * BASIS[u * N + x]!
      rows[y * K + u] = s
    }
  }
  const coef = new Float64Array(K * K)
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
 * The pHash of an encoded image: decoded under the guards (so it also proves the bytes decode), turned grey,
 * resized to 32x32 with Lanczos-3, then {@link phashFromGrey}.
 *
 * @example
 * const a = await perceptualHash(await readFile('a.jpg'), { limitInputPixels: 1e8, failOn: 'error' })
 */
export async function perceptualHash(bytes: Uint8Array, guard: Pick<DecodeGuard, 'limitInputPixels' | 'failOn'>): Promise<bigint> {
  const { data, info } = await sharp(bytes, sharpInput(guard))
    .flatten({ background: { r: 255, g: 255, b: 255 } })
    .resize(N, N, { fit: 'fill', kernel: 'lanczos3' })
    .toColourspace('b-w')
    .raw()
    .toBuffer({ resolveWithObject: true })
  if (info.channels !== 1) throw new Error(`[prefpipe] perceptualHash: expected 1 channel, got ${info.channels}`)
  return phashFromGrey(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
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
