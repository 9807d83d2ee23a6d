import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { basename, dirname, isAbsolute, join, resolve } from 'node:path'
import { z } from 'zod'
import { parseOmegaConfYaml, parseSetArgs, setDotted, type ConfigValue } from '../llamafactory/omegaconf.js'
import { checkTrainKeys, formatUnusedKeysError, trainKeyField, warnTrainKeys } from '../llamafactory/train-args.js'
import { after } from '../pipeline/stage.js'
import type { After } from '../pipeline/types.js'
import type { LlamaFactoryManifest } from './llamafactory.js'

/**
 * The LLaMA-Factory training config: `<out>/train_dpo.yaml`, a Qwen-VL LoRA DPO config from LLaMA-Factory's
 * RLHF-V example (`examples/train_lora/qwen2_5vl_lora_dpo.yaml`, now `qwen3vl_lora_dpo.yaml`; see
 * `reference/llamafactory.md` 4.1) bound to the folder the LLaMA-Factory sink wrote:
 * - absolute `dataset_dir` and `media_dir` (the folder), `dataset: <name>_train`, and with an eval split
 *   `eval_dataset: <name>_eval`, `eval_strategy: steps`, `eval_steps`, `per_device_eval_batch_size` (never
 *   `val_size`: LLaMA-Factory refuses both);
 * - `image_max_pixels` = the resize stage's budget, `cutoff_len` = the token budget the rows were checked
 *   against, `template` from the model (`qwen2_vl` for Qwen2/2.5-VL, `qwen3_vl_nothink` for Qwen3-VL Instruct,
 *   `qwen3_vl` for Qwen3-VL Thinking), no `max_samples` (the example's 1000-row cap);
 * - an absolute `output_dir`: `<parent of out>/saves/<folder name>/<model slug>/lora/dpo`, LLaMA-Factory's
 *   `saves/<model>/lora/dpo` convention resolved next to the data folder (not inside it, so checkpoints do not
 *   mix with the dataset) and keyed by the folder name (two data folders never share, and with
 *   `overwrite_output_dir: true` clobber, one checkpoint directory).
 *
 * Users bring their own keys: a base YAML (their usual hyperparameters) and overrides (`--set key=value`).
 * Precedence: ours < base YAML < overrides, except that the data binding (`dataset_dir`, `media_dir`,
 * `dataset`, `eval_dataset`) of a base YAML is ignored (with a warning): a base YAML is written for some other
 * dataset, and only this folder's entries exist here. Overrides win over everything. The merged config is
 * checked as LLaMA-Factory would ({@link checkTrainKeys}: a typo such as `lora_rnak` is refused with "did you
 * mean `lora_rank`?"), our keys are type-checked with zod, other keys against the extracted field types.
 *
 * The YAML text is deterministic: keys in a fixed order, grouped under `###` comments like the example, the
 * user's other keys last; scalars written so PyYAML (what OmegaConf uses) and YAML 1.2 read the same values
 * (floats always with a dot, `5.0e-6`; strings quoted when they could read as something else).
 */

// ---------------------------------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------------------------------

/** A model the config trains: the Hub id, LLaMA-Factory's template for it, and a short name for `output_dir`. */
export interface ModelPreset {
  modelNameOrPath: string
  template: string
  slug: string
}

/**
 * The model presets (`--model`). Templates per LLaMA-Factory's `data/template.py`: Qwen2-VL and Qwen2.5-VL use
 * `qwen2_vl`; Qwen3-VL Instruct uses `qwen3_vl_nothink` (what LLaMA-Factory's own `qwen3vl_lora_dpo.yaml` pairs
 * with `Qwen/Qwen3-VL-4B-Instruct`); `qwen3_vl` is the reasoning template, for the Thinking models.
 *
 * @example
 * MODEL_PRESETS['qwen2.5-vl'].modelNameOrPath // 'Qwen/Qwen2.5-VL-7B-Instruct'
 */
export const MODEL_PRESETS = {
  'qwen2-vl': { modelNameOrPath: 'Qwen/Qwen2-VL-7B-Instruct', template: 'qwen2_vl', slug: 'qwen2_vl-7b' },
  'qwen2.5-vl': { modelNameOrPath: 'Qwen/Qwen2.5-VL-7B-Instruct', template: 'qwen2_vl', slug: 'qwen2_5vl-7b' },
  'qwen3-vl': { modelNameOrPath: 'Qwen/Qwen3-VL-4B-Instruct', template: 'qwen3_vl_nothink', slug: 'qwen3-vl-4b' },
} as const satisfies Record<string, ModelPreset>

