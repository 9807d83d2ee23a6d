/**
 * Bad input, end to end through the built CLI (`prefpipe rlhf-v --input X --out Y`) and the library: every case
 * ends either with the row rejected under a reason code (in rejects.jsonl, counted), or with the run stopping
 * (exit 1) with a message that says what to do, leaving nothing half-written (no manifest.json, no temporary
 * file) and an earlier output untouched. Fixtures are written at test time (fixtures-bad-input.py); the CLI
 * runs of the first part go concurrently in beforeAll to keep the file fast.
 *
 * Decisions recorded here:
 * - Text that is not valid UTF-8 rejects its row (`text_not_utf8`, naming the column or line and the first bad
 *   byte) in parquet and JSONL; in a `.json` array (one document) it fails the run. It is never read as U+FFFD.
 * - A 10 MB text field is an `exceeds_cutoff` reject; the run stays within a 256 MB heap.
 * - An input with 0 rows fails the preset run before anything is written (the sources themselves yield nothing).
 * - Every row rejected: exit 1, a message with the reasons, and the folder written as a complete (empty) output
 *   (rejects.jsonl says why; manifest.json counts kept: 0).
 */
import { mkdir, mkdtemp, readFile, rm, stat, statfs, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isAbortError } from '../../src/pipeline/index.js'
import { prepareRlhfV } from '../../src/presets/rlhf-v.js'
import { CLI, ROOT, SAMPLE, fdsOn, prefpipe, run, treeDigest, type Run } from '../helpers.js'
import { canMount, fdTargets, listFiles, makeBadInputs, mountTmpfs, openFds, readJsonl, unmount, type RejectLine } from './fixtures-bad-input.js'

let dir = ''
let fx = ''
let outs = ''
const results = new Map<string, Run>()
const out = (name: string) => join(outs, name)
const TMP_RE = /prefpipe-tmp-/

/** `prefpipe rlhf-v --input <input> --out <outs>/<name>` with no progress bars; kept under `name`. */
async function prepare(name: string, input: string, extra: string[] = [], opts: { cwd?: string; node?: string[] } = {}): Promise<Run> {
  const r = await run(process.execPath, [...(opts.node ?? []), CLI, 'rlhf-v', '--input', input, '--out', out(name), '--no-progress', ...extra], opts.cwd ? { cwd: opts.cwd } : {})
  results.set(name, r)
  return r
}
const result = (name: string) => results.get(name)!

/**
 * The same through the library, in process (cheaper than a CLI process): `prepareRlhfV({ input, out })`. Kept
 * under `name` as a Run: code 0 or 1, and the error's message as `stderr`.
 */
async function library(name: string, input: string): Promise<Run> {
  const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} }
  const r = await prepareRlhfV({ input, out: out(name) }, { log: quiet }).then(
    (): Run => ({ code: 0, stdout: '', stderr: '' }),
    (err: unknown): Run => ({ code: 1, stdout: '', stderr: err instanceof Error ? err.message : String(err) }),
  )
  results.set(name, r)
  return r
}

/**
 * Files a failed run may leave: complete, content-addressed images (renamed into place once whole) and the images
 * stage's journal `.prefpipe/images.jsonl` (what each source image became, verified on use, so a re-run resumes).
 * Neither is taken for a finished output: that is what manifest.json, the JSONL files and dataset_info.json are.
 */
const resumable = (f: string) => f.startsWith('images/') || f.startsWith('.prefpipe/')

