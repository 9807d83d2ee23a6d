import { alpacaMapper } from './alpaca.js'
import { asRecord, rowMapper, sharegptMapper, type RowMapper } from './mapper.js'
import { rlaifVMapper } from './rlaif-v.js'
import { DEFAULT_COLUMNS } from './sharegpt.js'

/** The row shapes prefpipe reads. */
export type RankingFormat = 'sharegpt' | 'alpaca' | 'rlaif-v'

export const RANKING_FORMATS: readonly RankingFormat[] = ['sharegpt', 'alpaca', 'rlaif-v']

/**
 * Tell a row shape from its column names (a parquet file's columns, or a JSON row's keys), using the default
 * column names of each format:
 * - `conversations` -> `sharegpt` (RLHF-V, LLaMA-Factory's `dpo_en_demo`);
 * - `question` and `image` -> `rlaif-v`;
 * - `instruction` -> `alpaca` (ranking: string `chosen`/`rejected`).
 *
 * Returns undefined when none matches, or when the match is not among `allowed`.
 *
 * @example
 * detectFormat(['ds_name', 'image', 'question', 'chosen', 'rejected']) // 'rlaif-v'
 */
export function detectFormat(columns: readonly string[], allowed: readonly RankingFormat[] = RANKING_FORMATS): RankingFormat | undefined {
  const has = new Set(columns)
  let f: RankingFormat | undefined
  if (has.has(DEFAULT_COLUMNS.messages)) f = 'sharegpt'
  else if (has.has('question') && has.has('image')) f = 'rlaif-v'
  else if (has.has('instruction')) f = 'alpaca'
  return f !== undefined && allowed.includes(f) ? f : undefined
}

/**
 * The mapper of a format, with its default column names.
 *
 * @example
 * jsonSource({ path: 'pairs.json', mapRow: mapperFor('alpaca') })
 */
export function mapperFor(format: RankingFormat): RowMapper {
  switch (format) {
    case 'sharegpt':
      return sharegptMapper()
    case 'alpaca':
      return alpacaMapper()
    case 'rlaif-v':
      return rlaifVMapper()
  }
}

/** A {@link RowMapper} that picks its format from the first row; see {@link autoMapper}. */
export interface AutoMapper extends RowMapper {
  /** The format picked, once the first row was seen. */
  readonly format: RankingFormat | undefined
}

/**
 * A mapper that decides the format on the first row it sees (an object's keys, see {@link detectFormat}) and maps
 * every row with that format's mapper, so a row of another shape later on is rejected (`row_shape`) rather than
 * silently read another way (LLaMA-Factory, too, reads one file as one format). When the first row matches none
 * of `allowed`, the first of `allowed` is used, whose rejects then say what is missing.
 *
 * It declares no columns, so a parquet source reads every column; for parquet, prefer detecting from the
 * footer's columns (`parquetInfo(path).columns`) and giving `mapperFor(format)`.
 *
 * @example
 * const mapRow = autoMapper(['sharegpt', 'alpaca'])
 * await pipeline(jsonSource({ path: 'dpo.json', mapRow }), validateRanking(), llamaFactory({ out, name }))
 * console.log(mapRow.format)
 */
export function autoMapper(allowed: readonly RankingFormat[] = RANKING_FORMATS): AutoMapper {
  if (allowed.length === 0) throw new Error('[prefpipe] autoMapper: give at least one format')
  let format: RankingFormat | undefined
  let mapper: RowMapper | undefined
  const fn = rowMapper((row, id, resolvePath) => {
    if (!mapper) {
      const r = asRecord(row)
      if (!r) return mapperFor(allowed[0]!)(row, id, resolvePath)
      format = detectFormat(Object.keys(r), allowed) ?? allowed[0]!
      mapper = mapperFor(format)
    }
    return mapper(row, id, resolvePath)
  })
  Object.defineProperty(fn, 'format', { get: () => format, enumerable: true })
  return fn as AutoMapper
}
