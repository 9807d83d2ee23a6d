import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import sharp, { type Sharp } from 'sharp'
import { beforeAll, describe, expect, it } from 'vitest'
import { jpegBlockMeans, JpegDataError, type JpegBlockMeans } from '../../../src/transforms/images/jpeg-dc.js'
import { PHOTOS } from './helpers.js'
import { mulberry32 as rng } from '../../helpers.js'

// ---------------------------------------------------------------------------------------------------------
// Reference: block means of the pixels sharp decodes.

interface Agreement {
  /** Blocks whose 8x8 pixels are all inside the image. */
  inner: { mean: number; max: number; count: number }
  /** Blocks cut by the right or bottom edge, compared with the mean of their pixels and the encoder's padding. */
  edge: { mean: number; max: number; count: number }
}

/** Decode with sharp, compute luma (Y = 0.299R + 0.587G + 0.114B) block means and compare them with `got`. */
async function agreement(jpeg: Buffer, got: JpegBlockMeans): Promise<Agreement> {
  // ignoreIcc: the file's own values, not their conversion through its profile.
  const { data, info } = await sharp(jpeg, { ignoreIcc: true }).raw().toBuffer({ resolveWithObject: true })
  const { width, height, channels } = info
  expect([got.width, got.height]).toEqual([width, height])
  // Every JPEG here has its first component at full resolution.
  expect([got.cols, got.rows]).toEqual([Math.ceil(width / 8), Math.ceil(height / 8)])
  const inner = { sum: 0, max: 0, count: 0 }
  const edge = { sum: 0, max: 0, count: 0 }
  for (let by = 0; by < got.rows; by++) {
    for (let bx = 0; bx < got.cols; bx++) {
      // Past the right and bottom edges the encoder (libjpeg) repeats the last column and row.
      let sum = 0
      for (let y = by * 8; y < by * 8 + 8; y++) {
        for (let x = bx * 8; x < bx * 8 + 8; x++) {
          const i = (Math.min(y, height - 1) * width + Math.min(x, width - 1)) * channels
          sum += channels >= 3 ? 0.299 * data[i]! + 0.587 * data[i + 1]! + 0.114 * data[i + 2]! : data[i]!
        }
      }
      const d = Math.abs(got.means[by * got.cols + bx]! - sum / 64)
      const into = bx * 8 + 8 <= width && by * 8 + 8 <= height ? inner : edge
      into.sum += d
      into.max = Math.max(into.max, d)
      into.count++
    }
  }
  const stats = (s: typeof inner) => ({ mean: s.count ? s.sum / s.count : 0, max: s.max, count: s.count })
  return { inner: stats(inner), edge: stats(edge) }
}

// Measured with sharp 0.35 over every image of these tests: per image, inner blocks differ by 0.21 levels at
// most on average and 3.6 at worst; edge blocks (where chroma is padded too) by 1.8 on average and 5.6 at worst.
// The differences come from the pixels' rounding and clamping (IDCT, chroma upsampling, RGB, our Y).
const INNER_MEAN = 0.4
const INNER_MAX = 5
const EDGE_MEAN = 2.5
const EDGE_MAX = 7

/** Read `jpeg`, check it against sharp's pixels and metadata, and return the result. */
async function checked(jpeg: Buffer): Promise<JpegBlockMeans> {
  const got = jpegBlockMeans(jpeg)
  expect(got).not.toBeNull()
  const md = await sharp(jpeg).metadata()
  expect([got!.width, got!.height]).toEqual([md.width, md.height])
  const a = await agreement(jpeg, got!)
  expect(a.inner.mean).toBeLessThan(INNER_MEAN)
  expect(a.inner.max).toBeLessThan(INNER_MAX)
  expect(a.edge.mean).toBeLessThan(EDGE_MEAN)
  expect(a.edge.max).toBeLessThan(EDGE_MAX)
  return got!
}

// ---------------------------------------------------------------------------------------------------------
// JPEG surgery: marker segments, and a transcoder that adds restart markers.

interface Segment {
  marker: number
  /** The bytes after the length field. */
  body: Buffer
}

