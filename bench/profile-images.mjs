#!/usr/bin/env node
// Where the images stage spends CPU, step by step, per distinct image: one image at a time, one libvips
// thread, CPU time of the process around each step (so other load on the machine does not count).
//   node bench/profile-images.mjs [--limit 600] [--scale 1]
// Steps are the stage's own functions from dist/transforms/images (run `npm run build` first), then the
// floor's single sharp call with its settings, and alternatives the stage could use. Prints a table and
// appends a JSON line to bench/results/profile-images.jsonl.
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import sharp from 'sharp'
import { ROOT, args, fmt, load, machine, record, table } from './lib/common.mjs'
import { extract, imagesDir } from './extract-images.mjs'

const a = args()
const scale = a.scale ?? 1
const limit = a.limit ?? 600
const mod = await import(pathToFileURL(join(ROOT, 'dist', 'transforms', 'images', 'index.js')).href)
const { probeImage, reencodeImage, perceptualHash, phashFromGrey } = mod
// the stage's header probe since issue 7: JPEG markers read in JS, sharp only for what it does not answer
const { probeJpegHeader } = await import(pathToFileURL(join(ROOT, 'dist', 'transforms', 'images', 'jpeg-probe.js')).href).catch(() => ({}))
const idx = await extract(scale)
const dir = imagesDir(scale)
// every k-th image, so the sample has the file's mix of sizes and formats
const step = Math.max(1, Math.floor(idx.images.length / limit))
const items = idx.images.filter((_, i) => i % step === 0).slice(0, limit).map((i) => ({ ...i, buf: readFileSync(join(dir, i.file)) }))
sharp.concurrency(1)
const guard = { limitInputPixels: 89_478_485, failOn: 'error', inputFormats: ['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif', 'heif'], animated: 'reject' }
const enc = { format: 'jpeg', quality: 90, chromaSubsampling: '4:2:0' }

/** 32x32 grey (Rec.601 luma) by averaging the source pixels that fall in each cell. */
function boxGrey32(px, width, height, channels) {
  const sum = new Float64Array(32 * 32)
  const cnt = new Uint32Array(32 * 32)
  for (let y = 0; y < height; y++) {
    const row = ((y * 32) / height) | 0
    let o = y * width * channels
    for (let x = 0; x < width; x++, o += channels) {
      const c = row * 32 + (((x * 32) / width) | 0)
      sum[c] += 0.299 * px[o] + 0.587 * px[o + 1] + 0.114 * px[o + 2]
      cnt[c]++
    }
  }
  const out = new Uint8Array(32 * 32)
  for (let i = 0; i < out.length; i++) out[i] = Math.round(sum[i] / cnt[i])
  return out
}

const steps = {}
async function t(name, fn) {
  const c0 = process.cpuUsage()
  const w0 = performance.now()
  const r = await fn()
  const c = process.cpuUsage(c0)
  const s = (steps[name] ??= { cpu: 0, wall: 0, n: 0 })
  s.cpu += (c.user + c.system) / 1000
  s.wall += performance.now() - w0
  s.n++
  return r
}

// warm up sharp and the JIT
for (const it of items.slice(0, 5)) await sharp(it.buf).resize(64, 64).jpeg().toBuffer()

