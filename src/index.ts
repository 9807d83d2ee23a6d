/**
 * prefpipe: preference (DPO) datasets to LLaMA-Factory training folders.
 *
 * @example
 * import { pipeline, parquetSource, validateRanking, llamaFactory } from 'prefpipe'
 * const { result, report } = await pipeline(
 *   parquetSource({ path: 'rlhf-v.parquet' }),
 *   validateRanking(),
 *   llamaFactory({ out: 'data/rlhf_v', name: 'rlhf_v' }),
 * )
 * @packageDocumentation
 */

// The pipeline core
export { pipeline, named, after, stageName, PipelineError, abortError, isAbortError, quietLogger } from './pipeline/index.js'
export type {
  After,
  Logger,
  PipelineEvent,
  PipelineOptions,
  PipelineResult,
  ProgressUpdate,
  RejectQueue,
  RunReport,
  Shard,
  Sink,
  Source,
  StageContext,
  StageReport,
  StageStats,
  Transform,
} from './pipeline/index.js'

// The record
export type { ImageRef, PreferenceSample, Reject, Role, Turn } from './record.js'

// Formats
export {
  DEFAULT_COLUMNS,
  DEFAULT_TAGS,
  resolveMapping,
  sampleToSharegpt,
  sharegptRowSchema,
  sharegptToSample,
} from './formats/sharegpt.js'
export type { MapResult, RawImage, SharegptColumns, SharegptMapping, SharegptRankingRow, SharegptTags } from './formats/sharegpt.js'

// Sources
export { parquetSource, parquetInfo, openFileBuffer } from './sources/parquet.js'
export type { ClosableAsyncBuffer, ParquetInfo, ParquetSourceOptions } from './sources/parquet.js'
export { jsonSource } from './sources/json.js'
export type { JsonSourceOptions } from './sources/json.js'

// Transforms
export {
  validateRanking,
  RANKING_REJECT_REASONS,
  FORBIDDEN_SPECIAL_TOKENS,
  DEFAULT_PLACEHOLDERS,
  placeholdersFromEnv,
} from './transforms/validate-ranking.js'
export type { Placeholders, RankingRejectReason, ValidateRankingOptions } from './transforms/validate-ranking.js'

// Sinks
export { llamaFactory, detectImageFormat, mergeDatasetInfo } from './sinks/llamafactory.js'
export type {
  FileDigest,
  ImageFormat,
  JsonValue,
  LlamaFactoryCounts,
  LlamaFactoryDataset,
  LlamaFactoryManifest,
  LlamaFactoryOptions,
  ManifestJson,
} from './sinks/llamafactory.js'

// Presets
export { prepareRlhfV, fileSource, fileDigest, RLHF_V } from './presets/rlhf-v.js'
export type { RlhfVOptions } from './presets/rlhf-v.js'
