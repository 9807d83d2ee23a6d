/**
 * Helpers of the reliability tests: bad-input fixtures written at test time (by fixtures-bad-input.py, from the
 * bundled sample), tmpfs mounts (read-only, or small to fill up), open file descriptors, and file listings.
 */
import { execFile } from 'node:child_process'
import { readdirSync, readlinkSync } from 'node:fs'
import { mkdir, readFile, readdir } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { ROOT, SAMPLE, VENV_PYTHON, run } from '../helpers.js'

/** Write every bad-input fixture into `dir` (about 4 MB, 2-4 s). Returns `dir`. */
export async function makeBadInputs(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true })
  const r = await run(VENV_PYTHON, [join(ROOT, 'test', 'reliability', 'fixtures-bad-input.py'), dir, SAMPLE])
  if (r.code !== 0) throw new Error(`fixtures-bad-input.py failed (${r.code}): ${r.stderr}`)
  return dir
}

/** Run a command, resolving with its exit code and output (never rejects). */
function sh(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, (err, _stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr }))
  })
}

/**
 * Mount a tmpfs on `dir` (`options` as for `mount -o`, e.g. `ro,size=1m`). Returns undefined when it worked, or
 * why it could not (not root, no mount in a container...), for a skip with a reason.
 */
export async function mountTmpfs(dir: string, options: string): Promise<string | undefined> {
  await mkdir(dir, { recursive: true })
  const r = await sh('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir])
  return r.code === 0 ? undefined : `mount -t tmpfs -o ${options} failed (${r.code}): ${r.stderr.trim()}`
}

/** Unmount what {@link mountTmpfs} mounted (lazily, so a test that failed mid-way does not block the clean-up). */
export async function unmount(dir: string): Promise<void> {
  await sh('umount', ['-l', dir])
}

/** Can this process mount a tmpfs? (Tried once on a scratch folder.) */
export async function canMount(scratch: string): Promise<string | undefined> {
  const why = await mountTmpfs(scratch, 'size=64k')
  if (!why) await unmount(scratch)
  return why
}

/** The number of file descriptors this process has open (Linux `/proc/self/fd`; the listing's own fd excluded). */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length - 1
}

/** What every open fd of this process points at (for a readable diff when a count is off). */
export function fdTargets(): string[] {
  const out: string[] = []
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      out.push(readlinkSync(`/proc/self/fd/${fd}`))
    } catch {
      // closed meanwhile
    }
  }
  return out.sort()
}

/** Every file (not folder) under `dir`, relative, sorted; hidden ones included. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (!e.isDirectory()) out.push(relative(dir, join(e.parentPath, e.name)))
  return out.sort()
}

/** Read a JSONL file into objects. */
export async function readJsonl<T = Record<string, unknown>>(path: string): Promise<T[]> {
  return (await readFile(path, 'utf8'))
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as T)
}

/** One line of `rejects.jsonl`. */
export interface RejectLine {
  id: string
  stage: string
  reason: string
  message: string
  detail?: Record<string, unknown>
}
