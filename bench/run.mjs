#!/usr/bin/env node
// The benchmark driver: everything in order, interleaved rounds, medians, the targets of issue 7.
//
//   node bench/run.mjs                 # full run (~30-40 min on 2 cores): generate data if missing, then all
//   node bench/run.mjs --runs 5        # more rounds
//   node bench/run.mjs --quick         # validation: 1 round, 400-row slice of everything, no growth (minutes)
//   node bench/run.mjs --only floor,e2e,python,layouts,growth   (any subset; default all)
//   node bench/run.mjs --only floor,e2e,python --core --floor-sweep none --floor-best 4,cubic,noopt
//                                      # just the target ratios: floor (given setting), CLI, Python 1 and 2
//   node bench/run.mjs --growth-scale 4 --floor-sweep full|short|none --variants c4,uv8,c4uv8,nocache,arena2
//   node bench/run.mjs --only floor,e2e,python --core --cli-before /tmp/before/dist/cli/main.js
//                                      # also runs an earlier build of the CLI in every round (before/after, same session)
//   node bench/run.mjs --only layouts,growth --layouts rg1 --growth-runs 1   (which layouts; rounds of the growth runs)
//
// Needs: `npm run build` done (dist/), .venv (bash scripts/python-venv.sh), GNU time at /usr/bin/time.
// Every measured process runs under `/usr/bin/time -v` (wall, user+sys incl. children, peak RSS), with the
// load average recorded just before it. Results: one JSON line per run in bench/results/<bench>.jsonl, a
// summary line in bench/results/summary.jsonl, and the tables in bench/results/latest.md.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import sharp from 'sharp'
import { PYTHON, ROOT, args, dataFile, dataMeta, fileMB, fmt, load, machine, median, record, setResultsDir, table, timed } from './lib/common.mjs'
import * as common from './lib/common.mjs'

const a = args()
if (a.quick) setResultsDir(join(ROOT, 'bench', 'results', 'quick'))
const RUNS = a.quick ? 1 : (a.runs ?? 3)
const GROWTH = a['growth-scale'] ?? 4
const ONLY = new Set(String(a.only ?? 'floor,e2e,python,layouts,growth,profile').split(','))
if (a.quick) ONLY.delete('growth')
const SWEEP = a['floor-sweep'] ?? (a.quick ? 'short' : 'full')
const sessionId = new Date().toISOString()
const M = await machine()
const md = [] // markdown of this session
const say = (s = '') => {
  console.log(s)
  md.push(s)
}

// ------------------------------------------------------------------------------------------------ data

function ensureData(scale, layouts) {
  const missing = layouts.filter((l) => !existsSync(dataFile(scale, l)))
  if (missing.length === 0) return
  say(`generating bench/data for scale ${scale} (${missing.join(', ')}) ...`)
  execFileSync(PYTHON, [join(ROOT, 'bench', 'gen', 'make_rlhfv.py'), '--scale', String(scale), '--layouts', layouts.join(',')], { stdio: 'inherit', cwd: ROOT })
}

/** For --quick: the first 400 rows of a layout's file, same writer settings (pyarrow), made once. */
function quickFile(layout) {
  const src = dataFile(1, layout)
  const dst = src.replace('.parquet', '.quick.parquet')
  if (!existsSync(dst) || statSync(dst).mtimeMs < statSync(src).mtimeMs) {
    const py = `
import pyarrow.parquet as pq, sys
t = pq.read_table(sys.argv[1]).slice(0, 400)
kw = dict(rg100=dict(row_group_size=100, compression="snappy", write_page_index=False), rg1=dict(row_group_size=400, compression="snappy"), ds5=dict(row_group_size=200, compression="none", write_page_index=True))[sys.argv[3]]
pq.write_table(t, sys.argv[2], **kw)`
    execFileSync(PYTHON, ['-c', py, src, dst, layout], { stdio: 'inherit' })
  }
  return dst
}

const input = (scale, layout) => (a.quick ? quickFile(layout) : dataFile(scale, layout))

// ------------------------------------------------------------------------------------------------ runners

const NODE = process.execPath
const distHasImages = existsSync(join(ROOT, 'dist', 'transforms', 'images', 'index.js'))

function lastJson(stdout) {
  const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop()
  return line ? JSON.parse(line) : {}
}