/** A model preset name. */
export type ModelPresetName = keyof typeof MODEL_PRESETS

/** The default model: Qwen2-VL-7B-Instruct. */
export const DEFAULT_MODEL: ModelPresetName = 'qwen2-vl'

/**
 * The LLaMA-Factory template for a Qwen-VL model id, or `undefined` when it is not one we know.
 *
 * @example
 * templateForModel('Qwen/Qwen2.5-VL-3B-Instruct') // 'qwen2_vl'
 * templateForModel('Qwen/Qwen3-VL-8B-Thinking') // 'qwen3_vl'
 * templateForModel('/models/my-qwen3-vl-8b-instruct') // 'qwen3_vl_nothink'
 */
export function templateForModel(modelNameOrPath: string): string | undefined {
  const m = modelNameOrPath.toLowerCase()
  if (/qwen3[-_.]?vl/.test(m)) return /thinking/.test(m) ? 'qwen3_vl' : 'qwen3_vl_nothink'
  if (/qwen2(?:\.5|_5)?[-_.]?vl/.test(m)) return 'qwen2_vl'
  return undefined
}

/**
 * A preset name, a Hub id / local path of a Qwen-VL model (template inferred), or an explicit
 * `{ modelNameOrPath, template, slug? }`, as a {@link ModelPreset}.
 *
 * @example
 * resolveModel('qwen3-vl').template // 'qwen3_vl_nothink'
 * resolveModel('Qwen/Qwen2-VL-2B-Instruct') // { modelNameOrPath: 'Qwen/Qwen2-VL-2B-Instruct', template: 'qwen2_vl', slug: 'qwen2-vl-2b-instruct' }
 */
export function resolveModel(model: string | { modelNameOrPath: string; template: string; slug?: string } = DEFAULT_MODEL): ModelPreset {
  if (typeof model === 'object') return { modelNameOrPath: model.modelNameOrPath, template: model.template, slug: model.slug ?? slugOf(model.modelNameOrPath) }
  const preset = (MODEL_PRESETS as Record<string, ModelPreset>)[model.toLowerCase()]
  if (preset) return { ...preset }
  const template = templateForModel(model)
  if (!template) {
    throw new TypeError(
      `[prefpipe] model "${model}": not a preset (${Object.keys(MODEL_PRESETS).join(', ')}) nor a Qwen2/2.5/3-VL model id; give { modelNameOrPath, template } for other models`,
    )
  }
  return { modelNameOrPath: model, template, slug: slugOf(model) }
}

function slugOf(modelNameOrPath: string): string {
  return (basename(modelNameOrPath.replace(/[/\\]+$/, '')) || 'model').toLowerCase().replace(/[^a-z0-9._-]+/g, '-')
}

// ---------------------------------------------------------------------------------------------------------------
// Layout and defaults
// ---------------------------------------------------------------------------------------------------------------

/** The sections of the file and the keys in each, in order (the example's `###` groups, plus `eval`). */
export const CONFIG_LAYOUT: readonly { section: string; keys: readonly string[] }[] = [
  { section: 'model', keys: ['model_name_or_path', 'image_max_pixels', 'trust_remote_code'] },
  { section: 'method', keys: ['stage', 'do_train', 'finetuning_type', 'lora_rank', 'lora_target', 'pref_beta', 'pref_loss'] },
  {
    section: 'dataset',
    keys: ['dataset_dir', 'media_dir', 'dataset', 'template', 'cutoff_len', 'overwrite_cache', 'preprocessing_num_workers', 'dataloader_num_workers'],
  },
  { section: 'output', keys: ['output_dir', 'logging_steps', 'save_steps', 'plot_loss', 'overwrite_output_dir', 'save_only_model', 'report_to'] },
  {
    section: 'train',
    keys: [
      'per_device_train_batch_size',
      'gradient_accumulation_steps',
      'learning_rate',
      'num_train_epochs',
      'lr_scheduler_type',
      'warmup_ratio',
      'bf16',
      'ddp_timeout',
      'resume_from_checkpoint',
    ],
  },
  { section: 'eval', keys: ['eval_dataset', 'per_device_eval_batch_size', 'eval_strategy', 'eval_steps'] },
]

/**
 * The hyperparameters of LLaMA-Factory's Qwen-VL LoRA DPO example, which prefpipe writes unless told
 * otherwise (`overwrite_cache: true` as in the Qwen2.5-VL version: a re-run may change rows at the same path).
 */
