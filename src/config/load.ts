/**
 * Loading a config file: parse the YAML (keeping node positions), apply `--set key=value` overrides, validate
 * with zod, report every problem as `file:line:col: path: message`, fill in the defaults.
 */
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { isMap, isScalar, LineCounter, parseDocument, stringify, YAMLMap, type Document, type Node } from 'yaml'
import { IMAGE_DEFAULTS } from '../presets/prepare.js'
import { PRESETS, type PresetName } from '../presets/index.js'
import { checkTrainKeys, editDistance } from '../llamafactory/train-args.js'
import { CONFIG_KEYS, configSchema, isImageConfig, type PrefpipeConfig, type PrefpipeConfigInput } from './schema.js'

/** One problem of a config: where (`file:line:col`, or the `--set` that put the value there) and what. */
export interface ConfigIssue {
  /** The key path (`['images', 'maxPixels']`); empty for the whole file. */
  path: (string | number)[]
  /** `prefpipe.yaml:5:7`, or `--set eval=2.5`. */
  where: string
  line?: number
  col?: number
  message: string
}

/** A config that cannot be read or is invalid. `issues` lists every problem found, each with its position. */
export class ConfigError extends Error {
  override name = 'ConfigError'
  constructor(readonly issues: ConfigIssue[]) {
    super(issues.map((i) => `${i.where}: ${i.path.length ? `${i.path.join('.')}: ` : ''}${i.message}`).join('\n'))
  }
}

/** Options of {@link parseConfig} and {@link loadConfig}. */
export interface ParseConfigOptions {
  /** How to name the file in messages (default `prefpipe.yaml`; {@link loadConfig}: the path as given). */
  file?: string
  /** `key=value` overrides (dotted keys: `images.maxPixels=200704`), values typed as YAML scalars. */
  set?: readonly string[]
  /** For the `train` key check (`ALLOW_EXTRA_ARGS`). Default `process.env`. */
  env?: NodeJS.ProcessEnv
}

/** A loaded config: the values with defaults, and where relative paths in it are relative to. */
export interface LoadedConfig {
  config: PrefpipeConfig
  /** The config file (absolute), when it came from a file. */
  file?: string
  /** The folder relative paths resolve against: the config file's. */
  baseDir: string
}

/**
 * A `--set` value as YAML types it: `200704` a number, `0.05` a float, `true` a boolean, `null`, `0-7` a
 * string, `[0, 1]` a list; anything that does not parse as one YAML value is the string as written.
 * @example
 * parseConfigValue('200704') // 200704
 * parseConfigValue('0-7') // '0-7'
 */
export function parseConfigValue(raw: string): unknown {
  const doc = parseDocument(raw)
  if (doc.errors.length > 0) return raw
  const v = doc.toJS() as unknown
  // `a: b` is a mapping in YAML; as a --set value it is meant as text. Flow mappings ({a: 1}) are kept.
  if (isMap(doc.contents) && !raw.trimStart().startsWith('{')) return raw
  return v
}