async function measure(bench, variant, cmd, cmdArgs, extra = {}, env = {}) {
  const r = await timed(cmd, cmdArgs, { env })
  if (r.exit !== 0) {
    say(`  !! ${bench}/${variant} exited ${r.exit}: ${r.stderr.trim().split('\n').slice(-5).join(' | ')}`)
  }
  const out = lastJson(r.stdout)
  const row = { session: sessionId, date: new Date().toISOString(), commit: M.commit, bench, variant, ...extra, wall: r.wall, cpu: Math.round(r.cpu * 100) / 100, user: r.user, sys: r.sys, rssMB: r.rssMB, exit: r.exit, load: r.load, out }
  if (extra.inputMB && r.wall > 0) {
    row.mbPerSec = Math.round((extra.inputMB / r.wall) * 10) / 10
    if (extra.rows) row.rowsPerSec = Math.round(extra.rows / r.wall)
  }
  record(bench, row)
  console.log(`  ${bench.padEnd(14)} ${variant.padEnd(34)} wall ${fmt(r.wall)} s  cpu ${fmt(r.cpu)} s  rss ${fmt(r.rssMB, 0)} MB  load ${r.load[0]}`)
  return row
}

function fileInfo(path) {
  const scaleOf = /rlhfv-(\d+)x/.exec(path)
  const meta = dataMeta(scaleOf ? Number(scaleOf[1]) : 1)
  const rows = a.quick ? 400 : (meta?.rows ?? undefined)
  return { input: path.replace(ROOT + '/', ''), inputMB: Math.round(fileMB(path) * 10) / 10, rows }
}

// Outputs are removed when the session ends, not after each run: on ext4 without a journal (this machine's
// disk), creating a file skips the inodes deleted in the last ~30 s one by one, so a run started right after the
// previous run's 4,009 images were deleted paid for that deletion (about 3 % of the CLI's CPU in `perf`).
const outputs = []
process.on('exit', () => {
  for (const d of outputs) rmSync(d, { recursive: true, force: true })
})

async function cli(path, variant, main = join(ROOT, 'dist', 'cli', 'main.js')) {
  const out = mkdtempSync(join(tmpdir(), 'prefpipe-bench-cli-'))
  try {
    const row = await measure('e2e-cli', variant, NODE, [main, 'rlhf-v', '--input', path, '--out', out, '--no-progress'], fileInfo(path))
    row.cliImages = await cliResizes(out)
    return row
  } finally {
    outputs.push(out)
  }
}

/** Whether the CLI's output images are on the 28 grid within the budget (= the image stage is wired in). */
async function cliResizes(out) {
  const dir = join(out, 'images')
  if (!existsSync(dir)) return null
  const files = []
  for (const sub of readdirSync(dir).slice(0, 8)) for (const f of readdirSync(join(dir, sub)).slice(0, 2)) files.push(join(dir, sub, f))
  if (files.length === 0) return null
  for (const f of files) {
    const m = await sharp(f).metadata()
    if (m.width % 28 || m.height % 28 || m.width * m.height > 262_144) return false
  }
  return true
}

async function composed(path, variant, images = true, opts, env = {}, preset = false) {
  const cmdArgs = [join(ROOT, 'bench', 'pipeline.mjs'), '--input', path, ...(preset ? ['--preset'] : ['--images', String(images)])]
  if (opts) cmdArgs.push('--images-opts', JSON.stringify(opts))
  return measure(preset ? 'e2e-preset' : 'e2e-pipeline', variant, NODE, cmdArgs, { ...fileInfo(path), ...(opts ? { imagesOpts: opts } : {}), ...(Object.keys(env).length ? { env } : {}) }, env)
}

// Variants of the composed pipeline that test a suggestion (--variants none to skip them).
const VARIANTS = {
  c4: { label: 'processImages({ concurrency: 4 })', opts: { concurrency: 4 } },
  nocache: { label: 'processImages({ cacheBytes: 0 })', opts: { cacheBytes: 0 } },
  arena2: { label: 'MALLOC_ARENA_MAX=2', env: { MALLOC_ARENA_MAX: '2' } },
  uv8: { label: 'UV_THREADPOOL_SIZE=8', env: { UV_THREADPOOL_SIZE: '8' } },
  c4uv8: { label: 'processImages({ concurrency: 4 }), UV_THREADPOOL_SIZE=8', opts: { concurrency: 4 }, env: { UV_THREADPOOL_SIZE: '8' } },
}
const presetRun = (path, variant, opts, env) => composed(path, variant, true, opts, env, true)
const variantKeys = String(a.variants ?? (a.quick ? 'c4' : 'c4,uv8,c4uv8,nocache,arena2')).split(',').filter((k) => VARIANTS[k])