/** The marker segments after SOI up to and including SOS, and the entropy-coded data up to EOI. */
function parse(jpeg: Buffer): { segments: Segment[]; data: Buffer } {
  const segments: Segment[] = []
  let i = 2
  for (;;) {
    const marker = jpeg[i + 1]!
    const len = jpeg.readUInt16BE(i + 2)
    segments.push({ marker, body: jpeg.subarray(i + 4, i + 2 + len) })
    i += 2 + len
    if (marker === 0xda) break
  }
  const eoi = jpeg.lastIndexOf(Buffer.from([0xff, 0xd9]))
  return { segments, data: jpeg.subarray(i, eoi) }
}

function encodeSegment(s: Segment): Buffer {
  const head = Buffer.from([0xff, s.marker, 0, 0])
  head.writeUInt16BE(s.body.length + 2, 2)
  return Buffer.concat([head, s.body])
}

function assemble(segments: Segment[], data: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0xff, 0xd8]), ...segments.map(encodeSegment), data, Buffer.from([0xff, 0xd9])])
}

interface Huffman {
  /** `length << 16 | code` -> symbol. */
  decode: Map<number, number>
  /** symbol -> [code, length]. */
  encode: Map<number, [number, number]>
}

/** The Huffman tables of the DHT segments, by `class << 4 | id`. */
function huffmanTables(segments: Segment[]): Map<number, Huffman> {
  const tables = new Map<number, Huffman>()
  for (const { body } of segments.filter((s) => s.marker === 0xc4)) {
    for (let p = 0; p < body.length; ) {
      const t: Huffman = { decode: new Map(), encode: new Map() }
      let k = p + 17
      let code = 0
      for (let len = 1; len <= 16; len++) {
        for (let c = 0; c < body[p + len]!; c++, code++, k++) {
          t.decode.set((len << 16) | code, body[k]!)
          t.encode.set(body[k]!, [code, len])
        }
        code <<= 1
      }
      tables.set(body[p]!, t)
      p = k
    }
  }
  return tables
}

/**
 * Re-encode a sequential JPEG's scan (scan components in frame order, as sharp writes them) with a DRI segment
 * and a restart marker every `interval` MCUs: the coefficients are kept, the DC differences restart from 0
 * after each marker. The DC tables must code every size the new differences need (sharp's standard tables do).
 */
