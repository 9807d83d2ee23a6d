/**
 * The keys `llamafactory-cli train` accepts in its YAML config, and a checker that refuses the others the way
 * LLaMA-Factory's `HfArgumentParser.parse_dict` does, before a GPU job is spent finding out.
 *
 * The key data is `llamafactory-args.json` next to this file, a copy (ours, checked in) of the reference
 * extraction: LLaMA-Factory hiyouga/LLaMA-Factory at ff6d4d12eeb035d6ce06805a5733dd7b29f2ac30
 * (2026-08-18, 0.9.6.dev0), transformers TrainingArguments at 00349ae87eddc872ffa21a8a54f264375a0056a8
 * (5.1-era) plus the 4.56-4.57 and 5.0 variants. Its `source` field records the same. To refresh it, replace
 * the file with a new extraction of the same shape and re-run `test/llamafactory/train-args.test.ts`.
 *
 * The JSON is imported (not read with fs) so `tsc` copies it to `dist/llamafactory/llamafactory-args.json`
 * and vitest and Node (>= 20.10, import attributes) load it the same way.
 */
import argsData from './llamafactory-args.json' with { type: 'json' }

/** One field of an arguments dataclass, as extracted. */
export interface TrainArgField {
  name: string
  type: string
  default?: unknown
  choices?: unknown[]
  class?: string
  origin?: string
  since?: string
  note?: string
}

/** A key LLaMA-Factory (or transformers) removed or renamed, and what to write instead. */
export interface RemovedTrainKey {
  name: string
  /** The key that replaces it, or `null` when there is none. */
  use: string | null
  scope: 'llamafactory' | 'transformers' | string
  last_seen?: string
  note?: string
}

interface TransformersVariant {
  source?: string
  also_accepted?: string[]
  not_accepted?: string[]
  unverified?: string[]
  note?: string
}

/** The shape of `llamafactory-args.json` (the parts this module reads). */
export interface TrainArgsData {
  source: Record<string, unknown>
  groups: Record<string, TrainArgField[]>
  conditional_groups: Record<string, { when: string; class?: string; fields: TrainArgField[] }>
  removed_or_renamed: RemovedTrainKey[]
  transformers_variants: Record<string, TransformersVariant | string>
  rejected_even_though_declared: {
    init_false_fields: string[]
    infer_eval_only: string[]
    cli_negations?: string
  }
  notes: string[]
}

/**
 * What a config key would do to `llamafactory-cli train`:
 * - `unknown`: no argument dataclass declares it, so LLaMA-Factory stops with
 *   `ValueError: Some keys are not used by the HfArgumentParser: [...]`;
 * - `removed`: it was a key once and was removed or renamed (the message says what replaces it);
 * - `conditional`: it is accepted only with an environment variable set (`USE_MEGATRON_BRIDGE=1`);
 * - `init_false`: the dataclass declares it with `init=False`, so the parser refuses it too.
 * Every kind is refused by LLaMA-Factory with the same unknown-key error unless `ALLOW_EXTRA_ARGS=1`.
 */
export interface KeyProblem {
  key: string
  kind: 'unknown' | 'removed' | 'conditional' | 'init_false'
  message: string
  /** The key to write instead, when there is one (a rename, or the closest known key). */
  suggestion?: string
}

/** A key LLaMA-Factory accepts (or ignores) but that deserves a word: see {@link warnTrainKeys}. */
export interface KeyWarning {
  key: string
  kind: 'variant' | 'deprecated' | 'ignored'
  message: string
  suggestion?: string
}

/** The key data (`llamafactory-args.json`), for tools that want types, defaults, choices or notes. */
export const TRAIN_ARGS: TrainArgsData = argsData as unknown as TrainArgsData

/** Fields of the default train parser (model, data, finetuning, generating, training), by name. */
const FIELDS = new Map<string, TrainArgField>()
for (const fields of Object.values(TRAIN_ARGS.groups)) for (const f of fields) FIELDS.set(f.name, f)

/** Megatron-Bridge keys: accepted only with USE_MEGATRON_BRIDGE=1. */
const MEGATRON = new Map<string, TrainArgField>()
for (const f of TRAIN_ARGS.conditional_groups.megatron_bridge?.fields ?? []) MEGATRON.set(f.name, f)

