/**
 * Security, end to end:
 * - nothing is ever written outside the output folder, whatever the dataset says: image paths with `../`,
 *   absolute paths and symlinks in the media folder that point outside are only READ (as LLaMA-Factory reads
 *   them), their bytes must decode as an image to be kept, and what is written is named by its hash, never by a
 *   dataset path; symlinks already in the output folder are replaced, never written through; `--name` cannot
 *   climb out;
 * - a Hugging Face token never shows in stdout, stderr (even --verbose), any output file, the HF cache or an
 *   error, including failed requests (401, 403, 404, 500);
 * - the launch passes user text (a config path or override holding `; rm -rf` or `$(...)`) to
 *   `llamafactory-cli` literally, without a shell (test/launch/units.test.ts covers the quoting of `--dry-run`).
 */
import { existsSync } from 'node:fs'
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { prepareRlhfV } from '../../src/presets/rlhf-v.js'
import { CLI, ROOT, SAMPLE, prefpipe, run, treeDigest, type Run } from '../helpers.js'
import { makeFakes, makeRun, readRecord, type TrainRecord } from '../launch/fakes.js'
import { FAST_RETRY, README, REPO, scratch } from '../mock-hub/fixtures.js'
import { startMockHub, type MockHub } from '../mock-hub/server.js'
import { listFiles, makeBadInputs, readJsonl, type RejectLine } from './fixtures-bad-input.js'

const SECRET_TEXT = 'TOP-SECRET-CONTENT-0xC0FFEE'

let dir = ''
let fx = ''
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prefpipe-security-'))
  fx = await makeBadInputs(join(dir, 'fx'))
}, 60_000)
afterAll(() => rm(dir, { recursive: true, force: true }))

/** Every file under `root` (recursively, hidden ones too) that contains `needle`, as bytes. */
async function filesContaining(root: string, needle: string): Promise<string[]> {
  const hits: string[] = []
  const bytes = Buffer.from(needle)
  for (const f of await listFiles(root)) {
    const p = join(root, f)
    if ((await lstat(p)).isFile() && (await readFile(p)).includes(bytes)) hits.push(f)
  }
  return hits
}

