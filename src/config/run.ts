/**
 * Running a config: the preset (or a source of your own) through `preparePreset`, then, with `launch:`, the
 * training through `launchTraining`.
 */
import { extname, isAbsolute, resolve } from 'node:path'
import { alpacaMapper } from '../formats/alpaca.js'
import { autoMapper } from '../formats/detect.js'
import type { RowMapper } from '../formats/mapper.js'
import { rlaifVMapper } from '../formats/rlaif-v.js'
import type { SharegptMapping } from '../formats/sharegpt.js'
import { launchTraining, type LaunchOptions, type LaunchResult } from '../launch/launch.js'
import type { PipelineOptions, PipelineResult } from '../pipeline/index.js'
import { PRESETS, type PresetName } from '../presets/index.js'
import { preparePreset, type PresetRunOptions, type PresetSpec, type PreparedFolder } from '../presets/prepare.js'
import { DPO_EN_DEMO_SPEC } from '../presets/dpo-en-demo.js'
import { RLAIF_V_SPEC } from '../presets/rlaif-v.js'
import { RLHF_V_SPEC } from '../presets/rlhf-v.js'
import { jsonSource } from '../sources/json.js'
import { parquetSource } from '../sources/parquet.js'
import type { LoadedConfig } from './load.js'
import { isImageConfig, type PrefpipeConfig } from './schema.js'

const abs = (base: string, p: string) => (isAbsolute(p) ? p : resolve(base, p))

/**
 * The config with every relative path made absolute against `baseDir` (the config file's folder): `input`,
 * `mediaDir`, `source.parquet|json|mediaDir`, `out`, `baseYaml`, and `launch.cli` when it is a path.
 * @example
 * resolveConfigPaths(config, '/work/project').out // '/work/project/out/rlhf_v'
 */
export function resolveConfigPaths(config: PrefpipeConfig, baseDir: string): PrefpipeConfig {
  const c = structuredClone(config)
  c.out = abs(baseDir, c.out)
  if (c.input !== undefined) c.input = abs(baseDir, c.input)
  if (c.mediaDir !== undefined) c.mediaDir = abs(baseDir, c.mediaDir)
  if (c.baseYaml !== undefined) c.baseYaml = abs(baseDir, c.baseYaml)
  if (c.source) {
    if (c.source.parquet !== undefined) c.source.parquet = abs(baseDir, c.source.parquet)
    if (c.source.json !== undefined) c.source.json = abs(baseDir, c.source.json)
    if (c.source.mediaDir !== undefined) c.source.mediaDir = abs(baseDir, c.source.mediaDir)
  }
  if (typeof c.launch === 'object' && c.launch.cli !== undefined && /[/\\]/.test(c.launch.cli)) c.launch.cli = abs(baseDir, c.launch.cli)
  return c
}

/** How a `source:` maps its rows: sharegpt `columns`/`tags`, or a row mapper. */
function rowMapping(source: NonNullable<PrefpipeConfig['source']>): SharegptMapping & { mapRow?: RowMapper } {
  const format = source.format ?? 'sharegpt'
  if (format === 'alpaca') return { mapRow: alpacaMapper(source.columns ? { columns: source.columns } : {}) }
  if (format === 'rlaif-v') return { mapRow: rlaifVMapper() }
  if (format === 'auto') return { mapRow: autoMapper() }
  return { ...(source.columns ? { columns: source.columns } : {}), ...(source.tags ? { tags: source.tags } : {}) }
}

/** A preset spec for a `source:` of the config (recorded in the manifest as preset `custom`). */
function sourceSpec(c: PrefpipeConfig): PresetSpec {
  const source = c.source!
  return {
    preset: 'custom',
    repo: source.hub?.repo ?? '',
    kind: isImageConfig(c) ? 'image' : 'text',
    name: c.name,
    ...(source.hub?.split !== undefined || source.hub?.config !== undefined
      ? { hub: { ...(source.hub.split !== undefined ? { split: source.hub.split } : {}), ...(source.hub.config !== undefined ? { config: source.hub.config } : {}) } }
      : {}),
    source(input, o) {
      const how = rowMapping(source)
      const ext = extname(input).toLowerCase()
      if (source.parquet !== undefined || ext === '.parquet') return parquetSource({ path: input, ...how })
      return jsonSource({ path: input, ...how, ...(o.mediaDir ? { mediaDir: o.mediaDir } : {}) })
    },
    hubMapping: () => rowMapping(source),
  }
}

/**
 * What a config runs: the preset spec (a preset's, or one made for its `source:`) and the options of
 * `preparePreset`, with paths resolved against `baseDir`.
 * @example
 * const { spec, options } = configToPrepare(config, process.cwd())
 * await preparePreset(spec, options)
 */