for (const it of items) {
  const [w, h] = it.target
  const target = { width: w, height: h }
  await t('stage: sha256 of the source', () => createHash('sha256').update(it.buf).digest('hex'))
  await t('stage (before issue 7): probe (sharp metadata)', () => probeImage(it.buf, guard))
  if (probeJpegHeader) await t('stage: probe (JPEG header in JS, else sharp metadata)', async () => probeJpegHeader(it.buf, guard) ?? (await probeImage(it.buf, guard)))
  const out = await t('stage: reencode (decode, cubic, jpeg standard Huffman tables)', () => reencodeImage(it.buf, target, guard, enc))
  await t('stage: pHash of the output (its DC coefficients, read in JS)', () => perceptualHash(out.bytes, guard))
  await t('stage: sha256 of the output', () => createHash('sha256').update(out.bytes).digest('hex'))
  // the floor's call with the stage's settings, and with the fastest settings
  await t('floor: resize+encode, lanczos3, optimiseCoding on', () => sharp(it.buf).resize(w, h, { fit: 'fill', kernel: 'lanczos3' }).jpeg({ quality: 90, chromaSubsampling: '4:2:0' }).toBuffer())
  await t('alt: lanczos3, optimiseCoding off', () => sharp(it.buf).resize(w, h, { fit: 'fill', kernel: 'lanczos3' }).jpeg({ quality: 90, chromaSubsampling: '4:2:0', optimiseCoding: false }).toBuffer())
  await t('alt: cubic, optimiseCoding off', () => sharp(it.buf).resize(w, h, { fit: 'fill', kernel: 'cubic' }).jpeg({ quality: 90, chromaSubsampling: '4:2:0', optimiseCoding: false }).toBuffer())
  await t('alt: same but autoOrient+flatten+toColourspace (as the stage)', () =>
    sharp(it.buf).autoOrient().resize(w, h, { fit: 'fill', kernel: 'lanczos3' }).flatten({ background: '#ffffff' }).toColourspace('srgb').jpeg({ quality: 90, chromaSubsampling: '4:2:0' }).toBuffer())
  // pHash without a second full decode: the 32x32 grey from the resized pixels already in hand
  await t('alt: pHash from the source with shrink-on-load', async () => {
    const { data } = await sharp(it.buf).resize(32, 32, { fit: 'fill', kernel: 'lanczos3' }).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true })
    return phashFromGrey(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
  })
  // the same, but the 32x32 grey averaged in JS from the raw pixels (a box filter: NOT the stage's Lanczos
  // pHash, so hashes differ; this only prices the route)
  await t('alt: resize once to raw, encode from the raw, 32x32 grey box-averaged in JS (cost only)', async () => {
    const { data, info } = await sharp(it.buf).resize(w, h, { fit: 'fill', kernel: 'lanczos3' }).raw().toBuffer({ resolveWithObject: true })
    const jpgP = sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } }).jpeg({ quality: 90, chromaSubsampling: '4:2:0' }).toBuffer()
    const grey = boxGrey32(data, info.width, info.height, info.channels)
    return [await jpgP, phashFromGrey(grey)]
  })
  for (const [label, kernel, optimiseCoding] of [['lanczos3, optimiseCoding on', 'lanczos3', true], ['cubic, optimiseCoding off', 'cubic', false]]) {
    await t(`alt: resize once to raw, then encode + 32x32 grey from the raw (${label})`, async () => {
      const { data, info } = await sharp(it.buf).resize(w, h, { fit: 'fill', kernel }).raw().toBuffer({ resolveWithObject: true })
      const rawIn = { raw: { width: info.width, height: info.height, channels: info.channels } }
      const [jpg, grey] = await Promise.all([
        sharp(data, rawIn).jpeg({ quality: 90, chromaSubsampling: '4:2:0', optimiseCoding }).toBuffer(),
        sharp(data, rawIn).resize(32, 32, { fit: 'fill', kernel: 'lanczos3' }).toColourspace('b-w').raw().toBuffer(),
      ])
      return [jpg, phashFromGrey(new Uint8Array(grey.buffer, grey.byteOffset, grey.byteLength))]
    })
  }
}

const rows = Object.entries(steps).map(([name, s]) => [name, fmt(s.cpu / s.n, 2), fmt((s.cpu / s.n) * idx.distinct / 1000, 1), fmt(s.wall / s.n, 2)])
const stageTotal = Object.entries(steps).filter(([n]) => n.startsWith('stage:') || (!probeJpegHeader && n.startsWith('stage (before'))).reduce((acc, [, s]) => acc + s.cpu / s.n, 0)
const floorStage = steps['alt: cubic, optimiseCoding off']
const l = load()
console.log(`${items.length} of ${idx.distinct} distinct images (every ${step}th), one at a time, sharp.concurrency 1; ${l.uptime}`)
console.log()
console.log(table(['step', 'cpu ms / image', `cpu s for all ${idx.distinct}`, 'wall ms / image'], rows))
console.log(`stage steps total: ${fmt(stageTotal)} ms cpu / image = ${fmt(stageTotal / (floorStage.cpu / floorStage.n))} x the floor call with the same settings (cubic, optimiseCoding off)`)
record('profile-images', { date: new Date().toISOString(), machine: await machine(), load: l.loadavg, images: items.length, steps: Object.fromEntries(Object.entries(steps).map(([k, s]) => [k, { cpuMs: Math.round((s.cpu / s.n) * 100) / 100, wallMs: Math.round((s.wall / s.n) * 100) / 100 }])) })
