/**
 * The launch as the final step of a pipeline: `pipeline(source, ...transforms, llamaFactory(...), launchDpo({ gpus: 8 }))`.
 * It takes the sink's result (the manifest of the folder, extended with the training YAML it wrote) and
 * fires `llamafactory-cli train` on it.
 */
import { z } from 'zod'
import { after } from '../pipeline/stage.js'
import type { After, StageContext } from '../pipeline/types.js'
import type { LlamaFactoryManifest } from '../sinks/llamafactory.js'
import { writeTrainingConfigFor } from '../sinks/training-config.js'
import { datasetNames, loadTrainConfig, runPaths } from './config.js'
import { launchOptionsShape, launchTraining, type LaunchOptions, type LaunchResult } from './launch.js'
import { checkOptions } from './options.js'
import { IMAGE_DEFAULTS } from '../presets/prepare.js'

/**
 * What {@link launchDpo} takes from the step before it: the training YAML's path, as the `trainingConfig()`
 * step gives it (`{ trainingConfig: { path } }`, with the sink's manifest), or as `trainConfig` / `config`;
 * or the LLaMA-Factory sink's manifest alone (the default `train_dpo.yaml` is then written for its folder);
 * plus, optionally, the sink's manifest of the folder it trains on (used for a consistency warning).
 */
export type LaunchInput = (
  | { trainingConfig: { path: string } }
  | { trainConfig: string }
  | { config: string }
  | Pick<LlamaFactoryManifest, 'out' | 'name' | 'datasets'>
) &
  Partial<LlamaFactoryManifest>

/**
 * Options of {@link launchDpo}: those of {@link launchTraining}, with `config` optional (it comes from the
 * input), plus what the default `train_dpo.yaml` is written with when the input has none: `maxPixels`
 * (262144) and `cutoffLen` (2048), which must match the images stage's, `model` (`qwen2-vl`). When launchDpo
 * writes the YAML, `overrides` go into it (checked against LLaMA-Factory's keys); otherwise they are passed
 * after the config path as `key=value`.
 */
export type LaunchDpoOptions = Omit<LaunchOptions, 'config'> & {
  config?: string
  maxPixels?: number
  cutoffLen?: number
  model?: string | { modelNameOrPath: string; template: string; slug?: string }
}

/** A training that ran and did not succeed (non-zero exit, or interrupted). `result` says how it ended. */
export class LaunchError extends Error {
  override name = 'LaunchError'
  constructor(readonly result: LaunchResult) {
    super(
      `[prefpipe] the training ${result.interrupted ? `was interrupted (${result.interrupted}) and ` : ''}exited with code ${result.exitCode}${result.logFile ? `; see ${result.logFile}` : ''}`,
    )
  }
}

const schema = z.strictObject({
  config: z.string().min(1).optional(),
  maxPixels: z.int().min(28 * 28).optional(),
  cutoffLen: z.int().min(1).optional(),
  model: z.union([z.string().min(1), z.strictObject({ modelNameOrPath: z.string().min(1), template: z.string().min(1), slug: z.string().optional() })]).optional(),
  ...launchOptionsShape,
})

/** The sink's manifest, when the input is one (a folder the default YAML can be written for). */
function manifestOf(input: unknown): Pick<LlamaFactoryManifest, 'out' | 'name' | 'datasets'> | undefined {
  if (input === null || typeof input !== 'object') return undefined
  const m = input as Partial<LlamaFactoryManifest>
  return typeof m.out === 'string' && typeof m.name === 'string' && typeof m.datasets?.train?.name === 'string' ? (m as LlamaFactoryManifest) : undefined
}

function configOf(input: unknown): string | undefined {
  if (input === null || typeof input !== 'object') return undefined
  const r = input as { trainingConfig?: { path?: unknown }; trainConfig?: unknown; config?: unknown }
  if (typeof r.trainingConfig?.path === 'string' && r.trainingConfig.path) return r.trainingConfig.path
  if (typeof r.trainConfig === 'string' && r.trainConfig) return r.trainConfig
  if (typeof r.config === 'string' && r.config) return r.config
  return undefined
}