function withRestarts(jpeg: Buffer, interval: number): Buffer {
  const { segments, data } = parse(jpeg)
  const tables = huffmanTables(segments)
  const sof = segments.find((s) => s.marker === 0xc0)!.body
  const sos = segments.at(-1)!.body
  const height = sof.readUInt16BE(1)
  const width = sof.readUInt16BE(3)
  const nf = sof[5]!
  const comps = Array.from({ length: nf }, (_, c) => ({
    h: sof[7 + 3 * c]! >> 4,
    v: sof[7 + 3 * c]! & 15,
    dc: tables.get(sos[2 + 2 * c]! >> 4)!,
    ac: tables.get(0x10 | (sos[2 + 2 * c]! & 15))!,
  }))
  const hMax = Math.max(...comps.map((c) => c.h))
  const vMax = Math.max(...comps.map((c) => c.v))
  const single = nf === 1
  const mcus = single ? Math.ceil(width / 8) * Math.ceil(height / 8) : Math.ceil(width / (8 * hMax)) * Math.ceil(height / (8 * vMax))
  const blocks = comps.flatMap((c, j) => Array<number>(single ? 1 : c.h * c.v).fill(j))

  const bytes: number[] = []
  for (let i = 0; i < data.length; i++) {
    bytes.push(data[i]!)
    if (data[i] === 0xff) i++ // the stuffed 0x00
  }
  let bitPos = 0
  const bit = () => ((bytes[bitPos >> 3] ?? 0) >> (7 - (bitPos++ & 7))) & 1
  const read = (n: number) => {
    let v = 0
    for (let b = 0; b < n; b++) v = (v << 1) | bit()
    return v
  }
  const symbol = (t: Huffman) => {
    let code = 0
    for (let len = 1; len <= 16; len++) {
      code = (code << 1) | bit()
      const s = t.decode.get((len << 16) | code)
      if (s !== undefined) return s
    }
    throw new Error('bad code')
  }

  const out: number[] = []
  let acc = 0
  let accBits = 0
  const write = (value: number, length: number) => {
    for (let b = length - 1; b >= 0; b--) {
      acc = (acc << 1) | ((value >> b) & 1)
      if (++accBits === 8) {
        out.push(acc)
        if (acc === 0xff) out.push(0)
        acc = 0
        accBits = 0
      }
    }
  }
  const flush = () => {
    if (accBits) write((1 << (8 - accBits)) - 1, 8 - accBits)
  }
  const put = (t: Huffman, sym: number) => {
    const code = t.encode.get(sym)
    if (!code) throw new Error(`symbol ${sym} has no code`)
    write(code[0], code[1])
  }

  const dc = new Array<number>(nf).fill(0)
  const written = new Array<number>(nf).fill(0)
  for (let m = 0; m < mcus; m++) {
    if (m > 0 && m % interval === 0) {
      flush()
      out.push(0xff, 0xd0 + ((m / interval - 1) & 7))
      written.fill(0)
    }
    for (const j of blocks) {
      const c = comps[j]!
      const size = symbol(c.dc)
      const extra = read(size)
      dc[j]! += size === 0 ? 0 : extra >= 1 << (size - 1) ? extra : extra - (1 << size) + 1
      const diff = dc[j]! - written[j]!
      written[j] = dc[j]!
      const newSize = diff === 0 ? 0 : 32 - Math.clz32(Math.abs(diff))
      put(c.dc, newSize)
      write(diff < 0 ? diff + (1 << newSize) - 1 : diff, newSize)
      for (let k = 1; k < 64; ) {
        const sym = symbol(c.ac)
        put(c.ac, sym)
        write(read(sym & 15), sym & 15)
        if ((sym & 15) === 0 && sym !== 0xf0) break
        k += (sym >> 4) + 1
      }
    }
  }
  flush()
  const dri: Segment = { marker: 0xdd, body: Buffer.from([interval >> 8, interval & 0xff]) }
  return assemble([...segments.slice(0, -1), dri, segments.at(-1)!], Buffer.from(out))
}

/** The sampling factors of a JPEG's components (`HxV,...`), and ` DRI` if it has restart markers. */
function samplingOf(jpeg: Buffer): string {
  const { segments } = parse(jpeg)
  const sof = segments.find((s) => s.marker === 0xc0)!.body
  const factors = Array.from({ length: sof[5]! }, (_, c) => `${sof[7 + 3 * c]! >> 4}x${sof[7 + 3 * c]! & 15}`)
  return factors.join(',') + (segments.some((s) => s.marker === 0xdd) ? ' DRI' : '')
}

/**
 * An 8x8 greyscale baseline JPEG made by hand: quantisation DC entry 16, and two-symbol Huffman tables, the first
 * symbol coded `0`, the second `10`; `scan` is the entropy-coded data.
 */
function handMade(dcSymbols: [number, number], acSymbols: [number, number], scan: number[]): Buffer {
  const counts = [1, 1, ...Array<number>(14).fill(0)]
  return assemble(
    [
      { marker: 0xdb, body: Buffer.from([0x00, 16, ...Array<number>(63).fill(1)]) },
      { marker: 0xc0, body: Buffer.from([8, 0, 8, 0, 8, 1, 1, 0x11, 0]) },
      { marker: 0xc4, body: Buffer.from([0x00, ...counts, ...dcSymbols, 0x10, ...counts, ...acSymbols]) },
      { marker: 0xda, body: Buffer.from([1, 1, 0x00, 0, 63, 0]) },
    ],
    Buffer.from(scan),
  )
}

/** `f()`'s JpegDataError, or a failure if it returns or throws anything else. */
function dataError(f: () => unknown): JpegDataError {
  try {
    f()
  } catch (e) {
    expect(e).toBeInstanceOf(JpegDataError)
    return e as JpegDataError
  }
  throw new Error('expected a JpegDataError')
}

// ---------------------------------------------------------------------------------------------------------
// Inputs.

