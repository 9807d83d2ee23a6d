#!/usr/bin/env node
// The parquet floor: read every row with hyparquet, one row group at a time (utf8: false, as
// reference/parquet.md requires), and sha256 every image's bytes. No mapping, no validation, no output.
//   node bench/floor-parquet.mjs --input bench/data/rlhfv-1x-rg100.parquet
// Run under /usr/bin/time -v for the peak RSS (bench/run.mjs does). Prints one JSON line.
import { createHash } from 'node:crypto'
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet'
import { compressors } from 'hyparquet-compressors'
import { args } from './lib/common.mjs'

const a = args()
if (!a.input) throw new Error('usage: floor-parquet.mjs --input <file.parquet>')
const t0 = performance.now()
const cpu0 = process.cpuUsage()
const file = await asyncBufferFromFile(a.input)
const metadata = await parquetMetadataAsync(file)
let rows = 0
let images = 0
let imageBytes = 0
const digest = createHash('sha256')
let start = 0
for (const rg of metadata.row_groups) {
  const end = start + Number(rg.num_rows)
  const objs = await parquetReadObjects({ file, metadata, rowStart: start, rowEnd: end, utf8: false, compressors })
  for (const r of objs) {
    rows++
    for (const im of r.images ?? []) {
      images++
      imageBytes += im.bytes.byteLength
      digest.update(createHash('sha256').update(im.bytes).digest())
    }
  }
  start = end
}
const wall = (performance.now() - t0) / 1000
const cpu = process.cpuUsage(cpu0)
process.stdout.write(JSON.stringify({ rows, images, imageMB: Math.round(imageBytes / 1e4) / 100, rowGroups: metadata.row_groups.length, wall: Math.round(wall * 1000) / 1000, cpu: Math.round(((cpu.user + cpu.system) / 1e6) * 1000) / 1000, digest: digest.digest('hex').slice(0, 16) }) + '\n')
