/**
 * `launchDpo()` as the final step of a pipeline, after the real LLaMA-Factory sink on the bundled RLHF-V
 * sample: the folder the sink writes passes the preflight (datasets, every image), and the launch gets it.
 */
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LaunchError, launchDpo } from '../../src/launch/launch-dpo.js'
import { PipelineError, pipeline } from '../../src/pipeline/index.js'
import type { Sink } from '../../src/pipeline/types.js'
import type { PreferenceSample } from '../../src/record.js'
import { llamaFactory, type LlamaFactoryManifest } from '../../src/sinks/llamafactory.js'
import { parquetSource } from '../../src/sources/parquet.js'
import { validateRanking } from '../../src/transforms/validate-ranking.js'
import { SAMPLE } from '../helpers.js'
import { collector, makeFakes, readRecord, type Fakes, type TrainRecord } from './fakes.js'

/** The YAML a training-config step would write for the folder. */
function yamlFor(out: string, saves: string): string {
  return [
    'model_name_or_path: Qwen/Qwen2-VL-7B-Instruct',
    'stage: dpo',
    'do_train: true',
    'finetuning_type: lora',
    'lora_target: all',
    'dataset: rlhf_v_train',
    `dataset_dir: ${out}`,
    `media_dir: ${out}`,
    'template: qwen2_vl',
    `output_dir: ${saves}`,
    'overwrite_output_dir: true',
    'logging_steps: 5',
    'bf16: true',
    '',
  ].join('\n')
}

describe('pipeline(..., llamaFactory(...), launchDpo(...))', () => {
  let fakes: Fakes
  let out: string
  let config: string
  beforeAll(async () => {
    fakes = await makeFakes()
    out = join(fakes.dir, 'data', 'rlhf_v')
    config = join(fakes.dir, 'train_dpo.yaml')
    await writeFile(config, yamlFor(out, join(fakes.dir, 'saves', 'dpo')))
  })
  afterAll(() => rm(fakes.dir, { recursive: true, force: true }))

  const opts = () => ({ gpus: 8, env: fakes.env({ FAKE_STEPS: '10' }), forwardSignals: false, pollMs: 20, plots: false, stdout: collector(), stderr: collector() })

  it('launches on the folder the sink wrote, and resolves to the launch result', async () => {
    const { result, report } = await pipeline(parquetSource({ path: SAMPLE }), validateRanking(), llamaFactory({ out, name: 'rlhf_v' }), launchDpo({ config, ...opts() }))
    expect(result.exitCode).toBe(0)
    expect(result.preflight?.ok).toBe(true)
    expect(result.preflight?.checks.find((c) => c.id === 'images')?.message).toMatch(/^all \d+ distinct image paths found under media_dir/)
    expect(result.summary?.step).toBe(10)
    expect(report.stages.at(-1)).toMatchObject({ name: 'launch', kind: 'after', in: 1, out: 1 })
    const rec = (await readRecord<TrainRecord>(fakes, 'train.json'))!
    expect(rec.argv).toEqual(['train', config])
  })

  it('takes the YAML path from the step before it (trainingConfig.path)', async () => {
    // A sink that also writes the YAML, as the training-config step does, and says where.
    const sinkWithYaml: Sink<PreferenceSample, LlamaFactoryManifest & { trainingConfig: { path: string } }> = async (input, ctx) => {
      const manifest = await llamaFactory({ out, name: 'rlhf_v' })(input, ctx)
      const path = join(fakes.dir, 'from-sink.yaml')
      await writeFile(path, yamlFor(manifest.out, join(fakes.dir, 'saves', 'dpo2')))
      return { ...manifest, trainingConfig: { path } }
    }
    const { result } = await pipeline(parquetSource({ path: SAMPLE }), validateRanking(), sinkWithYaml, launchDpo(opts()))
    expect(result.config).toBe(join(fakes.dir, 'from-sink.yaml'))
    expect(result.exitCode).toBe(0)
  })

  it('fails the pipeline with a LaunchError when the training fails', async () => {
    const err = await pipeline(parquetSource({ path: SAMPLE }), validateRanking(), llamaFactory({ out, name: 'rlhf_v' }), launchDpo({ config, ...opts(), env: fakes.env({ FAKE_LF_MODE: 'fail' }) })).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(PipelineError)
    expect((err as PipelineError).stage).toBe('launch')
    const cause = (err as PipelineError).cause
    expect(cause).toBeInstanceOf(LaunchError)
    expect((cause as LaunchError).result.exitCode).toBe(1)
    expect((err as Error).message).toContain('the training exited with code 1; see ')
  })

  it('checks its options when the step is made', () => {
    expect(() => launchDpo({ gpus: -1 })).toThrow('[prefpipe] launchDpo(): invalid options: gpus:')
    expect(() => launchDpo({ nope: true } as never)).toThrow(/launchDpo\(\): invalid options/)
  })
})
