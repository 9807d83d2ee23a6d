/**
 * Read YAML and `key=value` overrides the way LLaMA-Factory does: `OmegaConf.load(cfg.yaml)` and
 * `OmegaConf.from_cli(argv)`, both of which parse with OmegaConf's loader (omegaconf `_utils.get_yaml_loader`):
 * PyYAML's SafeLoader (YAML 1.1 resolution) with the timestamp resolver removed and one float resolver added,
 * so `1e-5` is a float (plain YAML 1.1 wants `1.0e-5`). For a plain (unquoted) scalar that means:
 * - null: `~`, `null`, `Null`, `NULL`, or nothing (`key=` is null, not `''`);
 * - bool: `true`/`false`, `yes`/`no`, `on`/`off` in lower, Title or UPPER case (not `y`/`n`);
 * - int: decimal (`1_000` is 1000), `0b1010`, `0x1f`, `0755` (octal!), `1:30` (base 60, = 90);
 * - float: `1.5`, `1.`, `.5`, `1e-5`, `5.0e-6`, `.inf`, `-.inf`, `.nan`;
 * - anything else is a string (`2024-01-01` stays a string: no timestamps).
 * Quoted scalars are strings; flow or block collections become arrays and objects, scalars inside them
 * resolved by the same rules. Explicit tags (`!!str 3`) are honoured for str/int/float/bool/null.
 */
import { isMap, isScalar, isSeq, parseDocument, type Node as YamlNode } from 'yaml'

/** A value OmegaConf can hold: YAML scalars, lists and mappings. */
export type ConfigValue = string | number | boolean | null | ConfigValue[] | { [key: string]: ConfigValue }

const NULL_RE = /^(?:~|null|Null|NULL|)$/
const BOOL_RE = /^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/
const TRUE_WORDS = new Set(['yes', 'true', 'on'])
// PyYAML's YAML 1.1 int resolver (resolver.py), in the order it tries the forms.
const INT_RE = /^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$/
// PyYAML's float resolver, then OmegaConf's extra one (exponent without a dot, unsigned exponent).
const FLOAT_RE = /^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/
const OMEGA_FLOAT_RE = /^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/

/** PyYAML `construct_yaml_int`. */
function toInt(text: string): number {
  let v = text.replace(/_/g, '')
  let sign = 1
  if (v[0] === '-') sign = -1
  if (v[0] === '-' || v[0] === '+') v = v.slice(1)
  if (v === '0') return 0
  if (v.startsWith('0b')) return sign * parseInt(v.slice(2), 2)
  if (v.startsWith('0x')) return sign * parseInt(v.slice(2), 16)
  if (v[0] === '0') return sign * parseInt(v, 8)
  if (v.includes(':')) return sign * v.split(':').reduce((acc, part) => acc * 60 + parseInt(part, 10), 0)
  return sign * parseInt(v, 10)
}

/** PyYAML `construct_yaml_float`. */
function toFloat(text: string): number {
  let v = text.replace(/_/g, '').toLowerCase()
  let sign = 1
  if (v[0] === '-') sign = -1
  if (v[0] === '-' || v[0] === '+') v = v.slice(1)
  if (v === '.inf') return sign * Number.POSITIVE_INFINITY
  if (v === '.nan') return Number.NaN
  if (v.includes(':')) return sign * v.split(':').reduce((acc, part) => acc * 60 + parseFloat(part), 0)
  return sign * Number(v.endsWith('.') ? v.slice(0, -1) : v)
}

/**
 * Resolve one plain (unquoted) YAML scalar as OmegaConf's loader does. The number is a JS number either
 * way; {@link omegaConfScalarKind} says whether Python sees an int or a float.
 *
 * @example
 * resolvePlainScalar('1e-5') // 0.00001
 * resolvePlainScalar('yes') // true
 * resolvePlainScalar('0755') // 493
 * resolvePlainScalar('') // null
 * resolvePlainScalar('2024-01-01') // '2024-01-01'
 */
export function resolvePlainScalar(text: string): string | number | boolean | null {
  switch (omegaConfScalarKind(text)) {
    case 'null':
      return null
    case 'bool':
      return TRUE_WORDS.has(text.toLowerCase())
    case 'int':
      return toInt(text)
    case 'float':
      return toFloat(text)
    default:
      return text
  }
}

/**
 * The Python type OmegaConf's loader gives a plain scalar: `'null' | 'bool' | 'int' | 'float' | 'str'`.
 * PyYAML tries bool, then float, then int, then null for the first character, then OmegaConf's float.
 *
 * @example
 * omegaConfScalarKind('3') // 'int'
 * omegaConfScalarKind('3.0') // 'float'
 * omegaConfScalarKind('y') // 'str'
 */
export function omegaConfScalarKind(text: string): 'null' | 'bool' | 'int' | 'float' | 'str' {
  if (BOOL_RE.test(text)) return 'bool'
  if (FLOAT_RE.test(text)) return 'float'
  if (INT_RE.test(text)) return 'int'
  if (NULL_RE.test(text)) return 'null'
  if (OMEGA_FLOAT_RE.test(text)) return 'float'
  return 'str'
}