/** Smooth RGB gradients with a few sharp-edged squares, `width` x `height`. */
function synthetic(width: number, height: number): Sharp {
  const data = Buffer.alloc(width * height * 3)
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3
      const square = ((x >> 4) + (y >> 4)) % 5 === 0
      data[i] = square ? 230 : (x * 255) / Math.max(1, width - 1)
      data[i + 1] = square ? 40 : (y * 255) / Math.max(1, height - 1)
      data[i + 2] = 128 + 100 * Math.sin((x + 2 * y) / 9)
    }
  }
  return sharp(data, { raw: { width, height, channels: 3 } })
}

/** Uniform noise in 48..207 (hard to compress, but no clamping at decode). */
function noise(width: number, height: number, seed: number): Sharp {
  const r = rng(seed)
  const data = Buffer.alloc(width * height * 3)
  for (let i = 0; i < data.length; i++) data[i] = 48 + Math.floor(r() * 160)
  return sharp(data, { raw: { width, height, channels: 3 } })
}

let photo: Buffer // a real photo, 512x384
let jpeg420: Buffer // it, as q90 4:2:0
let standard420: Buffer // the same with the standard Huffman tables, which code every DC size (for withRestarts)

beforeAll(async () => {
  photo = await sharp(await readFile(join(PHOTOS, 'opencv-home.jpg'))).resize(512, 384, { fit: 'fill' }).png().toBuffer()
  jpeg420 = await sharp(photo).jpeg({ quality: 90 }).toBuffer()
  standard420 = await sharp(photo).jpeg({ quality: 90, optimiseCoding: false }).toBuffer()
})

// ---------------------------------------------------------------------------------------------------------

describe('jpegBlockMeans: agreement with the decoded pixels', () => {
  it('the shared photos as they are (progressive ones -> null)', async () => {
    const names = (await readdir(PHOTOS)).filter((n) => /\.jpe?g$/i.test(n)).sort()
    let compared = 0
    const seen = new Set<string>()
    for (const name of names) {
      const bytes = await readFile(join(PHOTOS, name))
      if ((await sharp(bytes).metadata()).isProgressive) {
        expect(jpegBlockMeans(bytes), name).toBeNull()
        continue
      }
      const got = jpegBlockMeans(bytes)
      expect(got, name).not.toBeNull()
      const a = await agreement(bytes, got!)
      expect(a.inner.mean, name).toBeLessThan(INNER_MEAN)
      expect(a.inner.max, name).toBeLessThan(INNER_MAX)
      expect(a.edge.mean, name).toBeLessThan(EDGE_MEAN)
      expect(a.edge.max, name).toBeLessThan(EDGE_MAX)
      seen.add(samplingOf(bytes))
      compared++
    }
    expect(compared).toBeGreaterThanOrEqual(29)
    // Greyscale, 4:2:0, 4:2:2 (2x1) and 4:4:4 files, one with restart markers (opencv-plant.jpg).
    expect([...seen]).toEqual(expect.arrayContaining(['1x1', '1x1,1x1,1x1', '1x1,1x1,1x1 DRI', '2x1,1x1,1x1', '2x2,1x1,1x1']))
  })

  it('photos re-encoded by sharp: 4:2:0 and 4:4:4, optimised or standard Huffman tables, quality 50/90/100', async () => {
    for (const name of ['matplotlib-grace-hopper.jpg', 'opencv-fruits.jpg', 'skimage-astronaut.png', 'opencv-baboon.jpg']) {
      const src = await sharp(await readFile(join(PHOTOS, name))).resize(500, 371, { fit: 'fill' }).png().toBuffer()
      for (const quality of [50, 90, 100]) {
        const variants: Buffer[] = []
        for (const chromaSubsampling of ['4:2:0', '4:4:4']) {
          for (const optimiseCoding of [true, false]) {
            variants.push(await sharp(src).jpeg({ quality, chromaSubsampling, optimiseCoding }).toBuffer())
          }
        }
        const results = await Promise.all(variants.map(checked))
        // The luma coefficients do not depend on the chroma subsampling or the Huffman tables.
        for (const r of results.slice(1)) expect(r.means).toEqual(results[0]!.means)
      }
    }
  })

  it('synthetic images of awkward sizes, colour and greyscale', async () => {
    const sizes: [number, number][] = [[500, 371], [28, 28], [56, 56], [1, 1], [2000, 9], [9, 2000], [17, 33], [15, 16]]
    for (const [w, h] of sizes) {
      for (const chromaSubsampling of ['4:2:0', '4:4:4']) {
        const got = await checked(await synthetic(w, h).jpeg({ quality: 90, chromaSubsampling }).toBuffer())
        expect(got.means.length).toBe(Math.ceil(w / 8) * Math.ceil(h / 8))
      }
      const grey = await synthetic(w, h).greyscale().toColourspace('b-w').jpeg({ quality: 75 }).toBuffer()
      expect((await sharp(grey).metadata()).channels).toBe(1)
      await checked(grey)
    }
    await checked(await noise(203, 77, 7).jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).toBuffer())
    await checked(await noise(203, 77, 8).jpeg({ quality: 50 }).toBuffer())
  })

  it('a hand-made one-block JPEG', async () => {
    // DC: size 1 (`10`), bit `1` (+1); AC: EOB (`0`); padding `1111`. DC 1 x 16 / 8 + 128 = 130.
    const jpeg = handMade([0, 1], [0x00, 0xf0], [0b1010_1111])
    expect(jpegBlockMeans(jpeg)).toEqual({ width: 8, height: 8, cols: 1, rows: 1, means: new Float64Array([130]) })
    const { data } = await sharp(jpeg).raw().toBuffer({ resolveWithObject: true })
    expect(new Set(data)).toEqual(new Set([130]))
  })

  it('a flat image gives its exact luma', async () => {
    const jpeg = await sharp({ create: { width: 40, height: 24, channels: 3, background: { r: 90, g: 120, b: 200 } } }).jpeg({ quality: 100 }).toBuffer()
    const got = jpegBlockMeans(jpeg)!
    expect([got.cols, got.rows]).toEqual([5, 3])
    // Y = 0.299 * 90 + 0.587 * 120 + 0.114 * 200 = 120.15; the DC holds it to 1/8 of a level.
    for (const m of got.means) expect(Math.abs(m - 120.15)).toBeLessThanOrEqual(0.5)
  })
})

