import { basename, extname } from 'node:path'
import { alpacaMapper } from '../formats/alpaca.js'
import { autoMapper } from '../formats/detect.js'
import type { RowMapper } from '../formats/mapper.js'
import { pipeline, type PipelineOptions, type PipelineResult, type Source } from '../pipeline/index.js'
import type { PreferenceSample } from '../record.js'
import { llamaFactory, type LlamaFactoryManifest } from '../sinks/llamafactory.js'
import { jsonSource } from '../sources/json.js'
import { parquetSource } from '../sources/parquet.js'
import { validateRanking } from '../transforms/validate-ranking.js'
import { fileDigest } from './rlhf-v.js'

/** The row shapes the text preset reads. */
export type TextRankingFormat = 'auto' | 'sharegpt' | 'alpaca'

/** Options of the `dpo-en-demo` preset. */
export interface DpoEnDemoOptions {
  /** A local text-only preference file: `.json` (LLaMA-Factory's `data/dpo_en_demo.json`), `.jsonl` or `.parquet`. */
  input: string
  /** The output folder (created if missing; an existing `dataset_info.json` there is merged). */
  out: string
  /** Dataset name in `dataset_info.json`; files are `<name>_train.jsonl` ... Default `dpo_en_demo`. */
  name?: string
  /**
   * The row shape (default `auto`): `sharegpt` (`conversations` + `chosen`/`rejected` objects with `from`/`value`,
   * the shape of `dpo_en_demo.json`, `dpo_zh_demo.json` and `DPO-En-Zh-20k`), `alpaca` (`instruction`/`input` +
   * string `chosen`/`rejected`, optional `system`, `history`), or `auto`: decided on the first row (a
   * `conversations` key means sharegpt, an `instruction` key alpaca); rows of the other shape are then rejected.
   */
  format?: TextRankingFormat
  /** For JSON inputs with images: the folder image paths are relative to (default: the data file's folder). */
  mediaDir?: string
}

/**
 * The `dpo-en-demo` defaults. LLaMA-Factory's own `data/dpo_en_demo.json` (and `dpo_zh_demo.json`) is **sharegpt**
 * ranking, registered in its `dataset_info.json` as `formatting: "sharegpt"`, `ranking: true`,
 * `columns: {messages: "conversations", chosen: "chosen", rejected: "rejected"}`; the file lives in the
 * LLaMA-Factory GitHub repository, and the Hub dataset of the same shape is `llamafactory/DPO-En-Zh-20k`
 * (config `en`; LLaMA-Factory's `dpo_mix_en`). Alpaca ranking files (`instruction`, `input`, `chosen`, `rejected`
 * strings, as in LLaMA-Factory's data README) are read too.
 */
export const DPO_EN_DEMO = {
  repo: 'llamafactory/DPO-En-Zh-20k',
  config: 'en',
  name: 'dpo_en_demo',
  split: 'train',
  /** Where LLaMA-Factory ships the demo file itself. */
  github: { repo: 'hiyouga/LLaMA-Factory', path: 'data/dpo_en_demo.json' },
  columns: { messages: 'conversations', chosen: 'chosen', rejected: 'rejected' },
} as const

/** The row mapper of a text format (`undefined`: the sources' own sharegpt mapping). */
function textMapper(format: TextRankingFormat): RowMapper | undefined {
  if (format === 'sharegpt') return undefined
  if (format === 'alpaca') return alpacaMapper()
  return autoMapper(['sharegpt', 'alpaca'])
}

/**
 * A source for a local text-only preference file, chosen by its extension, reading rows of `format`.
 *
 * @example
 * const source = dpoEnDemoSource('LLaMA-Factory/data/dpo_en_demo.json')
 */
export function dpoEnDemoSource(input: string, format: TextRankingFormat = 'auto', mediaDir?: string): Source<PreferenceSample> {
  const ext = extname(input).toLowerCase()
  const mapRow = textMapper(format)
  const how = mapRow ? { mapRow } : { columns: DPO_EN_DEMO.columns }
  if (ext === '.parquet') return parquetSource({ path: input, ...how })
  if (ext === '.json' || ext === '.jsonl') return jsonSource({ path: input, ...how, ...(mediaDir ? { mediaDir } : {}) })
  throw new Error(`[prefpipe] ${input}: cannot tell the format from "${ext || 'no extension'}"; give a .json, .jsonl or .parquet file`)
}

/**
 * Prepare a text-only preference file in LLaMA-Factory's `dpo_en_demo` shape (sharegpt ranking; alpaca ranking
 * too, see `format`) for LLaMA-Factory DPO: read, validate every ranking row, write the folder.
 *
 * @example
 * const { result, report } = await prepareDpoEnDemo({ input: 'LLaMA-Factory/data/dpo_en_demo.json', out: 'out/dpo' })
 * console.log(result.datasets.train.rows, report.rejected)
 */
export async function prepareDpoEnDemo(opts: DpoEnDemoOptions, pipelineOptions: PipelineOptions = {}): Promise<PipelineResult<LlamaFactoryManifest>> {
  const format = opts.format ?? 'auto'
  if (!['auto', 'sharegpt', 'alpaca'].includes(format)) throw new Error(`[prefpipe] dpo-en-demo: format must be auto, sharegpt or alpaca, not ${JSON.stringify(format)}`)
  const source = dpoEnDemoSource(opts.input, format, opts.mediaDir)
  const digest = await fileDigest(opts.input).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new Error(`[prefpipe] ${opts.input}: no such file`, { cause: err })
    throw err
  })
  const name = opts.name ?? DPO_EN_DEMO.name
  return pipeline(
    source,
    validateRanking(),
    llamaFactory({
      out: opts.out,
      name,
      inputs: [{ file: basename(opts.input), ...digest }],
      options: { preset: 'dpo-en-demo', name, format },
    }),
    pipelineOptions,
  )
}