function tagged(tag: string, text: string): ConfigValue | undefined {
  switch (tag) {
    case 'tag:yaml.org,2002:str':
      return text
    case 'tag:yaml.org,2002:int':
      return INT_RE.test(text) ? toInt(text) : Number.NaN
    case 'tag:yaml.org,2002:float':
      return FLOAT_RE.test(text) || OMEGA_FLOAT_RE.test(text) || INT_RE.test(text) ? toFloat(text) : Number.NaN
    case 'tag:yaml.org,2002:bool':
      return TRUE_WORDS.has(text.toLowerCase())
    case 'tag:yaml.org,2002:null':
      return null
    default:
      return undefined
  }
}

function toValue(node: unknown, where: string): ConfigValue {
  if (node === null || node === undefined) return null
  if (isScalar(node)) {
    const text = String(node.value ?? '')
    if (node.tag) {
      const v = tagged(node.tag, text)
      if (v !== undefined) return v
    }
    return node.type === 'PLAIN' || node.type === undefined ? resolvePlainScalar(text) : text
  }
  if (isSeq(node)) return node.items.map((item, i) => toValue(item, `${where}[${i}]`))
  if (isMap(node)) {
    const out: { [key: string]: ConfigValue } = {}
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value ?? '') : String(pair.key)
      out[key] = toValue(pair.value, where ? `${where}.${key}` : key)
    }
    return out
  }
  throw new TypeError(`[prefpipe] ${where || 'value'}: unsupported YAML node (aliases and merge keys are not read)`)
}

/**
 * Parse YAML text as `OmegaConf.load` does (see the module doc): duplicate keys are an error, as in
 * OmegaConf. Throws a `TypeError` with the first problem.
 *
 * @example
 * parseOmegaConfYaml('learning_rate: 1e-5\nbf16: yes\nnote: 2024-01-01')
 * // { learning_rate: 0.00001, bf16: true, note: '2024-01-01' }
 */
export function parseOmegaConfYaml(text: string): ConfigValue {
  const doc = parseDocument(text, { schema: 'failsafe', uniqueKeys: true, prettyErrors: false })
  if (doc.errors.length > 0) throw new TypeError(`[prefpipe] not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`)
  return toValue(doc.contents as YamlNode | null, '')
}

/**
 * Parse one `--set key=value` (or a `llamafactory-cli train cfg.yaml key=value` token) as
 * `OmegaConf.from_cli` does: the text after the first `=` is YAML-loaded (`lora_rank=16` is the int 16,
 * `learning_rate=1e-5` a float, `bf16=false` a bool, `resume_from_checkpoint=null` and `x=` null,
 * `report_to=[wandb,tensorboard]` a list, `name='007'` the string `007`). The key may be dotted
 * (`a.b=1` sets `a: {b: 1}`; see {@link setDotted}).
 *
 * @example
 * parseSetArg('lora_rank=16') // ['lora_rank', 16]
 * parseSetArg('learning_rate=1e-5') // ['learning_rate', 0.00001]
 * parseSetArg('report_to=none') // ['report_to', 'none']
 */
export function parseSetArg(arg: string): [key: string, value: ConfigValue] {
  const i = arg.indexOf('=')
  if (i <= 0) throw new TypeError(`[prefpipe] --set ${JSON.stringify(arg)}: write it as key=value (e.g. lora_rank=16)`)
  const key = arg.slice(0, i).trim()
  if (!/^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*$/.test(key)) {
    throw new TypeError(`[prefpipe] --set ${JSON.stringify(arg)}: "${key}" is not a config key (letters, digits, "_", dotted for nested values)`)
  }
  let value: ConfigValue
  try {
    value = parseOmegaConfYaml(arg.slice(i + 1))
  } catch (err) {
    throw new TypeError(`[prefpipe] --set ${JSON.stringify(arg)}: the value is ${(err as Error).message.replace(/^\[prefpipe\] /, '')}`)
  }
  return [key, value]
}

/**
 * Set `value` at a dotted key in `target` (creating objects on the way), like `OmegaConf.update`. Returns
 * `target`.
 *
 * @example
 * setDotted({}, 'lr_scheduler_kwargs.min_lr', 1e-6) // { lr_scheduler_kwargs: { min_lr: 0.000001 } }
 */
export function setDotted(target: Record<string, unknown>, key: string, value: unknown): Record<string, unknown> {
  const path = key.split('.')
  let node = target
  for (const k of path.slice(0, -1)) {
    const next = node[k]
    if (next === null || typeof next !== 'object' || Array.isArray(next)) node[k] = {}
    node = node[k] as Record<string, unknown>
  }
  node[path[path.length - 1]!] = value
  return target
}

/**
 * Parse `--set` arguments into a config object, later ones winning.
 *
 * @example
 * parseSetArgs(['lora_rank=16', 'bf16=false']) // { lora_rank: 16, bf16: false }
 */
export function parseSetArgs(args: readonly string[]): Record<string, ConfigValue> {
  const out: Record<string, unknown> = {}
  for (const a of args) {
    const [k, v] = parseSetArg(a)
    setDotted(out, k, v)
  }
  return out as Record<string, ConfigValue>
}