/** A failed run left no trace of an output beyond {@link resumable} files, and no temporary file. */
async function expectNothingWritten(name: string): Promise<void> {
  const files = await listFiles(out(name)).catch(() => [] as string[])
  expect(files.filter((f) => !resumable(f)), name).toEqual([])
  expect(files.filter((f) => TMP_RE.test(f)), name).toEqual([])
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prefpipe-bad-input-'))
  fx = await makeBadInputs(join(dir, 'fx'))
  outs = join(dir, 'out')
  await mkdir(outs)
  const f = (n: string) => join(fx, n)
  await Promise.all([
    prepare('truncated-data', f('truncated-data.parquet')),
    library('truncated-footer', f('truncated-footer.parquet')),
    library('empty', f('empty.parquet')),
    library('text', f('text.parquet')),
    library('zero-rows', f('zero-rows.parquet')),
    prepare('rlaif-v', join(ROOT, 'test', 'fixtures', 'presets', 'rlaif-v-sample.parquet')),
    prepare('chosen-int', f('chosen-int.parquet')),
    prepare('empty-array', join(ROOT, 'test', 'fixtures', 'json', 'empty-array.json')),
    library('conversations-string', f('conversations-string.parquet')),
    prepare('non-utf8', f('non-utf8.parquet')),
    library('non-utf8-jsonl', f('media/non-utf8.jsonl')),
    library('non-utf8-json', f('media/non-utf8.json')),
    prepare('huge-text', f('huge-text.parquet'), [], { node: ['--max-old-space-size=256'] }),
    library('images', f('images.parquet')),
    // A complete output first, then a file whose data pages are cut (its footer intact) over it.
    (async () => {
      await prepare('earlier', SAMPLE)
      results.set('earlier-before', { code: 0, stdout: JSON.stringify(await treeDigest(out('earlier'))), stderr: '' })
      const r = await run(process.execPath, [CLI, 'rlhf-v', '--input', f('data-cut-footer-kept.parquet'), '--out', out('earlier'), '--no-progress'])
      results.set('data-cut-over-earlier', r)
    })(),
  ])
}, 120_000)
afterAll(() => rm(dir, { recursive: true, force: true }))

describe('1. broken parquet files stop the run with what to do, writing nothing', () => {
  it('a file cut in the middle of its data pages, or in its footer: "truncated", download it again', async () => {
    // the CLI for one, the library for the other
    for (const name of ['truncated-data', 'truncated-footer']) {
      const r = result(name)
      expect(r.code, name).toBe(1)
      expect(r.stderr).toMatch(new RegExp(`^(prefpipe: |\\[prefpipe\\] )\\S*${name}\\.parquet is a truncated parquet file: it starts with "PAR1" but does not end with it`))
      expect(r.stderr).toMatch(/Download or copy it again/)
      expect(r.stdout).toBe('')
      await expectNothingWritten(name)
    }
  })

  it('a file whose data pages are cut but whose footer is intact: names the rows, says corrupt, download again; an earlier output stays byte for byte', async () => {
    expect(result('earlier').code).toBe(0)
    const r = result('data-cut-over-earlier')
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/^prefpipe: stage "parquet" failed: \S*data-cut-footer-kept\.parquet: rows \d+\.\.\d+ \(row group \d+\) cannot be read \(.+\); the file is corrupt or truncated in its data pages/)
    expect(r.stderr).toMatch(/Download or copy it again/)
    // Rows before the cut went through the stages, yet nothing of the earlier output changed and nothing was added.
    const before = JSON.parse(result('earlier-before').stdout) as Record<string, string>
    expect(await treeDigest(out('earlier'))).toEqual(before)
  })

  it('an empty (0-byte) file, and a file that is not parquet', async () => {
    expect(result('empty').code).toBe(1)
    expect(result('empty').stderr).toMatch(/empty\.parquet: it is not a parquet file .*; it has only 0 bytes: the file is empty .*Download or export it again/)
    expect(result('text').code).toBe(1)
    expect(result('text').stderr).toMatch(/text\.parquet: it is not a parquet file \(a parquet file starts and ends with the bytes "PAR1"\); it starts with "conv"/)
    await expectNothingWritten('empty')
    await expectNothingWritten('text')
  })

  it('a parquet file with 0 rows: refused before anything is written', async () => {
    const r = result('zero-rows')
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/zero-rows\.parquet has no rows \(its footer says 0; columns: conversations, chosen, rejected, images\): there is nothing to prepare/)
    await expect(stat(out('zero-rows'))).rejects.toThrow(/ENOENT/)
  })

  it('a JSON file holding an empty array: exit 1, "the input has no rows" (the folder is a complete, empty output)', async () => {
    const r = result('empty-array')
    expect(r.code).toBe(1)
    expect(r.stderr).toBe('prefpipe: the input has no rows (an empty array or file?); nothing to train on. Check that it is the file you meant\n')
  })
})