export const DPO_DEFAULTS = {
  trust_remote_code: true,
  stage: 'dpo',
  do_train: true,
  finetuning_type: 'lora',
  lora_rank: 8,
  lora_target: 'all',
  pref_beta: 0.1,
  pref_loss: 'sigmoid',
  overwrite_cache: true,
  preprocessing_num_workers: 16,
  dataloader_num_workers: 4,
  logging_steps: 10,
  save_steps: 500,
  plot_loss: true,
  overwrite_output_dir: true,
  save_only_model: false,
  report_to: 'none',
  per_device_train_batch_size: 1,
  gradient_accumulation_steps: 8,
  learning_rate: 5.0e-6,
  num_train_epochs: 3.0,
  lr_scheduler_type: 'cosine',
  warmup_ratio: 0.1,
  bf16: true,
  ddp_timeout: 180000000,
  resume_from_checkpoint: null,
  per_device_eval_batch_size: 1,
  eval_strategy: 'steps',
  eval_steps: 500,
} as const

/** Keys that bind the config to the folder: from a base YAML they are ignored (ours win); overrides win. */
const DATA_KEYS = ['dataset_dir', 'media_dir', 'dataset', 'eval_dataset'] as const

// ---------------------------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------------------------

/** Options of {@link writeTrainingConfig} / {@link buildTrainingConfig}. */
export interface TrainingConfigOptions {
  /** The dataset folder (the sink's `out`): `dataset_dir`, `media_dir`, and where the YAML goes. */
  out: string
  /** The dataset name: entries `<name>_train` / `<name>_eval` in `dataset_info.json`. */
  name: string
  /** Whether the folder has an eval split (`<name>_eval`). */
  hasEval: boolean
  /** A preset (`qwen2-vl` default, `qwen2.5-vl`, `qwen3-vl`), a Qwen-VL model id or path, or an explicit model. */
  model?: string | { modelNameOrPath: string; template: string; slug?: string }
  /** `image_max_pixels`: the pixel budget the images were resized to. */
  maxPixels: number
  /** `cutoff_len`: the token budget the rows were checked against. A smaller merged value is refused. */
  cutoffLen: number
  /** Your keys, winning over everything: `{ lora_rank: 16 }` or `['lora_rank=16']` (OmegaConf typing). */
  overrides?: Record<string, unknown> | readonly string[]
  /** Your base config: a `.yaml` file path, or the parsed object. Wins over ours except the data binding. */
  baseYaml?: string | Record<string, unknown>
  /** `output_dir` (resolved to absolute). Default `<parent of out>/saves/<basename of out>/<model slug>/lora/dpo`. */
  outputDir?: string
  /** The file name in `out` (default `train_dpo.yaml`). */
  fileName?: string
  /** The environment the training runs with, for the key check (`ALLOW_EXTRA_ARGS`, `USE_MEGATRON_BRIDGE`). */
  env?: NodeJS.ProcessEnv
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/
const modelSchema = z.union([
  z.string().min(1),
  z.strictObject({ modelNameOrPath: z.string().min(1), template: z.string().min(1), slug: z.string().regex(/^[A-Za-z0-9._-]+$/).optional() }),
])
const optionsSchema = z.strictObject({
  out: z.string().min(1, 'must not be empty'),
  name: z.string().regex(NAME_RE, 'must start with a letter or digit and hold only letters, digits, "_", "." and "-"'),
  hasEval: z.boolean(),
  model: modelSchema.optional(),
  maxPixels: z.int().min(28 * 28, 'must be at least 784 (28 x 28)'),
  cutoffLen: z.int().min(1),
  overrides: z.union([z.array(z.string()), z.record(z.string(), z.unknown())]).optional(),
  baseYaml: z.union([z.string().min(1), z.record(z.string(), z.unknown())]).optional(),
  outputDir: z.string().min(1).optional(),
  fileName: z.string().regex(/^[^/\\]+\.ya?ml$/, 'must be a file name ending in .yaml or .yml (LLaMA-Factory cannot read .json configs)').optional(),
  env: z.record(z.string(), z.string().optional()).optional(),
})

/** The types of the keys we set (checked on the merged config, whoever set them). */
const positiveNumber = z.number().positive()
const ourKeysSchema = z.looseObject({
  model_name_or_path: z.string().min(1),
  image_max_pixels: z.int().positive(),
  trust_remote_code: z.boolean(),
  stage: z.literal('dpo', { message: 'this is a DPO config: stage must be "dpo"' }),
  do_train: z.boolean(),
  finetuning_type: z.enum(['lora', 'oft', 'freeze', 'full']),
  lora_rank: z.int().positive(),
  lora_target: z.string().min(1),
  pref_beta: positiveNumber,
  pref_loss: z.enum(['sigmoid', 'hinge', 'ipo', 'kto_pair', 'orpo', 'simpo']),
  dataset_dir: z.string().refine(isAbsolute, 'must be an absolute path'),
  media_dir: z.string().refine(isAbsolute, 'must be an absolute path'),
  dataset: z.string().min(1),
  template: z.string().min(1),
  cutoff_len: z.int().positive(),
  overwrite_cache: z.boolean(),
  preprocessing_num_workers: z.int().positive().nullable(),
  dataloader_num_workers: z.int().nonnegative(),
  output_dir: z.string().min(1),
  logging_steps: positiveNumber,
  save_steps: positiveNumber,
  plot_loss: z.boolean(),
  overwrite_output_dir: z.boolean(),
  save_only_model: z.boolean(),
  report_to: z.union([z.string(), z.array(z.string())]).nullable(),
  per_device_train_batch_size: z.int().positive(),
  gradient_accumulation_steps: z.int().positive(),
  learning_rate: positiveNumber,
  num_train_epochs: positiveNumber,
  lr_scheduler_type: z.enum([
    'linear',
    'cosine',
    'cosine_with_restarts',
    'polynomial',
    'constant',
    'constant_with_warmup',
    'inverse_sqrt',
    'reduce_lr_on_plateau',
    'cosine_with_min_lr',
    'cosine_warmup_with_min_lr',
    'warmup_stable_decay',
  ]),
  warmup_ratio: z.number().min(0).max(1).nullable(),
  bf16: z.boolean(),
  ddp_timeout: z.int().positive(),
  resume_from_checkpoint: z.string().nullable(),
  eval_dataset: z.string().min(1).nullable().optional(),
  per_device_eval_batch_size: z.int().positive().optional(),
  eval_strategy: z.enum(['no', 'steps', 'epoch']).optional(),
  eval_steps: positiveNumber.nullable().optional(),
})

// ---------------------------------------------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------------------------------------------

/** What {@link buildTrainingConfig} returns. */
export interface TrainingConfig {
  /** The merged config, as LLaMA-Factory will see it (key order = file order). */
  config: Record<string, ConfigValue>
  /** The YAML text. */
  yaml: string
  /** Absolute path the file is (or would be) written to. */
  path: string
  /** Things worth telling the user (ignored data keys of a base YAML, version-dependent keys, `max_samples`, ...). */
  warnings: string[]
}

/** What {@link writeTrainingConfig} returns: the path written and the config in it. */
export type WrittenTrainingConfig = TrainingConfig

function fail(msg: string): never {
  throw new Error(`[prefpipe] training config: ${msg}`)
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

/** OmegaConf.merge for two configs: mappings merge key by key, anything else is replaced. */
function deepMerge(base: Record<string, unknown>, top: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base }
  for (const [k, v] of Object.entries(top)) {
    const b = out[k]
    out[k] = isPlainObject(b) && isPlainObject(v) ? deepMerge(b, v) : v
  }
  return out
}

/** Check JSON-able config values (numbers finite or not, no undefined, no functions). */
function assertConfigValue(v: unknown, where: string): asserts v is ConfigValue {
  if (v === null || typeof v === 'string' || typeof v === 'boolean' || typeof v === 'number') return
  if (Array.isArray(v)) return v.forEach((x, i) => assertConfigValue(x, `${where}[${i}]`))
  if (isPlainObject(v)) return Object.entries(v).forEach(([k, x]) => assertConfigValue(x, `${where}.${k}`))
  fail(`${where}: ${v === undefined ? 'undefined' : typeof v} is not a YAML value (use null, a string, number, boolean, list or mapping)`)
}

/**
 * The type of a value as Python will see it vs. the extracted field type of a key (bool, int, float, str and
 * their optional forms): a message when they do not match, else undefined. LLaMA-Factory does not coerce.
 */
function typeProblem(key: string, value: ConfigValue): string | undefined {
  const field = trainKeyField(key)
  if (!field) return undefined
  const optional = field.type.startsWith('optional ')
  const base = field.type.replace(/^optional /, '')
  if (value === null) return optional ? undefined : `\`${key}\` cannot be null (${field.type}, default ${JSON.stringify(field.default)})`
  const ok: Record<string, () => boolean> = {
    bool: () => typeof value === 'boolean',
    int: () => typeof value === 'number' && Number.isInteger(value),
    float: () => typeof value === 'number',
    str: () => typeof value === 'string',
  }
  const check = ok[base]
  if (!check || check()) return undefined
  const want = base === 'str' ? 'a string' : base === 'bool' ? 'true or false' : base === 'int' ? 'an integer' : 'a number'
  return `\`${key}\` must be ${optional ? 'null or ' : ''}${want} (got ${JSON.stringify(value)})`
}

/**
 * A value outside the choices extracted for an enum key: a warning, not an error, because the choices are
 * those of one transformers/LLaMA-Factory version (e.g. `optim` names differ between transformers 4 and 5).
 */
function choiceWarning(key: string, value: ConfigValue): string | undefined {
  const field = trainKeyField(key)
  if (!field?.choices || !/(^|\s)enum$/.test(field.type) || value === null) return undefined
  if (field.choices.includes(value)) return undefined
  return `\`${key}: ${JSON.stringify(value)}\` is not one of the values LLaMA-Factory ${field.origin === 'transformers' ? '(transformers)' : ''} lists: ${field.choices.map((c) => JSON.stringify(c)).join(', ')}`.replace('  ', ' ')
}

async function loadBase(baseYaml: string | Record<string, unknown> | undefined): Promise<Record<string, unknown>> {
  if (baseYaml === undefined) return {}
  if (typeof baseYaml !== 'string') return structuredClone(baseYaml)
  const path = resolve(baseYaml)
  if (!/\.ya?ml$/i.test(path)) fail(`base YAML ${path}: must be a .yaml or .yml file`)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    fail(`base YAML ${path}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`)
  }
  let parsed: ConfigValue
  try {
    parsed = parseOmegaConfYaml(text)
  } catch (err) {
    fail(`base YAML ${path}: ${(err as Error).message.replace(/^\[prefpipe\] /, '')}`)
  }
  if (parsed === null) return {}
  if (!isPlainObject(parsed)) fail(`base YAML ${path}: must be a mapping of keys to values`)
  return parsed
}