describe('jpegBlockMeans: restart intervals', () => {
  it('re-encoded with restart markers every 1, 5, one row of, and more than all MCUs: same blocks', async () => {
    const sources = [
      await sharp(photo).resize(203, 150).jpeg({ quality: 90, optimiseCoding: false }).toBuffer(), // 4:2:0, 13 MCUs a row
      await sharp(photo).resize(203, 150).jpeg({ quality: 80, optimiseCoding: false, chromaSubsampling: '4:4:4' }).toBuffer(),
      await sharp(photo).resize(203, 150).greyscale().toColourspace('b-w').jpeg({ quality: 90, optimiseCoding: false }).toBuffer(),
    ]
    for (const jpeg of sources) {
      const plain = jpegBlockMeans(jpeg)!
      const { data: pixels } = await sharp(jpeg).raw().toBuffer({ resolveWithObject: true })
      const mcusPerRow = jpeg === sources[0] ? 13 : 26
      for (const interval of [1, 5, mcusPerRow, 65_535]) {
        const restarted = withRestarts(jpeg, interval)
        expect(jpegBlockMeans(restarted), `interval ${interval}`).toEqual(plain)
        // The transcoder is right: libjpeg decodes it to the very same pixels.
        expect((await sharp(restarted).raw().toBuffer()).equals(pixels)).toBe(true)
      }
    }
  })

  it('a wrong or missing restart marker is a JpegDataError', () => {
    const restarted = withRestarts(standard420, 4)
    const rst1 = restarted.indexOf(Buffer.from([0xff, 0xd1]))
    expect(rst1).toBeGreaterThan(0)
    const wrong = Buffer.from(restarted)
    wrong[rst1 + 1] = 0xd2
    expect(dataError(() => jpegBlockMeans(wrong)).message).toMatch(/RST2 where RST1/)
    // Without its DRI segment, the first RST marker ends the data.
    const { segments, data } = parse(restarted)
    expect(dataError(() => jpegBlockMeans(assemble(segments.filter((s) => s.marker !== 0xdd), data))).message).toMatch(/ends before/)
  })
})

