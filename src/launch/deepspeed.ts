/**
 * DeepSpeed ZeRO configs, the same as LLaMA-Factory's `examples/deepspeed/ds_z{2,3}[_offload]_config.json`
 * (everything the HF integration can fill in is `"auto"`, so batch size, accumulation, clipping and precision
 * come from the training YAML). Their no-op `comms_config` / `monitor_config` blocks are left out.
 */
import { randomBytes } from 'node:crypto'
import { readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'

/** The presets `--deepspeed` offers. */
export const ZERO_PRESETS = ['z2', 'z3', 'z3-offload'] as const
export type ZeroPreset = (typeof ZERO_PRESETS)[number]

const COMMON = {
  train_batch_size: 'auto',
  train_micro_batch_size_per_gpu: 'auto',
  gradient_accumulation_steps: 'auto',
  gradient_clipping: 'auto',
  zero_allow_untested_optimizer: true,
  fp16: { enabled: 'auto', loss_scale: 0, loss_scale_window: 1000, initial_scale_power: 16, hysteresis: 2, min_loss_scale: 1 },
  bf16: { enabled: 'auto' },
}

const Z3 = {
  stage: 3,
  overlap_comm: false,
  contiguous_gradients: true,
  sub_group_size: 1e9,
  reduce_bucket_size: 'auto',
  stage3_prefetch_bucket_size: 'auto',
  stage3_param_persistence_threshold: 'auto',
  stage3_max_live_parameters: 1e9,
  stage3_max_reuse_distance: 1e9,
  stage3_gather_16bit_weights_on_model_save: true,
}

/**
 * The DeepSpeed config of a preset, as a plain object.
 * @example
 * deepspeedConfig('z3').zero_optimization // { stage: 3, overlap_comm: false, ... }
 */
export function deepspeedConfig(preset: ZeroPreset): Record<string, unknown> {
  switch (preset) {
    case 'z2':
      return {
        ...COMMON,
        zero_optimization: {
          stage: 2,
          allgather_partitions: true,
          allgather_bucket_size: 5e8,
          overlap_comm: false,
          reduce_scatter: true,
          reduce_bucket_size: 5e8,
          contiguous_gradients: true,
          round_robin_gradients: true,
        },
      }
    case 'z3':
      return { ...COMMON, zero_optimization: { ...Z3 } }
    case 'z3-offload': {
      const { stage, ...rest } = Z3
      return {
        ...COMMON,
        zero_optimization: { stage, offload_optimizer: { device: 'cpu', pin_memory: true }, offload_param: { device: 'cpu', pin_memory: true }, ...rest },
      }
    }
  }
}

/**
 * The file name LLaMA-Factory gives the preset (`ds_z3_config.json`, `ds_z3_offload_config.json`).
 * @example
 * deepspeedFileName('z3-offload') // 'ds_z3_offload_config.json'
 */
export function deepspeedFileName(preset: ZeroPreset): string {
  return `ds_${preset.replace('-', '_')}_config.json`
}

/** The exact bytes written for a preset (2-space JSON and a final newline). */
export function deepspeedText(preset: ZeroPreset): string {
  return JSON.stringify(deepspeedConfig(preset), null, 2) + '\n'
}

/**
 * Write the preset's config into `dir` (next to the training YAML) and return its absolute path, for a
 * `deepspeed=<path>` override. A file already there with the same content is kept; one with other content
 * (edited by hand?) is not overwritten: this throws, saying how to use it instead.
 * @example
 * const path = await writeDeepspeedConfig('data/rlhf_v', 'z3') // '/abs/data/rlhf_v/ds_z3_config.json'
 */
export async function writeDeepspeedConfig(dir: string, preset: ZeroPreset): Promise<string> {
  const path = resolve(join(dir, deepspeedFileName(preset)))
  const text = deepspeedText(preset)
  const existing = await readFile(path, 'utf8').catch(() => undefined)
  if (existing === text) return path
  if (existing !== undefined) {
    throw new Error(`[prefpipe] ${path} exists and differs from the ${preset} preset; to use it as it is, pass the override deepspeed=${path} instead of --deepspeed ${preset}, or remove it`)
  }
  const tmp = join(dir, `.${deepspeedFileName(preset)}.prefpipe-tmp-${process.pid}-${randomBytes(4).toString('hex')}`)
  try {
    await writeFile(tmp, text)
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
  return path
}
