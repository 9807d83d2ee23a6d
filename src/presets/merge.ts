import type { PipelineOptions, PipelineResult } from '../pipeline/index.js'
import { getPreset, type PresetRunOptions } from './index.js'
import type { PreparedFolder } from './prepare.js'
import { findShardFolders, readShardParts } from './shard.js'

/** Options of {@link mergeShards}. */
export interface MergeShardsOptions {
  /** The parts folder the shards were run with (`--out`), or the shard folders themselves. */
  parts: string[]
  /** The output folder: the same folder a single run writes. */
  out: string
}

/**
 * Merge the parts of a sharded run (see {@link prepareShard}) into the output folder a single run would have
 * written, byte for byte: checks that every shard finished with the same preset, options, input and image
 * fingerprint, then runs the job once over the input with every processed image taken from the parts (verified
 * by sha256), so the near-duplicate groups, the split, the rows, the rejects, `dataset_info.json`, the YAML and
 * the report are the single run's.
 * @example
 * const { result } = await mergeShards({ parts: ['/shared/parts'], out: 'data/rlhf_v' })
 * console.log(result.datasets.train.rows, result.trainingConfig?.path)
 */
export async function mergeShards(o: MergeShardsOptions, pipelineOptions: PipelineOptions = {}): Promise<PipelineResult<PreparedFolder>> {
  const dirs = await findShardFolders(o.parts)
  const parts = await readShardParts(dirs)
  const { part } = parts[0]!
  const preset = getPreset(part.preset)
  const run = part.run as unknown as Omit<PresetRunOptions, 'out'>
  return preset.prepare({ ...run, out: o.out, reuseFrom: parts.map((p) => p.dir), expectInputs: part.inputs }, pipelineOptions)
}