export function configToPrepare(config: PrefpipeConfig, baseDir: string): { spec: PresetSpec; options: PresetRunOptions } {
  const c = resolveConfigPaths(config, baseDir)
  const image = isImageConfig(c)
  const common: PresetRunOptions = {
    out: c.out,
    name: c.name,
    seed: c.seed,
    ...(c.eval !== undefined ? { eval: c.eval } : {}),
    ...(image && c.images ? { imageOptions: { ...c.images } } : {}),
    ...(image && c.model !== undefined ? { model: c.model } : {}),
    ...(c.train !== undefined ? { set: c.train } : {}),
    ...(c.baseYaml !== undefined ? { baseYaml: c.baseYaml } : {}),
  }
  if (c.preset !== undefined) {
    const preset = PRESETS[c.preset as PresetName]
    const spec = SPECS[preset.name]
    const hub = c.hub
    return {
      spec,
      options: {
        ...common,
        ...(c.input !== undefined ? { input: c.input } : {}),
        ...(c.mediaDir !== undefined ? { mediaDir: c.mediaDir } : {}),
        ...(c.format !== undefined ? { format: c.format } : {}),
        ...(hub ? { hub: { ...(hub.revision ? { revision: hub.revision } : {}), ...(hub.file ? { file: hub.file } : {}), ...(hub.offline ? { offline: true } : {}) } } : {}),
      },
    }
  }
  const s = c.source!
  const input = s.parquet ?? s.json
  return {
    spec: sourceSpec(c),
    options: {
      ...common,
      ...(input !== undefined ? { input } : {}),
      ...(s.mediaDir !== undefined ? { mediaDir: s.mediaDir } : {}),
      format: s.format ?? 'sharegpt',
      ...(s.hub
        ? { hub: { ...(s.hub.revision ? { revision: s.hub.revision } : {}), ...(s.hub.file ? { file: s.hub.file } : {}), ...(s.hub.offline ? { offline: true } : {}) } }
        : {}),
    },
  }
}

/** The preset specs, by name (each preset's `prepare` goes through its spec). */
const SPECS: Record<PresetName, PresetSpec> = { 'rlhf-v': RLHF_V_SPEC, 'rlaif-v': RLAIF_V_SPEC, 'dpo-en-demo': DPO_EN_DEMO_SPEC }

/**
 * Prepare the folder a config describes (read, validate, images, split, folder, YAML, report).
 * @example
 * const loaded = await loadConfig('prefpipe.yaml')
 * const { result } = await prepareFromConfig(loaded)
 * console.log(result.out, result.trainingConfig?.path)
 */
export function prepareFromConfig(loaded: LoadedConfig, pipelineOptions: PipelineOptions = {}): Promise<PipelineResult<PreparedFolder>> {
  const { spec, options } = configToPrepare(loaded.config, loaded.baseDir)
  return preparePreset(spec, options, pipelineOptions)
}

/**
 * The config's `launch:` as options of `launchTraining` (without `config`), or `undefined` when it does not
 * launch. `grace` is in seconds, as on the command line.
 * @example
 * launchOptionsFromConfig({ ...config, launch: { gpus: '0-7', dryRun: true } }) // { gpus: '0-7', dryRun: true }
 */
export function launchOptionsFromConfig(config: PrefpipeConfig, baseDir = process.cwd()): Omit<LaunchOptions, 'config'> | undefined {
  const l = resolveConfigPaths(config, baseDir).launch
  if (l === undefined || l === false) return undefined
  if (l === true) return {}
  const { grace, ...rest } = l
  return { ...rest, ...(grace !== undefined ? { graceMs: Math.round(grace * 1000) } : {}) }
}

/** What {@link runConfig} did. */
export interface ConfigRunResult {
  prepared: PipelineResult<PreparedFolder>
  /** The launch, when the config has `launch:` (and the folder got a training config). */
  launch?: LaunchResult
}

/**
 * A config, start to end, as `prefpipe run` does it: prepare the folder, then (with `launch:`) train.
 * @example
 * const { prepared, launch } = await runConfig(await loadConfig('prefpipe.yaml', { set: ['launch.dryRun=true'] }))
 * console.log(prepared.result.counts.kept, launch?.command)
 */
export async function runConfig(loaded: LoadedConfig, pipelineOptions: PipelineOptions = {}): Promise<ConfigRunResult> {
  const prepared = await prepareFromConfig(loaded, pipelineOptions)
  const launch = launchOptionsFromConfig(loaded.config, loaded.baseDir)
  const yaml = prepared.result.trainingConfig?.path
  if (!launch || !yaml) return { prepared }
  return { prepared, launch: await launchTraining({ ...launch, config: yaml, ...(pipelineOptions.signal ? { signal: pipelineOptions.signal } : {}) }) }
}
