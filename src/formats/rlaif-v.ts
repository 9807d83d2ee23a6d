import type { PreferenceSample } from '../record.js'
import { asRecord, mapReject, rowMapper, toImageRefs, typeName, type RowMapper } from './mapper.js'
import type { MapResult } from './sharegpt.js'

/**
 * The columns of `openbmb/RLAIF-V-Dataset` (all strings but `image`, an HF `Image()` struct `{bytes, path}`).
 * `image`, `question`, `chosen`, `rejected` are what a sample is made of; the rest is kept in `meta`.
 */
export const RLAIF_V_COLUMNS = {
  image: 'image',
  question: 'question',
  chosen: 'chosen',
  rejected: 'rejected',
  /** Kept in `meta` when present. */
  meta: ['ds_name', 'idx', 'origin_dataset', 'origin_split', 'image_path'],
} as const

/** Options of {@link rlaifVToSample} and {@link rlaifVMapper}. */
export interface RlaifVMapOptions {
  /** The image placeholder put before the question (default `<image>`, LLaMA-Factory's). */
  placeholder?: string
}

/**
 * Map one row of `openbmb/RLAIF-V-Dataset` (or a file in its schema) into a {@link PreferenceSample}:
 *
 * - one user turn: `<image>\n` + `question`, unless the question already holds the placeholder (then it is
 *   kept as it is; a question with two placeholders is left for `validateRanking` to reject);
 * - `chosen` / `rejected` (strings) as assistant turns;
 * - `images`: the one `image` (`{bytes, path}` as parquet holds it, or a path string as a JSON export may);
 * - `meta`: `ds_name`, `idx`, `origin_dataset`, `origin_split`, `image_path` as the row has them (strings in the
 *   Hub dataset; `origin_split` is kept as the JSON text it is), and `imagePaths` (the image struct's `path`).
 *
 * Rejects (mapper stage = the source): `row_shape` when `question`, `chosen` or `rejected` is missing or not a
 * string; `image_missing` when `image` is null or has neither bytes nor a path. Empty strings pass through, for
 * `validateRanking` to reject with its precise codes.
 *
 * @example
 * const r = rlaifVToSample({ image: { bytes, path: null }, question: 'What is this?', chosen: 'A cat.', rejected: 'A dog.', ds_name: 'RLAIF-V', idx: '7' }, 'rlaif#0')
 * if (r.ok) console.log(r.sample.messages[0].content) // "<image>\nWhat is this?"
 */
export function rlaifVToSample(row: unknown, id: string, resolvePath: (p: string) => string = (p) => p, options: RlaifVMapOptions = {}): MapResult {
  const placeholder = options.placeholder ?? '<image>'
  const r = asRecord(row)
  if (!r) return mapReject(id, 'row_shape', `row is ${typeName(row)}, not an object with the RLAIF-V columns`)
  const c = RLAIF_V_COLUMNS
  for (const col of [c.question, c.chosen, c.rejected]) {
    const v = r[col]
    if (typeof v !== 'string') {
      const what = v === undefined ? 'is missing' : `is ${typeName(v)}, not a string`
      return mapReject(id, 'row_shape', `row does not have the RLAIF-V shape: ${col} ${what}`, { path: col })
    }
  }
  const raw = r[c.image]
  if (raw == null) return mapReject(id, 'image_missing', `${c.image} has no value (null); an RLAIF-V row has one image`, { column: c.image })
  if (Array.isArray(raw)) return mapReject(id, 'row_shape', `row does not have the RLAIF-V shape: ${c.image} is a list, not one image`, { path: c.image })
  const imgs = toImageRefs(raw, c.image, id, resolvePath)
  if (!imgs.ok) return { ok: false, reject: imgs.reject }

  const question = r[c.question] as string
  const content = question.includes(placeholder) ? question : `${placeholder}\n${question}`
  const meta: Record<string, unknown> = {}
  for (const k of c.meta) if (r[k] !== undefined && r[k] !== null) meta[k] = r[k]
  if (imgs.paths.some((p) => p !== null)) meta.imagePaths = imgs.paths
  const sample: PreferenceSample = {
    id,
    messages: [{ role: 'user', content }],
    chosen: { role: 'assistant', content: r[c.chosen] as string },
    rejected: { role: 'assistant', content: r[c.rejected] as string },
    images: imgs.images,
    meta,
  }
  return { ok: true, sample }
}

/**
 * {@link rlaifVToSample} as a {@link RowMapper}: a parquet source reads `image`, `question`, `chosen`, `rejected`
 * (required) and the meta columns when the file has them.
 *
 * @example
 * const { result } = await pipeline(
 *   parquetSource({ path: 'RLAIF-V-Dataset_000.parquet', mapRow: rlaifVMapper() }),
 *   validateRanking(),
 *   llamaFactory({ out: 'out/rlaif_v', name: 'rlaif_v' }),
 * )
 */
export function rlaifVMapper(options: RlaifVMapOptions = {}): RowMapper {
  const c = RLAIF_V_COLUMNS
  return rowMapper((row, id, resolvePath) => rlaifVToSample(row, id, resolvePath, options), {
    columns: [c.image, c.question, c.chosen, c.rejected],
    optionalColumns: [...c.meta],
    imageColumns: [c.image],
  })
}
