/**
 * The schema of a prefpipe config file (`prefpipe run prefpipe.yaml`): the same job as a preset command, written
 * down. Two forms:
 *
 * ```yaml
 * # a preset: its own source, columns and kind
 * preset: rlhf-v                            # rlhf-v | rlaif-v | dpo-en-demo
 * input: fixtures/rlhf-v-sample.parquet     # optional: a local file; without it, the preset's Hub dataset
 * out: out/rlhf_v
 *
 * # or a source of your own
 * source:
 *   parquet: data/train.parquet             # or json: data/train.jsonl (+ mediaDir), or hub: { repo, revision, file }
 *   format: sharegpt                        # sharegpt (default) | alpaca | rlaif-v | auto
 *   columns: { messages: conversations }    # as in LLaMA-Factory's dataset_info.json
 * name: my_dpo                              # required with source
 * out: out/my_dpo
 * ```
 *
 * and, for both: `name`, `eval`, `seed`, `images` (the images stage; `false`: a text-only source), `model`,
 * `train` (keys of `train_dpo.yaml`), `baseYaml`, `launch` (`true`, or the launch options). Relative paths
 * are relative to the config file's folder.
 */
import { z } from 'zod'
import { PRESET_NAMES } from '../presets/index.js'
import { launchOptionsShape } from '../launch/launch.js'

const path = z.string().min(1, 'must not be empty')
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/
const files = z.union([path, z.array(path).min(1)])

/** `hub:` of the preset form: which revision and files of the preset's dataset to read. */
const presetHubSchema = z.strictObject({
  revision: z.string().min(1).optional(),
  file: files.optional(),
  offline: z.boolean().optional(),
})

/** `source.hub:` a Hub dataset of your own. */
const sourceHubSchema = z.strictObject({
  repo: z.string().regex(/^[\w.-]+\/[\w.-]+$/, 'must be owner/name'),
  revision: z.string().min(1).optional(),
  file: files.optional(),
  split: z.string().min(1).optional(),
  config: z.string().min(1).optional(),
  offline: z.boolean().optional(),
})

/** The row shapes a `source:` can read. */
export const SOURCE_FORMATS = ['sharegpt', 'alpaca', 'rlaif-v', 'auto'] as const

const sourceSchema = z
  .strictObject({
    parquet: path.optional(),
    json: path.optional(),
    hub: sourceHubSchema.optional(),
    mediaDir: path.optional(),
    format: z.enum(SOURCE_FORMATS).optional(),
    columns: z.record(z.string(), z.string().min(1)).optional(),
    tags: z.record(z.string(), z.string().min(1)).optional(),
  })
  .superRefine((s, ctx) => {
    const given = (['parquet', 'json', 'hub'] as const).filter((k) => s[k] !== undefined)
    if (given.length !== 1) {
      ctx.addIssue({ code: 'custom', path: given.length > 1 ? [given[1]!] : [], message: 'give exactly one of parquet, json or hub' })
    }
    if (s.mediaDir !== undefined && s.json === undefined) ctx.addIssue({ code: 'custom', path: ['mediaDir'], message: 'only for a json source' })
    if (s.tags !== undefined && (s.format ?? 'sharegpt') !== 'sharegpt') ctx.addIssue({ code: 'custom', path: ['tags'], message: 'only for format sharegpt' })
    if (s.columns !== undefined && s.format !== undefined && s.format !== 'sharegpt' && s.format !== 'alpaca') {
      ctx.addIssue({ code: 'custom', path: ['columns'], message: 'only for format sharegpt or alpaca' })
    }
  })

/** `images:` the images stage's options (those that also go into `train_dpo.yaml`, and the usual knobs). */
const imagesSchema = z.strictObject({
  maxPixels: z.int().min(784, 'must be a whole number >= 784 (28 x 28)').optional(),
  quality: z.int().min(1).max(100).optional(),
  cutoffLen: z.int().min(1).optional(),
  nearDuplicates: z.enum(['group', 'drop']).optional(),
})

