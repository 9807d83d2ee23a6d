import { createHash } from 'node:crypto'
import { stat } from 'node:fs/promises'
import { basename, extname } from 'node:path'
import { parquetMetadataAsync, parquetSchema } from 'hyparquet'
import type { SchemaTree } from 'hyparquet'
import { autoMapper, detectFormat, mapperFor, type AutoMapper, type RankingFormat } from './formats/detect.js'
import { rowMapper, type RowMapper } from './formats/mapper.js'
import { named, pipeline, type Sink, type Transform } from './pipeline/index.js'
import { getPreset, type PresetName } from './presets/index.js'
import type { ImageRef, PreferenceSample, Reject, Turn } from './record.js'
import { detectImageFormat } from './sinks/llamafactory.js'
import { jsonSource } from './sources/json.js'
import { openFileBuffer, parquetInfo, parquetSource, type ParquetInfo } from './sources/parquet.js'
import { validateRanking, type ValidateRankingOptions } from './transforms/validate-ranking.js'

/** Options of {@link inspectFile}. */
export interface InspectOptions {
  /** How many of the first rows to show mapped to the record (default 5). */
  rows?: number
  /** How many of the first rows to run through the source and `validateRanking` (default 1000; at least `rows`). */
  check?: number
  /** Read the rows as this preset does (`rlhf-v`, `rlaif-v`, `dpo-en-demo`). Default: detect the row shape. */
  preset?: PresetName | string
  /** For JSON inputs: the folder image paths are relative to (default: the data file's folder). */
  mediaDir?: string
  /** Passed to `validateRanking` (placeholders, ...). */
  validate?: ValidateRankingOptions
}

/** One column of the file's schema. */
export interface InspectColumn {
  name: string
  /**
   * Its type: for parquet from the schema (`string`, `binary`, `int64`, `struct<bytes: binary, path: string>`,
   * `list<struct<from: string, value: string>>`, ...); for JSON inferred from the rows checked (`string`, `int`,
   * `float`, `bool`, `null`, `list<...>`, `struct<...>`, alternatives joined by ` | `).
   */
  type: string
}

/** An image of a shown row, summarised: never its bytes. */
export interface InspectImage {
  /** Byte length of inline bytes. */
  bytes?: number
  /** The first 16 hex digits of the sha256 of the inline bytes. */
  sha256?: string
  /** The format told by the magic number (`jpeg`, `png`, ...), when the bytes have a known one. */
  format?: string
  /** The (resolved) path of an image given by path. */
  path?: string
}

/** A shown row mapped to the record, with images summarised. */
export interface InspectSample {
  system?: string
  messages: Turn[]
  chosen: Turn
  rejected: Turn
  images: InspectImage[]
  meta: Record<string, unknown>
}

/** One of the first rows. */
export interface InspectRow {
  /** Row index in the file. */
  row: number
  id: string
  /** No stage rejected it (among the source and `validateRanking`). */
  ok: boolean
  /** The row mapped to the record (absent when the source could not map it). */
  sample?: InspectSample
  /** Why it would be left out. */
  reject?: Reject
}

/** What {@link inspectFile} finds. */
export interface InspectResult {
  path: string
  /** The file type, from the extension. */
  type: 'parquet' | 'json' | 'jsonl'
  /** File size in bytes. */
  bytes: number
  /** The row shape the rows were read as (undefined: none could be told and no preset was given). */
  format?: RankingFormat
  /** The preset the rows were read as, when one was given. */
  preset?: PresetName
  /** Rows in the file: from the footer for parquet; for JSON only when every row was checked. */
  numRows?: number
  columns: InspectColumn[]
  /** The `datasets` features in the file's `huggingface` key-value metadata (parquet written by `datasets`). */
  hfFeatures?: Record<string, unknown>
  /** Parquet only: the footer as `parquetInfo` reads it (row groups, codecs, offset index, ...). */
  parquet?: ParquetInfo
  /** The first rows (up to `rows`), mapped. */
  rows: InspectRow[]
  /** What reading and validating the first rows (up to `check`) would reject. Nothing is written. */
  validation: {
    /** Rows read and checked. */
    rowsChecked: number
    /** Every row of the file was checked. */
    complete: boolean
    kept: number
    rejected: number
    /** Rejects by reason code, sorted by code. */
    byReason: Record<string, number>
    /** The rejects, in row order (at most 100; `rejected` counts them all). */
    rejects: Reject[]
  }
  /** Why no rows were read, when none were. */
  note?: string
  /** What the stages warned about while reading (a first row without the mapped columns, ...). */
  warnings: string[]
}