/**
 * Build the training config without writing it (see the module doc for what goes in and the precedence).
 * Throws on invalid options, on keys LLaMA-Factory would refuse, on wrong types of our keys, on `val_size`
 * together with an eval split, and on a `cutoff_len` below the budget the rows were checked with.
 *
 * @example
 * const { config, yaml } = await buildTrainingConfig({ out: 'data/rlhf_v', name: 'rlhf_v', hasEval: true, maxPixels: 262144, cutoffLen: 2048 })
 * config.dataset // 'rlhf_v_train'
 * config.eval_dataset // 'rlhf_v_eval'
 */
export async function buildTrainingConfig(options: TrainingConfigOptions): Promise<TrainingConfig> {
  const parsed = optionsSchema.safeParse(options)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    if (issue.code === 'unrecognized_keys') throw new TypeError(`[prefpipe] trainingConfig(): unknown option "${issue.keys.join('", "')}"`)
    throw new TypeError(`[prefpipe] trainingConfig(): option "${issue.path.map(String).join('.') || 'options'}" is invalid: ${issue.message}`)
  }
  const o = parsed.data
  const out = resolve(o.out)
  const model = resolveModel(o.model)
  const warnings: string[] = []

  // Ours.
  const ours: Record<string, unknown> = {
    model_name_or_path: model.modelNameOrPath,
    image_max_pixels: o.maxPixels,
    ...DPO_DEFAULTS,
    dataset_dir: out,
    media_dir: out,
    dataset: `${o.name}_train`,
    template: model.template,
    cutoff_len: o.cutoffLen,
    output_dir: resolve(o.outputDir ?? join(dirname(out), 'saves', basename(out), model.slug, 'lora', 'dpo')),
  }
  if (o.hasEval) ours.eval_dataset = `${o.name}_eval`
  else for (const k of ['per_device_eval_batch_size', 'eval_strategy', 'eval_steps']) delete ours[k]

  // Theirs: the base YAML (without its data binding), then the overrides.
  const base = await loadBase(o.baseYaml)
  for (const k of DATA_KEYS) {
    if (k in base) {
      if (base[k] !== ours[k] && !(k === 'eval_dataset' && !o.hasEval && base[k] === null)) {
        warnings.push(`base YAML: \`${k}: ${JSON.stringify(base[k])}\` ignored; this folder's is ${JSON.stringify(ours[k] ?? null)} (use an override to force it)`)
      }
      delete base[k]
    }
  }
  let overrides: Record<string, unknown>
  if (Array.isArray(o.overrides)) overrides = parseSetArgs(o.overrides as string[])
  else {
    overrides = {}
    for (const [k, v] of Object.entries((o.overrides ?? {}) as Record<string, unknown>)) setDotted(overrides, k, v)
  }
  const theirs = deepMerge(base, overrides)
  const merged = deepMerge(ours, theirs)
  for (const [k, v] of Object.entries(merged)) assertConfigValue(v, k)
  const config = merged as Record<string, ConfigValue>

  // Template follows their model when they changed the model and not the template.
  if ('model_name_or_path' in theirs && !('template' in theirs) && typeof config.model_name_or_path === 'string') {
    const t = templateForModel(config.model_name_or_path)
    if (t) config.template = t
    else fail(`model_name_or_path ${JSON.stringify(config.model_name_or_path)} is not a Qwen-VL model prefpipe knows the template of; set \`template\` too`)
  } else if (typeof config.model_name_or_path === 'string' && typeof config.template === 'string') {
    const t = templateForModel(config.model_name_or_path)
    if (t && t !== config.template && !(t.startsWith('qwen3_vl') && config.template.startsWith('qwen3_vl'))) {
      warnings.push(`template ${JSON.stringify(config.template)} is not LLaMA-Factory's template for ${config.model_name_or_path} (${t})`)
    }
  }

  // Keys LLaMA-Factory would refuse.
  const env = o.env ?? process.env
  const problems = checkTrainKeys(config, { env })
  if (problems.length > 0) {
    fail(`${problems.map((p) => p.message).join('\n')}\n(${formatUnusedKeysError(problems)})`)
  }
  for (const w of warnTrainKeys(config, { env })) if (w.key in theirs) warnings.push(w.message)

  // Our keys' types, and the rest against the extracted field types.
  const typed = ourKeysSchema.safeParse(config)
  if (!typed.success) {
    fail(typed.error.issues.map((i) => `\`${i.path.map(String).join('.')}\`: ${i.message}`).join('; '))
  }
  const ourSchemaKeys = new Set(Object.keys(ourKeysSchema.shape))
  const typeErrors = Object.entries(config)
    .filter(([k]) => !ourSchemaKeys.has(k))
    .map(([k, v]) => typeProblem(k, v))
    .filter((m): m is string => m !== undefined)
  if (typeErrors.length > 0) fail(typeErrors.join('; '))
  for (const [k, v] of Object.entries(config)) {
    const w = ourSchemaKeys.has(k) ? undefined : choiceWarning(k, v)
    if (w) warnings.push(w)
  }

  // LLaMA-Factory's own rules on these keys.
  const valSize = config.val_size
  const hasValSize = typeof valSize === 'number' && valSize > 1e-6
  if (hasValSize && config.eval_dataset != null) {
    fail(
      `\`val_size\` cannot be combined with \`eval_dataset\` (LLaMA-Factory: "Cannot specify \`val_size\` if \`eval_dataset\` is not None."); this folder has an eval split (${JSON.stringify(config.eval_dataset)}): drop val_size, or split with no eval set`,
    )
  }
  if (config.eval_strategy != null && config.eval_strategy !== 'no' && config.eval_dataset == null && !hasValSize) {
    fail(`\`eval_strategy: ${String(config.eval_strategy)}\` needs an eval set, and this folder has none (LLaMA-Factory: "Please make sure eval_dataset be provided or val_size >1e-6")`)
  }
  if (config.do_eval === true && config.eval_dataset == null && !hasValSize) {
    fail('`do_eval: true` needs an eval set, and this folder has none (LLaMA-Factory: "Please make sure eval_dataset be provided or val_size >1e-6")')
  }
  if (typeof config.cutoff_len === 'number' && config.cutoff_len < o.cutoffLen) {
    fail(
      `\`cutoff_len: ${config.cutoff_len}\` is below the budget the rows were checked against (${o.cutoffLen}): long rows would be truncated mid-image and training would stop with "Image features and image tokens do not match"; prepare the folder again with that budget`,
    )
  }
  if ('max_samples' in theirs && config.max_samples != null) {
    warnings.push(`\`max_samples: ${String(config.max_samples)}\` keeps only the first ${String(config.max_samples)} rows of each dataset`)
  }
  for (const k of ['output_dir', 'deepspeed']) {
    const v = config[k]
    if (typeof v === 'string' && k in theirs && !isAbsolute(v) && !v.trim().startsWith('{')) {
      warnings.push(`\`${k}: ${v}\` is relative: LLaMA-Factory resolves it against the directory you launch from`)
    }
  }

  const ordered = orderConfig(config)
  const path = join(out, o.fileName ?? 'train_dpo.yaml')
  return { config: ordered, yaml: renderYaml(ordered, { out, path, model }), path, warnings }
}

