#!/usr/bin/env node
// Pre-extract the distinct images of a generated file for the libvips floor (not timed).
//   node bench/extract-images.mjs [--scale 1] [--layout rg100]
// Writes bench/data/rlhfv-<scale>x-images/<sha256>.<jpg|png> and index.json: one entry per distinct image
// with its size and the output size the images stage gives it (bench/lib/sizes.mjs).
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet'
import sharp from 'sharp'
import { DATA, args, dataFile } from './lib/common.mjs'
import { checkAgainstDist, targetSize } from './lib/sizes.mjs'

export function imagesDir(scale) {
  return join(DATA, `rlhfv-${scale}x-images`)
}

export async function extract(scale = 1, layout = 'rg100', { force = false } = {}) {
  const dir = imagesDir(scale)
  const indexPath = join(dir, 'index.json')
  const src = dataFile(scale, layout)
  if (!existsSync(src)) throw new Error(`${src} is missing: run .venv/bin/python bench/gen/make_rlhfv.py --scale ${scale}`)
  const st = statSync(src)
  const stamp = `${st.size}:${st.mtimeMs}`
  if (!force && existsSync(indexPath)) {
    const idx = JSON.parse(readFileSync(indexPath, 'utf8'))
    if (idx.source === src && idx.stamp === stamp) return idx
  }
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const file = await asyncBufferFromFile(src)
  const metadata = await parquetMetadataAsync(file)
  const seen = new Map()
  let rows = 0
  let start = 0
  for (const rg of metadata.row_groups) {
    const end = start + Number(rg.num_rows)
    const objs = await parquetReadObjects({ file, metadata, rowStart: start, rowEnd: end, columns: ['images'], utf8: false })
    for (const r of objs) {
      rows++
      for (const im of r.images ?? []) {
        const sha = createHash('sha256').update(im.bytes).digest('hex')
        if (seen.has(sha)) continue
        const md = await sharp(im.bytes).metadata()
        const ext = md.format === 'png' ? 'png' : 'jpg'
        const name = `${sha}.${ext}`
        writeFileSync(join(dir, name), im.bytes)
        const t = targetSize(md.height, md.width)
        seen.set(sha, { file: name, bytes: im.bytes.byteLength, format: md.format, width: md.width, height: md.height, target: [t.width, t.height] })
      }
    }
    start = end
  }
  const images = [...seen.values()]
  const check = await checkAgainstDist(images.map((i) => [i.width, i.height]))
  const idx = { source: src, stamp, rows, distinct: images.length, bytes: images.reduce((a, i) => a + i.bytes, 0), targetCheck: check, images }
  writeFileSync(indexPath + '.tmp', JSON.stringify(idx))
  renameSync(indexPath + '.tmp', indexPath)
  return idx
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const a = args()
  const idx = await extract(a.scale ?? 1, a.layout ?? 'rg100', { force: !!a.force })
  const kinds = {}
  for (const i of idx.images) kinds[i.format] = (kinds[i.format] ?? 0) + 1
  console.log(`extract-images: ${idx.distinct} distinct images (${JSON.stringify(kinds)}, ${(idx.bytes / 1e6).toFixed(1)} MB) from ${idx.rows} rows -> ${imagesDir(a.scale ?? 1)}`)
  console.log(`  output sizes vs the stage's targetSize: ${idx.targetCheck ? `${idx.targetCheck.differ} of ${idx.targetCheck.checked} differ` : 'dist/transforms/images not built, not checked'}`)
}
