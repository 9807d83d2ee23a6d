/**
 * `prefpipe run prefpipe.yaml`: the bundled sample end to end from a config file (paths relative to the file),
 * a launch dry run with stand-in `nvidia-smi`/`llamafactory-cli`, errors with positions, --set, --print-config,
 * and the global --quiet / --verbose.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI, ROOT, SAMPLE, run } from '../helpers.js'
import { makeFakes, type Fakes } from '../launch/fakes.js'

const CONFIG = `# prefpipe run prefpipe.yaml
preset: rlhf-v
input: data/rlhf-v-sample.parquet
out: out/rlhf_v
eval: 0.1
seed: 42
images: { maxPixels: 262144, quality: 90, nearDuplicates: group }
model: qwen2-vl
train: { lora_rank: 16 }
launch: { gpus: 8, dryRun: true }
`

describe('prefpipe run <config>', () => {
  let dir: string
  let fakes: Fakes
  const cli = (args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) => run(process.execPath, [CLI, ...args], { cwd: opts.cwd ?? ROOT, env: opts.env ?? fakes.env() })
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prefpipe-run-'))
    await mkdir(join(dir, 'data'))
    await copyFile(SAMPLE, join(dir, 'data', 'rlhf-v-sample.parquet'))
    await writeFile(join(dir, 'prefpipe.yaml'), CONFIG)
    fakes = await makeFakes()
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
    await rm(fakes.dir, { recursive: true, force: true })
  })

  it('runs the sample end to end (paths relative to the config file) and dry-runs the launch', async () => {
    // Run from the repository root: input and out resolve against the config's folder, not the cwd.
    const r = await cli(['run', join(dir, 'prefpipe.yaml')])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/rows in\s+48\n/)
    expect(r.stdout).toMatch(/kept\s+39\n/)
    const out = join(dir, 'out', 'rlhf_v')
    const yaml = await readFile(join(out, 'train_dpo.yaml'), 'utf8')
    expect(yaml).toMatch(/^lora_rank: 16$/m)
    expect(yaml).toMatch(/^eval_dataset: rlhf_v_eval$/m)
    expect(yaml).toMatch(/^image_max_pixels: 262144$/m)
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as { options: Record<string, unknown>; inputs: { file: string }[] }
    expect(manifest.options).toMatchObject({ preset: 'rlhf-v', name: 'rlhf_v', eval: 0.1, seed: 42, maxPixels: 262144 })
    expect(manifest.inputs[0]!.file).toBe('rlhf-v-sample.parquet')
    // The dry run: the exact command, and no training started.
    expect(r.stdout).toContain(`CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 PYTHONUNBUFFERED=1 llamafactory-cli train ${join(out, 'train_dpo.yaml')}`)
    expect(existsSync(join(fakes.record, 'train.json'))).toBe(false)
    expect(r.stdout + r.stderr).not.toContain('\x1b[')
  })

  it('refuses an invalid config with file:line:col and exit 2, writing nothing', async () => {
    const bad = join(dir, 'bad')
    await mkdir(bad)
    await writeFile(join(bad, 'prefpipe.yaml'), 'preset: rlhf-v\ninput: x.parquet\nout: out\nseed: 42\neval: 1.5\nimages: { maxPixel: 200704 }\n')
    const r = await cli(['run', 'prefpipe.yaml'], { cwd: bad })
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).toBe(
      'prefpipe: prefpipe.yaml:5:7: eval: must be a fraction in (0, 1) or a whole row count >= 1\n' +
        'prefpipe: prefpipe.yaml:6:11: images.maxPixel: unknown key; did you mean "maxPixels"?\n',
    )
    expect(existsSync(join(bad, 'out'))).toBe(false)
  })

  it('--print-config prints the resolved config (defaults, --set) and runs nothing', async () => {
    const r = await cli(['run', 'prefpipe.yaml', '--set', 'eval=300', '--set', 'images.maxPixels=200704', '--set', 'launch.gpus=0-7', '--set', 'train.learning_rate=1.0e-5', '--print-config'], { cwd: dir })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(
      [
        'preset: rlhf-v',
        'input: data/rlhf-v-sample.parquet',
        'out: out/rlhf_v',
        'name: rlhf_v',
        'eval: 300',
        'seed: 42',
        'images:',
        '  maxPixels: 200704',
        '  quality: 90',
        '  cutoffLen: 2048',
        '  nearDuplicates: group',
        'model: qwen2-vl',
        'train:',
        '  lora_rank: 16',
        '  learning_rate: 0.00001',
        'launch:',
        '  gpus: 0-7',
        '  dryRun: true',
        '',
      ].join('\n'),
    )
  })

  it('--set overrides keys of the run (an exact eval count, the pixel budget, no launch)', async () => {
    const r = await cli(['run', 'prefpipe.yaml', '--set', 'eval=12', '--set', 'images.maxPixels=200704', '--set', 'out=out/set', '--set', 'launch=null', '--json'], { cwd: dir })
    expect(r.code, r.stderr).toBe(0)
    const report = JSON.parse(r.stdout) as { summary: { kept: number } }
    expect(report.summary.kept).toBe(39)
    const out = join(dir, 'out', 'set')
    expect(await readFile(join(out, 'train_dpo.yaml'), 'utf8')).toMatch(/^image_max_pixels: 200704$/m)
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as { options: Record<string, unknown>; datasets: Record<string, { rows: number }> }
    expect(manifest.options).toMatchObject({ eval: 12, maxPixels: 200704 })
    expect(manifest.datasets.rlhf_v_eval!.rows).toBeGreaterThanOrEqual(12)
    expect(r.stdout).not.toContain('llamafactory-cli train')
    const bad = await cli(['run', 'prefpipe.yaml', '--set', 'seed=abc'], { cwd: dir })
    expect(bad.code).toBe(2)
    expect(bad.stderr).toBe('prefpipe: --set seed=abc: seed: Invalid input: expected number, received string\n')
  })

  it('--quiet prints nothing on success; --verbose adds the stages\' debug lines; NO_COLOR output has no escapes', async () => {
    const quiet = await cli(['--quiet', 'run', 'prefpipe.yaml', '--set', 'out=out/quiet', '--set', 'launch=null'], { cwd: dir })
    expect(quiet).toEqual({ code: 0, stdout: '', stderr: '' })
    const after = await cli(['rlhf-v', '--input', 'data/rlhf-v-sample.parquet', '--out', 'out/quiet2', '-q'], { cwd: dir })
    expect(after).toEqual({ code: 0, stdout: '', stderr: '' })
    const verbose = await cli(['run', 'prefpipe.yaml', '--set', 'out=out/verbose', '--set', 'launch=null', '--verbose'], { cwd: dir, env: { ...fakes.env(), NO_COLOR: '1' } })
    expect(verbose.code, verbose.stderr).toBe(0)
    expect(verbose.stderr).toMatch(/^prefpipe: debug: stage parquet started$/m)
    expect(verbose.stderr).toMatch(/^prefpipe: debug: stage llamafactory finished after \d+ ms$/m)
    expect(verbose.stdout).toMatch(/kept\s+39\n/)
    expect(verbose.stdout + verbose.stderr).not.toContain('\x1b[')
  })
})