describe('2. another schema', () => {
  it("RLAIF-V's image/question/chosen/rejected columns: the message names them and suggests the rlaif-v preset and the column mapping", async () => {
    const r = result('rlaif-v')
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/has no columns "conversations", "images" \(it has: "ds_name", "image", "question", "chosen", "rejected"/)
    expect(r.stderr).toMatch(/Its columns are those of RLAIF-V \(image, question, chosen, rejected\): read it with `prefpipe rlaif-v --input <file>`/)
    expect(r.stderr).toMatch(/rlaifVMapper\(\)/)
    expect(r.stderr).toMatch(/Map your column names with the `columns` option/)
    await expectNothingWritten('rlaif-v')
  })
})

describe('3. wrong types, non-UTF-8 text, a huge text field', () => {
  it('`chosen` an integer column, `conversations` a string column: every row rejected as row_shape naming the column', async () => {
    for (const [name, column, got] of [['chosen-int', 'chosen', 'bigint'], ['conversations-string', 'conversations', 'string']] as const) {
      const rejects = await readJsonl<RejectLine>(join(out(name), 'rejects.jsonl'))
      expect(rejects.map((x) => [x.id, x.stage, x.reason])).toEqual([0, 1, 2].map((i) => [`${name}.parquet#${i}`, 'parquet', 'row_shape']))
      for (const x of rejects) {
        expect(x.message).toContain(`${column}: Invalid input: expected ${column === 'chosen' ? 'object' : 'array'}, received ${got}`)
        expect(x.detail).toEqual({ path: column })
      }
    }
  })

  it('non-UTF-8 bytes in a parquet string: the row is rejected (text_not_utf8, column and byte), the other kept, no mojibake written', async () => {
    const r = result('non-utf8')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/kept\s+1\n/)
    expect(r.stdout).toMatch(/text_not_utf8\s+1\n/)
    const rejects = await readJsonl<RejectLine>(join(out('non-utf8'), 'rejects.jsonl'))
    expect(rejects).toEqual([
      {
        id: 'non-utf8.parquet#0',
        stage: 'parquet',
        reason: 'text_not_utf8',
        message: expect.stringMatching(/^chosen\.value is not valid UTF-8 \(bad bytes e9206f6ce9212121 at byte 10\); .*Re-export it as UTF-8, or drop the row$/),
        detail: { path: 'chosen.value', offset: 10, head: 'e9206f6ce9212121' },
      },
    ])
    const text = await readFile(join(out('non-utf8'), 'rlhf_v_train.jsonl'), 'utf8')
    expect(text).not.toContain('\uFFFD')
    expect(text.trim().split('\n')).toHaveLength(1)
  })

  it('non-UTF-8 bytes in a JSONL line: that row is rejected (text_not_utf8, line number); in a .json array the run stops', async () => {
    const r = result('non-utf8-jsonl')
    expect(r.code, r.stderr).toBe(0)
    const rejects = await readJsonl<RejectLine>(join(out('non-utf8-jsonl'), 'rejects.jsonl'))
    expect(rejects.map((x) => [x.id, x.stage, x.reason, x.detail])).toEqual([['non-utf8.jsonl#0', 'json', 'text_not_utf8', { path: 'line 1', offset: expect.any(Number), head: 'e9206f6ce9212121' }]])
    expect(await readFile(join(out('non-utf8-jsonl'), 'rlhf_v_train.jsonl'), 'utf8')).not.toContain('\uFFFD')

    const a = result('non-utf8-json')
    expect(a.code).toBe(1)
    expect(a.stderr).toMatch(/non-utf8\.json is not valid UTF-8 \(bad bytes e9206f6ce9212121 at byte \d+\); .*Re-encode it as UTF-8 .* and run again/)
    await expectNothingWritten('non-utf8-json')
  })

  it('a 10 MB text field: exceeds_cutoff, the next row kept, within a 256 MB heap, and the text is not copied into rejects.jsonl', async () => {
    const r = result('huge-text')
    expect(r.code, r.stderr).toBe(0)
    const rejects = await readJsonl<RejectLine>(join(out('huge-text'), 'rejects.jsonl'))
    expect(rejects.map((x) => [x.id, x.stage, x.reason])).toEqual([['huge-text.parquet#0', 'images', 'exceeds_cutoff']])
    expect(rejects[0]!.message).toMatch(/above cutoffLen 2048/)
    expect((await stat(join(out('huge-text'), 'rejects.jsonl'))).size).toBeLessThan(16_384)
    expect((await readJsonl(join(out('huge-text'), 'rlhf_v_train.jsonl'))).length).toBe(1)
  })
})

