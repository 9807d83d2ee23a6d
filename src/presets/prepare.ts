import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { access, constants, stat } from 'node:fs/promises'
import { basename, dirname, extname, resolve } from 'node:path'
import type { RowMapper } from '../formats/mapper.js'
import { pipeline, type PipelineOptions, type PipelineResult, type Source, type Transform } from '../pipeline/index.js'
import type { PreferenceSample } from '../record.js'
import { llamaFactory, type JsonValue, type LlamaFactoryManifest } from '../sinks/llamafactory.js'
import { hubParquet, type HubParquetOptions, type HubParquetSource } from '../sources/hub/index.js'
import { parquetInfo } from '../sources/parquet.js'
import { writeReport, type WriteReportResult } from '../sinks/report.js'
import { trainingConfig, type WrittenTrainingConfig } from '../sinks/training-config.js'
import { processImages, type ProcessImagesOptions } from '../transforms/images/index.js'
import { resolveImagesOptions } from '../transforms/images/options.js'
import { imageJournal, imagesFingerprint } from '../transforms/images/reuse.js'
import { planSplit, split } from '../transforms/split.js'
import { validateRanking } from '../transforms/validate-ranking.js'

/** The defaults of the RLHF-V example config that the images stage and the YAML must agree on. */
export const IMAGE_DEFAULTS = { maxPixels: 262_144, cutoffLen: 2048 } as const

/** Options of {@link prepareDataset}: everything between a source and a finished folder. */
export interface PrepareOptions {
  /** The output folder (created if missing; an existing `dataset_info.json` there is merged). */
  out: string
  /** Dataset name: `<name>_train` / `<name>_eval` in `dataset_info.json`. */
  name: string
  /** Makes a fresh source (called twice when an exact eval count needs a planning pass). */
  source: () => Source<PreferenceSample>
  /** What was read, for the manifest (file digests, or the Hub repo/commit/files), given the run's source. Resolved before the run. */
  inputs: (source: Source<PreferenceSample>) => Promise<JsonValue>
  /** `true` for image datasets: resize/dedupe images and write `train_dpo.yaml` for Qwen-VL. */
  images: boolean
  /** Preset name, recorded in the manifest. */
  preset: string
  /** More options to record in the manifest (a preset's own, e.g. the row `format`). */
  extraOptions?: Record<string, JsonValue>
  /** Eval split: a fraction in (0, 1) (one pass), or an exact row count >= 1 (two passes). None by default. */
  eval?: number
  /** Seed of the split (default 0). */
  seed?: number
  /** Options of the images stage (`maxPixels`, `quality`, `model`, ...). `maxPixels` and `cutoffLen` also go into the YAML. */
  imageOptions?: ProcessImagesOptions
  /** The model the YAML trains (`qwen2-vl` default, `qwen2.5-vl`, `qwen3-vl`, or a Hub id). */
  model?: string
  /** Overrides of the YAML, theirs win: `key=value` strings (OmegaConf typing), or `{ lora_rank: 16 }`. */
  set?: readonly string[] | Record<string, unknown>
  /** A base YAML of yours: it wins over ours (except the data binding), and `set` wins over both. */
  baseYaml?: string
  /**
   * Folders of shards' parts (see `prepareShard`) whose processed images this run takes instead of making them
   * again: the merge of a sharded run. The output is the same as without them.
   */
  reuseFrom?: string[]
  /** The inputs (as in the manifest) the run must find: a merge refuses an input that changed since its shards ran. */
  expectInputs?: JsonValue
}

/** What a prepared folder holds: the sink's manifest, the YAML (image datasets) and the report files. */
export type PreparedFolder = LlamaFactoryManifest & { trainingConfig?: WrittenTrainingConfig; report: WriteReportResult }

/**
 * Read, validate, process images, split, write the LLaMA-Factory folder, `train_dpo.yaml` and the report: the
 * whole job behind every preset command.
 * @example
 * const { result } = await prepareDataset({
 *   out: 'out/rlhf_v', name: 'rlhf_v', preset: 'rlhf-v', images: true, eval: 0.05, seed: 42,
 *   source: () => parquetSource({ path: 'rlhf-v.parquet' }),
 *   inputs: async () => [{ file: 'rlhf-v.parquet' }],
 * })
 * console.log(result.trainingConfig?.path, result.report.html)
 */
