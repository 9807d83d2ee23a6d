#!/usr/bin/env node
// The heavy variant of test/reliability/kill.test.ts: SIGKILL `prefpipe rlhf-v` at many random moments of a
// run over a bigger file, check the folder after every kill (complete and consistent, or without manifest.json),
// then run to the end and compare with an uninterrupted run, byte for byte.
//
//   node bench/kill-loop.mjs [--input bench/data/rlhfv-1x-ds5.quick.parquet] [--kills 40] [--seed 1] [--eval 0.05]
//
// Needs `npm run build`. Appends one JSON line to bench/results/kill-loop.jsonl.
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { ROOT, args, machine, record } from './lib/common.mjs'

const a = args()
const INPUT = a.input ?? join(ROOT, 'bench', 'data', 'rlhfv-1x-ds5.quick.parquet')
const KILLS = a.kills ?? 40
const EVAL = String(a.eval ?? 0.05)
let seed = a.seed ?? 1
const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648
if (!existsSync(INPUT)) {
  console.error(`no ${INPUT}: generate it first (see BENCHMARKS.md)`)
  process.exit(1)
}
const CLI = join(ROOT, 'dist', 'cli', 'main.js')
const dir = mkdtempSync(join(tmpdir(), 'prefpipe-kill-loop-'))
const argv = (out) => [CLI, 'rlhf-v', '--input', INPUT, '--out', out, '--eval', EVAL, '--seed', '7', '--no-progress', '--quiet']

function files(root) {
  const out = []
  const walk = (d) => {
    if (!existsSync(d)) return
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      if (e.isDirectory()) walk(p)
      else out.push(relative(root, p))
    }
  }
  walk(root)
  return out.sort()
}
const sha = (b) => createHash('sha256').update(b).digest('hex')

/** 'complete' (manifest present and everything it says true), 'incomplete' (no manifest) or a failure text. */
function check(out) {
  const mPath = join(out, 'manifest.json')
  if (!existsSync(mPath)) return 'incomplete'
  const m = JSON.parse(readFileSync(mPath, 'utf8'))
  for (const [name, d] of Object.entries(m.files)) {
    if (name === 'images') continue
    const b = readFileSync(join(out, name))
    if (b.byteLength !== d.size || sha(b) !== d.sha256) return `BROKEN: ${name} does not match the manifest`
  }
  const refs = new Set()
  for (const { file_name, rows } of Object.values(m.datasets)) {
    const lines = readFileSync(join(out, file_name), 'utf8').trimEnd().split('\n')
    if (lines.length !== rows) return `BROKEN: ${file_name} has ${lines.length} rows, the manifest says ${rows}`
    for (const l of lines) for (const i of JSON.parse(l).images) refs.add(i)
  }
  for (const r of refs) if (!existsSync(join(out, r))) return `BROKEN: ${r} is missing`
  for (const f of ['train_dpo.yaml', 'report.json', 'report.html']) if (!existsSync(join(out, f))) return `BROKEN: ${f} is missing`
  return 'complete'
}

function stable(out) {
  const t = {}
  for (const f of files(out)) {
    let b = readFileSync(join(out, f))
    if (f === 'report.json') {
      const j = JSON.parse(b)
      delete j.timings
      b = Buffer.from(JSON.stringify(j))
    }
    if (f === 'train_dpo.yaml' || f === 'report.html') b = Buffer.from(String(b).replaceAll(out, '<out>').replaceAll(`/saves/${out.split('/').pop()}/`, '/saves/<name>/'))
    t[f] = sha(b)
  }
  return t
}

function runFor(out, ms) {
  return new Promise((resolve) => {
    const t0 = performance.now()
    const child = spawn(process.execPath, argv(out), { stdio: 'ignore' })
    const timer = ms === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), ms)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, ms: performance.now() - t0 })
    })
  })
}

const ref = join(dir, 'ref')
const r0 = await runFor(ref)
if (r0.code !== 0) throw new Error('the reference run failed')
const runMs = r0.ms
console.log(`reference run: ${(runMs / 1000).toFixed(1)} s; killing ${KILLS} times at uniform moments in [0.05, 1.1] x that`)
const out = join(dir, 'killed')
const tally = { killed: 0, finished: 0, complete: 0, incomplete: 0, broken: 0 }
const broken = []
for (let i = 0; i < KILLS; i++) {
  const ms = Math.round(runMs * (0.05 + rand() * 1.05))
  const r = await runFor(out, ms)
  r.signal === 'SIGKILL' ? tally.killed++ : tally.finished++
  const state = check(out)
  if (state.startsWith('BROKEN')) {
    tally.broken++
    broken.push(`${ms} ms: ${state}`)
  } else tally[state]++
  process.stdout.write(`${i + 1}/${KILLS} kill at ${ms} ms: ${r.signal ?? `exit ${r.code}`} -> ${state}\n`)
}
const final = await runFor(out)
const same = JSON.stringify(stable(out)) === JSON.stringify(stable(ref))
const leftovers = files(out).filter((f) => f.includes('prefpipe-tmp'))
const result = { input: INPUT, kills: KILLS, refRunMs: Math.round(runMs), ...tally, finalExit: final.code, finalIdentical: same, tmpLeft: leftovers.length, brokenStates: broken }
console.log(JSON.stringify(result, null, 2))
record('kill-loop', { machine: await machine(), ...result })
rmSync(dir, { recursive: true, force: true })
if (!same || tally.broken > 0 || leftovers.length > 0 || final.code !== 0) process.exit(1)
