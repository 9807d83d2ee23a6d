/**
 * Interruption: SIGKILL the CLI at many moments of a run. After every kill the folder is either complete and
 * consistent (manifest.json present, and every file it lists as it says) or plainly incomplete (no
 * manifest.json); running the command again finishes to the byte-identical result of an uninterrupted run,
 * leaves no temporary file, and takes the images a killed run already made instead of making them again.
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI, SAMPLE, prefpipe, stableTree } from '../helpers.js'

let dir: string
const ARGS = (out: string) => ['rlhf-v', '--input', SAMPLE, '--out', out, '--eval', '0.3', '--seed', '7', '--no-progress']

async function allFiles(root: string): Promise<string[]> {
  const out: string[] = []
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name)
      if (e.isDirectory()) await walk(p)
      else out.push(relative(root, p))
    }
  }
  await walk(root)
  return out.sort()
}


/** Start the CLI, SIGKILL it after `ms` (if it is still running); resolves to whether it was killed. */
function runAndKill(out: string, ms: number | (() => Promise<void>)): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...ARGS(out)], { stdio: 'ignore' })
    let exited = false
    child.on('exit', (_code, signal) => {
      exited = true
      resolve(signal === 'SIGKILL')
    })
    const kill = () => {
      if (!exited) child.kill('SIGKILL')
    }
    if (typeof ms === 'number') setTimeout(kill, ms)
    else void ms().then(kill)
  })
}

/** The folder is complete and consistent, or has no manifest.json. Returns which. */
async function checkFolder(out: string): Promise<'complete' | 'incomplete' | 'empty'> {
  const manifestText = await readFile(join(out, 'manifest.json'), 'utf8').catch(() => undefined)
  if (manifestText === undefined) return (await allFiles(out)).length === 0 ? 'empty' : 'incomplete'
  const manifest = JSON.parse(manifestText) as { files: Record<string, { sha256: string; size: number; count?: number }>; datasets: Record<string, { file_name: string; rows: number }> }
  for (const [name, d] of Object.entries(manifest.files)) {
    if (name === 'images') continue
    const bytes = await readFile(join(out, name))
    expect({ name, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.byteLength }).toEqual({ name, sha256: d.sha256, size: d.size })
  }
  const referenced = new Set<string>()
  for (const { file_name, rows } of Object.values(manifest.datasets)) {
    const lines = (await readFile(join(out, file_name), 'utf8')).trimEnd().split('\n')
    expect(lines).toHaveLength(rows)
    for (const l of lines) for (const img of (JSON.parse(l) as { images: string[] }).images) referenced.add(img)
  }
  expect(referenced.size).toBe(manifest.files.images!.count)
  for (const img of referenced) expect((await stat(join(out, img))).isFile()).toBe(true)
  // The manifest comes last: the YAML and the report of this run are there.
  for (const f of ['train_dpo.yaml', 'report.json', 'report.html', 'dataset_info.json']) expect((await stat(join(out, f))).isFile()).toBe(true)
  return 'complete'
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prefpipe-kill-'))
  const ref = await prefpipe(ARGS(join(dir, 'ref')))
  expect(ref.code, ref.stderr).toBe(0)
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('SIGKILL at random moments', () => {
  it('never leaves a folder that looks complete but is not; a re-run completes to the same bytes', async () => {
    const out = join(dir, 'killed')
    // How long a run takes when every image is already made (the shortest a run gets, once resumes kick in):
    // kill moments are spread over it, so they land mid-run on this machine whatever its speed.
    const t0 = performance.now()
    expect((await prefpipe(ARGS(join(dir, 'ref')))).code).toBe(0)
    const resumedMs = performance.now() - t0
    let x = 20261129
    const rand = () => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648
    const seen: string[] = []
    for (let i = 0; i < 12; i++) {
      const ms = Math.round(resumedMs * (0.1 + rand() * 0.8))
      const killed = await runAndKill(out, ms)
      const state = await checkFolder(out)
      seen.push(`${ms}ms:${killed ? 'killed' : 'finished'}:${state}`)
      if (!killed) expect(state).toBe('complete')
    }
    // Most kills landed mid-run (a run that finished is fine too).
    expect(seen.filter((s) => s.includes(':killed:')).length, seen.join(' ')).toBeGreaterThanOrEqual(4)
    const final = await prefpipe(ARGS(out))
    expect(final.code, final.stderr).toBe(0)
    expect(await checkFolder(out)).toBe('complete')
    expect((await allFiles(out)).filter((f) => f.includes('prefpipe-tmp'))).toEqual([])
    expect(await stableTree(out)).toEqual(await stableTree(join(dir, 'ref')))
  })

  it('a run killed after some images were written resumes without making them again', async () => {
    const out = join(dir, 'resume')
    // Kill once the first images are in place.
    const killed = await runAndKill(out, async () => {
      for (let i = 0; i < 1000; i++) {
        const images = (await allFiles(join(out, 'images'))).filter((f) => /^[0-9a-f]{2}\/[0-9a-f]{64}\.jpg$/.test(f))
        if (images.length >= 3) return
        await sleep(5)
      }
    })
    expect(killed).toBe(true)
    expect(await checkFolder(out)).not.toBe('complete')
    const again = await prefpipe([...ARGS(out), '--verbose'])
    expect(again.code, again.stderr).toBe(0)
    const reused = /images: (\d+) processed images reused/.exec(again.stderr)
    expect(reused, again.stderr).not.toBeNull()
    expect(Number(reused![1])).toBeGreaterThan(0)
    expect(await stableTree(out)).toEqual(await stableTree(join(dir, 'ref')))
    expect((await allFiles(out)).filter((f) => f.includes('prefpipe-tmp'))).toEqual([])
  })

  it('a killed re-run over a complete folder leaves the earlier folder whole, or says it is incomplete', async () => {
    const out = join(dir, 'over')
    expect((await prefpipe(ARGS(out))).code).toBe(0)
    for (const ms of [200, 500, 900, 1400]) {
      await runAndKill(out, ms)
      expect(['complete', 'incomplete']).toContain(await checkFolder(out))
    }
    expect((await prefpipe(ARGS(out))).code).toBe(0)
    expect(await stableTree(out)).toEqual(await stableTree(join(dir, 'ref')))
  })
})