describe('4. every row rejected', () => {
  it('says so with the reasons, exits 1, and keeps rejects.jsonl; the folder is a complete, empty output', async () => {
    const r = result('chosen-int')
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/^prefpipe: every row was rejected \(3 of 3: row_shape 3\); nothing to train on\. See \S*rejects\.jsonl for why each row was left out\n$/)
    expect(r.stdout).toMatch(/kept\s+0\n/)
    const files = (await listFiles(out('chosen-int'))).filter((f) => !f.startsWith('.prefpipe/'))
    expect(files).toEqual(['dataset_info.json', 'manifest.json', 'rejects.jsonl', 'report.html', 'report.json', 'rlhf_v_train.jsonl', 'train_dpo.yaml'])
    const manifest = JSON.parse(await readFile(join(out('chosen-int'), 'manifest.json'), 'utf8')) as { counts: { kept: number; rejected: number; rejectedByReason: Record<string, number> } }
    expect(manifest.counts).toMatchObject({ kept: 0, rejected: 3, rejectedByReason: { row_shape: 3 } })
    expect(await readFile(join(out('chosen-int'), 'rlhf_v_train.jsonl'), 'utf8')).toBe('')
  })
})

describe('4b. every row rejected, over an earlier complete output', () => {
  // A run that exits 1 must not replace a good dataset with an empty one (a wrong --input, a schema change
  // upstream). FAILS today: the sink commits the empty output over the earlier one. What the sink must do is in
  // the report of this change: keep the earlier dataset files, and put this run's rejects where the message says.
  it('keeps the earlier dataset (rows, dataset_info.json, manifest.json) byte for byte, and says where this run\'s rejects are', async () => {
    const o = out('earlier-then-all-rejected')
    const first = await prepare('earlier-then-all-rejected', SAMPLE)
    expect(first.code, first.stderr).toBe(0)
    const before = await treeDigest(o)
    const r = await run(process.execPath, [CLI, 'rlhf-v', '--input', join(fx, 'chosen-int.parquet'), '--out', o, '--no-progress'])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/every row was rejected \(3 of 3: row_shape 3\)/)
    const after = await treeDigest(o)
    for (const f of ['rlhf_v_train.jsonl', 'dataset_info.json', 'manifest.json']) expect(after[f], f).toBe(before[f])
    // The message names the file holding this run's rejects (rejects.jsonl, or another name the sink picks).
    const named = /(\S*rejects[\w.-]*\.jsonl)/.exec(r.stderr)?.[1]
    expect(named, r.stderr).toBeDefined()
    const rejects = await readJsonl<RejectLine>(resolve(ROOT, named!))
    expect(rejects.map((x) => x.reason)).toEqual(['row_shape', 'row_shape', 'row_shape'])
  })
})