/** Split `key=value` into a key path and a value. */
function parseSet(arg: string): { path: string[]; value: unknown } {
  const i = arg.indexOf('=')
  const key = i > 0 ? arg.slice(0, i).trim() : ''
  if (!/^[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*$/.test(key)) {
    throw new ConfigError([{ path: [], where: `--set ${arg}`, message: 'write it as key=value, with a dotted key for nested values (images.maxPixels=200704)' }])
  }
  return { path: key.split('.'), value: parseConfigValue(arg.slice(i + 1)) }
}

/** Put `value` at `path` in the document, turning scalars on the way into mappings. */
function setIn(doc: Document, path: string[], value: unknown): void {
  let node: unknown = doc.contents
  if (!isMap(node)) {
    doc.contents = new YAMLMap() as never
    node = doc.contents
  }
  for (const [i, key] of path.entries()) {
    const map = node as YAMLMap
    if (i === path.length - 1) {
      map.set(key, doc.createNode(value))
      return
    }
    let next: unknown = map.get(key, true)
    if (!isMap(next)) {
      next = new YAMLMap()
      map.set(key, next)
    }
    node = next
  }
}

/** The key node of `key` in the map at `path`, or the value node at `path`, whichever holds a position. */
function nodeAt(doc: Document, path: (string | number)[], key?: string): Node | undefined {
  const parent = path.length ? doc.getIn(path, true) : doc.contents
  if (key !== undefined) {
    if (!isMap(parent)) return undefined
    const pair = parent.items.find((p) => isScalar(p.key) && String(p.key.value) === key)
    return (pair?.key as Node | undefined) ?? undefined
  }
  return (parent as Node | null | undefined) ?? undefined
}

/**
 * Parse and validate a config's text, apply the overrides, fill in the defaults. Throws a {@link ConfigError}
 * naming `file:line:col` of every problem.
 * @example
 * const config = parseConfig('preset: rlhf-v\nout: out/rlhf_v\n', { set: ['eval=0.05'] })
 * config.eval // 0.05
 */
export function parseConfig(text: string, opts: ParseConfigOptions = {}): PrefpipeConfig {
  const file = opts.file ?? 'prefpipe.yaml'
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true })
  const at = (offset: number) => lineCounter.linePos(offset)
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const pos = at(e.pos[0])
        return { path: [], where: `${file}:${pos.line}:${pos.col}`, line: pos.line, col: pos.col, message: e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '') }
      }),
    )
  }
  // --set, in order; remember which key paths they wrote, so a bad value names its --set.
  const sets: { path: string[]; arg: string }[] = []
  for (const arg of opts.set ?? []) {
    const { path, value } = parseSet(arg)
    setIn(doc, path, value)
    sets.push({ path, arg })
  }
  const where = (path: (string | number)[], key?: string): Pick<ConfigIssue, 'where' | 'line' | 'col'> => {
    const full = key === undefined ? path : [...path, key]
    const set = [...sets].reverse().find((s) => s.path.length <= full.length && s.path.every((k, i) => String(full[i]) === k))
    if (set) return { where: `--set ${set.arg}` }
    // The node itself, else the closest enclosing one with a position.
    for (let n = full.length; n >= 0; n--) {
      const node = n === full.length && key !== undefined ? nodeAt(doc, path, key) : nodeAt(doc, full.slice(0, n))
      if (node?.range) {
        const pos = at(node.range[0])
        return { where: `${file}:${pos.line}:${pos.col}`, line: pos.line, col: pos.col }
      }
    }
    return { where: `${file}:1:1`, line: 1, col: 1 }
  }

  const raw = dropNulls(doc.toJS() as unknown)
  if (raw === null || raw === undefined || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError([{ path: [], ...where([]), message: 'a config is a mapping of keys (preset or source, out, ...)' }])
  }
  const parsed = configSchema.safeParse(raw)
  const issues: ConfigIssue[] = []
  if (!parsed.success) {
    for (const i of parsed.error.issues) {
      const path = i.path.map((p) => (typeof p === 'symbol' ? String(p) : p))
      if (i.code === 'unrecognized_keys') {
        for (const k of i.keys) {
          const known = knownKeys(path)
          const hint = closest(k, known)
          issues.push({ path: [...path, k], ...where(path, k), message: `unknown key${hint ? `; did you mean "${hint}"?` : ''}` })
        }
      } else issues.push({ path, ...where(path), message: i.message })
    }
  }
  const train = (raw as { train?: unknown }).train
  if (train !== null && typeof train === 'object' && !Array.isArray(train)) {
    // The YAML keys are checked now, where their line is known, not after the whole run.
    for (const p of checkTrainKeys(train as Record<string, unknown>, opts.env ? { env: opts.env } : {})) {
      issues.push({ path: ['train', p.key], ...where(['train'], p.key), message: p.message })
    }
  }
  if (issues.length > 0) throw new ConfigError(issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0)))
  return withDefaults(parsed.data!)
}

