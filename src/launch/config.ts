/**
 * A `llamafactory-cli train` config as the launch sees it: the YAML file, the `key=value` overrides given on
 * the command line, and the two merged the way LLaMA-Factory merges them (OmegaConf: the YAML, then
 * `OmegaConf.from_cli(overrides)` on top), plus the paths it resolves against the working directory.
 */
import { readFile } from 'node:fs/promises'
import { extname, isAbsolute, resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'

/** An override value given as data (library use); it becomes `key=value` text. */
export type OverrideValue = string | number | boolean | null

/** Overrides: `['learning_rate=1e-5', 'logging_steps=1']`, or `{ learning_rate: 1e-5, logging_steps: 1 }`. */
export type Overrides = readonly string[] | Readonly<Record<string, OverrideValue>>

/** A loaded config. */
export interface TrainConfig {
  /** Absolute path of the YAML. */
  path: string
  /** The working directory of the training: relative paths in the config are relative to it. */
  cwd: string
  /** The YAML as written. */
  yaml: Record<string, unknown>
  /** The overrides, as the `key=value` tokens passed after the config path. */
  overrides: string[]
  /** The YAML with the overrides merged on top: what LLaMA-Factory parses. */
  effective: Record<string, unknown>
}

const OVERRIDE_RE = /^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)=(.*)$/s

/**
 * Turn overrides into `key=value` tokens and check each: LLaMA-Factory joins its argv with spaces and splits
 * it again, so no token may hold whitespace, and `--key value` is not an override (it becomes an unknown key).
 * Throws a `TypeError` naming the bad token.
 * @example
 * overrideTokens({ learning_rate: 1e-5, logging_steps: 1 }) // ['learning_rate=0.00001', 'logging_steps=1']
 * overrideTokens(['num_train_epochs=1']) // ['num_train_epochs=1']
 */
export function overrideTokens(overrides: Overrides = []): string[] {
  const tokens = Array.isArray(overrides)
    ? [...(overrides as readonly string[])]
    : Object.entries(overrides as Record<string, OverrideValue>).map(([k, v]) => `${k}=${v === null ? 'null' : String(v)}`)
  for (const t of tokens) {
    if (typeof t !== 'string') throw new TypeError(`[prefpipe] override ${JSON.stringify(t)} is not text`)
    if (/\s/.test(t)) {
      throw new TypeError(`[prefpipe] override ${JSON.stringify(t)} holds whitespace: llamafactory-cli splits its arguments on whitespace, so it would break apart`)
    }
    if (t.startsWith('-')) throw new TypeError(`[prefpipe] override ${JSON.stringify(t)}: write overrides as key=value (LLaMA-Factory reads --key value as an unknown key)`)
    if (!OVERRIDE_RE.test(t)) throw new TypeError(`[prefpipe] override ${JSON.stringify(t)}: write overrides as key=value`)
  }
  return tokens
}

/** The value of an override token, read as OmegaConf reads it (a YAML scalar). */
function overrideValue(text: string): unknown {
  if (text === '') return ''
  try {
    return parseYaml(text) as unknown
  } catch {
    return text
  }
}

/**
 * Merge `key=value` tokens over a config, the way `OmegaConf.merge(yaml, OmegaConf.from_cli(tokens))` does
 * (a dotted key sets a nested value). Returns a new object.
 * @example
 * mergeOverrides({ learning_rate: 5e-6 }, ['learning_rate=1.0e-5']) // { learning_rate: 0.00001 }
 */
export function mergeOverrides(config: Record<string, unknown>, tokens: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = structuredClone(config)
  for (const t of tokens) {
    const m = OVERRIDE_RE.exec(t)
    if (!m) continue
    const path = m[1]!.split('.')
    let node = out
    for (const key of path.slice(0, -1)) {
      const next = node[key]
      if (next === null || typeof next !== 'object' || Array.isArray(next)) node[key] = {}
      node = node[key] as Record<string, unknown>
    }
    node[path[path.length - 1]!] = overrideValue(m[2]!)
  }
  return out
}

