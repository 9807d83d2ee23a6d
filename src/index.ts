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
export type { ImageRef, ImageSource, PreferenceSample, Reject, Role, Turn } from './record.js'

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

// Row mappers for other shapes
export { rowMapper, sharegptMapper, toImageRefs } from './formats/mapper.js'
export type { RowMapper, RowMapperColumns } from './formats/mapper.js'
export { rlaifVToSample, rlaifVMapper, RLAIF_V_COLUMNS } from './formats/rlaif-v.js'
export type { RlaifVMapOptions } from './formats/rlaif-v.js'
export { alpacaToSample, alpacaMapper, DEFAULT_ALPACA_COLUMNS } from './formats/alpaca.js'
export type { AlpacaColumns, AlpacaMapping } from './formats/alpaca.js'
export { detectFormat, mapperFor, autoMapper, RANKING_FORMATS } from './formats/detect.js'
export type { AutoMapper, RankingFormat } from './formats/detect.js'

// Sources
export * from './sources/hub/index.js'
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

export * from './transforms/images/index.js'
export { split, planSplit, splitPlanner, SplitPlan, chooseGroups, seededUnit } from './transforms/split.js'
export type { EvalSize, PlanSplitOptions, SplitOptions, SplitSide, StratumPlan } from './transforms/split.js'

// Sinks
export { llamaFactory, detectImageFormat, mergeDatasetInfo, removeStaleTemporaries, NoRowsKeptError } from './sinks/llamafactory.js'
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

export {
  trainingConfig,
  buildTrainingConfig,
  writeTrainingConfig,
  writeTrainingConfigFor,
  resolveModel,
  templateForModel,
  MODEL_PRESETS,
  DEFAULT_MODEL,
  DPO_DEFAULTS,
  CONFIG_LAYOUT,
} from './sinks/training-config.js'
export type { ModelPreset, ModelPresetName, TrainingConfig, TrainingConfigOptions, WrittenTrainingConfig } from './sinks/training-config.js'
export { writeReport, formatSummaryTable, qwen2VlVisualTokens, REJECT_REASON_DESCRIPTIONS } from './sinks/report.js'
export type {
  Distribution,
  DistributionStats,
  HistogramBucket,
  ReportJson,
  ReportReason,
  ReportSplit,
  ReportStage,
  ReportTimings,
  SummaryTableOptions,
  VisualTokenOptions,
  WriteReportOptions,
  WriteReportResult,
} from './sinks/report.js'

// LLaMA-Factory's config keys
export { checkTrainKeys, warnTrainKeys, isKnownTrainKey, closestTrainKey, formatUnusedKeysError, trainKeyField, TRAIN_ARGS } from './llamafactory/train-args.js'
export type { KeyProblem, KeyWarning, TrainArgField } from './llamafactory/train-args.js'
export { parseSetArg, parseSetArgs, parseOmegaConfYaml } from './llamafactory/omegaconf.js'
export type { ConfigValue } from './llamafactory/omegaconf.js'

// The training launch
export * from './launch/index.js'

// Presets and inspection
export { prepareDataset, preparePreset, fileDigest, fileInput, IMAGE_DEFAULTS } from './presets/prepare.js'
export type { PrepareOptions, PresetRunOptions, PresetSpec, PreparedFolder } from './presets/prepare.js'
export { prepareRlhfV, fileSource, RLHF_V, RLHF_V_SPEC } from './presets/rlhf-v.js'
export type { RlhfVOptions } from './presets/rlhf-v.js'
export { prepareRlaifV, rlaifVSource, RLAIF_V, RLAIF_V_SPEC } from './presets/rlaif-v.js'
export type { RlaifVOptions } from './presets/rlaif-v.js'
export { prepareDpoEnDemo, dpoEnDemoSource, DPO_EN_DEMO, DPO_EN_DEMO_SPEC } from './presets/dpo-en-demo.js'
export type { DpoEnDemoOptions, TextRankingFormat } from './presets/dpo-en-demo.js'
export { PRESETS, PRESET_NAMES, getPreset } from './presets/index.js'
export type { Preset, PresetName } from './presets/index.js'
export { prepareShard, parseShard, shardFolderName, findShardFolders, readShardParts } from './presets/shard.js'
export type { ShardPart, ShardResult, ShardRunOptions } from './presets/shard.js'
export { mergeShards } from './presets/merge.js'
export type { MergeShardsOptions } from './presets/merge.js'
export { inspectFile, imageSummary, parquetType } from './inspect.js'
export type { InspectColumn, InspectImage, InspectOptions, InspectResult, InspectRow, InspectSample } from './inspect.js'

// Config files (`prefpipe run prefpipe.yaml`)
export { configSchema, isImageConfig, CONFIG_KEYS, SOURCE_FORMATS } from './config/schema.js'
export type { PrefpipeConfig, PrefpipeConfigInput } from './config/schema.js'
export { loadConfig, parseConfig, parseConfigValue, withDefaults, formatConfig, ConfigError } from './config/load.js'
export type { ConfigIssue, LoadedConfig, ParseConfigOptions } from './config/load.js'
export { runConfig, prepareFromConfig, configToPrepare, resolveConfigPaths, launchOptionsFromConfig } from './config/run.js'
export type { ConfigRunResult } from './config/run.js'