const REMOVED = new Map<string, RemovedTrainKey>(TRAIN_ARGS.removed_or_renamed.map((r) => [r.name, r]))
const INIT_FALSE = new Set(TRAIN_ARGS.rejected_even_though_declared.init_false_fields)
const INFER_ONLY = new Set(TRAIN_ARGS.rejected_even_though_declared.infer_eval_only)

/**
 * Keys only some supported transformers versions accept, with the versions that do or do not. With the
 * installed transformers unknown, the tool rule of `llamafactory-args.md` applies: accept the union of
 * the variants, warn on variant-only keys, reject the rest.
 */
const VARIANT_ONLY = new Map<string, string[]>()
for (const [version, v] of Object.entries(TRAIN_ARGS.transformers_variants)) {
  if (typeof v === 'string') continue
  const add = (key: string, what: string): void => {
    const list = VARIANT_ONLY.get(key) ?? []
    list.push(`${what} transformers ${version}`)
    VARIANT_ONLY.set(key, list)
  }
  for (const k of v.also_accepted ?? []) add(k, 'accepted by')
  for (const k of v.not_accepted ?? []) add(k, 'not accepted by')
  for (const k of v.unverified ?? []) add(k, 'unverified for')
}

/** Every key the default train parser accepts under the union of transformers variants. */
const KNOWN = new Set<string>(FIELDS.keys())
for (const v of Object.values(TRAIN_ARGS.transformers_variants)) {
  if (typeof v !== 'string') for (const k of v.also_accepted ?? []) KNOWN.add(k)
}

/** Keys sorted once, so {@link closestTrainKey} is deterministic on ties. */
const KNOWN_SORTED = [...KNOWN].sort()

/** LLaMA-Factory's `is_env_enabled`: the value, lower-cased, is one of `true`, `y`, `1`. */
function envEnabled(env: NodeJS.ProcessEnv, name: string): boolean {
  return ['true', 'y', '1'].includes((env[name] ?? '0').toLowerCase())
}

/**
 * Whether the default `llamafactory-cli train` parser accepts `key` (with transformers unknown: any
 * supported transformers version accepts it). Megatron-Bridge keys are not known here: they need
 * `USE_MEGATRON_BRIDGE=1`, which {@link checkTrainKeys} takes into account.
 *
 * @example
 * isKnownTrainKey('lora_rank') // true
 * isKnownTrainKey('lora_rnak') // false
 * isKnownTrainKey('evaluation_strategy') // false (removed in transformers 4.46; use eval_strategy)
 */
export function isKnownTrainKey(key: string): boolean {
  return KNOWN.has(key)
}

/**
 * Optimal string alignment distance (Levenshtein plus adjacent transpositions, so `rnak` -> `rank` is 1).
 * Stops early and returns `limit + 1` once the distance must exceed `limit`.
 *
 * @example
 * editDistance('lora_rnak', 'lora_rank') // 1
 * editDistance('kitten', 'sitting') // 3
 */
export function editDistance(a: string, b: string, limit = Number.POSITIVE_INFINITY): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1
  const n = b.length
  let prev2 = new Array<number>(n + 1).fill(0)
  let prev = Array.from({ length: n + 1 }, (_, j) => j)
  let cur = new Array<number>(n + 1).fill(0)
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i
    let rowMin = i
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let d = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, prev2[j - 2]! + 1)
      cur[j] = d
      if (d < rowMin) rowMin = d
    }
    if (rowMin > limit) return limit + 1
    ;[prev2, prev, cur] = [prev, cur, prev2]
  }
  return prev[n]!
}

/** The largest edit distance a suggestion may be at: 1 for short keys, up to 3 for long ones. */
function suggestionLimit(key: string): number {
  return Math.max(1, Math.min(3, Math.floor(key.length / 4)))
}

/**
 * The known train key closest to `key` by edit distance (adjacent swaps count as one edit), for a
 * "did you mean" hint; `undefined` when nothing is close (at most 1 edit for keys under 8 characters,
 * 2 under 12, else 3). Ties go to the alphabetically first key. A known key returns itself.
 *
 * @example
 * closestTrainKey('lora_rnak') // 'lora_rank'
 * closestTrainKey('learning_rat') // 'learning_rate'
 * closestTrainKey('banana') // undefined
 */
