import type { ImageRef, Reject } from '../record.js'
import { sharegptToSample, resolveMapping, type MapResult, type RawImage, type SharegptMapping } from './sharegpt.js'

/**
 * Maps one raw row of a dataset into a {@link PreferenceSample} (or a reject). Give one to `parquetSource` or
 * `jsonSource` as `mapRow` to read a dataset that is not in sharegpt ranking shape.
 *
 * A plain function is a mapper. Its optional properties tell a columnar source what to read:
 * - `columns`: the columns it needs. A parquet source reads only these (plus `optionalColumns`) and fails the
 *   run, naming them, when one is missing; a JSON source warns once when the first row lacks one. Absent: a
 *   parquet source reads every column.
 * - `optionalColumns`: columns it reads when the file has them.
 * - `imageColumns`: columns (among the above) holding images as `{bytes, path}` structs or lists of them; a
 *   parquet source gives each image's `bytes` a buffer of its own (so a kept image does not pin a row group)
 *   and fails the run on bytes that were not read as bytes.
 *
 * `id` is the sample id to use (`<name>#<row>`); the source sets `meta.row` itself. `resolvePath` turns an image
 * path of the dataset into a local path (JSON sources resolve against their media folder; parquet keeps it).
 *
 * @example
 * const mapRow = rowMapper((row, id) => {
 *   const r = row as { q: string; good: string; bad: string }
 *   return { ok: true, sample: { id, messages: [{ role: 'user', content: r.q }], chosen: { role: 'assistant', content: r.good },
 *     rejected: { role: 'assistant', content: r.bad }, images: [], meta: {} } }
 * }, { columns: ['q', 'good', 'bad'] })
 * jsonSource({ path: 'pairs.jsonl', mapRow })
 */
export interface RowMapper {
  (row: unknown, id: string, resolvePath: (p: string) => string): MapResult
  readonly columns?: readonly string[]
  readonly optionalColumns?: readonly string[]
  readonly imageColumns?: readonly string[]
}

/** What {@link rowMapper} attaches to a mapping function. */
export interface RowMapperColumns {
  columns?: readonly string[]
  optionalColumns?: readonly string[]
  imageColumns?: readonly string[]
}

/**
 * Make a {@link RowMapper} from a mapping function and the columns it reads.
 *
 * @example
 * const mapRow = rowMapper(myMap, { columns: ['prompt', 'chosen', 'rejected'], optionalColumns: ['system'] })
 */
export function rowMapper(map: (row: unknown, id: string, resolvePath: (p: string) => string) => MapResult, columns: RowMapperColumns = {}): RowMapper {
  const fn = ((row: unknown, id: string, resolvePath: (p: string) => string) => map(row, id, resolvePath)) as RowMapper & RowMapperColumns
  const props: Record<string, { value: readonly string[]; enumerable: true }> = {}
  for (const k of ['columns', 'optionalColumns', 'imageColumns'] as const) {
    const v = columns[k]
    if (v !== undefined) props[k] = { value: Object.freeze([...v]), enumerable: true }
  }
  Object.defineProperties(fn, props)
  return fn
}

/**
 * The sharegpt ranking mapping (RLHF-V's shape, `sharegptToSample`) as a {@link RowMapper}: `columns` are the
 * mapped messages/chosen/rejected (and system) columns, the images column is optional.
 *
 * The sources do this mapping themselves when no `mapRow` is given; this is for code that wants every format
 * as a mapper (`prefpipe inspect`, format detection).
 *
 * @example
 * parquetSource({ path: 'rlhf-v.parquet', mapRow: sharegptMapper() })
 */
export function sharegptMapper(m: SharegptMapping = {}): RowMapper {
  const mapping = resolveMapping(m)
  const { columns } = mapping
  const required = [columns.messages, columns.chosen, columns.rejected, ...(columns.system ? [columns.system] : [])]
  const images = columns.images ? [columns.images] : []
  return rowMapper((row, id, resolvePath) => sharegptToSample(row, id, mapping, resolvePath), {
    columns: required,
    optionalColumns: images,
    imageColumns: images,
  })
}

/**
 * One or several images as a row holds them (`{bytes, path}` structs as parquet has them, or path strings as JSON
 * has them; `null` is none) into {@link ImageRef}s. Returns the refs and the paths as the dataset wrote them (for
 * `meta.imagePaths`), or the reject (`image_missing`) of the first image with neither bytes nor a path.
 *
 * @example
 * const r = toImageRefs(row.images, 'images', id, resolvePath)
 * if (!r.ok) return { ok: false, reject: r.reject }
 * sample.images = r.images
 */
export function toImageRefs(
  raw: unknown,
  column: string,
  id: string,
  resolvePath: (p: string) => string,
): { ok: true; images: ImageRef[]; paths: (string | null)[] } | { ok: false; reject: Reject } {
  const list = raw == null ? [] : Array.isArray(raw) ? raw : [raw]
  const images: ImageRef[] = []
  const paths: (string | null)[] = []
  for (let i = 0; i < list.length; i++) {
    const img = list[i] as RawImage | null | undefined
    if (typeof img === 'string') {
      images.push({ path: resolvePath(img) })
      paths.push(img)
      continue
    }
    if (img !== null && typeof img === 'object') {
      const bytes = img.bytes
      const path = typeof img.path === 'string' ? img.path : null
      if (bytes instanceof Uint8Array) {
        images.push({ bytes })
        paths.push(path)
        continue
      }
      if (bytes == null && path !== null) {
        images.push({ path: resolvePath(path) })
        paths.push(path)
        continue
      }
    }
    return {
      ok: false,
      reject: { id, reason: 'image_missing', message: `${column}[${i}] has neither bytes nor a path`, detail: { column, index: i } },
    }
  }
  return { ok: true, images, paths }
}

/**
 * A reject as a {@link MapResult}.
 *
 * @example
 * if (typeof row.prompt !== 'string') return mapReject(id, 'row_shape', 'prompt is not a string', { path: 'prompt' })
 */
export function mapReject(id: string, reason: string, message: string, detail?: Record<string, unknown>): MapResult {
  return { ok: false, reject: detail ? { id, reason, message, detail } : { id, reason, message } }
}

/**
 * A short description of a value's type, for messages (`string`, `number`, `null`, `array`, `bytes`, `object`).
 *
 * @example
 * typeName([1]) // 'array'
 */
export function typeName(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'array'
  if (v instanceof Uint8Array) return 'bytes'
  return typeof v
}

/**
 * The row as a plain object, or undefined when it is not one (null, an array, a string...).
 *
 * @example
 * const r = asRecord(row)
 * if (!r) return mapReject(id, 'row_shape', 'row is not an object')
 */
export function asRecord(row: unknown): Record<string, unknown> | undefined {
  return row !== null && typeof row === 'object' && !Array.isArray(row) ? (row as Record<string, unknown>) : undefined
}