/**
 * Fill in a validated config's defaults: the preset's dataset `name`, `seed: 0`; for image datasets the
 * images stage's `maxPixels` 262144, `quality` 90, `cutoffLen` 2048, `nearDuplicates: group` and `model:
 * qwen2-vl`; `launch: true` as `launch: {}` (`false` removed).
 * @example
 * withDefaults({ preset: 'rlhf-v', out: 'out' }).name // 'rlhf_v'
 */
export function withDefaults(c: PrefpipeConfigInput): PrefpipeConfig {
  const image = isImageConfig(c)
  const name = c.name ?? PRESETS[c.preset as PresetName].defaults.name
  const out: Record<string, unknown> = {}
  const filled: Record<string, unknown> = {
    ...c,
    name,
    seed: c.seed ?? 0,
    ...(image
      ? {
          images: { maxPixels: IMAGE_DEFAULTS.maxPixels, quality: 90, cutoffLen: IMAGE_DEFAULTS.cutoffLen, nearDuplicates: 'group', ...(c.images || {}) },
          model: c.model ?? 'qwen2-vl',
        }
      : {}),
    launch: c.launch === true ? {} : c.launch === false ? undefined : c.launch,
  }
  // The schema's key order, so --print-config is stable.
  for (const k of CONFIG_KEYS) if (filled[k] !== undefined) out[k] = filled[k]
  return out as PrefpipeConfig
}

/**
 * Read a config file: {@link parseConfig} with the file's name in messages and its folder as the base of
 * relative paths.
 * @example
 * const { config, baseDir } = await loadConfig('prefpipe.yaml', { set: ['images.maxPixels=200704'] })
 */
export async function loadConfig(file: string, opts: Omit<ParseConfigOptions, 'file'> = {}): Promise<LoadedConfig> {
  const abs = resolve(file)
  const text = await readFile(abs, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new ConfigError([{ path: [], where: file, message: 'no such file' }])
    throw err
  })
  return { config: parseConfig(text, { ...opts, file }), file: abs, baseDir: dirname(abs) }
}

/**
 * A config as YAML (what `--print-config` prints): keys in the schema's order.
 * @example
 * process.stdout.write(formatConfig(config))
 */
export function formatConfig(config: PrefpipeConfig): string {
  return stringify(config, { lineWidth: 0 })
}

/** `key:` with no value (or `--set key=null`) means "not set": drop nulls, except values under `train`. */
function dropNulls(v: unknown, depth = 0): unknown {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return v
  const out: Record<string, unknown> = {}
  for (const [k, x] of Object.entries(v)) {
    if (x === null) continue
    out[k] = depth === 0 && k === 'train' ? x : dropNulls(x, depth + 1)
  }
  return out
}

/** The keys the object at `path` takes (for "did you mean"). */
function knownKeys(path: (string | number)[]): string[] {
  let schema: unknown = configSchema
  for (const k of path) {
    const shape = shapeOf(schema)
    schema = shape?.[String(k)]
  }
  return Object.keys(shapeOf(schema) ?? {})
}

/** The shape of an object schema, looking through optional and union wrappers. */
function shapeOf(schema: unknown): Record<string, unknown> | undefined {
  const def = (schema as { def?: { type?: string; shape?: Record<string, unknown>; innerType?: unknown; options?: unknown[] } } | undefined)?.def
  if (!def) return undefined
  if (def.type === 'object') return def.shape
  if (def.type === 'optional') return shapeOf(def.innerType)
  if (def.type === 'union') for (const o of def.options ?? []) if (shapeOf(o)) return shapeOf(o)
  return undefined
}

/** The known key closest to `key` (edit distance at most 2), for "did you mean". */
function closest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined
  let bestD = 3
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase())
    if (d < bestD) [best, bestD] = [k, d]
  }
  return best
}