export function closestTrainKey(key: string): string | undefined {
  if (KNOWN.has(key)) return key
  return closestIn(key, KNOWN_SORTED)
}

function closestIn(key: string, candidates: Iterable<string>): string | undefined {
  const limit = suggestionLimit(key)
  let best: string | undefined
  let bestD = limit + 1
  const lower = key.toLowerCase()
  for (const k of candidates) {
    const d = editDistance(lower, k, bestD)
    if (d < bestD) {
      best = k
      bestD = d
    }
  }
  return bestD <= limit ? best : undefined
}

const UNUSED = 'Some keys are not used by the HfArgumentParser'

/**
 * LLaMA-Factory's own error line for these problems, as `parse_dict` raises it: every refused key, sorted,
 * in Python's list repr. Empty string when there is nothing to refuse.
 *
 * @example
 * formatUnusedKeysError(checkTrainKeys({ lora_rnak: 8, model_name_or_path: 'x' }))
 * // "ValueError: Some keys are not used by the HfArgumentParser: ['lora_rnak']"
 */
export function formatUnusedKeysError(problems: readonly KeyProblem[]): string {
  if (problems.length === 0) return ''
  const keys = [...new Set(problems.map((p) => p.key))].sort()
  return `ValueError: ${UNUSED}: [${keys.map((k) => `'${k.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`).join(', ')}]`
}

function refused(key: string): string {
  return `\`${key}\` is not a \`llamafactory-cli train\` key: LLaMA-Factory stops with "${UNUSED}: ['${key}']"`
}

/** Classify one key the default parser does not accept; `undefined` when it is accepted. */
function classify(key: string, megatron: boolean): KeyProblem | undefined {
  if (KNOWN.has(key)) return undefined
  if (MEGATRON.has(key)) {
    if (megatron) return undefined
    return {
      key,
      kind: 'conditional',
      message: `${refused(key)} (a Megatron-Bridge key: accepted only with USE_MEGATRON_BRIDGE=1 in the environment)`,
    }
  }
  const removed = REMOVED.get(key)
  if (removed) {
    const where = removed.scope === 'transformers' ? 'transformers' : 'LLaMA-Factory'
    const last = removed.last_seen ? ` (last seen in ${removed.last_seen})` : ''
    const instead = removed.use ? `; use \`${removed.use}\` instead` : '; it has no replacement'
    const note = removed.note ? ` (${removed.note})` : ''
    const problem: KeyProblem = {
      key,
      kind: 'removed',
      message: `${refused(key)}: ${where} removed or renamed it${last}${instead}${note}`,
    }
    if (removed.use) problem.suggestion = removed.use
    return problem
  }
  if (INIT_FALSE.has(key)) {
    return {
      key,
      kind: 'init_false',
      message: `${refused(key)}: it is declared with init=False (computed by LLaMA-Factory, not settable)`,
    }
  }
  if (INFER_ONLY.has(key)) {
    return {
      key,
      kind: 'unknown',
      message: `${refused(key)}: it is accepted by chat/export/eval, not by train`,
    }
  }
  const negated = /^no_(.+)$/.exec(key)?.[1]
  if (negated && FIELDS.get(negated)?.type.includes('bool')) {
    return {
      key,
      kind: 'unknown',
      message: `${refused(key)}: \`no_<flag>\` exists only as a command-line flag; write \`${negated}: false\``,
      suggestion: negated,
    }
  }
  const suggestion = closestIn(key, megatron ? [...KNOWN_SORTED, ...MEGATRON.keys()] : KNOWN_SORTED)
  const problem: KeyProblem = {
    key,
    kind: 'unknown',
    message: suggestion ? `${refused(key)}; did you mean \`${suggestion}\`?` : refused(key),
  }
  if (suggestion) problem.suggestion = suggestion
  return problem
}

