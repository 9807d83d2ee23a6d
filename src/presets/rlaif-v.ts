import { extname } from 'node:path'
import { rlaifVMapper } from '../formats/rlaif-v.js'
import type { PipelineOptions, PipelineResult, Source } from '../pipeline/index.js'
import type { PreferenceSample } from '../record.js'
import { jsonSource } from '../sources/json.js'
import { parquetSource } from '../sources/parquet.js'
import { preparePreset, type PresetRunOptions, type PresetSpec, type PreparedFolder } from './prepare.js'

/** Options of the `rlaif-v` preset. */
export type RlaifVOptions = PresetRunOptions

/**
 * The RLAIF-V defaults. The Hub dataset is parquet with one `image` per row and a plain-string `question`,
 * `chosen`, `rejected` (not sharegpt): see `rlaifVToSample` for the mapping.
 */
export const RLAIF_V = {
  repo: 'openbmb/RLAIF-V-Dataset',
  name: 'rlaif_v',
  split: 'train',
} as const

/**
 * A source for a local RLAIF-V-schema file, chosen by its extension (parquet reads only the columns the mapper
 * uses: `image`, `question`, `chosen`, `rejected` and the meta columns).
 *
 * @example
 * const source = rlaifVSource('RLAIF-V-Dataset_000.parquet')
 */
export function rlaifVSource(input: string, mediaDir?: string): Source<PreferenceSample> {
  const ext = extname(input).toLowerCase()
  if (ext === '.parquet') return parquetSource({ path: input, mapRow: rlaifVMapper() })
  if (ext === '.json' || ext === '.jsonl') return jsonSource({ path: input, mapRow: rlaifVMapper(), ...(mediaDir ? { mediaDir } : {}) })
  throw new Error(`[prefpipe] ${input}: cannot tell the format from "${ext || 'no extension'}"; give a .parquet, .json or .jsonl file`)
}

/** How `rlaif-v` reads its data. */
export const RLAIF_V_SPEC: PresetSpec = {
  preset: 'rlaif-v',
  repo: RLAIF_V.repo,
  kind: 'image',
  name: RLAIF_V.name,
  hub: { split: RLAIF_V.split },
  source: (input, o) => rlaifVSource(input, o.mediaDir),
  hubMapping: () => ({ mapRow: rlaifVMapper() }),
}

/**
 * Prepare RLAIF-V (openbmb/RLAIF-V-Dataset) for LLaMA-Factory DPO: a local `input` file in its schema or the Hub,
 * validated, images processed, split, written with `train_dpo.yaml` and the report.
 *
 * @example
 * const { result, report } = await prepareRlaifV({ input: 'RLAIF-V-Dataset_000.parquet', out: 'out/rlaif_v' })
 * console.log(result.datasets.train.rows, report.rejected)
 */
export function prepareRlaifV(opts: RlaifVOptions, pipelineOptions: PipelineOptions = {}): Promise<PipelineResult<PreparedFolder>> {
  return preparePreset(RLAIF_V_SPEC, opts, pipelineOptions)
}