describe('jpegBlockMeans: marker segments', () => {
  it('DQT and DHT tables merged into one segment each, 16-bit quantisation tables, fill bytes, APPn/COM, redefined tables', () => {
    const want = jpegBlockMeans(jpeg420)!
    const { segments, data } = parse(jpeg420)
    const dqt = segments.filter((s) => s.marker === 0xdb)
    const dht = segments.filter((s) => s.marker === 0xc4)
    const sof = segments.find((s) => s.marker === 0xc0)!
    const sos = segments.at(-1)!
    expect(dqt.length).toBe(2)
    expect(dht.length).toBe(4)

    const merged = assemble([{ marker: 0xdb, body: Buffer.concat(dqt.map((s) => s.body)) }, sof, { marker: 0xc4, body: Buffer.concat(dht.map((s) => s.body)) }, sos], data)
    expect(jpegBlockMeans(merged)).toEqual(want)

    // 16-bit tables (Pq = 1): the same values, two bytes each.
    const wide = dqt.map((s) => {
      const body = Buffer.alloc(129)
      body[0] = 0x10 | (s.body[0]! & 15)
      for (let k = 0; k < 64; k++) body.writeUInt16BE(s.body[1 + k]!, 1 + 2 * k)
      return { marker: 0xdb, body }
    })
    expect(jpegBlockMeans(assemble([...wide, sof, ...dht, sos], data))).toEqual(want)

    // Other tables first, redefined by the real ones before SOS; comments and APP segments anywhere.
    const bogusQ = { marker: 0xdb, body: Buffer.from([0x00, ...Array<number>(64).fill(1)]) }
    const bogusH = { marker: 0xc4, body: Buffer.from([0x00, 0, 1, ...Array<number>(14).fill(0), 5]) }
    const com = { marker: 0xfe, body: Buffer.from('a comment') }
    const app = { marker: 0xe1, body: Buffer.from('Exif\0\0not really') }
    const redefined = assemble([com, bogusQ, bogusH, app, sof, ...dqt, ...dht, com, sos], data)
    expect(jpegBlockMeans(redefined)).toEqual(want)

    // 0xFF fill bytes before every marker after SOI.
    const filled = Buffer.concat([Buffer.from([0xff, 0xd8]), ...segments.map((s) => Buffer.concat([Buffer.from([0xff, 0xff]), encodeSegment(s)])), data, Buffer.from([0xff, 0xd9])])
    expect(jpegBlockMeans(filled)).toEqual(want)

    // What follows the scan is not read.
    expect(jpegBlockMeans(Buffer.concat([jpeg420, Buffer.from('trailing junk')]))).toEqual(want)
    expect(jpegBlockMeans(jpeg420.subarray(0, jpeg420.length - 2))).toEqual(want) // no EOI
  })

  it('a file sharp writes with EXIF and ICC segments', async () => {
    const jpeg = await sharp(photo).withMetadata().jpeg({ quality: 90 }).toBuffer()
    expect(parse(jpeg).segments.map((s) => s.marker)).toContain(0xe2)
    expect(jpegBlockMeans(jpeg)).toEqual(jpegBlockMeans(jpeg420))
  })
})