const MAX_REJECTS = 100
const SCHEMA_ROWS = 200

/**
 * Look into a dataset file without writing anything: its schema (columns and types, and the `datasets` features
 * of a parquet file written by `datasets`), its row groups (parquet: `parquetInfo`), the first `rows` rows mapped
 * to the record (images summarised as byte length, sha256 prefix and format, never dumped), and what the source
 * and `validateRanking` would reject among the first `check` rows (read through the real source, then stopped).
 *
 * The row shape is the preset's when `preset` is given; otherwise it is detected: for parquet from the footer's
 * columns (`conversations` -> sharegpt, `question` + `image` -> rlaif-v, `instruction` -> alpaca; when none
 * matches, no rows are read and `note` says why), for JSON from the first row.
 *
 * Throws the sources' clear errors (no such file, not parquet, a JSON array that does not parse, a preset's
 * column missing) and for an unknown preset or extension.
 *
 * @example
 * const info = await inspectFile('fixtures/rlhf-v-sample.parquet', { rows: 3 })
 * console.log(info.format, info.numRows, info.parquet?.rowGroups.length, info.validation.byReason)
 */
export async function inspectFile(path: string, options: InspectOptions = {}): Promise<InspectResult> {
  const showRows = Math.max(0, Math.floor(options.rows ?? 5))
  const check = Math.max(showRows, Math.floor(options.check ?? 1000))
  const ext = extname(path).toLowerCase()
  const type = ext === '.parquet' ? 'parquet' : ext === '.jsonl' ? 'jsonl' : ext === '.json' ? 'json' : undefined
  if (!type) throw new Error(`[prefpipe] ${path}: cannot tell the format from "${ext || 'no extension'}"; give a .parquet, .json or .jsonl file`)
  const preset = options.preset !== undefined ? getPreset(options.preset) : undefined

  let info: ParquetInfo | undefined
  let columns: InspectColumn[] = []
  let hfFeatures: Record<string, unknown> | undefined
  let bytes: number
  if (type === 'parquet') {
    info = await parquetInfo(path)
    bytes = info.bytes
    ;({ columns, hfFeatures } = await parquetColumns(path))
  } else {
    bytes = await fileBytes(path)
  }

  // The mapper: the preset's, or detected.
  let mapper: RowMapper | undefined
  let format: RankingFormat | undefined
  let auto: AutoMapper | undefined
  if (preset) {
    mapper = preset.mapper()
    if ('format' in mapper) auto = mapper as AutoMapper
    else format = preset.defaults.rowFormat === 'rlaif-v' ? 'rlaif-v' : 'sharegpt'
  } else if (info) {
    format = detectFormat(info.columns)
    if (format) mapper = mapperFor(format)
  } else {
    mapper = auto = autoMapper()
  }

  const result: InspectResult = {
    path,
    type,
    bytes,
    columns,
    rows: [],
    warnings: [],
    validation: { rowsChecked: 0, complete: info?.numRows === 0, kept: 0, rejected: 0, byReason: {}, rejects: [] },
  }
  if (preset) result.preset = preset.name
  if (info) {
    result.numRows = info.numRows
    result.parquet = info
  }
  if (hfFeatures) result.hfFeatures = hfFeatures
  if (!mapper) {
    result.note =
      `no row shape matches the columns (${info!.columns.join(', ')}): sharegpt needs "conversations", rlaif-v "question" and "image", ` +
      'alpaca "instruction"; give a preset, or read it with your own columns or mapRow in the library'
    return finish(result, format, auto)
  }

  // Raw JSON rows, to infer the JSON schema from (parquet has its own).
  const types = new Map<string, Set<string>>()
  let seenRaw = 0
  const base = mapper
  const capturing =
    type === 'parquet'
      ? base
      : rowMapper(
          (row, id, resolvePath) => {
            if (seenRaw++ < SCHEMA_ROWS && row !== null && typeof row === 'object' && !Array.isArray(row)) {
              for (const [k, v] of Object.entries(row)) {
                let set = types.get(k)
                if (!set) types.set(k, (set = new Set()))
                set.add(jsonType(v))
              }
            }
            return base(row, id, resolvePath)
          },
          { ...(base.columns ? { columns: base.columns } : {}) },
        )

  const name = basename(path)
  const source =
    type === 'parquet'
      ? parquetSource({ path, name, mapRow: capturing })
      : jsonSource({ path, name, mapRow: capturing, ...(options.mediaDir ? { mediaDir: options.mediaDir } : {}) })

  const shown = new Map<number, PreferenceSample>()
  let more = false
  const head: Transform<PreferenceSample, PreferenceSample> = named('head', async function* (input) {
    for await (const s of input) {
      const row = s.meta.row as number
      if (row >= check) {
        more = true
        return
      }
      if (row < showRows) shown.set(row, s)
      yield s
    }
  })
  const kept: number[] = []
  const collect: Sink<PreferenceSample, void> = named('inspect', async (input) => {
    for await (const s of input) kept.push(s.meta.row as number)
  })
  const log = { debug() {}, info() {}, warn: (m: string) => void result.warnings.push(m) }
  const { rejects } = await pipeline(source, head, validateRanking(options.validate), collect, { log })

  const inRange = rejects.filter((r) => {
    const row = rowOf(r.id)
    if (row !== undefined && row >= check) more = true
    return row === undefined || row < check
  })
  inRange.sort((a, b) => (rowOf(a.id) ?? 0) - (rowOf(b.id) ?? 0))
  const rejectOf = new Map<number, Reject>()
  for (const r of inRange) {
    const row = rowOf(r.id)
    if (row !== undefined && !rejectOf.has(row)) rejectOf.set(row, r)
  }
  const rowsChecked = kept.length + inRange.length
  const byReason: Record<string, number> = {}
  for (const r of inRange) byReason[r.reason] = (byReason[r.reason] ?? 0) + 1
  result.validation = {
    rowsChecked,
    complete: info ? info.numRows <= check : !more,
    kept: kept.length,
    rejected: inRange.length,
    byReason: Object.fromEntries(Object.entries(byReason).sort(([a], [b]) => a.localeCompare(b))),
    rejects: inRange.slice(0, MAX_REJECTS),
  }
  if (!info && !more) result.numRows = rowsChecked

  for (let row = 0; row < Math.min(showRows, rowsChecked); row++) {
    const s = shown.get(row)
    const reject = rejectOf.get(row)
    const r: InspectRow = { row, id: s?.id ?? reject?.id ?? `${name}#${row}`, ok: !reject }
    if (s) r.sample = view(s)
    if (reject) r.reject = reject
    result.rows.push(r)
  }
  if (type !== 'parquet') result.columns = [...types].map(([n, t]) => ({ name: n, type: [...t].join(' | ') }))
  if (auto && !preset && types.size > 0 && detectFormat([...types.keys()]) === undefined) {
    result.warnings.push(
      `the rows' keys (${[...types.keys()].join(', ')}) match no known row shape (sharegpt: "conversations"; rlaif-v: "question" and "image"; ` +
        `alpaca: "instruction"), so they were read as ${auto.format ?? 'sharegpt'}; give a preset, or map the columns in the library`,
    )
  }
  return finish(result, format, auto)
}

