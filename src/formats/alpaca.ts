import type { PreferenceSample, Turn } from '../record.js'
import { asRecord, mapReject, rowMapper, toImageRefs, typeName, type RowMapper } from './mapper.js'
import type { MapResult } from './sharegpt.js'

/**
 * Column names of an alpaca ranking dataset, spelled as in LLaMA-Factory's `dataset_info.json` `columns`
 * (`prompt` is the instruction column, `query` the input column).
 */
export interface AlpacaColumns {
  prompt: string
  query: string
  chosen: string
  rejected: string
  /** A system-prompt column; read when the row has it. */
  system?: string
  /** A history column (`[[question, answer], ...]`); read when the row has it. */
  history?: string
  /** An images column (paths, or `{bytes, path}`); read when the row has it. */
  images?: string
}

/**
 * Defaults: LLaMA-Factory's alpaca defaults (`instruction`, `input`) and the names its data README uses for the
 * rest (`chosen`, `rejected`, `system`, `history`, `images`). LLaMA-Factory reads `system`/`history`/`images` only
 * when they are mapped; prefpipe reads them whenever the row has them, since it writes them into the sharegpt
 * output where LLaMA-Factory will read them.
 */
export const DEFAULT_ALPACA_COLUMNS: Readonly<Required<AlpacaColumns>> = Object.freeze({
  prompt: 'instruction',
  query: 'input',
  chosen: 'chosen',
  rejected: 'rejected',
  system: 'system',
  history: 'history',
  images: 'images',
})

/** Options of {@link alpacaMapper}: any subset of the columns, the rest from {@link DEFAULT_ALPACA_COLUMNS}. */
export interface AlpacaMapping {
  columns?: Partial<AlpacaColumns>
}

/**
 * Map one alpaca ranking row (LLaMA-Factory's `formatting: "alpaca"`, `ranking: true`:
 * `{instruction, input, chosen, rejected, system?, history?}` with string answers) into a
 * {@link PreferenceSample}, as LLaMA-Factory's `AlpacaDatasetConverter` reads it:
 *
 * - `history` (when a list) becomes earlier turns: each `[question, answer]` a user then an assistant turn;
 *   a history that is not a list is ignored, as LLaMA-Factory does;
 * - the last user turn is the instruction and the input joined by `"\n"`, each only when non-empty
 *   (`"\n".join([x for x in (instruction, input) if x])`), so an empty input adds no newline;
 * - `chosen` / `rejected` strings are the assistant answers; `system` a non-empty string is the system prompt;
 * - `images` as in the sharegpt mapping (paths resolved with `resolvePath`, paths as written in `meta.imagePaths`).
 *
 * Rejects: `row_shape` for a row that is not an object, an instruction/input/system that is neither a string nor
 * null, a missing or non-string `chosen`/`rejected` (LLaMA-Factory drops such rows: sharegpt-style objects
 * belong in a sharegpt dataset), or a history entry that is not a pair of strings (LLaMA-Factory crashes on it);
 * `image_missing` for an image with neither bytes nor a path. An empty prompt passes through, for
 * `validateRanking` to reject.
 *
 * @example
 * const r = alpacaToSample({ instruction: 'Translate to French', input: 'cat', chosen: 'chat', rejected: 'chien' }, 'demo#0')
 * if (r.ok) console.log(r.sample.messages) // [{ role: 'user', content: 'Translate to French\ncat' }]
 */
export function alpacaToSample(
  row: unknown,
  id: string,
  mapping: AlpacaMapping = {},
  resolvePath: (p: string) => string = (p) => p,
): MapResult {
  const c = { ...DEFAULT_ALPACA_COLUMNS, ...mapping.columns }
  const r = asRecord(row)
  if (!r) return mapReject(id, 'row_shape', `row is ${typeName(row)}, not an object with the alpaca ranking columns`)
  const shape = (col: string, what: string) =>
    mapReject(id, 'row_shape', `row does not have the alpaca ranking shape: ${col} ${what}`, { path: col })

  const optionalText = (col: string | undefined): string | undefined | MapResult => {
    if (!col) return undefined
    const v = r[col]
    if (v == null) return undefined
    if (typeof v !== 'string') return shape(col, `is ${typeName(v)}, not a string`)
    return v
  }
  const instruction = optionalText(c.prompt)
  if (typeof instruction === 'object') return instruction
  const input = optionalText(c.query)
  if (typeof input === 'object') return input
  const system = optionalText(c.system)
  if (typeof system === 'object') return system

  const answers: string[] = []
  for (const col of [c.chosen, c.rejected]) {
    const v = r[col]
    if (typeof v === 'string') {
      answers.push(v)
      continue
    }
    if (v === undefined) return shape(col, 'is missing')
    const hint = v !== null && typeof v === 'object' && !Array.isArray(v) ? ' (an object answer is the sharegpt shape: read it as sharegpt)' : ''
    return shape(col, `is ${typeName(v)}, not a string${hint}`)
  }

  const messages: Turn[] = []
  const history = c.history ? r[c.history] : undefined
  if (Array.isArray(history)) {
    for (let i = 0; i < history.length; i++) {
      const h: unknown = history[i]
      if (!Array.isArray(h) || h.length !== 2 || typeof h[0] !== 'string' || typeof h[1] !== 'string') {
        return mapReject(id, 'row_shape', `row does not have the alpaca ranking shape: ${c.history}[${i}] is not a [question, answer] pair of strings`, {
          path: `${c.history}.${i}`,
        })
      }
      messages.push({ role: 'user', content: h[0] }, { role: 'assistant', content: h[1] })
    }
  }
  messages.push({ role: 'user', content: [instruction, input].filter((x): x is string => !!x).join('\n') })

  const imgs = toImageRefs(c.images ? r[c.images] : undefined, c.images ?? 'images', id, resolvePath)
  if (!imgs.ok) return { ok: false, reject: imgs.reject }
  const sample: PreferenceSample = {
    id,
    messages,
    chosen: { role: 'assistant', content: answers[0]! },
    rejected: { role: 'assistant', content: answers[1]! },
    images: imgs.images,
    meta: imgs.paths.some((p) => p !== null) ? { imagePaths: imgs.paths } : {},
  }
  if (system) sample.system = system
  return { ok: true, sample }
}

/**
 * {@link alpacaToSample} as a {@link RowMapper}. A parquet source reads the instruction, `chosen` and `rejected`
 * columns (required: a missing one fails the run, as LLaMA-Factory's `KeyError` would) and the input, system,
 * history and images columns the file has.
 *
 * @example
 * jsonSource({ path: 'comparison_gpt4_data_en.json', mapRow: alpacaMapper() })
 * // Intel/orca_dpo_pairs: question / chosen / rejected / system
 * parquetSource({ path: 'orca_dpo_pairs.parquet', mapRow: alpacaMapper({ columns: { prompt: 'question' } }) })
 */
export function alpacaMapper(mapping: AlpacaMapping = {}): RowMapper {
  const c = { ...DEFAULT_ALPACA_COLUMNS, ...mapping.columns }
  const optional = [c.query, c.system, c.history, c.images].filter((x): x is string => !!x)
  return rowMapper((row, id, resolvePath) => alpacaToSample(row, id, mapping, resolvePath), {
    columns: [c.prompt, c.chosen, c.rejected],
    optionalColumns: optional,
    imageColumns: c.images ? [c.images] : [],
  })
}
