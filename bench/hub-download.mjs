#!/usr/bin/env node
// Hub download benchmark: prefpipe's downloadDatasetFile vs curl, fetching the same ~300 MB file from the
// loopback mock Hub (its own process; the LFS file is a 302 to the mock CDN on 127.0.0.2, as on the Hub).
//
//   node bench/hub-download.mjs [--mb 300] [--runs 5]
//
// It compiles what it runs (bench/tsconfig.hub.json -> bench/data/build, no tsx), generates
// bench/data/hub-<mb>mb.bin once (random bytes), then alternates curl and prefpipe runs (fresh output each
// time), each under GNU time for the peak RSS. Throughput is bytes / the tool's own transfer time: curl's
// %{time_total} (redirect + body); prefpipe's call time (3 metadata requests + body + sha256 check + rename
// + symlink). "curl + sha256sum" adds the time to hash curl's file, the same guarantee prefpipe gives.
// One JSON line per invocation goes to bench/results/hub-download.jsonl.
import { execFileSync, spawn } from 'node:child_process'
import { createHash, randomFillSync } from 'node:crypto'
import { createReadStream, createWriteStream, existsSync, mkdirSync, rmSync, statSync } from 'node:fs'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { args, BENCH, DATA, fmt, load, machine, median, record, ROOT, table, timed } from './lib/common.mjs'

const opts = args()
const MB = Number(opts.mb ?? 300)
const RUNS = Number(opts.runs ?? 5)
const BUILD = join(DATA, 'build', 'bench')

// 1. Compile the mock server and the client (and what they import) with tsc.
execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(BENCH, 'tsconfig.hub.json')], { stdio: 'inherit' })

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
    curlRuns.push({ seconds: total, mbps: size / 1e6 / total, rssMB: t.rssMB, wall: t.wall, sha256sumSeconds: sum.wall, withSha256Mbps: size / 1e6 / (total + sum.wall), load: t.load })
  }
  const runOurs = async (i) => {
    const cache = join(work, `cache-${i}`)
    const t = await timed(process.execPath, [join(BUILD, 'hub-download-client.js'), hub.url, cache, hub.repo, hub.file])
    if (t.exit !== 0) throw new Error(`prefpipe failed: ${t.stderr}`)
    const r = JSON.parse(t.stdout.trim().split('\n').at(-1))
    if (r.sha256 !== sha256 || r.size !== size || r.fromCache) throw new Error(`prefpipe: unexpected result ${t.stdout}`)
    rmSync(cache, { recursive: true, force: true })
    rmSync(`${cache}-home`, { recursive: true, force: true })
    oursRuns.push({ seconds: r.ms / 1000, mbps: size / 1e6 / (r.ms / 1000), rssMB: t.rssMB, wall: t.wall, load: t.load })
  }
  // one warm-up of each (page cache, server JIT), not recorded
  await runCurl('warm')
  await runOurs('warm')
  curlRuns.length = 0
  oursRuns.length = 0
  for (let i = 0; i < RUNS; i++) {
    // alternate who goes first, so neither always meets a warmer machine
    if (i % 2 === 0) {
      await runCurl(i)
      await runOurs(i)
    } else {
      await runOurs(i)
      await runCurl(i)
    }
    process.stderr.write(`run ${i + 1}/${RUNS}: curl ${fmt(curlRuns.at(-1).mbps, 0)} MB/s, prefpipe ${fmt(oursRuns.at(-1).mbps, 0)} MB/s\n`)
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
summary.ratio = summary.prefpipeMBps / summary.curlMBps
summary.ratioVsCurlWithSha256 = summary.prefpipeMBps / summary.curlWithSha256MBps
const targets = { ratio: 0.9, rssMB: 150 }
const pass = { ratio: summary.ratio >= targets.ratio, rssMB: summary.prefpipeRssMB < targets.rssMB }
let curlVersion = ''
try {
  curlVersion = execFileSync('curl', ['--version'], { encoding: 'utf8' }).split('\n')[0]
} catch {}
record('hub-download', { bench: 'hub-download', date: new Date().toISOString(), machine: { ...(await machine()), curl: curlVersion }, load: load(), sizeBytes: size, runs: RUNS, curl: curlRuns, prefpipe: oursRuns, summary, targets, pass })

process.stdout.write(
  '\n' +
    table(
      ['tool', 'MB/s (median)', 'peak RSS MB (median)'],
      [
        ['curl', fmt(summary.curlMBps, 0), fmt(summary.curlRssMB, 1)],
        ['curl + sha256sum', fmt(summary.curlWithSha256MBps, 0), ''],
        ['prefpipe downloadDatasetFile (sha256-verified)', fmt(summary.prefpipeMBps, 0), fmt(summary.prefpipeRssMB, 1)],
      ],
    ) +
    `\n\nprefpipe / curl: ${fmt(summary.ratio)}x (target >= ${targets.ratio}: ${pass.ratio ? 'met' : 'NOT met'}); ` +
    `prefpipe / (curl + sha256sum): ${fmt(summary.ratioVsCurlWithSha256)}x; peak RSS ${fmt(summary.prefpipeRssMB, 1)} MB (target < ${targets.rssMB}: ${pass.rssMB ? 'met' : 'NOT met'})\n`,
)