export async function prepareDataset(opts: PrepareOptions, pipelineOptions: PipelineOptions = {}): Promise<PipelineResult<PreparedFolder>> {
  await checkOutputFolder(opts.out)
  const maxPixels = opts.imageOptions?.maxPixels ?? IMAGE_DEFAULTS.maxPixels
  const cutoffLen = typeof opts.imageOptions?.cutoffLen === 'number' ? opts.imageOptions.cutoffLen : IMAGE_DEFAULTS.cutoffLen
  const imageOptions = imageStageOptions(opts)
  // Images made by an earlier run into this folder (or by the shards being merged) are taken, verified, not made again.
  const reuse = opts.images ? await imageJournal({ root: opts.out, fingerprint: await imagesFingerprint(resolveImagesOptions(imageOptions)), readFrom: opts.reuseFrom ?? [] }) : undefined
  // The stages that drop rows, fresh per pass (a stage keeps state for one run).
  const rowStages = (): Transform<PreferenceSample, PreferenceSample>[] => (opts.images ? [validateRanking(), processImages({ repeatedImages: 'reference', ...imageOptions, reuse })] : [validateRanking()])
  // Build every stage first so a bad option fails before any work.
  const first = opts.source()
  const stages: unknown[] = [first, ...rowStages()]
  const yaml = opts.images
    ? trainingConfig({
        maxPixels,
        cutoffLen,
        ...(opts.model ? { model: opts.model } : {}),
        ...(opts.set !== undefined && Object.keys(opts.set).length > 0 ? { overrides: opts.set } : {}),
        ...(opts.baseYaml ? { baseYaml: opts.baseYaml } : {}),
      })
    : undefined
  if (opts.eval !== undefined && opts.eval > 0) {
    if (opts.eval < 1) stages.push(split({ eval: opts.eval, seed: opts.seed ?? 0 }))
    else {
      const plan = await planSplit(opts.source(), { eval: opts.eval, seed: opts.seed ?? 0, before: rowStages() }, { ...pipelineOptions, onEvent: undefined })
      stages.push(split({ plan }))
    }
  }
  const inputs = await opts.inputs(first)
  if (opts.expectInputs !== undefined && JSON.stringify(inputs) !== JSON.stringify(opts.expectInputs)) {
    throw new Error(`[prefpipe] the input is not the one the shards read: now ${JSON.stringify(inputs)}, then ${JSON.stringify(opts.expectInputs)}. Run the shards again on this input (or merge on the input they read). Nothing was written`)
  }
  stages.push(
    llamaFactory({
      out: opts.out,
      name: opts.name,
      manifest: 'defer',
      inputs,
      options: {
        preset: opts.preset,
        name: opts.name,
        eval: opts.eval ?? null,
        seed: opts.seed ?? 0,
        ...(opts.images ? { maxPixels, cutoffLen, model: opts.model ?? 'qwen2-vl' } : {}),
        ...opts.extraOptions,
      },
    }),
  )
  if (yaml) stages.push(yaml)
  const run = pipeline as unknown as (...args: unknown[]) => Promise<PipelineResult<LlamaFactoryManifest & { trainingConfig?: WrittenTrainingConfig }>>
  const { result, report, rejects } = await run(...stages, pipelineOptions)
  const written = await writeReport({ out: opts.out, run: report, manifest: result, visualTokens: { imageMaxPixels: maxPixels } })
  // Last: manifest.json says the folder is complete, the YAML and the report included.
  await result.commitManifest?.()
  const { commitManifest: _done, ...folder } = result
  return { result: { ...folder, report: written }, report, rejects }
}

/**
 * Refuse, before any work and without writing anything, an output folder the run could not write: `out` is an
 * existing file (not a folder), or it (or, when it does not exist yet, the nearest existing folder above it)
 * is not writable (a read-only file system, no permission). The message names the folder and says what to do.
 * @example
 * await checkOutputFolder('out/rlhf_v')
 */