async function python(path, procs) {
  const out = mkdtempSync(join(tmpdir(), 'prefpipe-bench-py-'))
  try {
    return await measure('python-way', `procs ${procs}`, PYTHON, [join(ROOT, 'bench', 'python_way.py'), '--input', path, '--out', out, '--procs', String(procs)], fileInfo(path))
  } finally {
    outputs.push(out)
  }
}

function floorArgs(c) {
  const x = [join(ROOT, 'bench', 'floor-images.mjs'), '--inflight', String(c.inflight), '--kernel', c.kernel, '--encoder', c.encoder]
  if (a.quick) x.push('--limit', '300')
  return x
}
const floorName = (c) => `inflight ${c.inflight}, ${c.kernel}, ${c.encoder}`
async function floorImages(c, tag = '') {
  return measure('floor-images', floorName(c) + tag, NODE, floorArgs(c), { config: c }, { UV_THREADPOOL_SIZE: String(Math.max(4, c.inflight)) })
}
async function floorParquet(path) {
  return measure('floor-parquet', path.replace(/.*rlhfv-/, 'rlhfv-'), NODE, [join(ROOT, 'bench', 'floor-parquet.mjs'), '--input', path], fileInfo(path))
}

// ------------------------------------------------------------------------------------------------ session

say(`# bench session ${sessionId}`)
say()
say(`machine: ${M.cores} cores (${M.cpu}), ${M.memGiB} GiB, node ${M.node}, sharp ${M.sharp} / libvips ${M.vips} (sharp.concurrency ${M.concurrency}), ${M.python}, commit ${M.commit}`)
say(`load at start: ${load().uptime}`)
say(`dist has the images stage: ${distHasImages}; rounds: ${RUNS}${a.quick ? ' (quick: 400-row slices, 300 images)' : ''}`)
say()

