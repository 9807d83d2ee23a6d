import { createHash } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import sharp from 'sharp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ImageRef } from '../../../src/record.js'
import { isSrgbProfile } from '../../../src/transforms/images/index.js'
import { noise, one, pixel, row, runImages, solid } from './helpers.js'

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

/** Every channel of `got` within `tol` of `want`. */
function near(got: number[], want: number[], tol: number): void {
  expect(got.length).toBe(want.length)
  got.forEach((v, i) => expect(Math.abs(v - want[i]!), `channel ${i}: got ${got.join(',')}, want ${want.join(',')}`).toBeLessThanOrEqual(tol))
}

/** The output is an 8-bit sRGB JPEG with three channels, no alpha, no metadata, of this size. */
async function expectClean(ref: ImageRef | undefined, width: number, height: number) {
  expect(ref).toBeDefined()
  const md = await sharp(ref!.bytes!).metadata()
  expect({ format: md.format, width: md.width, height: md.height, channels: md.channels, space: md.space, depth: md.depth, hasAlpha: md.hasAlpha }).toEqual({
    format: 'jpeg', width, height, channels: 3, space: 'srgb', depth: 'uchar', hasAlpha: false,
  })
  expect(md.exif).toBeUndefined()
  expect(md.icc).toBeUndefined()
  expect(md.orientation).toBeUndefined()
  expect(ref!.path).toBeUndefined()
  expect(ref!).toMatchObject({ width, height, format: 'jpeg', sha256: sha(ref!.bytes!) })
}

