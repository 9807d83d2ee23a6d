import { createHash } from 'node:crypto'
import sharp from 'sharp'
import { describe, expect, it } from 'vitest'
import { stripJpegMetadata, stripPngMetadata } from '../../../src/transforms/images/index.js'
import { noise, solid } from './helpers.js'

/** The marker bytes of a JPEG's segments before the first SOS. */
function jpegMarkers(b: Uint8Array): number[] {
  const out: number[] = []
  let i = 2
  while (i + 4 <= b.length && b[i] === 0xff) {
    const m = b[i + 1]!
    out.push(m)
    if (m === 0xda) break
    i += 2 + ((b[i + 2]! << 8) | b[i + 3]!)
  }
  return out
}

/** Insert a segment (marker + payload) right after SOI. */
function withSegment(b: Uint8Array, marker: number, payload: Uint8Array): Buffer {
  const len = payload.length + 2
  return Buffer.concat([b.subarray(0, 2), Buffer.from([0xff, marker, len >> 8, len & 0xff]), payload, b.subarray(2)])
}

function pngChunks(b: Uint8Array): string[] {
  const out: string[] = []
  for (let i = 8; i + 8 <= b.length; ) {
    const len = Buffer.from(b.subarray(i, i + 4)).readUInt32BE(0)
    out.push(Buffer.from(b.subarray(i + 4, i + 8)).toString('latin1'))
    i += 12 + len
  }
  return out
}

/** sha256 of the decoded pixels (comparing hashes: deep-equality on big buffers is slow). */
const raw = async (b: Uint8Array) => createHash('sha256').update(await sharp(b).raw().toBuffer()).digest('hex')

describe('stripJpegMetadata', () => {
  it('returns the very same bytes for a JPEG without metadata', async () => {
    const b = await noise(96, 64).jpeg({ quality: 80 }).toBuffer()
    expect(stripJpegMetadata(b)).toBe(b)
  })

  it('drops EXIF, XMP, ICC, IPTC and comments, keeps JFIF and Adobe, and the pixels stay identical', async () => {
    const base = await noise(96, 64, 7).jpeg({ quality: 80 }).withExif({ IFD0: { Copyright: 'someone', Orientation: '1' } }).toBuffer()
    let b = withSegment(base, 0xfe, Buffer.from('a comment'))
    b = withSegment(b, 0xee, Buffer.from('Adobe\0\x64\0\0\0\0\x01', 'latin1')) // APP14, transform 1 (YCbCr)
    b = withSegment(b, 0xe0, Buffer.from('JFIF\0\x01\x01\0\0\x01\0\x01\0\0', 'latin1'))
    expect(jpegMarkers(b)).toEqual(expect.arrayContaining([0xe0, 0xee, 0xfe, 0xe1]))
    const s = stripJpegMetadata(b)!
    expect(s.length).toBeLessThan(b.length)
    expect(jpegMarkers(s).filter((m) => m >= 0xe0)).toEqual([0xe0, 0xee])
    expect(jpegMarkers(s)).not.toContain(0xfe)
    expect((await sharp(s).metadata()).exif).toBeUndefined()
    expect(await raw(s)).toEqual(await raw(b))
  })

  it('walks progressive scans and drops data after EOI', async () => {
    const b = await noise(80, 80, 9).jpeg({ quality: 85, progressive: true }).withExif({ IFD0: { Copyright: 'x' } }).toBuffer()
    const padded = Buffer.concat([b, Buffer.from('trailing garbage')])
    const s = stripJpegMetadata(padded)!
    expect(s[s.length - 2]).toBe(0xff)
    expect(s[s.length - 1]).toBe(0xd9)
    expect(jpegMarkers(s)).not.toContain(0xe1)
    expect(await raw(s)).toEqual(await raw(b))
  })

  it('gives up (null) on what it cannot walk: truncated data, not a JPEG, a bad length', async () => {
    const b = await noise(64, 64).jpeg().toBuffer()
    expect(stripJpegMetadata(b.subarray(0, b.length >> 1))).toBeNull()
    expect(stripJpegMetadata(Buffer.from('not a jpeg'))).toBeNull()
    const bad = Buffer.from(b)
    bad[4] = 0xff // first segment's length -> beyond the end
    bad[5] = 0xff
    expect(stripJpegMetadata(bad)).toBeNull()
  })
})

describe('stripPngMetadata', () => {
  it('returns the very same bytes for a PNG with only critical chunks and display hints', async () => {
    const b = await solid(40, 30, { r: 1, g: 2, b: 3 }).png().toBuffer()
    expect(pngChunks(b)).toEqual(['IHDR', 'pHYs', 'IDAT', 'IEND'])
    expect(stripPngMetadata(b)).toBe(b)
  })

  it('drops EXIF, ICC, text and trailing data; pixels identical', async () => {
    const b = await noise(40, 30).png().withMetadata({ density: 300 }).withExif({ IFD0: { Copyright: 'x' } }).toBuffer()
    expect(pngChunks(b)).toEqual(expect.arrayContaining(['eXIf', 'iCCP']))
    const s = stripPngMetadata(Buffer.concat([b, Buffer.from('junk')]))!
    expect(pngChunks(s).filter((c) => c !== 'IDAT')).toEqual(['IHDR', 'pHYs', 'IEND'])
    expect(await raw(s)).toEqual(await raw(b))
  })

  it('gives up on a truncated PNG', async () => {
    const b = await noise(40, 30).png().toBuffer()
    expect(stripPngMetadata(b.subarray(0, b.length - 20))).toBeNull()
    expect(stripPngMetadata(Buffer.from('\x89PNG'))).toBeNull()
  })
})
