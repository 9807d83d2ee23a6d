// Shared helpers for the benchmarks: data paths, GNU time, medians, tables, JSONL results, machine facts.
import { spawn, execFileSync } from 'node:child_process'
import { appendFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs'
import { cpus, freemem, loadavg, totalmem } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const BENCH = dirname(dirname(fileURLToPath(import.meta.url)))
export const ROOT = dirname(BENCH)
export const DATA = join(BENCH, 'data')
export let RESULTS = process.env.PREFPIPE_BENCH_RESULTS ?? join(BENCH, 'results')
/** Send results elsewhere (the driver's --quick runs go to bench/results/quick/, git-ignored). */
export function setResultsDir(dir) {
  RESULTS = dir
  process.env.PREFPIPE_BENCH_RESULTS = dir // for the scripts it runs
}
export const PYTHON = process.env.PREFPIPE_PYTHON ?? join(ROOT, '.venv', 'bin', 'python')

/** `bench/data/rlhfv-<scale>x-<layout>.parquet` */
export function dataFile(scale, layout) {
  return join(DATA, `rlhfv-${scale}x-${layout}.parquet`)
}

/** The generator's sidecar (counts, sizes) for a scale, or null. */
export function dataMeta(scale) {
  const p = join(DATA, `rlhfv-${scale}x.meta.json`)
  return existsSync(p) ? JSON.parse(readFileSync(p, 'utf8')) : null
}

export function median(xs) {
  const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

export function min(xs) {
  return Math.min(...xs.filter((x) => Number.isFinite(x)))
}

/** Load averages (1, 5, 15 min) and the `uptime` line, to record with every run. */
export function load() {
  let uptime = ''
  try {
    uptime = execFileSync('uptime', { encoding: 'utf8' }).trim()
  } catch {}
  return { loadavg: loadavg().map((x) => Math.round(x * 100) / 100), uptime }
}

/** Machine facts for the results and BENCHMARKS.md. */
export async function machine() {
  let sharpVersions = {}
  try {
    const sharp = (await import('sharp')).default
    sharpVersions = { sharp: sharp.versions.sharp, vips: sharp.versions.vips, mozjpeg: sharp.versions.mozjpeg, concurrency: sharp.concurrency(), simd: sharp.simd() }
  } catch {}
  let python = ''
  try {
    python = execFileSync(PYTHON, ['-c', 'import sys, PIL, pyarrow; print(sys.version.split()[0], "Pillow", PIL.__version__, "pyarrow", pyarrow.__version__)'], { encoding: 'utf8' }).trim()
  } catch {}
  let commit = ''
  try {
    commit = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()
  } catch {}
  return {
    cores: cpus().length,
    cpu: cpus()[0]?.model ?? '',
    memGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    freeGiB: Math.round((freemem() / 2 ** 30) * 10) / 10,
    node: process.version,
    ...sharpVersions,
    python,
    commit,
  }
}

/**
 * Run `cmd args` under GNU `/usr/bin/time -v`; resolve to wall/user/sys seconds, peak RSS (MB), exit code,
 * stdout, stderr (without time's report), and the load average just before.
 */
export function timed(cmd, args, { env = {}, cwd = ROOT, quiet = true, timeoutMs = 30 * 60_000 } = {}) {
  const before = load()
  return new Promise((resolvePromise, reject) => {
    const child = spawn('/usr/bin/time', ['-v', cmd, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => {
      out += d
      if (!quiet) process.stdout.write(d)
    })
    child.stderr.on('data', (d) => (err += d))
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      const at = err.lastIndexOf('\tCommand being timed:')
      const report = at >= 0 ? err.slice(at) : ''
      const stderr = at >= 0 ? err.slice(0, at) : err
      const field = (name) => {
        const m = report.match(new RegExp(`\\t${name}: (.*)`))
        return m ? m[1].trim() : ''
      }
      const wallStr = field('Elapsed \\(wall clock\\) time \\(h:mm:ss or m:ss\\)')
      const wall = wallStr.split(':').reduce((acc, p) => acc * 60 + Number(p), 0)
      const user = Number(field('User time \\(seconds\\)'))
      const sys = Number(field('System time \\(seconds\\)'))
      const rssKB = Number(field('Maximum resident set size \\(kbytes\\)'))
      const exit = Number(field('Exit status') || code)
      resolvePromise({ wall, user, sys, cpu: user + sys, rssMB: Math.round(rssKB / 102.4) / 10, exit, stdout: out, stderr, load: before.loadavg })
    })
  })
}

/** Append one JSON line to `bench/results/<name>.jsonl`. */
export function record(name, obj) {
  mkdirSync(RESULTS, { recursive: true })
  appendFileSync(join(RESULTS, `${name}.jsonl`), JSON.stringify(obj) + '\n')
}

/** A plain-text table (also valid markdown). */
export function table(headers, rows) {
  const cells = [headers, ...rows].map((r) => r.map((c) => (c === undefined || c === null ? '' : String(c))))
  const width = headers.map((_, i) => Math.max(3, ...cells.map((r) => r[i].length)))
  const line = (r) => '| ' + r.map((c, i) => (i === 0 ? c.padEnd(width[i]) : c.padStart(width[i]))).join(' | ') + ' |'
  return [line(cells[0]), '|' + width.map((w, i) => (i === 0 ? ':' : '') + '-'.repeat(w + 1) + (i === 0 ? '-' : ':')).join('|') + '|', ...cells.slice(1).map(line)].join('\n')
}

export function fmt(x, digits = 2) {
  return Number.isFinite(x) ? x.toFixed(digits) : '–'
}

export function fileMB(path) {
  return statSync(path).size / 1e6
}

/** Parse `--key value` / `--flag` arguments into an object (numbers where they look like numbers). */
export function args(argv = process.argv.slice(2)) {
  const o = { _: [] }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a.startsWith('--')) {
      const [k, inline] = a.slice(2).split('=', 2)
      const v = inline ?? (argv[i + 1] !== undefined && !argv[i + 1].startsWith('--') ? argv[++i] : true)
      o[k] = typeof v === 'string' && v !== '' && !Number.isNaN(Number(v)) ? Number(v) : v
    } else o._.push(a)
  }
  return o
}

export function abs(p) {
  return resolve(ROOT, p)
}