/** The config with keys in file order: layout keys first, then the rest in their order. */
function orderConfig(config: Record<string, ConfigValue>): Record<string, ConfigValue> {
  const out: Record<string, ConfigValue> = {}
  for (const { keys } of CONFIG_LAYOUT) for (const k of keys) if (k in config) out[k] = config[k]!
  for (const [k, v] of Object.entries(config)) if (!(k in out)) out[k] = v
  return out
}

/**
 * Build the config and write it to `<out>/train_dpo.yaml` atomically (a temporary file in the folder, then a
 * rename). Returns the path, the config and the warnings.
 *
 * @example
 * const { path, config, warnings } = await writeTrainingConfig({
 *   out: 'data/rlhf_v', name: 'rlhf_v', hasEval: true, model: 'qwen2.5-vl', maxPixels: 262144, cutoffLen: 2048,
 *   overrides: ['lora_rank=16'],
 * })
 * // then: llamafactory-cli train <path>
 */
export async function writeTrainingConfig(options: TrainingConfigOptions): Promise<WrittenTrainingConfig> {
  const built = await buildTrainingConfig(options)
  const dir = dirname(built.path)
  await mkdir(dir, { recursive: true })
  const tmp = join(dir, `.${basename(built.path)}.prefpipe-tmp-${process.pid}-${tmpCounter++}`)
  try {
    await writeFile(tmp, built.yaml, { encoding: 'utf8', flag: 'wx' })
    await rename(tmp, built.path)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
  return built
}
let tmpCounter = 0

/**
 * The training config for the folder a LLaMA-Factory sink wrote: `out`, `name` and `hasEval` come from its
 * manifest (the dataset names it recorded).
 *
 * @example
 * const { result: manifest } = await pipeline(source, split({ eval: 0.05, seed: 1 }), llamaFactory({ out, name }))
 * const { path } = await writeTrainingConfigFor(manifest, { maxPixels: 262144, cutoffLen: 2048 })
 */
export function writeTrainingConfigFor(
  manifest: Pick<LlamaFactoryManifest, 'out' | 'name' | 'datasets'>,
  options: Omit<TrainingConfigOptions, 'out' | 'name' | 'hasEval'>,
): Promise<WrittenTrainingConfig> {
  const evalName = manifest.datasets.eval?.name
  if (manifest.datasets.train.name !== `${manifest.name}_train` || (evalName !== undefined && evalName !== `${manifest.name}_eval`)) {
    fail(`the manifest's dataset names (${manifest.datasets.train.name}, ${evalName ?? 'no eval'}) are not <name>_train/<name>_eval for name ${manifest.name}`)
  }
  return writeTrainingConfig({ ...options, out: manifest.out, name: manifest.name, hasEval: evalName !== undefined && (manifest.datasets.eval?.rows ?? 0) > 0 })
}

/**
 * A final pipeline step (after the LLaMA-Factory sink) that writes the training config for the folder and
 * resolves to the manifest plus the written config.
 *
 * @example
 * const { result } = await pipeline(source, split({ eval: 0.05, seed: 1 }), llamaFactory({ out, name }), trainingConfig({ maxPixels: 262144, cutoffLen: 2048 }))
 * result.trainingConfig.path // '<out>/train_dpo.yaml'
 */
export function trainingConfig(
  options: Omit<TrainingConfigOptions, 'out' | 'name' | 'hasEval'>,
): After<LlamaFactoryManifest, LlamaFactoryManifest & { trainingConfig: WrittenTrainingConfig }> {
  // Validate now (with placeholders for what the manifest brings), so a bad option fails before the run.
  const parsed = optionsSchema.safeParse({ ...options, out: '/', name: 'x', hasEval: false })
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    if (issue.code === 'unrecognized_keys') throw new TypeError(`[prefpipe] trainingConfig(): unknown option "${issue.keys.join('", "')}"`)
    throw new TypeError(`[prefpipe] trainingConfig(): option "${issue.path.map(String).join('.') || 'options'}" is invalid: ${issue.message}`)
  }
  if (options.model !== undefined) resolveModel(options.model)
  return after('training-config', async (manifest: LlamaFactoryManifest, ctx) => {
    const written = await writeTrainingConfigFor(manifest, options)
    for (const w of written.warnings) ctx.log.warn(`training config: ${w}`)
    return { ...manifest, trainingConfig: written }
  })
}