/**
 * Check the keys of a `llamafactory-cli train` config (after merging), as HfArgumentParser does: every
 * top-level key must be an `init=True` field of ModelArguments, DataArguments, TrainingArguments,
 * FinetuningArguments or GeneratingArguments (plus MegatronBridgeArguments with `USE_MEGATRON_BRIDGE=1`).
 * Returns one {@link KeyProblem} per refused key, sorted by key; `[]` when LLaMA-Factory would accept them
 * all. With `ALLOW_EXTRA_ARGS=1` (or `true`/`y`) LLaMA-Factory ignores unknown keys, and so does this
 * (see {@link warnTrainKeys} for what it then ignores). Transformers-version-only keys are accepted (union
 * of the supported versions); {@link warnTrainKeys} names them. Values are not checked (parse_dict does not).
 *
 * @param opts.env the environment the training will run with (default `process.env`)
 * @example
 * const problems = checkTrainKeys({ model_name_or_path: 'Qwen/Qwen2-VL-7B-Instruct', lora_rnak: 8 })
 * // [{ key: 'lora_rnak', kind: 'unknown', suggestion: 'lora_rank', message: '... did you mean `lora_rank`?' }]
 * if (problems.length) throw new Error(problems.map((p) => p.message).join('\n'))
 */
export function checkTrainKeys(config: Record<string, unknown>, opts?: { env?: NodeJS.ProcessEnv }): KeyProblem[] {
  const env = opts?.env ?? process.env
  if (envEnabled(env, 'ALLOW_EXTRA_ARGS')) return []
  const megatron = envEnabled(env, 'USE_MEGATRON_BRIDGE')
  const problems: KeyProblem[] = []
  for (const key of Object.keys(config).sort()) {
    const p = classify(key, megatron)
    if (p) problems.push(p)
  }
  return problems
}

/**
 * What {@link checkTrainKeys} lets through but a user should hear about, sorted by key:
 * - `variant`: accepted by only some of the transformers versions LLaMA-Factory supports (e.g.
 *   `group_by_length`, `use_cache`), so it may be refused on the installed one;
 * - `deprecated`: still accepted but announced for removal (`warmup_ratio`, `logging_dir`);
 * - `ignored`: with `ALLOW_EXTRA_ARGS=1`, a key LLaMA-Factory will silently ignore.
 *
 * @example
 * warnTrainKeys({ group_by_length: true })
 * // [{ key: 'group_by_length', kind: 'variant', suggestion: 'train_sampling_strategy', message: '...' }]
 */
export function warnTrainKeys(config: Record<string, unknown>, opts?: { env?: NodeJS.ProcessEnv }): KeyWarning[] {
  const env = opts?.env ?? process.env
  const allowExtra = envEnabled(env, 'ALLOW_EXTRA_ARGS')
  const megatron = envEnabled(env, 'USE_MEGATRON_BRIDGE')
  const warnings: KeyWarning[] = []
  for (const key of Object.keys(config).sort()) {
    const problem = classify(key, megatron)
    if (problem) {
      if (allowExtra) {
        const w: KeyWarning = {
          key,
          kind: 'ignored',
          message: `${problem.message.replace(/^(`[^`]+` is not a `llamafactory-cli train` key): LLaMA-Factory stops with "[^"]*"/, '$1')} (ignored: ALLOW_EXTRA_ARGS is set)`,
        }
        if (problem.suggestion) w.suggestion = problem.suggestion
        warnings.push(w)
      }
      continue
    }
    const variants = VARIANT_ONLY.get(key)
    const removed = REMOVED.get(key)
    if (variants) {
      const unverifiedOnly = variants.every((v) => v.startsWith('unverified'))
      const w: KeyWarning = {
        key,
        kind: unverifiedOnly && removed ? 'deprecated' : 'variant',
        message:
          `\`${key}\` depends on the installed transformers (${variants.join('; ')})` +
          (removed?.use ? `; prefer \`${removed.use}\`` : '') +
          (removed?.note ? ` (${removed.note})` : ''),
      }
      if (removed?.use) w.suggestion = removed.use
      warnings.push(w)
    } else if (removed) {
      const w: KeyWarning = { key, kind: 'deprecated', message: `\`${key}\` is deprecated${removed.note ? ` (${removed.note})` : ''}` }
      if (removed.use) w.suggestion = removed.use
      warnings.push(w)
    }
  }
  return warnings
}

/**
 * The extracted field for a key (type, default, choices, note), or `undefined` for keys the train parser
 * does not declare. Megatron-Bridge keys are included.
 *
 * @example
 * trainKeyField('pref_loss')?.choices // ['sigmoid', 'hinge', 'ipo', 'kto_pair', 'orpo', 'simpo']
 */
export function trainKeyField(key: string): TrainArgField | undefined {
  return FIELDS.get(key) ?? MEGATRON.get(key)
}
