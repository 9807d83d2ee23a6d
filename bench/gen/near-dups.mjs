#!/usr/bin/env node
// How many images of a folder have a near-duplicate (64-bit pHash within --distance, the images stage's own
// perceptualHash from dist/), to check that the generator makes only "a few" on purpose.
//   node bench/gen/near-dups.mjs <folder> [--distance 6] [--specs]   (folder: bench/data/rlhfv-1x-images,
//   or one made by `make_rlhfv.py --dump-images DIR`, whose specs.json names the photo of each image)
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ROOT, args } from '../lib/common.mjs'

const a = args()
const dir = a._[0]
const maxD = a.distance ?? 6
const { perceptualHash } = await import(pathToFileURL(join(ROOT, 'dist', 'transforms', 'images', 'phash.js')).href)
const files = readdirSync(dir).filter((f) => /\.(jpg|png)$/.test(f)).sort()
const specs = existsSync(join(dir, 'specs.json')) ? JSON.parse(readFileSync(join(dir, 'specs.json'), 'utf8')) : null
const hi = new Uint32Array(files.length)
const lo = new Uint32Array(files.length)
for (const [i, f] of files.entries()) {
  const h = await perceptualHash(readFileSync(join(dir, f)), { limitInputPixels: 1e9, failOn: 'error' })
  hi[i] = Number(h >> 32n)
  lo[i] = Number(h & 0xffffffffn)
}
const pop = (v) => {
  v = v - ((v >>> 1) & 0x55555555)
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333)
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24
}
const has = new Uint8Array(files.length)
let pairs = 0
let samePhoto = 0
let planned = 0
const examples = []
for (let i = 0; i < files.length; i++) {
  for (let j = i + 1; j < files.length; j++) {
    const d = pop(hi[i] ^ hi[j]) + pop(lo[i] ^ lo[j])
    if (d <= maxD) {
      pairs++
      has[i] = has[j] = 1
      if (specs) {
        const si = specs[Number(files[i].slice(0, 5))]
        const sj = specs[Number(files[j].slice(0, 5))]
        if (si.photo === sj.photo) samePhoto++
        if (si.near_of === sj.k || sj.near_of === si.k) planned++
        else if (examples.length < 8) examples.push([files[i], files[j], d, si.photo_name, sj.photo_name, si.crop_area.toFixed(2), sj.crop_area.toFixed(2)])
      }
    }
  }
}
const n = has.reduce((x, y) => x + y, 0)
console.log(`${files.length} images: ${n} have a near-duplicate within ${maxD} bits (${pairs} pairs${specs ? `, ${planned} planned, ${samePhoto} of the same photo` : ''})`)
for (const e of examples) console.log('  ', e.join(' '))