ensureData(1, ['rg100', 'ds5', 'rg1'])
if (ONLY.has('growth')) ensureData(GROWTH, ['rg100'])
{
  const { extract } = await import('./extract-images.mjs')
  const idx = await extract(1)
  say(`floor images: ${idx.distinct} distinct images, ${(idx.bytes / 1e6).toFixed(1)} MB; output sizes vs the stage's targetSize: ${idx.targetCheck ? `${idx.targetCheck.differ} of ${idx.targetCheck.checked} differ` : 'not checked (no images stage in dist)'}`)
}
const rg100 = input(1, 'rg100')
let cliDoesImages = false
{
  const out = mkdtempSync(join(tmpdir(), 'prefpipe-bench-cli-'))
  try {
    execFileSync(NODE, [join(ROOT, 'dist', 'cli', 'main.js'), 'rlhf-v', '--input', join(ROOT, 'fixtures', 'rlhf-v-sample.parquet'), '--out', out, '--no-progress'], { stdio: 'ignore' })
    cliDoesImages = (await cliResizes(out)) === true
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
  say(`the CLI resizes images (output on the 28 grid within 262,144 px): ${cliDoesImages}`)
  say()
}

// 1. floor sweep: one run per setting, the best goes into the rounds
let best = { inflight: 4, kernel: 'lanczos3', encoder: 'default' }
if (a['floor-best']) {
  const [inflight, kernel, encoder] = String(a['floor-best']).split(',')
  best = { inflight: Number(inflight), kernel, encoder }
}
const CORE = !!a.core // rounds of the target runs only: floor best, CLI, Python 1 and 2
const stageLike = { inflight: 2, kernel: 'lanczos3', encoder: 'default' } // what processImages does by default on 2 cores
const sweepRows = []
if (ONLY.has('floor') && SWEEP !== 'none') {
  say('## floor sweep (one run each)')
  const configs = []
  // short: what the full sweep showed matters (in flight 4 and 8; mozjpeg is ~2.5x slower and left out)
  for (const inflight of SWEEP === 'full' ? [2, 4, 8] : [4, 8]) {
    for (const kernel of ['lanczos3', 'cubic']) {
      for (const encoder of ['default', 'noopt']) configs.push({ inflight, kernel, encoder })
    }
  }
  if (SWEEP === 'full') for (const kernel of ['lanczos3', 'cubic']) configs.push({ inflight: 4, kernel, encoder: 'mozjpeg' })
  for (const c of configs) sweepRows.push(await floorImages(c, ' (sweep)'))
  const ok = sweepRows.filter((r) => r.exit === 0)
  best = ok.sort((x, y) => x.wall - y.wall)[0]?.config ?? best
  say()
  say(table(['setting', 'wall s', 'cpu s', 'images/s', 'out MB', 'load'], sweepRows.map((r) => [floorName(r.config), fmt(r.wall), fmt(r.cpu), r.out.imagesPerSec, r.out.outMB, r.load[0]])))
  say(`best: ${floorName(best)}`)
  say()
}

// 2. rounds, interleaved so that load changes hit every variant alike
const CLI_BEFORE = a['cli-before'] ? String(a['cli-before']) : null
const R = { floorBest: [], floorStage: [], floorPq: [], cli: [], cliBefore: [], preset: [], pipe: [], pipeNoImg: [], py1: [], py2: [], variants: Object.fromEntries(variantKeys.map((k) => [k, []])) }
for (let round = 1; round <= RUNS; round++) {
  console.log(`round ${round}/${RUNS}  (${load().uptime})`)
  if (ONLY.has('floor')) {
    R.floorBest.push(await floorImages(best, ' (best)'))
    if (!CORE && floorName(best) !== floorName(stageLike)) R.floorStage.push(await floorImages(stageLike, ' (stage settings)'))
    if (!CORE) R.floorPq.push(await floorParquet(rg100))
  }
  if (ONLY.has('e2e')) {
    R.cli.push(await cli(rg100, 'rg100'))
    if (CLI_BEFORE) R.cliBefore.push(await cli(rg100, 'rg100 (before)', CLI_BEFORE))
    if (cliDoesImages && !CORE) R.preset.push(await presetRun(rg100, 'rg100'))
    if (distHasImages && !CORE) R.pipe.push(await composed(rg100, 'rg100 images'))
    if (!CORE) R.pipeNoImg.push(await composed(rg100, 'rg100 no images', false))
    if (cliDoesImages && !CORE) for (const k of variantKeys) R.variants[k].push(await presetRun(rg100, `rg100, ${VARIANTS[k].label}`, VARIANTS[k].opts, VARIANTS[k].env))
  }
  if (ONLY.has('python')) {
    R.py1.push(await python(rg100, 1))
    R.py2.push(await python(rg100, 2))
  }
}
if (R.floorStage.length === 0) R.floorStage = R.floorBest

// 3. the other layouts
const L = {}
if (ONLY.has('layouts')) {
  console.log('layouts')
  for (const layout of String(a.layouts ?? 'ds5,rg1').split(',')) {
    const p = input(1, layout)
    L[layout] = { cli: [], pipe: [], pq: [] }
    for (let round = 1; round <= RUNS; round++) {
      L[layout].pq.push(await floorParquet(p))
      L[layout].cli.push(await cli(p, layout))
      if (distHasImages && !cliDoesImages) L[layout].pipe.push(await composed(p, `${layout} images`))
    }
  }
}

// 4. growth: scale 1 vs GROWTH on rg100, interleaved
const G = { cli1: [], cliN: [], pipe1: [], pipeN: [] }
if (ONLY.has('growth')) {
  console.log(`growth 1x vs ${GROWTH}x`)
  const big = dataFile(GROWTH, 'rg100')
  for (let round = 1; round <= (a['growth-runs'] ?? RUNS); round++) {
    G.cli1.push(await cli(rg100, 'rg100 (growth 1x)'))
    G.cliN.push(await cli(big, `rg100 ${GROWTH}x`))
    if (distHasImages && !cliDoesImages) {
      G.pipe1.push(await composed(rg100, 'rg100 images (growth 1x)'))
      G.pipeN.push(await composed(big, `rg100 ${GROWTH}x images`))
    }
  }
}

// 5. per-step CPU inside the images stage (one image at a time; CPU time, so load matters less)
let profileText = ''
if (ONLY.has('profile') && distHasImages) {
  console.log('profile of the images stage')
  const r = await timed(NODE, [join(ROOT, 'bench', 'profile-images.mjs'), '--limit', a.quick ? '60' : '600'])
  profileText = r.stdout.trim()
  if (r.exit !== 0) say(`  !! profile-images exited ${r.exit}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`)
}

// ------------------------------------------------------------------------------------------------ tables

const med = (rows, k) => median(rows.filter((r) => r.exit === 0).map((r) => r[k]))
const loads = (rows) => rows.map((r) => r.load[0]).join(' / ')
const line = (name, rows) =>
  rows.length === 0
    ? null
    : [name, rows.length, fmt(med(rows, 'wall')), fmt(med(rows, 'cpu')), fmt(med(rows, 'rssMB'), 0), rows[0].rows ? fmt(med(rows, 'rowsPerSec'), 0) : '', rows[0].inputMB ? fmt(med(rows, 'mbPerSec'), 1) : '', loads(rows)]
const HEAD = ['what (medians)', 'runs', 'wall s', 'cpu s', 'peak RSS MB', 'rows/s', 'MB/s', 'load (1 min) per run']

say('## results (medians of the rounds)')
say()
say(
  table(
    HEAD,
    [
      line(`floor: images, best (${floorName(best)})`, R.floorBest),
      R.floorStage !== R.floorBest ? line(`floor: images, stage settings (${floorName(stageLike)})`, R.floorStage) : null,
      line('floor: parquet read + sha256 (rg100)', R.floorPq),
      line(`prefpipe CLI rlhf-v (rg100)${cliDoesImages ? '' : ' — no image stage yet'}`, R.cli),
      line(`prefpipe CLI rlhf-v (rg100), before: ${CLI_BEFORE}`, R.cliBefore),
      line('pipeline.mjs --preset: prepareRlhfV, the CLI\'s job (rg100)', R.preset),
      line('pipeline.mjs composed with processImages (rg100)', R.pipe),
      line('pipeline.mjs composed without images (rg100)', R.pipeNoImg),
      ...variantKeys.map((k) => line(`pipeline.mjs --preset, ${VARIANTS[k].label} (rg100)`, R.variants[k])),
      line('python way, 1 process (rg100)', R.py1),
      line('python way, 2 processes (rg100)', R.py2),
      ...Object.entries(L).flatMap(([lay, x]) => [line(`floor: parquet read (${lay})`, x.pq), line(`prefpipe CLI (${lay})`, x.cli), line(`pipeline.mjs with processImages (${lay})`, x.pipe)]),
      line(`growth: CLI 1x`, G.cli1),
      line(`growth: CLI ${GROWTH}x`, G.cliN),
      line(`growth: pipeline.mjs with images 1x`, G.pipe1),
      line(`growth: pipeline.mjs with images ${GROWTH}x`, G.pipeN),
    ].filter(Boolean),
  ),
)
say()

// per-stage selfMs of the composed pipeline (median per stage)
const stageTable = (rows, title) => {
  if (rows.length === 0) return
  const names = rows[0].out.stages?.map((s) => s.name) ?? []
  say(`### ${title}: per-stage selfMs (median of ${rows.length})`)
  say()
  say(table(['stage', 'in', 'out', 'selfMs', 'wallMs'], names.map((n) => {
    const xs = rows.map((r) => r.out.stages.find((s) => s.name === n))
    return [n, xs[0].in, xs[0].out, fmt(median(xs.map((s) => s.selfMs)), 0), fmt(median(xs.map((s) => s.wallMs)), 0)]
  })))
  const outside = rows[0].out.mode === 'preset' ? `outside pipeline() (input sha256 before, report after): ${fmt(median(rows.map((r) => r.out.outsideMs)), 0)} ms` : `input sha256 for the manifest (before the pipeline): ${fmt(median(rows.map((r) => r.out.digestMs)), 0)} ms`
  say(`${outside}; pipeline wall ${fmt(median(rows.map((r) => r.out.reportWallMs)), 0)} ms; process wall ${fmt(med(rows, 'wall'))} s, cpu ${fmt(med(rows, 'cpu'))} s`)
  if (rows[0].out.imageCounters) say(`images counters (run 1): ${JSON.stringify(rows[0].out.imageCounters)}`)
  say()
}
stageTable(R.preset, 'pipeline.mjs --preset (the CLI\'s job), rg100')
stageTable(R.pipe, 'pipeline.mjs composed with processImages, rg100')
if (profileText) {
  say('### inside the images stage: CPU per distinct image, step by step (bench/profile-images.mjs)')
  say()
  say(profileText)
  say()
}
stageTable(R.pipeNoImg, 'pipeline.mjs composed without images, rg100')

// targets
const e2eRows = cliDoesImages ? R.cli : R.pipe
const e2eName = cliDoesImages ? 'CLI' : 'pipeline.mjs (composed; the CLI has no image stage yet)'
const e2e = med(e2eRows, 'wall')
const floorW = med(R.floorBest, 'wall')
const py1 = med(R.py1, 'wall')
const py2 = med(R.py2, 'wall')
const rss = med(e2eRows, 'rssMB')
const g1 = cliDoesImages ? G.cli1 : G.pipe1
const gN = cliDoesImages ? G.cliN : G.pipeN
const growthRss = med(gN, 'rssMB') / med(g1, 'rssMB') - 1
const growthT = med(gN, 'wall') / med(g1, 'wall')
const rg1Rows = L.rg1 ? (cliDoesImages ? L.rg1.cli : L.rg1.pipe) : []
const targets = [
  ['end-to-end / libvips floor (rg100)', fmt(e2e / floorW), '≤ 1.15', e2e / floorW <= 1.15],
  ['python 1 process / end-to-end', fmt(py1 / e2e), '≥ 1.7', py1 / e2e >= 1.7],
  ['python 2 processes / end-to-end', fmt(py2 / e2e), '≥ 1.0', py2 / e2e >= 1.0],
  ...(R.cliBefore.length
    ? (() => {
        const b = med(R.cliBefore, 'wall')
        return [
          ['before: end-to-end / libvips floor', fmt(b / floorW), '≤ 1.15', b / floorW <= 1.15],
          ['before: python 1 process / end-to-end', fmt(py1 / b), '≥ 1.7', py1 / b >= 1.7],
          ['before: python 2 processes / end-to-end', fmt(py2 / b), '≥ 1.0', py2 / b >= 1.0],
          ['before: peak RSS, rg100 (MB)', fmt(med(R.cliBefore, 'rssMB'), 0), '< 300', med(R.cliBefore, 'rssMB') < 300],
        ]
      })()
    : []),
  ['peak RSS, rg100 (MB)', fmt(rss, 0), '< 300', rss < 300],
  [`peak RSS growth 1x → ${GROWTH}x`, Number.isFinite(growthRss) ? `${fmt(growthRss * 100, 1)} %` : '–', '< 10 %', growthRss < 0.1],
  [`time ${GROWTH}x / 1x`, fmt(growthT), `(≈ ${GROWTH})`, null],
  ['single row group: completes, peak RSS (MB)', rg1Rows.length ? `${rg1Rows.every((r) => r.exit === 0) ? 'yes' : 'NO'}, ${fmt(med(rg1Rows, 'rssMB'), 0)}` : '–', 'completes', rg1Rows.length ? rg1Rows.every((r) => r.exit === 0) : null],
]
say(`## targets (end-to-end = ${e2eName}; ratios of medians from this session)`)
say()
say(table(['target', 'measured', 'goal', 'met'], targets.map(([t, m, g, ok]) => [t, m, g, ok === null || m === '–' || m === 'NaN' ? '–' : ok ? 'yes' : 'NO'])))
if (a.quick) say('(--quick: 400-row slices and 300 floor images, for checking the scripts; the ratios mean nothing)')
say()
say(`load at end: ${load().uptime}`)

record('summary', {
  session: sessionId,
  date: new Date().toISOString(),
  machine: M,
  quick: !!a.quick,
  runs: RUNS,
  e2e: e2eName,
  best,
  medians: { e2e, floorImages: floorW, floorStage: med(R.floorStage, 'wall'), floorParquet: med(R.floorPq, 'wall'), cli: med(R.cli, 'wall'), py1, py2, rss, growthRss, growthT },
  targets: Object.fromEntries(targets.map(([t, m, , ok]) => [t, { measured: m, met: ok }])),
  loadEnd: load().loadavg,
})
writeFileSync(join(common.RESULTS, 'latest.md'), md.join('\n') + '\n')
console.log(`\nwrote ${join(common.RESULTS, 'latest.md').replace(ROOT + '/', '')} and a line in summary.jsonl there`)