describe('5. images', () => {
  it('a 20000x20000 PNG bomb is image_too_large, a 50000x1 image is image_aspect; the good row is kept', async () => {
    const r = result('images')
    expect(r.code, r.stderr).toBe(0)
    const rejects = await readJsonl<RejectLine>(join(out('images'), 'rejects.jsonl'))
    expect(rejects.map((x) => [x.id, x.stage, x.reason])).toEqual([
      ['images.parquet#0', 'images', 'image_too_large'],
      ['images.parquet#1', 'images', 'image_aspect'],
    ])
    expect(rejects[0]!.detail).toMatchObject({ width: 20000, height: 20000 })
    expect(rejects[1]!.detail).toMatchObject({ width: 50000, height: 1 })
    expect((await readJsonl(join(out('images'), 'rlhf_v_train.jsonl'))).length).toBe(1)
  })
  // Image paths with ../, absolute, a NUL byte, symlinks (JSONL with --media-dir, parquet images.path): the
  // reject reasons and what is read are asserted in security.test.ts (7a), which runs those two inputs.
})

describe('6. the output folder', () => {
  it('--out is an existing regular file: refused, the file untouched', async () => {
    const file = join(dir, 'a-file')
    await writeFile(file, 'not a folder\n')
    const r = await prefpipe(['rlhf-v', '--input', SAMPLE, '--out', file, '--no-progress'])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/^prefpipe: --out \S*a-file is an existing file, not a folder; give the path of a folder \(prefpipe creates it\), or move the file away\. Nothing was written\n$/)
    expect(await readFile(file, 'utf8')).toBe('not a folder\n')
    const below = await prefpipe(['rlhf-v', '--input', SAMPLE, '--out', join(file, 'sub'), '--no-progress'])
    expect(below.code).toBe(1)
    expect(below.stderr).toMatch(/a-file \(above --out \S+\) is a file, not a folder/)
  })

  it('an existing dataset_info.json that is not valid JSON: refused, left byte-identical, nothing else written', async () => {
    const o = join(dir, 'bad-info')
    await mkdir(o)
    const bad = '{\n  "mine": {"file_name": "mine.jsonl",}\n'
    await writeFile(join(o, 'dataset_info.json'), bad)
    const r = await prefpipe(['rlhf-v', '--input', SAMPLE, '--out', o, '--no-progress'])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/dataset_info\.json is not valid JSON: .*prefpipe merges its entries into this file and will not overwrite it; fix it \(or move it away\) and run again/)
    expect(await listFiles(o)).toEqual(['dataset_info.json'])
    expect(await readFile(join(o, 'dataset_info.json'), 'utf8')).toBe(bad)
  })

  describe('on file systems of their own (tmpfs mounts)', () => {
    let why: string | undefined
    const mounts: string[] = []
    beforeAll(async () => {
      why = await canMount(join(dir, 'probe-mount'))
      if (why) console.warn(`skipping the tmpfs cases: ${why}`)
    })
    afterAll(async () => {
      for (const m of mounts) await unmount(m)
    })

    it('no write permission (a read-only mount; root ignores chmod): refused before any work, with what to do', async (t) => {
      if (why) t.skip(why)
      const ro = join(dir, 'ro')
      expect(await mountTmpfs(ro, 'ro,size=1m')).toBeUndefined()
      mounts.push(ro)
      for (const target of [ro, join(ro, 'sub')]) {
        const r = await prefpipe(['rlhf-v', '--input', SAMPLE, '--out', target, '--no-progress'])
        expect(r.code).toBe(1)
        expect(r.stderr).toMatch(/^prefpipe: cannot write to .*\/ro.*: it is on a read-only file system \(EROFS\)\. Give another --out, or make it writable\. Nothing was written\n$/)
        expect(r.stdout).toBe('')
      }
    })

    it('disk full mid-run: ENOSPC naming the folder and saying to free space; no manifest, no temporary file; an earlier output intact', async (t) => {
      if (why) t.skip(why)
      // A fresh folder on a 600 KB tmpfs: the sample needs about 800 KB of images, so the run fails among them.
      const small = join(dir, 'small')
      expect(await mountTmpfs(small, 'size=600k')).toBeUndefined()
      mounts.push(small)
      const fresh = await prefpipe(['rlhf-v', '--input', SAMPLE, '--out', small, '--no-progress'])
      expect(fresh.code).toBe(1)
      expect(fresh.stderr).toMatch(/^prefpipe: no space left on the device writing .*small.*: free space there \(or give another --out\) and run again/)
      expect(fresh.stderr).toMatch(/ENOSPC/)
      const left = await listFiles(small)
      expect(left.filter((f) => !resumable(f))).toEqual([])
      expect(left.filter((f) => TMP_RE.test(f))).toEqual([])

      // A complete output on a 2 MB tmpfs, the disk then filled up but for ~150 KB, and a run that writes new
      // images (another pixel budget): it fails, and every file of the earlier output is as it was.
      const full = join(dir, 'full')
      expect(await mountTmpfs(full, 'size=2m')).toBeUndefined()
      mounts.push(full)
      const first = await prefpipe(['rlhf-v', '--input', SAMPLE, '--out', full, '--no-progress'])
      expect(first.code, first.stderr).toBe(0)
      const before = await treeDigest(full)
      const fs = await statfs(full)
      const filler = join(full, 'filler')
      await writeFile(filler, Buffer.alloc(Math.max(0, fs.bavail * fs.bsize - 150 * 1024)))
      const second = await prefpipe(['rlhf-v', '--input', SAMPLE, '--out', full, '--no-progress', '--max-pixels', '200704'])
      await rm(filler)
      expect(second.code).toBe(1)
      expect(second.stderr).toMatch(/^prefpipe: no space left on the device writing .*full.*: free space there \(or give another --out\) and run again/)
      const after = await treeDigest(full)
      // Every earlier file is byte-identical (the images journal may have grown: it is resumable state); the
      // only additions are complete, content-addressed image files.
      for (const [path, digest] of Object.entries(before)) if (!path.startsWith('.prefpipe/')) expect(after[path], path).toBe(digest)
      const added = Object.keys(after).filter((p) => !(p in before))
      expect(added.filter((p) => !/^images\/[0-9a-f]{2}\/[0-9a-f]{64}\.(jpg|png)$/.test(p))).toEqual([])
      expect((await listFiles(full)).filter((f) => TMP_RE.test(f))).toEqual([])
    })
  })
})

