import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { basename, extname } from 'node:path'
import { pipeline, type PipelineOptions, type PipelineResult, type Source } from '../pipeline/index.js'
import type { PreferenceSample } from '../record.js'
import { llamaFactory, type LlamaFactoryManifest } from '../sinks/llamafactory.js'
import { jsonSource } from '../sources/json.js'
import { parquetSource } from '../sources/parquet.js'
import { validateRanking } from '../transforms/validate-ranking.js'

/** Options of the `rlhf-v` preset. */
export interface RlhfVOptions {
  /** A local RLHF-V-schema file: `.parquet`, or LLaMA-Factory-style `.json` / `.jsonl`. */
  input: string
  /** The output folder (created if missing; an existing `dataset_info.json` there is merged). */
  out: string
  /** Dataset name in `dataset_info.json`; files are `<name>_train.jsonl` ... Default `rlhf_v`. */
  name?: string
  /** For JSON inputs: the folder image paths are relative to (default: the data file's folder). */
  mediaDir?: string
}

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

/** sha256 and size of a file, streamed (for the manifest's record of inputs). */
export async function fileDigest(path: string): Promise<{ sha256: string; size: number }> {
  const { size } = await stat(path)
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return { sha256: hash.digest('hex'), size }
}

/**
 * Prepare RLHF-V for LLaMA-Factory DPO from a local file: read, validate every ranking row, write the folder.
 * @example
 * const { result, report } = await prepareRlhfV({ input: 'fixtures/rlhf-v-sample.parquet', out: 'out/rlhf_v' })
 * console.log(result.datasets, report.rejected)
 */
export async function prepareRlhfV(opts: RlhfVOptions, pipelineOptions: PipelineOptions = {}): Promise<PipelineResult<LlamaFactoryManifest>> {
  const source = fileSource(opts.input, opts.mediaDir)
  const digest = await fileDigest(opts.input).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new Error(`[prefpipe] ${opts.input}: no such file`, { cause: err })
    throw err
  })
  return pipeline(
    source,
    validateRanking(),
    llamaFactory({
      out: opts.out,
      name: opts.name ?? RLHF_V.name,
      inputs: [{ file: basename(opts.input), ...digest }],
      options: { preset: 'rlhf-v', name: opts.name ?? RLHF_V.name },
    }),
    pipelineOptions,
  )
}
