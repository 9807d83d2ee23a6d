import { extname } from 'node:path'
import type { PipelineOptions, PipelineResult, Source } from '../pipeline/index.js'
import type { PreferenceSample } from '../record.js'
import { jsonSource } from '../sources/json.js'
import { parquetSource } from '../sources/parquet.js'
import { preparePreset, type PresetRunOptions, type PresetSpec, type PreparedFolder } from './prepare.js'

export { fileDigest } from './prepare.js'

/** Options of the `rlhf-v` preset: a local `input` file in its schema, or (without one) the Hub. */
export type RlhfVOptions = PresetRunOptions

/** The RLHF-V defaults: sharegpt ranking rows in `conversations/chosen/rejected/images`, `from/value/human/gpt`. */
export const RLHF_V = {
  repo: 'llamafactory/RLHF-V',
  name: 'rlhf_v',
  columns: { messages: 'conversations', chosen: 'chosen', rejected: 'rejected', images: 'images' },
} as const

/** A source for a local file, chosen by its extension. */
export function fileSource(input: string, mediaDir?: string): Source<PreferenceSample> {
  const ext = extname(input).toLowerCase()
  if (ext === '.parquet') return parquetSource({ path: input, columns: RLHF_V.columns })
  if (ext === '.json' || ext === '.jsonl') return jsonSource({ path: input, columns: RLHF_V.columns, ...(mediaDir ? { mediaDir } : {}) })
  throw new Error(`[prefpipe] ${input}: cannot tell the format from "${ext || 'no extension'}"; give a .parquet, .json or .jsonl file`)
}

/** How `rlhf-v` reads its data. */
export const RLHF_V_SPEC: PresetSpec = {
  preset: 'rlhf-v',
  repo: RLHF_V.repo,
  kind: 'image',
  name: RLHF_V.name,
  source: (input, o) => fileSource(input, o.mediaDir),
  hubMapping: () => ({ columns: RLHF_V.columns }),
}

/**
 * Prepare RLHF-V for LLaMA-Factory DPO: read (the Hub by default, or a local `input` file), validate every
 * ranking row, resize and dedupe the images for Qwen2-VL, split, write the folder, `train_dpo.yaml` and the report.
 * @example
 * const { result, report } = await prepareRlhfV({ input: 'fixtures/rlhf-v-sample.parquet', out: 'out/rlhf_v', eval: 0.1, seed: 42 })
 * console.log(result.datasets.train.rows, result.trainingConfig?.path, report.rejected)
 */
export function prepareRlhfV(opts: RlhfVOptions, pipelineOptions: PipelineOptions = {}): Promise<PipelineResult<PreparedFolder>> {
  return preparePreset(RLHF_V_SPEC, opts, pipelineOptions)
}