/** `launch:` the `prefpipe launch` flags, spelled in camelCase. */
const l = launchOptionsShape
const launchSchema = z.strictObject({
  gpus: l.gpus,
  nnodes: l.nnodes,
  nodeRank: l.nodeRank,
  masterAddr: l.masterAddr,
  masterPort: l.masterPort,
  deepspeed: l.deepspeed,
  dryRun: l.dryRun,
  preflight: l.preflight,
  images: l.images,
  imageSample: l.imageSample,
  // seconds, as the CLI's --grace (the library's option is graceMs)
  grace: z.number().min(0).optional(),
  monitor: l.monitor,
  plots: l.plots,
  cli: l.cli,
})

const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()])
type TrainValue = string | number | boolean | null | TrainValue[] | { [k: string]: TrainValue }
const trainValue: z.ZodType<TrainValue> = z.lazy(() => z.union([scalar, z.array(trainValue), z.record(z.string(), trainValue)]))

/** The zod schema of a config file (before defaults; see {@link withDefaults}). */
export const configSchema = z
  .strictObject({
    preset: z.enum(PRESET_NAMES as [string, ...string[]]).optional(),
    input: path.optional(),
    mediaDir: path.optional(),
    format: z.enum(['auto', 'sharegpt', 'alpaca']).optional(),
    hub: presetHubSchema.optional(),
    source: sourceSchema.optional(),
    out: path,
    name: z.string().regex(NAME_RE, 'must start with a letter or digit and hold only letters, digits, "_", "." and "-"').optional(),
    eval: z
      .number()
      .positive('must be a fraction in (0, 1) or a row count >= 1')
      .refine((n) => n < 1 || Number.isInteger(n), 'must be a fraction in (0, 1) or a whole row count >= 1')
      .optional(),
    seed: z.int().optional(),
    images: z.union([imagesSchema, z.literal(false)]).optional(),
    model: z.string().min(1).optional(),
    train: z.record(z.string(), trainValue).optional(),
    baseYaml: path.optional(),
    launch: z.union([z.boolean(), launchSchema]).optional(),
  })
  .superRefine((c, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message })
    if (c.preset === undefined && c.source === undefined) return issue([], 'give a preset (rlhf-v, ...) or a source ({ parquet | json | hub })')
    if (c.preset !== undefined && c.source !== undefined) return issue(['source'], 'give a preset or a source, not both')
    if (c.source !== undefined) {
      for (const k of ['input', 'mediaDir', 'format', 'hub'] as const) if (c[k] !== undefined) issue([k], `belongs to the preset form; with source, write it under source`)
      if (c.name === undefined) issue([], 'name is required with source (the dataset name in dataset_info.json)')
    } else {
      if (c.images === false) issue(['images'], 'false is only for a source; a preset knows whether its rows have images')
      if (c.hub !== undefined && c.input !== undefined) issue(['hub'], 'hub options are for the Hub; a local input is given')
      if (c.format !== undefined && c.preset !== 'dpo-en-demo') issue(['format'], 'only for the dpo-en-demo preset')
    }
    if (!isImageConfig(c)) {
      for (const k of ['model', 'train', 'baseYaml', 'launch'] as const) {
        if (c[k] !== undefined && c[k] !== false) issue([k], 'only for image datasets (text-only ones get no train_dpo.yaml)')
      }
    }
  })

/** A config as written (validated, before defaults). */
export type PrefpipeConfigInput = z.output<typeof configSchema>

/** A config with its defaults filled in: what runs, and what `--print-config` prints. */
export type PrefpipeConfig = PrefpipeConfigInput & { name: string; seed: number }

/** Whether a config's rows carry images (the image presets, or a source without `images: false`). */
export function isImageConfig(c: Pick<PrefpipeConfigInput, 'preset' | 'images' | 'source'>): boolean {
  if (c.preset !== undefined) return c.preset !== 'dpo-en-demo'
  return c.images !== false
}

/**
 * The keys a config file takes, in the order `--print-config` writes them.
 * @example
 * CONFIG_KEYS.includes('eval') // true
 */
export const CONFIG_KEYS = Object.keys(configSchema.shape) as (keyof PrefpipeConfigInput)[]
