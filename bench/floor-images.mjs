#!/usr/bin/env node
// The libvips floor: the image work of the images stage alone, with sharp at full parallelism, over the
// pre-extracted distinct images (bench/extract-images.mjs), all read into memory before the clock starts.
// Per image: decode, resize to the stage's output size (bench/lib/sizes.mjs), encode JPEG q90 4:2:0 baseline.
// Images already at their output size are kept by the stage without decoding for resize, so they are skipped
// here too (counted as `kept`).
//
//   node bench/floor-images.mjs [--scale 1] [--inflight 4] [--kernel lanczos3|cubic] [--encoder default|noopt|mozjpeg]
//                               [--threads 1] [--limit N]
// --inflight   images in flight (sharp calls awaiting at once); the libuv pool (UV_THREADPOOL_SIZE) must be at
//              least this for them all to run: bench/run.mjs sets it.
// --threads    libvips threads per image (sharp.concurrency); default 1, sharp's default on glibc Linux.
// --encoder    default = sharp's defaults as the stage uses them (optimiseCoding on, mozjpeg off);
//              noopt = optimiseCoding off; mozjpeg = mozjpeg on (trellis quantisation etc.).
// Prints one JSON line: wall/cpu seconds of the timed loop, images done, bytes out.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import sharp from 'sharp'
import { args } from './lib/common.mjs'
import { extract, imagesDir } from './extract-images.mjs'

const a = args()
const scale = a.scale ?? 1
const inflight = a.inflight ?? 4
const kernel = a.kernel ?? 'lanczos3'
const encoder = a.encoder ?? 'default'
const threads = a.threads ?? 1

const idx = await extract(scale)
const dir = imagesDir(scale)
const items = (a.limit ? idx.images.slice(0, a.limit) : idx.images).map((i) => ({ ...i, buf: readFileSync(join(dir, i.file)) }))

sharp.concurrency(threads)
const jpeg = { quality: 90, chromaSubsampling: '4:2:0', progressive: false, mozjpeg: encoder === 'mozjpeg', ...(encoder === 'noopt' ? { optimiseCoding: false } : {}) }

let next = 0
let kept = 0
let outBytes = 0
async function worker() {
  while (next < items.length) {
    const it = items[next++]
    const [tw, th] = it.target
    if (it.width === tw && it.height === th && it.format === 'jpeg') {
      kept++
      continue
    }
    const out = await sharp(it.buf).resize(tw, th, { fit: 'fill', kernel }).jpeg(jpeg).toBuffer()
    outBytes += out.byteLength
  }
}

const cpu0 = process.cpuUsage()
const t0 = performance.now()
await Promise.all(Array.from({ length: inflight }, worker))
const wall = (performance.now() - t0) / 1000
const cpu = process.cpuUsage(cpu0)
const result = {
  scale,
  inflight,
  kernel,
  encoder,
  threads,
  uvThreadpool: Number(process.env.UV_THREADPOOL_SIZE ?? 4),
  images: items.length,
  kept,
  wall: Math.round(wall * 1000) / 1000,
  cpu: Math.round(((cpu.user + cpu.system) / 1e6) * 1000) / 1000,
  imagesPerSec: Math.round((items.length / wall) * 10) / 10,
  outMB: Math.round(outBytes / 1e4) / 100,
}
process.stdout.write(JSON.stringify(result) + '\n')
