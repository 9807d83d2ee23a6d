import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import sharp from 'sharp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { named, pipeline, type Sink } from '../../../src/pipeline/index.js'
import type { PreferenceSample } from '../../../src/record.js'
import { llamaFactory } from '../../../src/sinks/llamafactory.js'
import { hammingDistance, hashHex, processImages, resolveImagesOptions } from '../../../src/transforms/images/index.js'
import { ROOT, run, treeDigest, VENV_PYTHON } from '../../helpers.js'
import { noise, photos, row, rows, runImages, solid } from './helpers.js'

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

let dir = ''
let pool: { name: string; bytes: Buffer }[] = []
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prefpipe-images-'))
  pool = await photos()
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const photo = (name: string) => pool.find((p) => p.name === name)!.bytes

/** Run scripts/check_images.py on a folder; returns its JSON. */
async function checkImages(folder: string, args: string[] = []) {
  const r = await run(VENV_PYTHON, [join(ROOT, 'scripts', 'check_images.py'), folder, ...args])
  expect(r.stderr).toBe('')
  return { code: r.code, report: JSON.parse(r.stdout) as { ok: boolean; checked: number; failures: unknown[]; modes: Record<string, number>; formats: Record<string, number>; sizes: Record<string, number> } }
}

describe('conformance: what the stage writes opens in Pillow as LLaMA-Factory and Qwen2-VL take it', () => {
  it('every shared photo, through the LLaMA-Factory sink, passes scripts/check_images.py (Qwen2-VL, 28); no two group together', async () => {
    expect(pool.length).toBeGreaterThan(50)
    const out = join(dir, 'photos-qwen2')
    const groups: string[] = []
    const tee = named('tee', async function* (input: AsyncIterable<PreferenceSample>) {
      for await (const s of input) {
        groups.push(s.images[0]!.group!)
        yield s
      }
    })
    const { report } = await pipeline(rows(pool.map((p, i) => row(`photo-${i}`, [{ bytes: p.bytes }]))), processImages(), tee, llamaFactory({ out, name: 'photos' }))
    expect(report.rejected).toEqual({})
    const { code, report: check } = await checkImages(join(out, 'images'), ['--max-pixels', '262144', '--factor', '28'])
    expect(check.failures).toEqual([])
    expect({ code, ok: check.ok, checked: check.checked, modes: check.modes }).toEqual({ code: 0, ok: true, checked: pool.length, modes: { RGB: pool.length } })
    for (const size of Object.keys(check.sizes)) {
      const [w, h] = size.split('x').map(Number) as [number, number]
      expect(w % 28 === 0 && h % 28 === 0 && w >= 28 && h >= 28 && w * h <= 262144).toBe(true)
    }
    // Different photos are far apart (the closest pair of this pool is 18 bits): none shares a group at distance 6.
    expect(new Set(groups).size).toBe(pool.length)
  })

  it('Qwen3-VL: factor 32, min 65536 pixels (a third of the photos)', async () => {
    const out = join(dir, 'photos-qwen3')
    const some = pool.filter((_, i) => i % 3 === 0)
    await pipeline(rows(some.map((p, i) => row(`photo-${i}`, [{ bytes: p.bytes }]))), processImages({ model: 'qwen3-vl' }), llamaFactory({ out, name: 'photos' }))
    const { code, report } = await checkImages(join(out, 'images'), ['--factor', '32', '--min-pixels', '65536', '--processor-min-pixels', '65536', '--processor-max-pixels', '16777216'])
    expect(report.failures).toEqual([])
    expect([code, report.checked, report.modes]).toEqual([0, some.length, { RGB: some.length }])
  })

  it('the checker itself catches a non-conforming folder (grey, off-grid, too large)', async () => {
    const bad = join(dir, 'bad')
    await mkdir(bad)
    await writeFile(join(bad, 'grey.png'), photo('skimage-camera.png')) // mode L
    await writeFile(join(bad, 'notes.txt'), 'not an image')
    await solid(500, 500, { r: 1, g: 2, b: 3 }).jpeg().toFile(join(bad, 'offgrid.jpg'))
    await solid(1008, 1008, { r: 1, g: 2, b: 3 }).jpeg().toFile(join(bad, 'large.jpg'))
    const { code, report } = await checkImages(bad, ['--max-pixels', '262144'])
    expect(code).toBe(1)
    const problems = JSON.stringify(report.failures)
    expect(problems).toMatch(/mode L, not RGB/)
    expect(problems).toMatch(/500x500: a side is not a multiple of 28/)
    expect(problems).toMatch(/1016064 pixels > 262144/)
    expect(problems).toMatch(/notes.txt","problems":\["does not open in Pillow/)
  })
})