describe('7a. no write outside the output folder, whatever the dataset says', () => {
  it('paths with ../, absolute paths, symlinks to outside files: read only; nothing outside --out changes; the secret is nowhere in the output', async () => {
    const media = join(fx, 'media')
    const before = await treeDigest(fx)
    const out = join(dir, 'out-paths')
    const [jsonl, parquet] = await Promise.all([
      prefpipe(['rlhf-v', '--input', join(media, 'paths.jsonl'), '--media-dir', media, '--out', join(out, 'jsonl'), '--no-progress']),
      prefpipe(['rlhf-v', '--input', join(fx, 'paths.parquet'), '--out', join(out, 'parquet'), '--no-progress'], { cwd: media }),
    ])
    expect(jsonl.code, jsonl.stderr).toBe(0)
    expect(parquet.code, parquet.stderr).toBe(0)
    // Not one byte changed, appeared or disappeared next to the data (the media folder, the folder outside it).
    expect(await treeDigest(fx)).toEqual(before)
    expect(await filesContaining(out, SECRET_TEXT)).toEqual([])
    // Every file written is one of the output's own names; images are named by their hash only.
    for (const sub of ['jsonl', 'parquet']) {
      for (const f of await listFiles(join(out, sub))) {
        expect(f).toMatch(/^(dataset_info\.json|manifest\.json|rejects\.jsonl|report\.html|report\.json|rlhf_v_train\.jsonl|train_dpo\.yaml|\.prefpipe\/images\.jsonl|images\/([0-9a-f]{2})\/\2[0-9a-f]{62}\.(jpg|png))$/)
      }
    }
    // rows: 0 ok.png, 1 ../outside/outside.png, 2 ../outside/secret.txt, 3 absolute outside.png, 4 a NUL byte,
    // 5 symlink to outside.png, 6 symlink to secret.txt, 7 ../../…/outside/secret.txt (climbs to the root). The
    // PNGs are read and kept; the text file is rejected as not an image; the NUL byte never reaches the file system.
    // JSONL resolves against --media-dir; parquet path-only images are read as given (relative to the working
    // directory, as LLaMA-Factory's Image.open(path) does), hence the run from the media folder. Parquet rows 8-15
    // carry bytes with the same paths: the path is never used, so all are kept.
    const want = (file: string) => [
      [`${file}#2`, 'images', 'image_unsupported'],
      [`${file}#4`, 'validate', 'image_unreadable'],
      [`${file}#6`, 'images', 'image_unsupported'],
      [`${file}#7`, 'images', 'image_unsupported'],
    ]
    const jr = await readJsonl<RejectLine>(join(out, 'jsonl', 'rejects.jsonl'))
    expect(jr.map((x) => [x.id, x.stage, x.reason])).toEqual(want('paths.jsonl'))
    expect(jr[1]!.message).toMatch(/contains a NUL byte, which no file path can hold/)
    const pr = await readJsonl<RejectLine>(join(out, 'parquet', 'rejects.jsonl'))
    expect(pr.map((x) => [x.id, x.stage, x.reason])).toEqual(want('paths.parquet'))
    expect((await readJsonl(join(out, 'jsonl', 'rlhf_v_train.jsonl'))).length).toBe(4)
    expect((await readJsonl(join(out, 'parquet', 'rlhf_v_train.jsonl'))).length).toBe(12)
  })

  it('symlinks already in the output folder (to files outside) are replaced by the new files, never written through', async () => {
    const out = join(dir, 'out-links')
    const victims = join(dir, 'victims')
    await mkdir(out, { recursive: true })
    await mkdir(victims, { recursive: true })
    const names = ['rejects.jsonl', 'rlhf_v_train.jsonl', 'manifest.json', 'report.json', 'report.html', 'train_dpo.yaml', 'dataset_info.json']
    for (const n of names) {
      await writeFile(join(victims, n), n === 'dataset_info.json' ? '{"victim": {"file_name": "v.json"}}\n' : `victim ${n}\n`)
      await symlink(join(victims, n), join(out, n))
    }
    const before = await treeDigest(victims)
    const r = await prefpipe(['rlhf-v', '--input', SAMPLE, '--out', out, '--no-progress'])
    expect(r.code, r.stderr).toBe(0)
    expect(await treeDigest(victims)).toEqual(before)
    for (const n of names) expect((await lstat(join(out, n))).isSymbolicLink(), n).toBe(false)
    // dataset_info.json was read through its link (its entries are merged, as for any existing file) and written as a file.
    expect(JSON.parse(await readFile(join(out, 'dataset_info.json'), 'utf8'))).toHaveProperty('victim')
  })

  it('--name cannot climb out of the folder', async () => {
    const out = join(dir, 'out-name')
    const r = await prefpipe(['rlhf-v', '--input', SAMPLE, '--out', out, '--name', '../../escaped', '--no-progress'])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/name: must start with a letter or digit and hold only letters, digits, "_", "\." and "-"/)
    expect(existsSync(join(dir, 'escaped_train.jsonl')) || existsSync(join(tmpdir(), 'escaped_train.jsonl'))).toBe(false)
    expect(await readdir(out).catch(() => [])).toEqual([])
  })
})

