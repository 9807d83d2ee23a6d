import { extname } from 'node:path'
import { alpacaMapper } from '../formats/alpaca.js'
import { autoMapper } from '../formats/detect.js'
import type { RowMapper } from '../formats/mapper.js'
import type { PipelineOptions, PipelineResult, Source } from '../pipeline/index.js'
import type { PreferenceSample } from '../record.js'
import { jsonSource } from '../sources/json.js'
import { parquetSource } from '../sources/parquet.js'
import { preparePreset, type PresetRunOptions, type PresetSpec, type PreparedFolder } from './prepare.js'

/** The row shapes the text preset reads. */
export type TextRankingFormat = 'auto' | 'sharegpt' | 'alpaca'

/** Options of the `dpo-en-demo` preset. */
/** Options of the `dpo-en-demo` preset; `format` is the row shape (`auto` default, `sharegpt`, `alpaca`). */
export type DpoEnDemoOptions = PresetRunOptions & { format?: TextRankingFormat }

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

/** How `dpo-en-demo` reads its data. */
export const DPO_EN_DEMO_SPEC: PresetSpec = {
  preset: 'dpo-en-demo',
  repo: DPO_EN_DEMO.repo,
  kind: 'text',
  name: DPO_EN_DEMO.name,
  hub: { split: DPO_EN_DEMO.split, config: DPO_EN_DEMO.config },
  source: (input, o) => dpoEnDemoSource(input, textFormat(o.format), o.mediaDir),
  hubMapping: (o) => {
    const mapRow = textMapper(textFormat(o.format))
    return mapRow ? { mapRow } : { columns: DPO_EN_DEMO.columns }
  },
}

function textFormat(format: string | undefined): TextRankingFormat {
  const f = format ?? 'auto'
  if (f !== 'auto' && f !== 'sharegpt' && f !== 'alpaca') throw new Error(`[prefpipe] dpo-en-demo: format must be auto, sharegpt or alpaca, not ${JSON.stringify(format)}`)
  return f
}

/**
 * Prepare a text-only preference file in LLaMA-Factory's `dpo_en_demo` shape (sharegpt ranking; alpaca ranking
 * too, see `format`) for LLaMA-Factory DPO: read, validate every ranking row, split, write the folder and report.
 *
 * @example
 * const { result, report } = await prepareDpoEnDemo({ input: 'LLaMA-Factory/data/dpo_en_demo.json', out: 'out/dpo' })
 * console.log(result.datasets.train.rows, report.rejected)
 */
export async function prepareDpoEnDemo(opts: DpoEnDemoOptions, pipelineOptions: PipelineOptions = {}): Promise<PipelineResult<PreparedFolder>> {
  textFormat(opts.format)
  return preparePreset(DPO_EN_DEMO_SPEC, opts, pipelineOptions)
}