/** What matters of an output row, with the image bytes reduced to their hash (checked against `sha256`). */
function project(s: PreferenceSample) {
  return {
    id: s.id,
    images: s.images.map((i) => {
      expect(sha(i.bytes!)).toBe(i.sha256)
      return { sha256: i.sha256, group: i.group, w: i.width, h: i.height, format: i.format, phash: hashHex(i.perceptual!), reencoded: i.reencoded, source: i.original?.sha256 }
    }),
  }
}

describe('near-duplicates', () => {
  it('the same photo re-encoded at another quality and 1 px smaller joins its group; other photos do not', async () => {
    const a = photo('matplotlib-grace-hopper.jpg')
    const b = photo('opencv-baboon.jpg')
    const variant = await sharp(a).resize(511, 599, { fit: 'fill' }).jpeg({ quality: 60 }).toBuffer()
    const { out, stats, stage } = await runImages([row('a', [{ bytes: a }]), row('b', [{ bytes: b }]), row('a2', [{ bytes: variant }])])
    const [ia, ib, iv] = out.map((s) => s.images[0]!)
    expect(iv!.sha256).not.toBe(ia!.sha256)
    expect(hammingDistance(ia!.perceptual!, iv!.perceptual!)).toBeLessThanOrEqual(6)
    expect(ia!.group).toBe(ia!.sha256) // the group id is its earliest member's sha256
    expect(iv!.group).toBe(ia!.sha256)
    expect(ib!.group).toBe(ib!.sha256)
    expect(stats.counters).toMatchObject({ imagesDistinct: 3, nearDuplicateImages: 1, nearDuplicateGroups: 1 })
    expect(stage.imageStats().groups).toEqual({ distinct: 3, multi: 1, merges: 0 })
  })

  it("nearDuplicates: 'drop' rejects the later row, naming the earlier one", async () => {
    const a = photo('opencv-fruits.jpg')
    const variant = await sharp(a).resize(511, 479, { fit: 'fill' }).jpeg({ quality: 60 }).toBuffer()
    const { out, rejects } = await runImages([row('a', [{ bytes: a }]), row('again', [{ bytes: a }]), row('a2', [{ bytes: variant }])], { nearDuplicates: 'drop' })
    expect(out.map((s) => s.id)).toEqual(['a', 'again']) // the identical image is the same image, not a near-duplicate
    expect(rejects).toEqual([expect.objectContaining({ id: 'a2', reason: 'near_duplicate', detail: expect.objectContaining({ image: 0, row: 'a', nearest: out[0]!.images[0]!.sha256 }) })])
    expect(rejects[0]!.message).toMatch(/near-duplicate of image [0-9a-f]{12}… of the earlier row a \(pHash distance \d ≤ 6\)/)
  })
})