function finish(result: InspectResult, format: RankingFormat | undefined, auto: AutoMapper | undefined): InspectResult {
  const f = format ?? auto?.format
  if (f) result.format = f
  return result
}

/** The row index of an id `<name>#<row>`. */
function rowOf(id: string): number | undefined {
  const m = /#(\d+)$/.exec(id)
  return m ? Number(m[1]) : undefined
}

function view(s: PreferenceSample): InspectSample {
  return {
    ...(s.system !== undefined ? { system: s.system } : {}),
    messages: s.messages,
    chosen: s.chosen,
    rejected: s.rejected,
    images: s.images.map(imageSummary),
    meta: s.meta,
  }
}

/**
 * Summarise an image: byte length, the first 16 hex digits of its sha256 and its format for inline bytes; the
 * path for an image given by path. Never the bytes themselves.
 *
 * @example
 * imageSummary({ bytes: jpegBytes }) // { bytes: 27833, sha256: '596aa1e7cb87…', format: 'jpeg' }
 */
export function imageSummary(img: ImageRef): InspectImage {
  const out: InspectImage = {}
  if (img.bytes) {
    out.bytes = img.bytes.byteLength
    out.sha256 = createHash('sha256').update(img.bytes).digest('hex').slice(0, 16)
    const f = detectImageFormat(img.bytes)
    if (f) out.format = f.format
  }
  if (img.path !== undefined) out.path = img.path
  return out
}

async function fileBytes(path: string): Promise<number> {
  try {
    const st = await stat(path)
    if (!st.isFile()) throw new Error(`[prefpipe] ${path} is not a regular file (a directory?)`)
    return st.size
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`[prefpipe] ${path} does not exist`, { cause: err })
    throw err
  }
}