/**
 * The final pipeline step that launches DPO training on the folder the sink wrote (see {@link launchTraining}
 * for everything it does: preflight, launch on the GPUs, live metrics, summary and plots). Options are checked
 * when the step is made. It resolves to the {@link LaunchResult} when the training exits 0 (and on a dry run),
 * and fails the pipeline with a {@link LaunchError} otherwise. Aborting the pipeline interrupts the training
 * like Ctrl-C. It warns (on `ctx.log`) when the YAML does not train on the dataset the sink wrote.
 *
 * The YAML comes from `options.config`, else from the input's `trainingConfig.path` (what the
 * `trainingConfig()` step adds to the manifest), `trainConfig` or `config`; else, right after the sink, the
 * default `train_dpo.yaml` is written into the folder first (as `trainingConfig({ maxPixels, cutoffLen, model,
 * overrides })` would; also on a dry run, which then prints the command that trains on it).
 * @example
 * // Straight after the sink: writes out/rlhf_v/train_dpo.yaml, preflights, prints the command.
 * const { result } = await pipeline(
 *   parquetSource({ path: 'fixtures/rlhf-v-sample.parquet' }),
 *   validateRanking(),
 *   processImages(),
 *   split({ eval: 0.1, seed: 42 }),
 *   llamaFactory({ out: 'out/rlhf_v', name: 'rlhf_v' }),
 *   launchDpo({ gpus: 8, dryRun: true }),
 * )
 * console.log(result.command)
 * @example
 * const { result } = await pipeline(
 *   parquetSource({ path: 'rlhf-v.parquet' }),
 *   validateRanking(),
 *   llamaFactory({ out: 'data/rlhf_v', name: 'rlhf_v' }),
 *   launchDpo({ config: 'data/rlhf_v/train_dpo.yaml', gpus: 8 }),
 * )
 * result.exitCode // 0
 */
export function launchDpo(options: LaunchDpoOptions & { config: string }): After<Partial<LlamaFactoryManifest> & { trainingConfig?: { path: string }; trainConfig?: string }, LaunchResult>
export function launchDpo(options?: LaunchDpoOptions): After<LaunchInput, LaunchResult>
export function launchDpo(options: LaunchDpoOptions = {}): After<LaunchInput, LaunchResult> {
  const { maxPixels, cutoffLen, model, ...opts } = checkOptions(schema, options, 'launchDpo()')
  return after('launch', async (input: LaunchInput, ctx: StageContext): Promise<LaunchResult> => {
    let config = opts.config ?? configOf(input)
    let overrides = opts.overrides
    const manifest = manifestOf(input)
    if (!config && manifest) {
      // Right after the sink: write the folder's default train_dpo.yaml first; the overrides go into it.
      const written = await writeTrainingConfigFor(manifest, {
        maxPixels: maxPixels ?? IMAGE_DEFAULTS.maxPixels,
        cutoffLen: cutoffLen ?? IMAGE_DEFAULTS.cutoffLen,
        ...(model !== undefined ? { model } : {}),
        ...(overrides !== undefined ? { overrides } : {}),
        ...(opts.env ? { env: opts.env } : {}),
      })
      for (const w of written.warnings) ctx.log.warn(`training config: ${w}`)
      ctx.log.info(`launchDpo(): wrote ${written.path}`)
      config = written.path
      overrides = undefined
    }
    if (!config) {
      throw new TypeError('[prefpipe] launchDpo(): no training config: the step before gave no trainingConfig.path nor a LLaMA-Factory manifest, and no config option was given')
    }
    await warnOnMismatch(config, { ...opts, overrides }, input, ctx)
    const signal = opts.signal ? AbortSignal.any([opts.signal, ctx.signal]) : ctx.signal
    const result = await launchTraining({ ...opts, overrides, config, signal })
    if (!result.dryRun && result.exitCode !== 0) throw new LaunchError(result)
    return result
  })
}

/** Warn when the YAML trains on other data than the folder the sink just wrote. */
async function warnOnMismatch(config: string, opts: LaunchDpoOptions, input: LaunchInput, ctx: StageContext): Promise<void> {
  const wrote = input?.datasets
  if (!wrote?.train) return
  const cfg = await loadTrainConfig(config, opts.overrides ?? [], opts.cwd ? { cwd: opts.cwd } : {}).catch(() => undefined)
  if (!cfg) return // launchTraining reports it
  const names = datasetNames(cfg.effective.dataset)
  if (!names.includes(wrote.train.name)) ctx.log.warn(`${cfg.path} trains on ${names.join(', ') || 'no dataset'}, not on ${wrote.train.name}, which the sink just wrote`)
  const paths = runPaths(cfg.effective, cfg.cwd)
  if (input.datasetDir && paths.datasetDir !== input.datasetDir) ctx.log.warn(`${cfg.path} has dataset_dir ${paths.datasetDir}, not ${input.datasetDir}, which the sink just wrote`)
}
