#!/usr/bin/env node
// Hub download benchmark: prefpipe's downloadDatasetFile vs curl, fetching the same ~300 MB file from the
// loopback mock Hub (its own process; the LFS file is a 302 to the mock CDN on 127.0.0.2, as on the Hub).
//
//   node bench/hub-download.mjs [--mb 300] [--runs 5] [--baseline <git rev>]
//
// --baseline also runs the download code of another commit (its src/ and bench client, taken with
// `git archive` into bench/data/baseline-<rev>/ and compiled there), alternating with curl and the current
// code, so a before/after comparison is measured in one run on the same (possibly noisy) machine.
//
// It compiles what it runs (bench/tsconfig.hub.json -> bench/data/build, no tsx), generates
// bench/data/hub-<mb>mb.bin once (random bytes), then alternates curl and prefpipe runs (fresh output each
// time), each under GNU time for the peak RSS. Throughput is bytes / the tool's own transfer time: curl's
// %{time_total} (redirect + body); prefpipe's call time (one HEAD on the resolve URL, as huggingface_hub, then
// the body straight from the CDN URL of its redirect + sha256 check + rename + symlink). "curl + sha256sum" adds the time to hash curl's file, the same guarantee prefpipe gives.
// One JSON line per invocation goes to bench/results/hub-download.jsonl.
import { execFileSync, spawn } from 'node:child_process'
import { createHash, randomFillSync } from 'node:crypto'
import { createReadStream, createWriteStream, existsSync, mkdirSync, rmSync, statSync, symlinkSync } from 'node:fs'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { args, BENCH, DATA, fmt, load, machine, median, record, ROOT, table, timed } from './lib/common.mjs'

const opts = args()
const MB = Number(opts.mb ?? 300)
const RUNS = Number(opts.runs ?? 5)
const BUILD = join(DATA, 'build', 'bench')
const BASELINE = opts.baseline === undefined ? undefined : String(opts.baseline)

// 1. Compile the mock server and the client (and what they import) with tsc.
execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(BENCH, 'tsconfig.hub.json')], { stdio: 'inherit' })

// 1b. The baseline commit's code, compiled the same way.
let baselineClient
if (BASELINE) {
  const rev = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', BASELINE], { encoding: 'utf8' }).trim()
  const dir = join(DATA, `baseline-${rev}`)
  if (!existsSync(join(dir, 'bench', 'data', 'build', 'bench', 'hub-download-client.js'))) {
    mkdirSync(dir, { recursive: true })
    const tar = execFileSync('git', ['-C', ROOT, 'archive', rev, 'src', 'test/mock-hub', 'bench/hub-download-client.ts', 'bench/hub-mock-serve.ts', 'bench/tsconfig.hub.json', 'tsconfig.json', 'package.json'], { maxBuffer: 1 << 30 })
    execFileSync('tar', ['-x', '-C', dir], { input: tar })
    if (!existsSync(join(dir, 'node_modules'))) symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'))
    execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(dir, 'bench', 'tsconfig.hub.json')], { stdio: 'inherit' })
  }
  baselineClient = { rev, path: join(dir, 'bench', 'data', 'build', 'bench', 'hub-download-client.js') }
}