export async function checkOutputFolder(out: string): Promise<void> {
  const abs = resolve(out)
  let dir = abs
  for (;;) {
    const st = await stat(dir).catch((err: NodeJS.ErrnoException) => {
      // ENOTDIR: a file further up; walking up finds it and says so.
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined
      throw outputError(`the output folder ${out} cannot be checked (${err.code ?? err.message}); give another --out`, err)
    })
    if (st) {
      if (!st.isDirectory()) {
        const what = dir === abs ? `--out ${out} is an existing file, not a folder` : `${dir} (above --out ${out}) is a file, not a folder`
        throw outputError(`${what}; give the path of a folder (prefpipe creates it), or move the file away. Nothing was written`)
      }
      break
    }
    const up = dirname(dir)
    if (up === dir) break
    dir = up
  }
  try {
    await access(dir, constants.W_OK | constants.X_OK)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    const why = code === 'EROFS' ? 'it is on a read-only file system' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code
    const where = dir === abs ? `the output folder ${out}` : `${dir} (where --out ${out} would be created)`
    throw outputError(`cannot write to ${where}: ${why} (${code}). Give another --out, or make it writable. Nothing was written`, err)
  }
}

/** An error of {@link checkOutputFolder}: `code` `PREFPIPE_OUTPUT` (its message already says what to do). */
function outputError(message: string, cause?: unknown): Error {
  const err = new Error(`[prefpipe] ${message}`, cause === undefined ? undefined : { cause }) as Error & { code: string }
  err.code = 'PREFPIPE_OUTPUT'
  return err
}

/**
 * Refuse a local input with no rows before anything is written: a parquet file whose footer says 0 rows, an
 * empty JSON/JSONL file. (The sources themselves just yield nothing for these; a preset run has nothing to do.)
 */
async function checkInputHasRows(input: string): Promise<void> {
  const ext = extname(input).toLowerCase()
  if (ext === '.parquet') {
    const info = await parquetInfo(input)
    if (info.numRows === 0) {
      throw new Error(`[prefpipe] ${input} has no rows (its footer says 0; columns: ${info.columns.join(', ')}): there is nothing to prepare. Check that it is the file you meant (an empty export?). Nothing was written`)
    }
  } else if (ext === '.json' || ext === '.jsonl') {
    const st = await stat(input).catch(() => undefined)
    if (st?.isFile() && st.size === 0) throw new Error(`[prefpipe] ${input} is empty (0 bytes): there is nothing to prepare. Nothing was written`)
  }
}

/** The images stage's options of a run: the model's grid, the user's options, the pixel and token budgets. */
export function imageStageOptions(opts: Pick<PrepareOptions, 'model' | 'imageOptions'>): ProcessImagesOptions {
  const maxPixels = opts.imageOptions?.maxPixels ?? IMAGE_DEFAULTS.maxPixels
  const cutoffLen = typeof opts.imageOptions?.cutoffLen === 'number' ? opts.imageOptions.cutoffLen : IMAGE_DEFAULTS.cutoffLen
  return { ...(opts.model ? { model: modelFamily(opts.model) } : {}), ...opts.imageOptions, maxPixels, cutoffLen }
}

/** The images stage's model family for a YAML model name (a preset or a Hub id). */
function modelFamily(model: string): 'qwen2-vl' | 'qwen2.5-vl' | 'qwen3-vl' {
  const m = model.toLowerCase()
  if (m.includes('qwen3')) return 'qwen3-vl'
  if (m.includes('qwen2.5')) return 'qwen2.5-vl'
  return 'qwen2-vl'
}

/** The manifest's record of a local input file. */
export function fileInput(path: string, digest: { sha256: string; size: number }): JsonValue {
  return [{ file: basename(path), ...digest }]
}