describe('decoding and normalising tricky images', () => {
  it('CMYK JPEG with an embedded profile -> sRGB through the profile', async () => {
    const input = await solid(280, 196, { r: 200, g: 30, b: 40 }).withIccProfile('cmyk').jpeg().toBuffer()
    const md = await sharp(input).metadata()
    expect([md.space, md.channels, md.hasProfile]).toEqual(['cmyk', 4, true])
    const { ref, stats } = await one(input)
    await expectClean(ref, 280, 196)
    near(await pixel(ref!.bytes!, 140, 98), [200, 30, 40], 16)
    expect(ref).toMatchObject({ reencoded: true, original: { sha256: sha(input), bytes: input.length, format: 'jpeg', width: 280, height: 196, orientation: 1 } })
    expect(stats.counters).toMatchObject({ 'reencode.cmyk': 1, imagesReencoded: 1 })
  })

  it('PNG with alpha -> composited onto white', async () => {
    const rgba = Buffer.alloc(280 * 196 * 4)
    for (let y = 0; y < 196; y++) {
      for (let x = 0; x < 280; x++) {
        const at = (y * 280 + x) * 4
        if (x >= 140) rgba.set([0, 0, 255, 128], at) // half-transparent blue; left half fully transparent black
      }
    }
    const input = await sharp(rgba, { raw: { width: 280, height: 196, channels: 4 } }).png().toBuffer()
    const { ref, stats } = await one(input)
    await expectClean(ref, 280, 196)
    near(await pixel(ref!.bytes!, 60, 98), [255, 255, 255], 2) // transparent -> white, not black
    near(await pixel(ref!.bytes!, 220, 98), [127, 127, 255], 4)
    expect(stats.counters['reencode.alpha']).toBe(1)
  })

  it('16-bit PNG -> 8-bit', async () => {
    const input = await solid(280, 196, { r: 200, g: 30, b: 40 }).toColourspace('rgb16').png().toBuffer()
    expect((await sharp(input).metadata()).depth).toBe('ushort')
    const { ref, stats } = await one(input)
    await expectClean(ref, 280, 196)
    near(await pixel(ref!.bytes!, 140, 98), [200, 30, 40], 3)
    expect(stats.counters['reencode.depth']).toBe(1)
  })

  it('grey JPEG on the grid -> RGB (re-encoded although its size fits)', async () => {
    const input = await solid(280, 196, { r: 100, g: 100, b: 100 }).toColourspace('b-w').jpeg().toBuffer()
    expect((await sharp(input).metadata()).channels).toBe(1)
    const { ref, stats } = await one(input)
    await expectClean(ref, 280, 196)
    near(await pixel(ref!.bytes!, 140, 98), [100, 100, 100], 2)
    expect(stats.counters).toMatchObject({ 'reencode.grey': 1 })
    expect(stats.counters['reencode.size']).toBeUndefined()
  })

  it('EXIF orientation 6 -> rotated 90° clockwise, tag gone; the size is decided after rotating', async () => {
    // Stored 280x196: top half red, bottom half blue. Displayed (rotated clockwise) the top becomes the right.
    const rgb = Buffer.alloc(280 * 196 * 3)
    for (let y = 0; y < 196; y++) for (let x = 0; x < 280; x++) rgb.set(y < 98 ? [255, 0, 0] : [0, 0, 255], (y * 280 + x) * 3)
    const input = await sharp(rgb, { raw: { width: 280, height: 196, channels: 3 } }).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer()
    const { ref, stats } = await one(input)
    await expectClean(ref, 196, 280)
    near(await pixel(ref!.bytes!, 160, 140), [255, 0, 0], 12)
    near(await pixel(ref!.bytes!, 36, 140), [0, 0, 255], 12)
    expect(ref!.original).toMatchObject({ width: 280, height: 196, orientation: 6 })
    expect(stats.counters).toMatchObject({ 'reencode.orientation': 1 })
    expect(stats.counters['reencode.size']).toBeUndefined() // 196x280 is on the grid once rotated
  })

  it('palette PNG -> RGB', async () => {
    const rgb = Buffer.alloc(280 * 196 * 3)
    for (let y = 0; y < 196; y++) for (let x = 0; x < 280; x++) rgb.set(x < 140 ? [255, 0, 0] : [0, 0, 255], (y * 280 + x) * 3)
    const input = await sharp(rgb, { raw: { width: 280, height: 196, channels: 3 } }).png({ palette: true }).toBuffer()
    expect((await sharp(input).metadata()).isPalette).toBe(true)
    const { ref, stats } = await one(input)
    await expectClean(ref, 280, 196)
    near(await pixel(ref!.bytes!, 60, 98), [255, 0, 0], 8)
    near(await pixel(ref!.bytes!, 220, 98), [0, 0, 255], 8)
    expect(stats.counters['reencode.palette']).toBe(1)
  })

  it('20x20 -> scaled up to 56x56 (Qwen min_pixels 3136, smart_resize ceil)', async () => {
    const input = await solid(20, 20, { r: 0, g: 160, b: 0 }).png().toBuffer()
    const { ref, stats } = await one(input)
    await expectClean(ref, 56, 56)
    near(await pixel(ref!.bytes!, 28, 28), [0, 160, 0], 4)
    expect(stats.counters['reencode.size']).toBe(1)
  })

  it('12000x12000 flat colour: refused by default (limitInputPixels), scaled to 504x504 when allowed', async () => {
    const input = await solid(12000, 12000, { r: 255, g: 255, b: 255 }).png({ compressionLevel: 1 }).toBuffer()
    const refused = await one(input)
    expect(refused.out).toEqual([])
    expect(refused.reject).toMatchObject({ reason: 'image_too_large', stage: 'images', detail: { image: 0, width: 12000, height: 12000, limitInputPixels: 89_478_485 } })
    expect(refused.reject!.message).toMatch(/144000000 pixels, above limitInputPixels/)
    const { ref } = await one(input, { limitInputPixels: 150_000_000 })
    await expectClean(ref, 504, 504)
    near(await pixel(ref!.bytes!, 250, 250), [255, 255, 255], 1)
  }, 30_000)

  it('truncated JPEG -> image_corrupt, whether or not its size would let it be kept', async () => {
    for (const [w, h] of [[504, 392], [300, 200]] as const) {
      const whole = await noise(w, h).jpeg({ quality: 90 }).toBuffer()
      const { reject, out } = await one(whole.subarray(0, whole.length >> 1))
      expect(out).toEqual([])
      expect(reject).toMatchObject({ reason: 'image_corrupt', detail: { image: 0 } })
      expect(reject!.message).toMatch(/truncated or corrupt \(VipsJpeg: premature end of JPEG/)
    }
  })

  it('text bytes, an SVG, zero bytes -> image_unsupported / image_unsupported / image_empty', async () => {
    expect((await one(Buffer.from('hello, I am not an image'))).reject).toMatchObject({ reason: 'image_unsupported', detail: { head: Buffer.from('hello, I').toString('hex') } })
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><rect width="100" height="100" fill="red"/></svg>')
    expect((await one(svg)).reject).toMatchObject({ reason: 'image_unsupported', message: expect.stringMatching(/SVG, not one of the accepted formats/) })
    expect((await one(new Uint8Array(0))).reject).toMatchObject({ reason: 'image_empty' })
  })

  it('animated GIF -> image_animated by default, the first frame with animated: "first"', async () => {
    const frames = await Promise.all([{ r: 255, g: 0, b: 0 }, { r: 0, g: 0, b: 255 }].map((c) => solid(280, 196, c).png().toBuffer()))
    const gif = await sharp(frames, { join: { animated: true } }).gif().toBuffer()
    expect((await sharp(gif).metadata()).pages).toBe(2)
    const refused = await one(gif)
    expect(refused.reject).toMatchObject({ reason: 'image_animated', detail: { format: 'gif', frames: 2 } })
    const { ref, stats } = await one(gif, { animated: 'first' })
    await expectClean(ref, 280, 196)
    near(await pixel(ref!.bytes!, 140, 98), [255, 0, 0], 12)
    expect(stats.counters).toMatchObject({ 'reencode.format': 1, 'reencode.frames': 1 })
  })

  it('aspect ratio above 180:1 -> image_aspect; a format left out of inputFormats -> image_unsupported', async () => {
    const thin = await solid(2000, 10, { r: 0, g: 0, b: 0 }).png().toBuffer()
    expect((await one(thin)).reject).toMatchObject({ reason: 'image_aspect', detail: { width: 2000, height: 10 } })
    const png = await solid(280, 196, { r: 0, g: 0, b: 0 }).png().toBuffer()
    expect((await one(png, { inputFormats: ['jpeg'] })).reject).toMatchObject({ reason: 'image_unsupported' })
  })
})

describe('output encodings', () => {
  it("format 'png' and 'webp' write RGB files of the same size", async () => {
    const input = await solid(300, 200, { r: 10, g: 200, b: 30, alpha: 0.5 }, 4).png().toBuffer()
    for (const format of ['png', 'webp'] as const) {
      const { ref } = await one(input, { format })
      const md = await sharp(ref!.bytes!).metadata()
      expect({ format: md.format, width: md.width, height: md.height, channels: md.channels, hasAlpha: md.hasAlpha }).toEqual({ format, width: 308, height: 196, channels: 3, hasAlpha: false })
      expect(ref).toMatchObject({ format, width: 308, height: 196, reencoded: true })
    }
  })
})

describe('keeping conforming images as they are', () => {
  it('an sRGB JPEG on the grid without metadata is kept byte for byte', async () => {
    const input = await noise(504, 392).jpeg({ quality: 85 }).toBuffer()
    const { ref, stats } = await one(input)
    expect(Buffer.compare(Buffer.from(ref!.bytes!), input)).toBe(0)
    expect(ref).toMatchObject({ reencoded: false, sha256: sha(input), width: 504, height: 392, format: 'jpeg', original: { sha256: sha(input) } })
    expect(stats.counters).toMatchObject({ imagesKept: 1, imageBytesIn: input.length, imageBytesOut: input.length })
    expect(stats.counters.imagesReencoded).toBeUndefined()
    expect(stats.counters.imagesStripped).toBeUndefined()
  })

  it('an RGB PNG on the grid is kept byte for byte', async () => {
    const input = await noise(280, 196).png().toBuffer()
    const { ref } = await one(input)
    expect(Buffer.compare(Buffer.from(ref!.bytes!), input)).toBe(0)
    expect(ref).toMatchObject({ reencoded: false, format: 'png' })
  })

  it('a conforming JPEG with EXIF and an sRGB profile keeps its pixels; the metadata is removed losslessly', async () => {
    const input = await noise(504, 392).jpeg({ quality: 85 }).withMetadata({ orientation: 1 }).withExif({ IFD0: { Copyright: 'someone' } }).toBuffer()
    const md = await sharp(input).metadata()
    expect(md.exif).toBeDefined()
    expect(isSrgbProfile(md.icc!)).toBe(true)
    const { ref, stats } = await one(input)
    expect(ref!.bytes!.length).toBeLessThan(input.length)
    expect(sha(await sharp(ref!.bytes!).raw().toBuffer())).toBe(sha(await sharp(input).raw().toBuffer()))
    const out = await sharp(ref!.bytes!).metadata()
    expect([out.exif, out.icc]).toEqual([undefined, undefined])
    expect(ref).toMatchObject({ reencoded: false, sha256: sha(ref!.bytes!) })
    expect(stats.counters).toMatchObject({ imagesKept: 1, imagesStripped: 1 })
  })

  it('a JPEG with a non-sRGB profile (Display P3) is converted, even on the grid', async () => {
    const input = await solid(280, 196, { r: 255, g: 0, b: 0 }).withIccProfile('p3').jpeg({ quality: 95 }).toBuffer()
    near(await pixel(await sharp(input, { ignoreIcc: true }).toBuffer(), 140, 98).then((p) => p.slice(0, 3)), [234, 51, 34], 6)
    const { ref, stats } = await one(input)
    await expectClean(ref, 280, 196)
    near(await pixel(ref!.bytes!, 140, 98), [255, 0, 0], 8)
    expect(stats.counters['reencode.colour_profile']).toBe(1)
  })

  it("reencode: 'always' re-encodes a conforming image", async () => {
    const input = await noise(504, 392).jpeg({ quality: 85 }).toBuffer()
    const { ref, stats } = await one(input, { reencode: 'always' })
    expect(ref!.reencoded).toBe(true)
    expect(stats.counters['reencode.forced']).toBe(1)
  })
})

describe('image references', () => {
  let dir = ''
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prefpipe-images-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('reads paths, drops them from the output, and rejects missing or unreadable images', async () => {
    const file = join(dir, 'a.png')
    await writeFile(file, await solid(100, 100, { r: 9, g: 9, b: 9 }).png().toBuffer())
    const { out, rejects } = await runImages([row('ok', [{ path: file }]), row('gone', [{ path: join(dir, 'nope.png') }]), row('none', [{}]), row('dir', [{ path: dir }])])
    expect(out.map((s) => s.id)).toEqual(['ok'])
    expect(out[0]!.images[0]!.path).toBeUndefined()
    expect(out[0]!.images[0]).toMatchObject({ width: 112, height: 112 })
    expect(rejects.map((r) => [r.id, r.reason, r.detail?.['code']])).toEqual([
      ['gone', 'image_unreadable', 'ENOENT'],
      ['none', 'image_missing', undefined],
      ['dir', 'image_unreadable', 'EISDIR'],
    ])
    expect(rejects[0]!.message).toMatch(/^image 0 cannot be read from ".*nope.png" \(ENOENT\); fix the path/)
  })
})
