import { execFile } from 'node:child_process'
import { readdirSync, readlinkSync, realpathSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))
export const CLI = join(ROOT, 'dist', 'cli', 'main.js')
export const SAMPLE = join(ROOT, 'fixtures', 'rlhf-v-sample.parquet')
export const VENV_PYTHON = join(ROOT, '.venv', 'bin', 'python')

export interface Run {
  code: number
  stdout: string
  stderr: string
}

/** Run a command to completion without a shell. */
export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0
      resolve({ code, stdout, stderr })
    })
  })
}

/** Run the built CLI (`npm test` builds it first). */
export function prefpipe(args: string[], opts: { cwd?: string } = {}): Promise<Run> {
  return run(process.execPath, [CLI, ...args], opts)
}

/** sha256 of every file under `dir`, by relative path, sorted: two equal maps mean byte-identical trees. */
export async function treeDigest(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      if (e.isDirectory()) await walk(p)
      else out[relative(dir, p)] = createHash('sha256').update(await readFile(p)).digest('hex')
    }
  }
  await walk(dir)
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)))
}

/**
 * {@link treeDigest} of a prepared folder, made comparable with another folder's: report.json without its
 * `timings`, and the folder's own path (and its name in the YAML's `saves/<name>/` output_dir) taken out of the
 * YAML and the HTML report.
 */
export async function stableTree(out: string): Promise<Record<string, string>> {
  const t = await treeDigest(out)
  const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as Record<string, unknown>
  delete report.timings
  t['report.json'] = JSON.stringify(report)
  t['report.html'] = (await readFile(join(out, 'report.html'), 'utf8')).replaceAll(out, '<out>')
  t['train_dpo.yaml'] = (await readFile(join(out, 'train_dpo.yaml'), 'utf8')).replaceAll(out, '<out>').replaceAll(`/saves/${out.split('/').pop()!}/`, '/saves/<name>/')
  return t
}

/** How many of this process's file descriptors are open on `path` (Linux `/proc/self/fd`). */
export function fdsOn(path: string): number {
  const target = realpathSync(path)
  let n = 0
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === target) n++
    } catch {
      // closed between readdir and readlink
    }
  }
  return n
}

/** What each broken row of the sample breaks (`fixtures/rlhf-v-sample.expected.json` "breaks") -> our reason code. */
export const SAMPLE_REASON_OF: Record<string, string> = {
  'empty rejected': 'response_empty',
  'chosen identical to rejected': 'responses_identical',
  'even turn count': 'prompt_count_even',
  '<image> in chosen': 'placeholder_in_response',
  'image count mismatch': 'image_count_mismatch',
  'chosen role not assistant': 'response_role',
  'empty image bytes': 'image_empty',
  'raw qwen special token': 'special_token',
  'wrong role order': 'role_order',
}

/** mulberry32: a small seeded random source in [0, 1), so generated test data is the same on every run. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