// ---------------------------------------------------------------------------------------------------------------
// YAML text
// ---------------------------------------------------------------------------------------------------------------

/** Strings written without quotes: identifiers, model ids and paths (no spaces, no YAML indicators). */
const PLAIN_RE = /^[A-Za-z_/][A-Za-z0-9_./+-]*$/

/**
 * Whether a number under this key is written as a float (`3` as `3.0`, so Python sees a float, as in the
 * example's `num_train_epochs: 3.0`): keys whose field is a float, except the `*_steps` keys, which
 * transformers reads as a step count or, below 1, a ratio (the example writes `logging_steps: 10`).
 */
function isFloatKey(key: string | undefined): boolean {
  if (!key || key.endsWith('_steps')) return false
  const t = trainKeyField(key)?.type ?? ''
  return t === 'float' || t === 'optional float'
}

/**
 * Format a number so PyYAML (YAML 1.1), OmegaConf and YAML 1.2 all read it back as the same number and
 * the same Python type: ints as digits; floats always with a dot and a signed exponent (`5.0e-6`, `3.0`).
 *
 * @example
 * formatNumber(5e-6) // '5.0e-6' (PyYAML reads a bare '5e-6' as a string)
 * formatNumber(3, true) // '3.0'
 */
export function formatNumber(n: number, asFloat = false): string {
  if (Number.isNaN(n)) return '.nan'
  if (!Number.isFinite(n)) return n > 0 ? '.inf' : '-.inf'
  if (Number.isInteger(n) && !asFloat && Math.abs(n) < 1e21) return String(n)
  const abs = Math.abs(n)
  const s = abs !== 0 && (abs < 1e-3 || abs >= 1e16) ? n.toExponential() : String(n)
  const [mantissa, exponent] = s.split('e') as [string, string | undefined]
  const m = mantissa.includes('.') ? mantissa : `${mantissa}.0`
  return exponent === undefined ? m : `${m}e${exponent.startsWith('-') || exponent.startsWith('+') ? exponent : `+${exponent}`}`
}