describe('determinism, dedupe and budgets', () => {
  it('gives the same output across runs and concurrency 1 vs 4, byte for byte in the sink folder too', async () => {
    const some = pool.slice(0, 16)
    const variant = await sharp(some[3]!.bytes).resize(100, 80).jpeg({ quality: 50 }).toBuffer()
    const input = () => [
      ...some.map((p, i) => row(`p${i}`, [{ bytes: p.bytes }])),
      row('dup', [{ bytes: some[0]!.bytes }]),
      row('pair', [{ bytes: some[5]!.bytes }, { bytes: variant }]),
      row('bad', [{ bytes: Buffer.from('nope') }]),
    ]
    const runs = await Promise.all(
      [1, 4, 4].map(async (concurrency) => {
        const r = await runImages(input(), { concurrency })
        return { rows: r.out.map(project), rejects: r.rejects, counters: r.stats.counters }
      }),
    )
    expect(runs[1]).toEqual(runs[0])
    expect(runs[2]).toEqual(runs[0])
    const folders = [join(dir, 'det-1'), join(dir, 'det-4')]
    await pipeline(rows(input()), processImages({ concurrency: 1 }), llamaFactory({ out: folders[0]!, name: 'det' }))
    await pipeline(rows(input()), processImages({ concurrency: 4 }), llamaFactory({ out: folders[1]!, name: 'det' }))
    expect(await treeDigest(folders[1]!)).toEqual(await treeDigest(folders[0]!))
  })

  it('decodes a source once however many rows use it', async () => {
    const bytes = photo('opencv-apple.jpg')
    const samples = Array.from({ length: 12 }, (_, i) => row(`q${i}`, [{ bytes }], { messages: [{ role: 'user', content: `<image>Question ${i}?` }] }))
    samples.push(row('twice', [{ bytes }, { bytes }]))
    const { out, stats } = await runImages(samples, { concurrency: 3 })
    expect(out).toHaveLength(13)
    expect(stats.counters).toMatchObject({ imagesSeen: 14, imagesDecoded: 1, imageCacheHits: 13, imagesDistinct: 1, imagesOut: 14, imagesReencoded: 1 })
    expect(new Set(out.flatMap((s) => s.images.map((i) => i.sha256))).size).toBe(1)
  })

  it('gives the same output when the cache keeps nothing (sources re-decoded)', async () => {
    const bytes = photo('opencv-orange.jpg')
    const samples = () => Array.from({ length: 8 }, (_, i) => row(`q${i}`, [{ bytes }], { messages: [{ role: 'user', content: `<image>Q${i}` }] }))
    const cached = await runImages(samples(), { concurrency: 1 })
    const uncached = await runImages(samples(), { concurrency: 1, cacheBytes: 0 })
    expect(uncached.out.map(project)).toEqual(cached.out.map(project))
    expect(uncached.stats.counters.imageCacheEvictions).toBeGreaterThan(0)
    expect(uncached.stats.counters.imagesDecoded).toBeGreaterThan(1)
  })

  it('rejects an exact duplicate row (duplicate_row), keeping rows that differ in text or image', async () => {
    const a = photo('opencv-home.jpg')
    const b = photo('opencv-books.jpg')
    const { out, rejects, stats } = await runImages([row('r1', [{ bytes: a }]), row('r2', [{ bytes: a }]), row('r3', [{ bytes: b }]), row('r4', [{ bytes: a }], { system: 'Be brief.' }), row('r5', [{ bytes: a }])].map((s) => ({ ...s, chosen: { role: 'assistant' as const, content: 'same' } })))
    expect(out.map((s) => s.id)).toEqual(['r1', 'r3', 'r4'])
    expect(rejects.map((r) => [r.id, r.reason, r.detail])).toEqual([
      ['r2', 'duplicate_row', { duplicateOf: 'r1' }],
      ['r5', 'duplicate_row', { duplicateOf: 'r1' }],
    ])
    expect(stats.dropped).toEqual({ duplicate_row: 2 })
    const kept = await runImages([row('r1', [{ bytes: a }]), row('r1', [{ bytes: a }])], { dedupeRows: false })
    expect(kept.out).toHaveLength(2)
  })

  it('rejects rows over cutoffLen (exceeds_cutoff), counting image tokens exactly and text conservatively', async () => {
    const img = await noise(504, 504).jpeg().toBuffer() // 18x18+2 = 326 visual tokens
    const long = 'lorem ipsum '.repeat(700) // 8400 ASCII characters: 2800 tokens
    const { out, rejects } = await runImages(
      [row('small', [{ bytes: img }]), row('long', [{ bytes: img }], { chosen: { role: 'assistant', content: long } }), row('text-only', [], { messages: [{ role: 'user', content: long }] })],
    )
    expect(out.map((s) => s.id)).toEqual(['small'])
    expect(rejects.map((r) => [r.id, r.reason])).toEqual([['long', 'exceeds_cutoff'], ['text-only', 'exceeds_cutoff']])
    expect(rejects[0]!.detail).toMatchObject({ cutoffLen: 2048, estimate: { images: 326, chosen: 2800, total: expect.any(Number) } })
    expect(rejects[0]!.message).toMatch(/the row needs about \d+ tokens \(text ≈\d+, images 326, template 15\), above cutoffLen 2048/)
    // images alone can exceed a small budget
    const tight = await runImages([row('small', [{ bytes: img }])], { cutoffLen: 300 })
    expect(tight.rejects.map((r) => r.reason)).toEqual(['exceeds_cutoff'])
    expect((await runImages([row('small', [{ bytes: img }])], { cutoffLen: false })).out).toHaveLength(1)
  })

  it('keeps input order with rejects interleaved, and processes every image of a multi-image row', async () => {
    const imgs = pool.slice(20, 26).map((p) => p.bytes)
    const samples = [
      row('0', [{ bytes: imgs[0]! }, { bytes: imgs[1]! }]),
      row('1', [{ bytes: Buffer.alloc(0) }]),
      row('2', [{ bytes: imgs[2]! }]),
      row('3', [{ bytes: imgs[3]! }, { bytes: Buffer.from('x') }]),
      row('4', [{ bytes: imgs[4]! }]),
      row('5', []),
      row('6', [{ bytes: imgs[5]! }]),
    ]
    const { out, rejects, stats } = await runImages(samples, { concurrency: 2 })
    expect(out.map((s) => s.id)).toEqual(['0', '2', '4', '5', '6'])
    expect(out[0]!.images.map((i) => i.original!.sha256)).toEqual([sha(imgs[0]!), sha(imgs[1]!)])
    expect(rejects.map((r) => [r.id, r.reason, r.detail?.['image']])).toEqual([
      ['1', 'image_empty', 0],
      ['3', 'image_unsupported', 1],
    ])
    expect(stats.in).toBe(7)
    expect(stats.out).toBe(5)
  })

  it('exposes counters and histograms for the report', async () => {
    const { stage, stats } = await runImages(pool.slice(0, 5).map((p, i) => row(`p${i}`, [{ bytes: p.bytes }])))
    const s = stage.imageStats()
    expect(s.counters).toEqual(stats.counters)
    expect(s.histograms.visualTokens.n).toBe(5)
    expect(s.histograms.visualTokens.sum).toBe(stats.counters.visualTokens)
    expect(s.histograms.pixels.n).toBe(5)
    expect(s.histograms.rowTokens.n).toBe(5)
    expect(Object.values(s.sizes).reduce((a, b) => a + b, 0)).toBe(5)
    expect(s.histograms.pixels.counts.reduce((a, b) => a + b, 0)).toBe(5)
    expect(JSON.parse(JSON.stringify(s))).toEqual(s)
    expect(stats.counters.imageBytesIn).toBe(pool.slice(0, 5).reduce((n, p) => n + p.bytes.length, 0))
    expect(processImages().imageStats().histograms.pixels.n).toBe(0)
  })

  it('stops promptly and cleanly when the run is aborted', async () => {
    const controller = new AbortController()
    let seen = 0
    const stopper: Sink<PreferenceSample, number> = named('stopper', async (input: AsyncIterable<PreferenceSample>) => {
      for await (const _ of input) if (++seen === 2) controller.abort()
      return seen
    })
    await expect(pipeline(rows(pool.map((p, i) => row(`p${i}`, [{ bytes: p.bytes }]))), processImages({ concurrency: 2 }), stopper, { signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' })
    expect(seen).toBeLessThan(pool.length)
  })
})

describe('options', () => {
  it('fills the defaults, and the model sets the factor and the minimum', () => {
    expect(resolveImagesOptions({})).toMatchObject({ model: 'qwen2-vl', factor: 28, maxPixels: 262144, minPixels: 3136, maxAspectRatio: 180, limitInputPixels: 89_478_485, failOn: 'error', animated: 'reject', format: 'jpeg', quality: 90, nearDuplicates: 'group', nearDuplicateDistance: 6, cutoffLen: 2048 })
    expect(resolveImagesOptions({ model: 'qwen3-vl' })).toMatchObject({ factor: 32, minPixels: 65536 })
    expect(resolveImagesOptions({ model: 'qwen2.5-vl' })).toMatchObject({ factor: 28, minPixels: 3136 })
  })

  it.each([
    [{ maxPixels: 0 }, /processImages\(\): option "maxPixels" is invalid/],
    [{ maxPixels: 20_000_000 }, /option "maxPixels" is invalid: 20000000 is above the qwen2-vl processor's max_pixels/],
    [{ minPixels: 1024 }, /option "minPixels" is invalid: 1024 is below the qwen2-vl processor's min_pixels \(3136\)/],
    [{ minPixels: 300000 }, /option "minPixels" is invalid: 300000 is above maxPixels/],
    [{ maxAspectRatio: 250 }, /option "maxAspectRatio" is invalid/],
    [{ quality: 0 }, /option "quality" is invalid/],
    [{ nearDuplicateDistance: 40 }, /option "nearDuplicateDistance" is invalid/],
    [{ cutoffLen: true }, /option "cutoffLen" is invalid/],
    [{ model: 'llava' }, /option "model" is invalid/],
    [{ inputFormats: ['bmp'] }, /option "inputFormats.0" is invalid/],
    [{ maxPixel: 1 }, /processImages\(\): unknown option "maxPixel" \(known options: model, factor, maxPixels/],
  ])('%j throws, naming processImages and the option', (o, message) => {
    expect(() => processImages(o as never)).toThrow(TypeError)
    expect(() => processImages(o as never)).toThrow(message)
  })
})