describe('7b. the Hugging Face token never shows (mock Hub on 127.0.0.1)', () => {
  const TOKEN = 'hf_SECRETtoken123456789abcdefghijklmnopq'
  let hub: MockHub
  let s: Awaited<ReturnType<typeof scratch>>
  let env: NodeJS.ProcessEnv
  const runs: { what: string; r: Run; out: string }[] = []
  const cli = async (what: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}) => {
    const out = join(s.dir, `out-${runs.length}`)
    const r = await run(process.execPath, [CLI, 'rlhf-v', '--out', out, '--no-progress', '--verbose', ...args], { env: { ...env, ...extraEnv } })
    runs.push({ what, r, out })
    return r
  }

  beforeAll(async () => {
    const sample = await readFile(SAMPLE)
    hub = await startMockHub({
      repos: {
        [REPO]: { files: { 'rlhf-v.parquet': sample, 'README.md': README }, gated: [TOKEN] },
        'someone/private': { files: { 'data.parquet': sample }, token: 'hf_theOwnersTokenNotOurs' },
      },
      validTokens: ['hf_validButNotGranted'],
    })
    s = await scratch()
    env = { ...process.env, HF_ENDPOINT: hub.url, HF_HUB_CACHE: s.cacheDir, HF_HOME: s.home, HF_TOKEN: TOKEN }
    delete env.HF_HUB_OFFLINE
    delete env.HUGGING_FACE_HUB_TOKEN
  })
  afterAll(async () => {
    await hub?.close()
    await s?.cleanup()
  })

  it('a run with a 500 on the download (retried), then failures: 401 (a token the Hub does not know), 404 (no such file)', async () => {
    hub.faults.fail.push({ match: /^GET \/cdn\//, status: 500, times: 1 })
    const ok = await cli('500 then ok', [])
    expect(ok.code, ok.stderr).toBe(0)
    expect(hub.requests.filter((q) => q.path.startsWith('/cdn/')).length).toBeGreaterThanOrEqual(2)
    expect(hub.requests.some((q) => q.authorization === `Bearer ${TOKEN}`)).toBe(true)

    const wrong = `${TOKEN}WRONG`
    const unknown = await cli('401', ['--revision', 'main'], { HF_TOKEN: wrong, HF_HUB_CACHE: join(s.dir, 'cache-401') })
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toMatch(/401|token|credentials|authenticat/i)
    expect(unknown.stdout + unknown.stderr).not.toContain(wrong)

    const missing = await cli('404', ['--file', 'no-such-file.parquet'])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/no-such-file\.parquet/)
  })

  it('a gated repo the token is not granted (403), through the library with every log line kept', async () => {
    const lines: string[] = []
    const log = { debug: (m: string) => lines.push(m), info: (m: string) => lines.push(m), warn: (m: string) => lines.push(m), error: (m: string) => lines.push(m) }
    const out = join(s.dir, 'out-lib-403')
    const err = await prepareRlhfV({ out, hub: { token: 'hf_validButNotGranted', endpoint: hub.url, cacheDir: join(s.dir, 'cache-403'), retry: FAST_RETRY } }, { log }).then(
      () => undefined,
      (e: unknown) => e as Error,
    )
    expect(err).toBeInstanceOf(Error)
    expect(String(err!.message)).toMatch(/403|access|gated|restricted/i)
    const everything = [err!.message, String(err!.stack), JSON.stringify(err, Object.getOwnPropertyNames(err)), ...lines].join('\n')
    expect(everything).not.toContain('hf_validButNotGranted')
  })

  it('a Hub that keeps answering 500: the run fails after its retries, and neither the error nor the logs hold the token', async () => {
    const lines: string[] = []
    const log = { debug: (m: string) => lines.push(m), info: (m: string) => lines.push(m), warn: (m: string) => lines.push(m), error: (m: string) => lines.push(m) }
    hub.faults.fail.push({ match: /^GET \/api\//, status: 500, times: 1000 })
    try {
      const err = await prepareRlhfV({ out: join(s.dir, 'out-lib-500'), hub: { token: TOKEN, endpoint: hub.url, cacheDir: join(s.dir, 'cache-500'), retry: FAST_RETRY } }, { log }).then(
        () => undefined,
        (e: unknown) => e as Error,
      )
      expect(err).toBeInstanceOf(Error)
      expect(err!.message).toMatch(/500/)
      const everything = [err!.message, String(err!.stack), JSON.stringify(err, Object.getOwnPropertyNames(err)), ...lines].join('\n')
      expect(everything).not.toContain(TOKEN)
      expect(hub.requests.filter((q) => q.path.startsWith('/api/')).length).toBeGreaterThan(FAST_RETRY.retries)
    } finally {
      hub.faults.fail.length = 0
    }
  })

  it('is in no stdout, stderr (with --verbose), output file, report or manifest, nor in the HF cache', async () => {
    expect(runs.length).toBe(3)
    for (const { what, r, out } of runs) {
      expect(r.stdout + r.stderr, what).not.toContain(TOKEN)
      expect(r.stdout + r.stderr, what).not.toContain('SECRETtoken')
      if (existsSync(out)) expect(await filesContaining(out, TOKEN), what).toEqual([])
    }
    expect(await filesContaining(s.dir, TOKEN)).toEqual([])
    expect(await filesContaining(s.dir, 'hf_validButNotGranted')).toEqual([])
  })
})

describe('7c. the launch never passes user text through a shell', () => {
  it('a config path and an override holding ";touch …", "$(touch …)" and backticks reach llamafactory-cli literally, nothing else runs; with whitespace they are refused', async () => {
    const fakes = await makeFakes()
    try {
      const cwd = join(fakes.dir, 'cwd')
      await mkdir(cwd)
      // A path with whitespace is refused by the preflight (llamafactory-cli re-splits its arguments), launching nothing.
      const spaced = await makeRun(fakes.dir, { name: 'data; touch PWNED-spaced $(touch PWNED-spaced2)', outputDir: join(fakes.dir, 'saves-spaced') })
      const refused = await run(process.execPath, [join(ROOT, 'dist', 'cli', 'main.js'), 'launch', spaced.config, '--gpus', '0-7', '--no-plots'], { cwd, env: fakes.env() })
      expect(refused.code).toBe(1)
      expect(refused.stderr).toMatch(/holds whitespace: llamafactory-cli joins and re-splits its arguments on whitespace/)
      expect(await readRecord(fakes, 'train.json')).toBeUndefined()

      const name = 'data;touch${IFS}PWNED-semicolon;$(touch${IFS}PWNED-subst)`touch${IFS}PWNED-backtick`'
      const setup = await makeRun(fakes.dir, { name })
      // (An override with whitespace is refused: llamafactory-cli would split it. $IFS stands in for a space.)
      const override = 'run_name=x;touch${IFS}PWNED-semi;$(touch${IFS}PWNED-override)`touch${IFS}PWNED-tick`'
      const r = await run(process.execPath, [join(ROOT, 'dist', 'cli', 'main.js'), 'launch', setup.config, '--gpus', '0-7', '--no-plots', override], {
        cwd,
        env: fakes.env({ FAKE_STEPS: '2' }),
      })
      expect(r.code, r.stderr).toBe(0)
      const rec = (await readRecord<TrainRecord>(fakes, 'train.json'))!
      expect(rec.argv).toEqual(['train', setup.config, override])
      // No shell ran any of it: no file named PWNED-* anywhere under the run's folders.
      const all = [...(await listFiles(fakes.dir)), ...(await listFiles(cwd))]
      expect(all.filter((f) => /(^|\/)PWNED-[a-z]+$/.test(f))).toEqual([])
      expect(existsSync(join(ROOT, 'PWNED-subst'))).toBe(false)
      // The dry run prints the same command quoted for a shell (copy-paste safe).
      const dry = await run(process.execPath, [join(ROOT, 'dist', 'cli', 'main.js'), 'launch', setup.config, '--gpus', '0-7', '--dry-run', override], { cwd, env: fakes.env() })
      expect(dry.code, dry.stderr).toBe(0)
      expect(dry.stdout).toContain(`'${override}'`)
      expect(await readlink('/proc/self/cwd')).not.toContain('PWNED')
    } finally {
      await rm(fakes.dir, { recursive: true, force: true })
    }
  })
})