/**
 * Read a `llamafactory-cli train` YAML and merge the overrides. Throws with a clear message when the file is
 * missing, is not `.yaml`/`.yml` (LLaMA-Factory's `.json` branch is broken), or is not a YAML mapping.
 * @example
 * const cfg = await loadTrainConfig('data/rlhf_v/train_dpo.yaml', ['num_train_epochs=1'])
 * cfg.effective.output_dir // 'saves/qwen2_vl-7b/lora/dpo'
 */
export async function loadTrainConfig(path: string, overrides: Overrides = [], opts: { cwd?: string } = {}): Promise<TrainConfig> {
  const cwd = resolve(opts.cwd ?? process.cwd())
  const abs = resolve(cwd, path)
  const ext = extname(abs).toLowerCase()
  if (ext === '.json') throw new Error(`[prefpipe] ${abs}: LLaMA-Factory's .json config branch does not work; write the config as .yaml`)
  if (ext !== '.yaml' && ext !== '.yml') throw new Error(`[prefpipe] ${abs}: the config must be a .yaml or .yml file`)
  let text: string
  try {
    text = await readFile(abs, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new Error(`[prefpipe] ${abs}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (err as Error).message}`, { cause: err })
  }
  let yaml: unknown
  try {
    yaml = parseYaml(text)
  } catch (err) {
    throw new Error(`[prefpipe] ${abs}: not valid YAML: ${(err as Error).message.split('\n')[0]}`, { cause: err })
  }
  if (yaml === null || typeof yaml !== 'object' || Array.isArray(yaml)) throw new Error(`[prefpipe] ${abs}: the config must be a YAML mapping of keys to values`)
  const tokens = overrideTokens(overrides)
  return { path: abs, cwd, yaml: yaml as Record<string, unknown>, overrides: tokens, effective: mergeOverrides(yaml as Record<string, unknown>, tokens) }
}

/** LLaMA-Factory's reading of a bool-ish value (`true`, `"true"`, `"yes"`, `"1"`, `1`). */
export function truthy(v: unknown): boolean {
  if (typeof v === 'boolean') return v
  if (typeof v === 'number') return v !== 0
  if (typeof v === 'string') return ['true', 'yes', 'y', '1', 'on'].includes(v.trim().toLowerCase())
  return false
}

/** A string-valued key of the config, or `undefined` when unset/null/empty. */
export function configString(config: Record<string, unknown>, key: string): string | undefined {
  const v = config[key]
  if (v === undefined || v === null) return undefined
  const s = String(v).trim()
  return s === '' ? undefined : s
}

/** Names in a `dataset:` / `eval_dataset:` value (a comma-separated string or a list), stripped. */
export function datasetNames(v: unknown): string[] {
  if (v === undefined || v === null) return []
  const list = Array.isArray(v) ? v.map(String) : String(v).split(',')
  return list.map((s) => s.trim()).filter(Boolean)
}

/** The paths of a config, absolute (resolved against the training's working directory as LLaMA-Factory does). */
export interface RunPaths {
  /** `output_dir`; `undefined` when the config has none. */
  outputDir?: string
  /** `dataset_dir` (default `data`), or the special `ONLINE` / `REMOTE:<repo>` as is. */
  datasetDir: string
  /** `media_dir` (default: `dataset_dir`). */
  mediaDir: string
  /** `deepspeed`, when it is a path (not an inline object). */
  deepspeed?: string
}

/**
 * The absolute paths a config points at.
 * @example
 * runPaths(cfg.effective, cfg.cwd).outputDir // '/work/saves/qwen2_vl-7b/lora/dpo'
 */
export function runPaths(config: Record<string, unknown>, cwd: string): RunPaths {
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(cwd, p))
  const dd = configString(config, 'dataset_dir') ?? 'data'
  const datasetDir = dd === 'ONLINE' || dd.startsWith('REMOTE:') ? dd : abs(dd)
  const md = configString(config, 'media_dir')
  const out: RunPaths = { datasetDir, mediaDir: md ? abs(md) : datasetDir }
  const od = configString(config, 'output_dir')
  if (od) out.outputDir = abs(od)
  const ds = config.deepspeed
  if (typeof ds === 'string' && ds.trim()) out.deepspeed = abs(ds.trim())
  return out
}
