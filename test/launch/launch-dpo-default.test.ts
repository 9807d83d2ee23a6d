/**
 * `launchDpo()` straight after the LLaMA-Factory sink: with no `trainingConfig` in its input and no `config`
 * option, it writes the folder's default `train_dpo.yaml` first, then launches on it. Also the README snippet,
 * run as it is against the built package with stand-in `nvidia-smi` / `llamafactory-cli` on PATH.
 */
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { launchDpo } from '../../src/launch/launch-dpo.js'
import { pipeline } from '../../src/pipeline/index.js'
import { llamaFactory } from '../../src/sinks/llamafactory.js'
import { parquetSource } from '../../src/sources/parquet.js'
import { processImages } from '../../src/transforms/images/index.js'
import { split } from '../../src/transforms/split.js'
import { validateRanking } from '../../src/transforms/validate-ranking.js'
import { ROOT, SAMPLE, run } from '../helpers.js'
import { collector, makeFakes, readRecord, type Fakes, type TrainRecord } from './fakes.js'

/** The README snippet, exactly as the README shows it (run from the repository root). */
const README_SNIPPET = `import { pipeline, parquetSource, validateRanking, processImages, split, llamaFactory, launchDpo } from 'prefpipe'

// Prepare the folder, write its train_dpo.yaml, preflight, and print the launch command (dryRun).
const { result } = await pipeline(
  parquetSource({ path: 'fixtures/rlhf-v-sample.parquet' }),
  validateRanking(),
  processImages(),
  split({ eval: 0.1, seed: 42 }),
  llamaFactory({ out: 'out/rlhf_v', name: 'rlhf_v' }),
  launchDpo({ gpus: 8, dryRun: true }),
)
console.log(result.dryRun, result.config)
`

describe('launchDpo() right after the sink', () => {
  let fakes: Fakes
  beforeAll(async () => {
    fakes = await makeFakes()
  })
  afterAll(() => rm(fakes.dir, { recursive: true, force: true }))

  it('type-checks and runs as in the README (dry run, preflight off, no stand-ins needed)', async () => {
    const out = join(fakes.dir, 'plain', 'rlhf_v')
    // The snippet's shape, type-checked by `tsc` over test/: the result is the launch's.
    const { result, report } = await pipeline(
      parquetSource({ path: SAMPLE }),
      validateRanking(),
      processImages(),
      split({ eval: 0.1, seed: 42 }),
      llamaFactory({ out, name: 'rlhf_v' }),
      launchDpo({ gpus: 8, dryRun: true, preflight: false, stdout: collector(), stderr: collector() }),
    )
    expect(result.dryRun).toBe(true)
    expect(result.config).toBe(join(out, 'train_dpo.yaml'))
    expect(result.command).toBe(`CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 PYTHONUNBUFFERED=1 llamafactory-cli train ${join(out, 'train_dpo.yaml')}`)
    expect(report.stages.map((s) => s.name)).toEqual(['parquet', 'validate', 'images', 'split', 'llamafactory', 'launch'])
    const yaml = await readFile(join(out, 'train_dpo.yaml'), 'utf8')
    expect(yaml).toMatch(/^image_max_pixels: 262144$/m)
    expect(yaml).toMatch(/^cutoff_len: 2048$/m)
    expect(yaml).toMatch(/^dataset: rlhf_v_train$/m)
    expect(yaml).toMatch(/^eval_dataset: rlhf_v_eval$/m)
    expect(yaml).toMatch(/^template: qwen2_vl$/m)
  })

  it('writes the YAML with maxPixels, cutoffLen, model and overrides, then trains on it (stand-ins)', async () => {
    const out = join(fakes.dir, 'trained', 'rlhf_v')
    const stdout = collector()
    const { result } = await pipeline(
      parquetSource({ path: SAMPLE }),
      validateRanking(),
      processImages({ maxPixels: 200704, cutoffLen: 4096 }),
      llamaFactory({ out, name: 'rlhf_v' }),
      launchDpo({
        gpus: 2,
        maxPixels: 200704,
        cutoffLen: 4096,
        model: 'qwen2.5-vl',
        overrides: { lora_rank: 16, logging_steps: 5 },
        env: fakes.env({ FAKE_STEPS: '10' }),
        forwardSignals: false,
        pollMs: 20,
        plots: false,
        stdout,
        stderr: collector(),
      }),
    )
    expect(result.exitCode).toBe(0)
    expect(result.preflight?.ok).toBe(true)
    expect(result.summary?.step).toBe(10)
    const yaml = await readFile(join(out, 'train_dpo.yaml'), 'utf8')
    expect(yaml).toMatch(/^image_max_pixels: 200704$/m)
    expect(yaml).toMatch(/^cutoff_len: 4096$/m)
    expect(yaml).toMatch(/^model_name_or_path: Qwen\/Qwen2\.5-VL-7B-Instruct$/m)
    expect(yaml).toMatch(/^lora_rank: 16$/m)
    expect(yaml).not.toMatch(/^eval_dataset:/m)
    // The overrides are in the YAML it wrote, so the command line carries none.
    const rec = (await readRecord<TrainRecord>(fakes, 'train.json'))!
    expect(rec.argv).toEqual(['train', join(out, 'train_dpo.yaml')])
    expect(rec.env.CUDA_VISIBLE_DEVICES).toBe('0,1')
  })

  it('refuses a bad override key before any GPU time (in the YAML it writes)', async () => {
    const out = join(fakes.dir, 'typo', 'rlhf_v')
    const err = await pipeline(
      parquetSource({ path: SAMPLE }),
      validateRanking(),
      llamaFactory({ out, name: 'rlhf_v' }),
      launchDpo({ gpus: 8, dryRun: true, preflight: false, overrides: ['lora_rnak=16'], stdout: collector(), stderr: collector() }),
    ).then(
      () => undefined,
      (e: unknown) => e as Error,
    )
    expect(err?.message).toMatch(/lora_rnak.*did you mean `lora_rank`/)
    expect(existsSync(join(out, 'train_dpo.yaml'))).toBe(false)
  })

  it('checks the new options when the step is made', () => {
    expect(() => launchDpo({ maxPixels: 10 })).toThrow(/launchDpo\(\): invalid options: maxPixels:/)
    expect(() => launchDpo({ cutoffLen: 0 })).toThrow(/launchDpo\(\): invalid options: cutoffLen:/)
  })

  it('the README snippet runs as it is against the built package, with stand-ins on PATH', async () => {
    await mkdir(join(ROOT, 'out'), { recursive: true })
    const dir = await mkdtemp(join(ROOT, 'out', 'launch-snippet-'))
    const file = join(dir, 'snippet.mjs')
    await writeFile(file, README_SNIPPET.replaceAll("'out/rlhf_v'", JSON.stringify(join(dir, 'rlhf_v'))))
    try {
      const r = await run(process.execPath, [file], { env: fakes.env() })
      expect(r.code, r.stderr).toBe(0)
      // The dry run prints the command (stdout); the preflight report goes to stderr.
      expect(r.stdout).toContain(`CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 PYTHONUNBUFFERED=1 llamafactory-cli train ${join(dir, 'rlhf_v', 'train_dpo.yaml')}`)
      expect(r.stdout).toContain(`true ${join(dir, 'rlhf_v', 'train_dpo.yaml')}\n`)
      expect(existsSync(join(dir, 'rlhf_v', 'train_dpo.yaml'))).toBe(true)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