describe('jpegBlockMeans: files it leaves to sharp (null)', () => {
  it('progressive, PNG, CMYK, not a JPEG at all', async () => {
    expect(jpegBlockMeans(await sharp(photo).jpeg({ progressive: true }).toBuffer())).toBeNull()
    expect(jpegBlockMeans(photo)).toBeNull()
    expect(jpegBlockMeans(await sharp(photo).toColourspace('cmyk').jpeg().toBuffer())).toBeNull()
    expect(jpegBlockMeans(new Uint8Array(0))).toBeNull()
    expect(jpegBlockMeans(jpeg420.subarray(2))).toBeNull() // no SOI
  })

  it('frames and scans it does not decode', () => {
    const { segments, data } = parse(jpeg420)
    /** The file with its segment `marker` replaced (or removed, for null). */
    const patched = (marker: number, replacement: Segment | null) =>
      assemble(
        segments.flatMap((s) => (s.marker !== marker ? [s] : replacement ? [replacement] : [])),
        data,
      )
    const sof = segments.find((s) => s.marker === 0xc0)!.body
    /** The SOF body with byte `at` set to `value`. */
    const sofWith = (at: number, value: number) => {
      const body = Buffer.from(sof)
      body[at] = value
      return body
    }
    expect(jpegBlockMeans(patched(0xc0, { marker: 0xc2, body: sof }))).toBeNull() // progressive
    expect(jpegBlockMeans(patched(0xc0, { marker: 0xc9, body: sof }))).toBeNull() // arithmetic
    expect(jpegBlockMeans(patched(0xc0, { marker: 0xc3, body: sof }))).toBeNull() // lossless
    expect(jpegBlockMeans(patched(0xc0, null))).toBeNull() // no SOF before SOS
    expect(jpegBlockMeans(patched(0xc0, { marker: 0xc1, body: sofWith(0, 12) }))).toBeNull() // 12-bit
    expect(jpegBlockMeans(patched(0xc0, { marker: 0xc0, body: sofWith(7, 0x41) }))).toBeNull() // 4:1:1
    // A first scan with one of the three components (a non-interleaved file).
    const sos = segments.at(-1)!.body
    expect(jpegBlockMeans(patched(0xda, { marker: 0xda, body: Buffer.from([1, sos[1]!, sos[2]!, 0, 63, 0]) }))).toBeNull()
    // SOF1 (extended sequential) is read like SOF0.
    expect(jpegBlockMeans(patched(0xc0, { marker: 0xc1, body: sof }))).toEqual(jpegBlockMeans(jpeg420))
  })

  it('RGB-coded files, whose first component is red, not luma', () => {
    const { segments, data } = parse(jpeg420)
    // An Adobe APP14 segment with transform 0 (RGB): the same bytes otherwise.
    const adobe = (transform: number): Segment => ({ marker: 0xee, body: Buffer.from([...Buffer.from('Adobe'), 0, 100, 0, 0, 0, 0, transform]) })
    expect(jpegBlockMeans(assemble([adobe(0), ...segments], data))).toBeNull()
    expect(jpegBlockMeans(assemble([adobe(1), ...segments], data))).toEqual(jpegBlockMeans(jpeg420)) // YCbCr
    // Component ids 'R', 'G', 'B' in the frame and the scan, as libjpeg reads them.
    const ids = [82, 71, 66]
    const rgbIds = segments.map((s) => {
      const body = Buffer.from(s.body)
      if (s.marker === 0xc0) for (let c = 0; c < 3; c++) body[6 + 3 * c] = ids[c]!
      if (s.marker === 0xda) for (let c = 0; c < 3; c++) body[1 + 2 * c] = ids[c]!
      return { marker: s.marker, body }
    })
    expect(jpegBlockMeans(assemble(rgbIds, data))).toBeNull()
  })
})