/** The top-level columns of a parquet file with their types, and its `datasets` features. */
async function parquetColumns(path: string): Promise<{ columns: InspectColumn[]; hfFeatures?: Record<string, unknown> }> {
  const file = await openFileBuffer(path)
  try {
    const metadata = await parquetMetadataAsync(file)
    const columns = parquetSchema(metadata).children.map((c) => ({ name: c.element.name, type: parquetType(c) }))
    const hf = metadata.key_value_metadata?.find((kv) => kv.key === 'huggingface')?.value
    let hfFeatures: Record<string, unknown> | undefined
    if (hf) {
      try {
        const parsed = JSON.parse(hf) as { info?: { features?: unknown } }
        const f = parsed.info?.features
        if (f && typeof f === 'object' && !Array.isArray(f)) hfFeatures = f as Record<string, unknown>
      } catch {
        // not JSON: leave it out
      }
    }
    return hfFeatures ? { columns, hfFeatures } : { columns }
  } finally {
    await file.close()
  }
}

/**
 * A parquet schema node as a type string (`string`, `binary`, `struct<bytes: binary, path: string>`,
 * `list<struct<from: string, value: string>>`, ...).
 *
 * @example
 * parquetSchema(metadata).children.map((c) => `${c.element.name}: ${parquetType(c)}`)
 */
export function parquetType(node: SchemaTree): string {
  const e = node.element
  const kind = e.logical_type?.type ?? e.converted_type
  if (node.children.length > 0) {
    if (kind === 'LIST') {
      // LIST: <name> (LIST) -> repeated group list -> element (the 3-level form); the 2-level form repeats directly.
      const repeated = node.children[0]!
      if (repeated.children.length === 1 && repeated.element.name !== 'array' && !repeated.element.name.endsWith('_tuple')) {
        return `list<${parquetType(repeated.children[0]!)}>`
      }
      return `list<${parquetType({ ...repeated, element: { ...repeated.element, repetition_type: 'REQUIRED' } })}>`
    }
    if (kind === 'MAP' || kind === 'MAP_KEY_VALUE') {
      const kv = node.children[0]!
      const [k, v] = kv.children
      return `map<${k ? parquetType(k) : '?'}, ${v ? parquetType(v) : '?'}>`
    }
    const fields = node.children.map((c) => `${c.element.name}: ${parquetType(c)}`).join(', ')
    const struct = `struct<${fields}>`
    return e.repetition_type === 'REPEATED' ? `list<${struct}>` : struct
  }
  let t: string
  switch (e.type) {
    case 'BYTE_ARRAY':
      t = kind === 'STRING' || kind === 'UTF8' || kind === 'ENUM' ? 'string' : kind === 'JSON' ? 'json' : 'binary'
      break
    case 'FIXED_LEN_BYTE_ARRAY':
      t = kind === 'UUID' ? 'uuid' : kind === 'FLOAT16' ? 'float16' : `fixed_len_byte_array(${e.type_length ?? '?'})`
      break
    case 'INT32':
      t = kind === 'DATE' ? 'date32' : 'int32'
      break
    case 'INT64':
      t = kind === 'TIMESTAMP' || kind === 'TIMESTAMP_MILLIS' || kind === 'TIMESTAMP_MICROS' ? 'timestamp' : 'int64'
      break
    case undefined:
      t = 'null'
      break
    default:
      t = e.type.toLowerCase()
  }
  if (kind === 'DECIMAL') t = `decimal(${e.precision ?? '?'}, ${e.scale ?? '?'})`
  return e.repetition_type === 'REPEATED' ? `list<${t}>` : t
}

/** A JSON value's type as a string (`string`, `int`, `list<struct<from: string, value: string>>`, ...). */
function jsonType(v: unknown, depth = 0): string {
  if (v === null) return 'null'
  if (typeof v === 'string') return 'string'
  if (typeof v === 'boolean') return 'bool'
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float'
  if (depth > 4) return Array.isArray(v) ? 'list' : 'struct'
  if (Array.isArray(v)) {
    const items = [...new Set(v.map((x) => jsonType(x, depth + 1)))]
    return `list<${items.length === 0 ? '?' : items.join(' | ')}>`
  }
  if (typeof v === 'object') return `struct<${Object.entries(v as Record<string, unknown>).map(([k, x]) => `${k}: ${jsonType(x, depth + 1)}`).join(', ')}>`
  return typeof v
}
