import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import sharp from 'sharp'
import { beforeAll, describe, expect, it } from 'vitest'
import { blockMeansFromPixels, hammingDistance, jpegBlockMeans, perceptualHash, phashFromBlockMeans, phashFromGrey } from '../../../src/transforms/images/index.js'
import { PHOTOS } from './helpers.js'

const guard = { limitInputPixels: 1e8, failOn: 'error' as const }

/** The pHash of decoded pixels: sharp's decode, then the block means in JS (the route of non-JPEG images). */
async function pixelRouteHash(bytes: Buffer): Promise<bigint> {
  const { data, info } = await sharp(bytes).toColourspace('srgb').raw().toBuffer({ resolveWithObject: true })
  const grid = blockMeansFromPixels(data, info.width, info.height, info.channels)
  return phashFromBlockMeans(grid.means, grid.cols, grid.rows)
}

let photos: Buffer[] = []
beforeAll(async () => {
  const names = (await readdir(PHOTOS)).filter((n) => /\.jpe?g$/i.test(n)).sort()
  // 12 photos, each made the 512x384 baseline JPEG the images stage writes
  photos = await Promise.all(
    names.slice(0, 12).map(async (n) => sharp(await readFile(join(PHOTOS, n))).resize(512, 384, { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer()),
  )
})

describe('phashFromBlockMeans', () => {
  it('is phashFromGrey on a 32x32 grid, and all ones on a flat grid of any size', () => {
    const grey = Uint8Array.from({ length: 1024 }, (_, i) => (i * 37 + (i >> 5) * 11) & 255)
    expect(phashFromBlockMeans(Float64Array.from(grey), 32, 32)).toBe(phashFromGrey(grey))
    for (const [c, r] of [[64, 48], [7, 7], [1, 1], [100, 3]] as const) expect(phashFromBlockMeans(new Float64Array(c * r).fill(90), c, r)).toBe(0xffffffffffffffffn)
    expect(() => phashFromBlockMeans(new Float64Array(10), 4, 4)).toThrow(RangeError)
  })

  it('resamples by area: a 64x64 grid of 2x2 equal cells hashes as its 32x32 cells', () => {
    const grey = Uint8Array.from({ length: 1024 }, (_, i) => (i * 73) & 255)
    const big = new Float64Array(64 * 64)
    for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) big[y * 64 + x] = grey[(y >> 1) * 32 + (x >> 1)]!
    expect(phashFromBlockMeans(big, 64, 64)).toBe(phashFromGrey(grey))
  })
})

describe('blockMeansFromPixels', () => {
  it('averages 8x8 blocks of Rec. 601 luma, padding partial blocks with the last column and row', () => {
    // 10x9 RGB: column x has luma 10x (grey pixels), so the right block holds columns 8, 9 and six copies of 9
    const w = 10
    const h = 9
    const px = new Uint8Array(w * h * 3)
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px.fill(10 * x, (y * w + x) * 3, (y * w + x) * 3 + 3)
    const { cols, rows, means } = blockMeansFromPixels(px, w, h, 3)
    expect([cols, rows]).toEqual([2, 2])
    expect(means[0]).toBeCloseTo(35, 9) // columns 0-7
    expect(means[1]).toBeCloseTo((80 + 90 * 7) / 8, 9)
    expect(means[2]).toBeCloseTo(35, 9) // row 8 repeated
    const grey = blockMeansFromPixels(new Uint8Array(64).fill(7), 8, 8, 1)
    expect([...grey.means]).toEqual([7])
    const red = blockMeansFromPixels(Uint8Array.from({ length: 8 * 8 * 3 }, (_, i) => (i % 3 === 0 ? 255 : 0)), 8, 8, 3)
    expect(red.means[0]).toBeCloseTo(0.299 * 255, 9)
  })
})

describe('perceptualHash', () => {
  it('hashes a JPEG from its DC coefficients, within 3 bits of the hash of its decoded pixels', async () => {
    for (const jpeg of photos) {
      const dc = jpegBlockMeans(jpeg)!
      const fromDc = phashFromBlockMeans(dc.means, dc.cols, dc.rows)
      expect(await perceptualHash(jpeg, guard)).toBe(fromDc)
      expect(hammingDistance(fromDc, await pixelRouteHash(jpeg))).toBeLessThanOrEqual(3)
      // the same pixels as a PNG take the sharp route and land as close
      const png = await sharp(jpeg).png().toBuffer()
      expect(hammingDistance(fromDc, await perceptualHash(png, guard))).toBeLessThanOrEqual(3)
    }
  })

  it('keeps near-duplicates near and different photos apart', async () => {
    const hashes = await Promise.all(photos.map((p) => perceptualHash(p, guard)))
    for (const [i, jpeg] of photos.entries()) {
      const variants = [
        await sharp(jpeg).jpeg({ quality: 60 }).toBuffer(),
        await sharp(jpeg).modulate({ brightness: 1.05 }).jpeg({ quality: 90 }).toBuffer(),
        await sharp(jpeg).resize(448, 336).jpeg({ quality: 90 }).toBuffer(),
        await sharp(jpeg).resize(512, 384, { fit: 'fill', kernel: 'lanczos3' }).jpeg({ quality: 90, optimiseCoding: false }).toBuffer(),
      ]
      for (const v of variants) expect(hammingDistance(hashes[i]!, await perceptualHash(v, guard))).toBeLessThanOrEqual(6)
    }
    let closest = 64
    for (let i = 0; i < hashes.length; i++) for (let j = i + 1; j < hashes.length; j++) closest = Math.min(closest, hammingDistance(hashes[i]!, hashes[j]!))
    expect(closest).toBeGreaterThan(6)
  })

  it('throws sharp\'s error for a JPEG whose data is cut short (the stage rejects it as image_corrupt)', async () => {
    const cut = photos[0]!.subarray(0, photos[0]!.length >> 1)
    expect(() => jpegBlockMeans(cut)).toThrow()
    await expect(perceptualHash(cut, guard)).rejects.toThrow()
  })
})