describe('jpegBlockMeans: corrupt data (JpegDataError)', () => {
  it('truncated in the entropy-coded data or in the header', () => {
    const { data } = parse(jpeg420)
    const scanStart = jpeg420.length - 2 - data.length
    for (const at of [0.01, 0.5, 0.99]) {
      const cut = jpeg420.subarray(0, scanStart + Math.floor(data.length * at))
      expect(dataError(() => jpegBlockMeans(cut)).message).toMatch(/ends before the last MCU/)
    }
    // Even the last byte of the scan holds bits of the last MCU.
    expect(dataError(() => jpegBlockMeans(jpeg420.subarray(0, jpeg420.length - 3))).message).toMatch(/ends before the last MCU/)
    expect(dataError(() => jpegBlockMeans(jpeg420.subarray(0, 100))).message).toMatch(/past the end|before the scan/)
    expect(dataError(() => jpegBlockMeans(jpeg420.subarray(0, scanStart))).message).toMatch(/ends before the last MCU/)
  })

  it('an invalid Huffman code, undefined tables, a segment past the end', () => {
    const { segments, data } = parse(jpeg420)
    // All ones: the all-ones code is never assigned.
    const ones = Buffer.alloc(data.length)
    for (let i = 0; i < ones.length; i++) ones[i] = i % 2 ? 0 : 0xff
    expect(dataError(() => jpegBlockMeans(assemble(segments, ones))).message).toMatch(/invalid Huffman code/)

    const sos = segments.at(-1)!
    const undefinedHuffman = Buffer.from(sos.body)
    undefinedHuffman[2] = 0x33
    expect(dataError(() => jpegBlockMeans(assemble([...segments.slice(0, -1), { marker: 0xda, body: undefinedHuffman }], data))).message).toMatch(/undefined Huffman/)

    const sofAt = segments.findIndex((s) => s.marker === 0xc0)
    const undefinedQuant = Buffer.from(segments[sofAt]!.body)
    undefinedQuant[8] = 3
    const withSof = segments.map((s, i) => (i === sofAt ? { marker: 0xc0, body: undefinedQuant } : s))
    expect(dataError(() => jpegBlockMeans(assemble(withSof, data))).message).toMatch(/undefined quantisation/)

    const twoOneBitCodes = Buffer.from([0x00, 2, ...Array<number>(15).fill(0), 0, 1])
    expect(dataError(() => jpegBlockMeans(assemble([{ marker: 0xc4, body: twoOneBitCodes }, ...segments], data))).message).toMatch(/over-subscribed/)

    const long = assemble(segments, data)
    const dht = long.indexOf(Buffer.from([0xff, 0xc4]))
    long.writeUInt16BE(0xfff0, dht + 2)
    expect(dataError(() => jpegBlockMeans(long)).message).toMatch(/past the end/)
  })

  it('DC and AC values out of range', () => {
    // DC size 0 (`0`), then four ZRL (`10`): a run to coefficient 64.
    expect(dataError(() => jpegBlockMeans(handMade([0, 1], [0x00, 0xf0], [0b0101_0101, 0b0111_1111]))).message).toMatch(/past coefficient 63/)
    // Three ZRL and an EOB are fine.
    expect(jpegBlockMeans(handMade([0, 1], [0x00, 0xf0], [0b0101_0100]))?.means).toEqual(new Float64Array([128]))
    // DC size 12 (`10`), AC size 11 (`10` after a DC of size 0).
    expect(dataError(() => jpegBlockMeans(handMade([0, 12], [0x00, 0x0b], [0b1000_0000, 0, 0]))).message).toMatch(/DC difference out of range/)
    expect(dataError(() => jpegBlockMeans(handMade([0, 1], [0x00, 0x0b], [0b0100_0000, 0, 0]))).message).toMatch(/AC coefficient out of range/)
  })

  it('200 seeded mutations of the scan each end with a result or a JpegDataError', () => {
    const restarted = withRestarts(standard420, 8)
    for (const base of [jpeg420, restarted]) {
      const scanStart = base.length - 2 - parse(base).data.length
      const random = rng(base === jpeg420 ? 1 : 2)
      let errors = 0
      for (let m = 0; m < 100; m++) {
        const bytes = Buffer.from(base)
        const edits = 1 + Math.floor(random() * 8)
        for (let e = 0; e < edits; e++) {
          const at = scanStart + Math.floor(random() * (bytes.length - 2 - scanStart))
          bytes[at] = random() < 0.1 ? 0xff : Math.floor(random() * 256)
        }
        try {
          const got = jpegBlockMeans(bytes)
          expect(got).not.toBeNull()
          expect(got!.means.length).toBe(64 * 48)
        } catch (e) {
          expect(e).toBeInstanceOf(JpegDataError)
          errors++
        }
      }
      // Most mutations break the Huffman stream somewhere.
      expect(errors).toBeGreaterThan(50)
    }
  })

  it('100 seeded mutations of the header each end with a result, null or a JpegDataError', () => {
    const scanStart = jpeg420.length - 2 - parse(jpeg420).data.length
    const random = rng(3)
    for (let m = 0; m < 100; m++) {
      const bytes = Buffer.from(jpeg420)
      bytes[2 + Math.floor(random() * (scanStart - 2))] = Math.floor(random() * 256)
      try {
        jpegBlockMeans(bytes)
      } catch (e) {
        expect(e).toBeInstanceOf(JpegDataError)
      }
    }
  })
})
