#!/usr/bin/env node
// End-to-end through the library (dist/), with the run report's per-stage timings. Two modes:
//   composed (default): parquetSource -> validateRanking -> processImages -> llamaFactory, plus the input's
//            sha256 for the manifest as the preset computes it (timed apart: digestMs)
//   --preset: prepareRlhfV({ input, out, imageOptions }), the very job `prefpipe rlhf-v --input F --out D`
//            runs (validate, images, sink, train_dpo.yaml, then report.json/html); outsideMs = what it spends
//            outside pipeline() (input sha256 before, the report after)
//
//   node bench/pipeline.mjs --input bench/data/rlhfv-1x-rg100.parquet [--preset] [--out DIR] [--images true|false]
//                           [--images-opts '{"concurrency":4}'] [--keep] [--dist DIR]
// --images false   leave the images stage out (composed mode only)
// --out            output folder (default: a fresh temp folder, removed afterwards unless --keep)
// Run under /usr/bin/time -v for the peak RSS (bench/run.mjs does). Prints one JSON line: wall, cpu, the
// report's stages (in/out/selfMs/wallMs), the images stage's counters and the sink's counts.
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ROOT, args } from './lib/common.mjs'

const a = args()
if (!a.input) throw new Error('usage: pipeline.mjs --input <file.parquet> [--out DIR] [--images true|false]')
// --dist DIR: another build of the library (e.g. a copy of dist/ from before a change), for before/after runs
const DIST = a.dist ? String(a.dist) : join(ROOT, 'dist')
const lib = await import(pathToFileURL(join(DIST, 'index.js')).href)
const { pipeline, parquetSource, validateRanking, llamaFactory, fileDigest } = lib

let processImages = lib.processImages
const wantImages = a.images === undefined ? true : String(a.images) !== 'false'
if (a.preset && !lib.prepareRlhfV) throw new Error('pipeline.mjs: dist/index.js has no prepareRlhfV')
if (wantImages && !processImages) {
  const p = join(DIST, 'transforms', 'images', 'index.js')
  if (!existsSync(p)) {
    process.stderr.write('pipeline.mjs: dist has no images stage (run `npm run build`), or pass --images false\n')
    process.exit(2)
  }
  processImages = (await import(pathToFileURL(p).href)).processImages
}
const imagesOpts = a['images-opts'] ? JSON.parse(a['images-opts']) : {}

const out = a.out ?? (await mkdtemp(join(tmpdir(), 'prefpipe-bench-')))
const r1 = (x) => Math.round(x * 10) / 10
if (a.preset) {
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  const { result, report } = await lib.prepareRlhfV({ input: a.input, out, ...(a['images-opts'] ? { imageOptions: imagesOpts } : {}) })
  const wall = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  const mem = process.memoryUsage()
  if (!a.out && !a.keep) await rm(out, { recursive: true, force: true })
  process.stdout.write(
    JSON.stringify({
      input: a.input,
      mode: 'preset',
      imagesOpts,
      wall: Math.round(wall * 1000) / 1000,
      cpu: Math.round(((cpu.user + cpu.system) / 1e6) * 1000) / 1000,
      reportWallMs: r1(report.wallMs),
      outsideMs: r1(wall * 1000 - report.wallMs),
      stages: report.stages.map((s) => ({ name: s.name, kind: s.kind, in: s.in, out: s.out, selfMs: s.selfMs, wallMs: s.wallMs, dropped: s.dropped })),
      imageCounters: report.stages.find((s) => s.name === 'images')?.counters,
      rejected: report.rejected,
      counts: result.counts,
      heapMB: r1(mem.heapUsed / 1e6),
      externalMB: r1(mem.external / 1e6),
    }) + '\n',
  )
  process.exit(0)
}
const t0 = performance.now()
const cpu0 = process.cpuUsage()
const tDigest = performance.now()
const digest = await fileDigest(a.input)
const digestMs = performance.now() - tDigest
const images = wantImages ? processImages(imagesOpts) : null
const stages = [
  parquetSource({ path: a.input, columns: { messages: 'conversations', chosen: 'chosen', rejected: 'rejected', images: 'images' } }),
  validateRanking(),
  ...(images ? [images] : []),
  llamaFactory({ out, name: 'rlhf_v', inputs: [{ file: basename(a.input), ...digest }], options: { preset: 'rlhf-v', name: 'rlhf_v' } }),
]
const { result, report } = await pipeline(...stages)
const wall = (performance.now() - t0) / 1000
const cpu = process.cpuUsage(cpu0)
const mem = process.memoryUsage()
if (!a.out && !a.keep) await rm(out, { recursive: true, force: true })

process.stdout.write(
  JSON.stringify({
    input: a.input,
    mode: 'composed',
    images: !!images,
    imagesOpts,
    wall: Math.round(wall * 1000) / 1000,
    cpu: Math.round(((cpu.user + cpu.system) / 1e6) * 1000) / 1000,
    digestMs: r1(digestMs),
    reportWallMs: r1(report.wallMs),
    stages: report.stages.map((s) => ({ name: s.name, kind: s.kind, in: s.in, out: s.out, selfMs: s.selfMs, wallMs: s.wallMs, dropped: s.dropped })),
    imageCounters: images ? report.stages.find((s) => s.name === 'images')?.counters : undefined,
    rejected: report.rejected,
    counts: result.counts,
    heapMB: r1(mem.heapUsed / 1e6),
    externalMB: r1(mem.external / 1e6),
    ...(a.out || a.keep ? { out } : {}),
  }) + '\n',
)
