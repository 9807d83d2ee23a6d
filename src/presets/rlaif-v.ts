import { basename, extname } from 'node:path'
import { rlaifVMapper } from '../formats/rlaif-v.js'
import { pipeline, type PipelineOptions, type PipelineResult, type Source } from '../pipeline/index.js'
import type { PreferenceSample } from '../record.js'
import { llamaFactory, type LlamaFactoryManifest } from '../sinks/llamafactory.js'
import { jsonSource } from '../sources/json.js'
import { parquetSource } from '../sources/parquet.js'
import { validateRanking } from '../transforms/validate-ranking.js'
import { fileDigest } from './rlhf-v.js'

/** Options of the `rlaif-v` preset. */
export interface RlaifVOptions {
  /** A local file in the schema of `openbmb/RLAIF-V-Dataset`: `.parquet` (as on the Hub), or `.json` / `.jsonl`. */
  input: string
  /** The output folder (created if missing; an existing `dataset_info.json` there is merged). */
  out: string
  /** Dataset name in `dataset_info.json`; files are `<name>_train.jsonl` ... Default `rlaif_v`. */
  name?: string
  /** For JSON inputs: the folder image paths are relative to (default: the data file's folder). */
  mediaDir?: string
}

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

/**
 * Prepare RLAIF-V (`openbmb/RLAIF-V-Dataset`) for LLaMA-Factory DPO from a local file: map each row to one
 * `<image>\n<question>` user turn with its chosen/rejected answers, validate every ranking row, write the folder.
 *
 * @example
 * const { result, report } = await prepareRlaifV({ input: 'RLAIF-V-Dataset_000.parquet', out: 'out/rlaif_v' })
 * console.log(result.datasets, report.rejected)
 */
export async function prepareRlaifV(opts: RlaifVOptions, pipelineOptions: PipelineOptions = {}): Promise<PipelineResult<LlamaFactoryManifest>> {
  const source = rlaifVSource(opts.input, opts.mediaDir)
  const digest = await fileDigest(opts.input).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new Error(`[prefpipe] ${opts.input}: no such file`, { cause: err })
    throw err
  })
  const name = opts.name ?? RLAIF_V.name
  return pipeline(
    source,
    validateRanking(),
    llamaFactory({
      out: opts.out,
      name,
      inputs: [{ file: basename(opts.input), ...digest }],
      options: { preset: 'rlaif-v', name },
    }),
    pipelineOptions,
  )
}