describe('8. file descriptors (library API, in process)', () => {
  it('are back to the baseline after complete runs, an aborted run and a failed run', async () => {
    const lib = join(dir, 'lib')
    // One warm-up run: sharp/libvips and the zstd/snappy decoders open what they keep for the process.
    await prepareRlhfV({ input: SAMPLE, out: join(lib, 'warm') })
    const baseline = openFds()
    const targets = fdTargets()
    for (let i = 0; i < 3; i++) await prepareRlhfV({ input: SAMPLE, out: join(lib, `run-${i % 2}`), eval: 0.2, seed: i })
    expect(fdsOn(SAMPLE)).toBe(0)
    expect({ fds: openFds(), targets: fdTargets() }).toEqual({ fds: baseline, targets })

    // Aborted as soon as the first rows are read.
    const controller = new AbortController()
    const aborted = await prepareRlhfV(
      { input: SAMPLE, out: join(lib, 'aborted') },
      { signal: controller.signal, onEvent: (e) => (e.type === 'progress' && e.stage === 'parquet' && (e.done ?? 0) > 0 ? controller.abort() : undefined) },
    ).then(
      () => 'finished',
      (err: unknown) => (isAbortError(err) ? 'aborted' : err),
    )
    expect(aborted).toBe('aborted')
    expect((await listFiles(join(lib, 'aborted')).catch(() => [] as string[])).filter((f) => !resumable(f) || TMP_RE.test(f))).toEqual([])

    // Failed: data pages cut in the second row group.
    await expect(prepareRlhfV({ input: join(fx, 'data-cut-footer-kept.parquet'), out: join(lib, 'failed') })).rejects.toThrow(/cannot be read .* corrupt or truncated/)
    expect(fdsOn(SAMPLE)).toBe(0)
    expect(fdsOn(join(fx, 'data-cut-footer-kept.parquet'))).toBe(0)
    expect({ fds: openFds(), targets: fdTargets() }).toEqual({ fds: baseline, targets })
  })
})