/**
 * Format a string: plain when every YAML reader takes it as that string, else double-quoted with escapes.
 *
 * @example
 * formatString('Qwen/Qwen2-VL-7B-Instruct') // 'Qwen/Qwen2-VL-7B-Instruct'
 * formatString('yes') // '"yes"' (YAML 1.1 reads a bare yes as true)
 */
export function formatString(s: string): string {
  if (PLAIN_RE.test(s) && !/^(?:y|Y|n|N|yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|null|Null|NULL)$/.test(s)) return s
  // JSON escapes are YAML double-quoted escapes; also escape what PyYAML's reader calls non-printable.
  return JSON.stringify(s).replace(/[\u007f-\u009f\u2028\u2029\ufeff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

function formatValue(v: ConfigValue, key?: string): string {
  if (v === null) return 'null'
  if (typeof v === 'boolean') return v ? 'true' : 'false'
  if (typeof v === 'number') return formatNumber(v, isFloatKey(key))
  if (typeof v === 'string') return formatString(v)
  if (Array.isArray(v)) return `[${v.map((x) => formatValue(x)).join(', ')}]`
  return `{${Object.entries(v)
    .map(([k, x]) => `${formatString(k)}: ${formatValue(x)}`)
    .join(', ')}}`
}

function renderYaml(config: Record<string, ConfigValue>, info: { out: string; path: string; model: ModelPreset }): string {
  const lines: string[] = [
    '# LLaMA-Factory DPO (LoRA) training config, written by prefpipe for the dataset folder',
    `#   ${formatString(info.out)}`,
    "# from LLaMA-Factory's Qwen-VL LoRA DPO example (examples/train_lora/qwen3vl_lora_dpo.yaml, RLHF-V).",
    `# Train with: llamafactory-cli train ${formatString(info.path)}`,
  ]
  const placed = new Set<string>()
  for (const { section, keys } of CONFIG_LAYOUT) {
    const present = keys.filter((k) => k in config)
    if (present.length === 0) continue
    lines.push('', `### ${section}`)
    for (const k of present) {
      lines.push(`${formatString(k)}: ${formatValue(config[k]!, k)}`)
      placed.add(k)
    }
  }
  const rest = Object.keys(config).filter((k) => !placed.has(k))
  if (rest.length > 0) {
    lines.push('', '### yours (base YAML and overrides)')
    for (const k of rest) lines.push(`${formatString(k)}: ${formatValue(config[k]!, k)}`)
  }
  return lines.join('\n') + '\n'
}