// 2. The data file (random: incompressible, like parquet), made once.
mkdirSync(DATA, { recursive: true })
const file = join(DATA, `hub-${MB}mb.bin`)
const size = MB * 1024 * 1024
if (!existsSync(file) || statSync(file).size !== size) {
  process.stderr.write(`generating ${file} (${MB} MiB)\n`)
  const out = createWriteStream(file)
  const chunk = Buffer.alloc(1 << 20)
  for (let i = 0; i < MB; i++) {
    randomFillSync(chunk)
    if (!out.write(Buffer.from(chunk))) await once(out, 'drain')
  }
  out.end()
  await once(out, 'finish')
}
const hash = createHash('sha256')
for await (const c of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(c)
const sha256 = hash.digest('hex')

// 3. The mock Hub in its own process.
const server = spawn(process.execPath, [join(BUILD, 'hub-mock-serve.js'), file, sha256], { stdio: ['ignore', 'pipe', 'inherit'] })
const [line] = await once(server.stdout, 'data')
const hub = JSON.parse(String(line))
const url = `${hub.url}/datasets/${hub.repo}/resolve/main/${hub.file}`
const work = join(tmpdir(), `prefpipe-bench-hub-${process.pid}`)
mkdirSync(work, { recursive: true })

const curlRuns = []
const oursRuns = []
const baseRuns = []
try {
  const runCurl = async (i) => {
    const out = join(work, `curl-${i}.bin`)
    const t = await timed('curl', ['-sS', '-L', '-o', out, '-w', '%{size_download} %{time_total}', url])
    if (t.exit !== 0) throw new Error(`curl failed: ${t.stderr}`)
    const [bytes, total] = t.stdout.trim().split(' ').map(Number)
    if (bytes !== size) throw new Error(`curl got ${bytes} bytes, expected ${size}`)
    const sum = await timed('sha256sum', [out])
    if (!sum.stdout.startsWith(sha256)) throw new Error('curl output has the wrong sha256')
    rmSync(out, { force: true })
    curlRuns.push({ seconds: total, mbps: size / 1e6 / total, rssMB: t.rssMB, cpu: t.cpu, wall: t.wall, sha256sumSeconds: sum.wall, withSha256Mbps: size / 1e6 / (total + sum.wall), load: t.load })
  }
  const runOurs = async (i, client = join(BUILD, 'hub-download-client.js'), runs = oursRuns) => {
    const cache = join(work, `cache-${i}`)
    const t = await timed(process.execPath, [client, hub.url, cache, hub.repo, hub.file])
    if (t.exit !== 0) throw new Error(`prefpipe failed: ${t.stderr}`)
    const r = JSON.parse(t.stdout.trim().split('\n').at(-1))
    if (r.sha256 !== sha256 || r.size !== size || r.fromCache) throw new Error(`prefpipe: unexpected result ${t.stdout}`)
    rmSync(cache, { recursive: true, force: true })
    rmSync(`${cache}-home`, { recursive: true, force: true })
    runs.push({ seconds: r.ms / 1000, mbps: size / 1e6 / (r.ms / 1000), rssMB: t.rssMB, cpu: t.cpu, wall: t.wall, load: t.load })
  }
  const runBase = (i) => (baselineClient ? runOurs(`base-${i}`, baselineClient.path, baseRuns) : Promise.resolve())
  // one warm-up of each (page cache, server JIT), not recorded
  await runCurl('warm')
  await runOurs('warm')
  await runBase('warm')
  curlRuns.length = 0
  oursRuns.length = 0
  baseRuns.length = 0
  for (let i = 0; i < RUNS; i++) {
    // alternate who goes first, so neither always meets a warmer machine
    if (i % 2 === 0) {
      await runCurl(i)
      await runOurs(i)
      await runBase(i)
    } else {
      await runBase(i)
      await runOurs(i)
      await runCurl(i)
    }
    const ratio = (r) => fmt(r.at(-1).mbps / curlRuns.at(-1).mbps)
    process.stderr.write(
      `run ${i + 1}/${RUNS}: curl ${fmt(curlRuns.at(-1).mbps, 0)} MB/s, prefpipe ${fmt(oursRuns.at(-1).mbps, 0)} MB/s (${ratio(oursRuns)}x)` +
        (baselineClient ? `, baseline ${baselineClient.rev} ${fmt(baseRuns.at(-1).mbps, 0)} MB/s (${ratio(baseRuns)}x)` : '') +
        '\n',
    )
  }
} finally {
  server.kill('SIGTERM')
  rmSync(work, { recursive: true, force: true })
}

const med = (runs, k) => median(runs.map((r) => r[k]))
const summary = {
  curlMBps: med(curlRuns, 'mbps'),
  curlWithSha256MBps: med(curlRuns, 'withSha256Mbps'),
  prefpipeMBps: med(oursRuns, 'mbps'),
  curlRssMB: med(curlRuns, 'rssMB'),
  prefpipeRssMB: med(oursRuns, 'rssMB'),
}
summary.prefpipeCpuSeconds = med(oursRuns, 'cpu')
summary.ratio = summary.prefpipeMBps / summary.curlMBps
// the median of the per-run ratios: each ratio pairs runs made seconds apart, the fairest figure on a noisy machine
summary.ratioPerRunMedian = median(oursRuns.map((r, i) => r.mbps / curlRuns[i].mbps))
if (baselineClient) {
  summary.baseline = { rev: baselineClient.rev, MBps: med(baseRuns, 'mbps'), rssMB: med(baseRuns, 'rssMB'), cpuSeconds: med(baseRuns, 'cpu') }
  summary.baseline.ratio = summary.baseline.MBps / summary.curlMBps
  summary.baseline.ratioPerRunMedian = median(baseRuns.map((r, i) => r.mbps / curlRuns[i].mbps))
}
summary.ratioVsCurlWithSha256 = summary.prefpipeMBps / summary.curlWithSha256MBps
const targets = { ratio: 0.9, rssMB: 150 }
const pass = { ratio: summary.ratio >= targets.ratio, rssMB: summary.prefpipeRssMB < targets.rssMB }
let curlVersion = ''
try {
  curlVersion = execFileSync('curl', ['--version'], { encoding: 'utf8' }).split('\n')[0]
} catch {}
record('hub-download', { bench: 'hub-download', date: new Date().toISOString(), machine: { ...(await machine()), curl: curlVersion }, load: load(), sizeBytes: size, runs: RUNS, curl: curlRuns, prefpipe: oursRuns, ...(baselineClient ? { baseline: baseRuns } : {}), summary, targets, pass })

process.stdout.write(
  '\n' +
    table(
      ['tool', 'MB/s (median)', 'x curl (median of per-run ratios)', 'peak RSS MB (median)', 'CPU s (median)'],
      [
        ['curl', fmt(summary.curlMBps, 0), '1', fmt(summary.curlRssMB, 1), fmt(med(curlRuns, 'cpu'))],
        ['curl + sha256sum', fmt(summary.curlWithSha256MBps, 0), '', '', ''],
        ['prefpipe downloadDatasetFile (sha256-verified)', fmt(summary.prefpipeMBps, 0), fmt(summary.ratioPerRunMedian), fmt(summary.prefpipeRssMB, 1), fmt(summary.prefpipeCpuSeconds)],
        ...(baselineClient ? [[`prefpipe at ${baselineClient.rev} (baseline)`, fmt(summary.baseline.MBps, 0), fmt(summary.baseline.ratioPerRunMedian), fmt(summary.baseline.rssMB, 1), fmt(summary.baseline.cpuSeconds)]] : []),
      ],
    ) +
    `\n\nprefpipe / curl: ${fmt(summary.ratio)}x (target >= ${targets.ratio}: ${pass.ratio ? 'met' : 'NOT met'}); ` +
    `prefpipe / (curl + sha256sum): ${fmt(summary.ratioVsCurlWithSha256)}x; peak RSS ${fmt(summary.prefpipeRssMB, 1)} MB (target < ${targets.rssMB}: ${pass.rssMB ? 'met' : 'NOT met'})\n`,
)