/** What a preset tells {@link preparePreset}: where its data lives and how its rows map into the record. */
export interface PresetSpec {
  /** The preset's name (`rlhf-v`), recorded in the manifest. */
  preset: string
  /** The Hub dataset (`owner/name`) read when no local input is given. */
  repo: string
  kind: 'image' | 'text'
  /** Default dataset name in `dataset_info.json`. */
  name: string
  /** The Hub split and config to pick files from. */
  hub?: { split?: string; config?: string }
  /** A source for a local file in the preset's schema. */
  source(input: string, o: { mediaDir?: string; format?: string }): Source<PreferenceSample>
  /** How the Hub parquet rows map: the sharegpt `columns`/`tags`, or a row mapper. */
  hubMapping(o: { format?: string }): Pick<HubParquetOptions, 'columns' | 'tags'> & { mapRow?: RowMapper }
}

/** Options of a preset run (`prefpipe <preset>`): where the data comes from plus {@link PrepareOptions}. */
export interface PresetRunOptions extends Omit<PrepareOptions, 'source' | 'inputs' | 'images' | 'preset' | 'name'> {
  /** A local file in the preset's schema. Without it, the preset's dataset is read from the Hugging Face Hub. */
  input?: string
  name?: string
  /** For JSON inputs: the folder image paths are relative to. */
  mediaDir?: string
  /** For text presets: the row shape (`auto`, `sharegpt`, `alpaca`). */
  format?: string
  /** Hub options (no local `input`): revision, file(s), token, endpoint, cache, offline, download progress. */
  hub?: Omit<HubParquetOptions, 'repo' | 'columns' | 'tags' | 'parquet' | 'split' | 'config'>
}

/**
 * Run a preset: its source (a local file, or the Hub), then {@link prepareDataset}.
 * @example
 * await preparePreset(RLHF_V_SPEC, { out: 'data/rlhf_v', eval: 0.05, seed: 42 }) // from the Hub
 */
export async function preparePreset(spec: PresetSpec, o: PresetRunOptions, pipelineOptions: PipelineOptions = {}): Promise<PipelineResult<PreparedFolder>> {
  const { input, mediaDir, format, hub, name, ...rest } = o
  const { source, inputs } = await presetSource(spec, o, pipelineOptions)
  const extraOptions = spec.kind === 'text' ? { format: format ?? 'auto' } : undefined
  return prepareDataset({ ...rest, name: name ?? spec.name, preset: spec.preset, images: spec.kind === 'image', source, inputs, ...(extraOptions ? { extraOptions } : {}) }, pipelineOptions)
}

/** A preset's source (its local `input`, or the Hub) and the manifest's record of what it read. */
export async function presetSource(
  spec: PresetSpec,
  o: Pick<PresetRunOptions, 'input' | 'mediaDir' | 'format' | 'hub'>,
  pipelineOptions: PipelineOptions = {},
): Promise<{ source: () => Source<PreferenceSample>; inputs: (first: Source<PreferenceSample>) => Promise<JsonValue> }> {
  const { input, mediaDir, format, hub } = o
  let source: () => Source<PreferenceSample>
  let inputs: (first: Source<PreferenceSample>) => Promise<JsonValue>
  if (input !== undefined) {
    await checkInputHasRows(input)
    source = () => spec.source(input, { ...(mediaDir ? { mediaDir } : {}), ...(format ? { format } : {}) })
    inputs = async () => {
      const digest = await fileDigest(input).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') throw new Error(`[prefpipe] ${input}: no such file`, { cause: err })
        throw err
      })
      return fileInput(input, digest)
    }
  } else {
    const { mapRow, ...mapping } = spec.hubMapping({ ...(format ? { format } : {}) })
    source = () => hubParquet({ repo: spec.repo, ...spec.hub, ...hub, ...mapping, ...(mapRow ? { parquet: { mapRow } } : {}) })
    inputs = async (first) => {
      const r = await (first as HubParquetSource).resolve(pipelineOptions.signal)
      return { source: 'hub', repo: r.repo, revision: r.revision, commit: r.commit, files: r.files.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256 })) }
    }
  }
  return { source, inputs }
}

/** sha256 and size of a file, streamed (for the manifest's record of inputs). */
export async function fileDigest(path: string): Promise<{ sha256: string; size: number }> {
  const { size } = await stat(path)
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return { sha256: hash.digest('hex'), size }
}
