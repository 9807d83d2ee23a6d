/**
 * Sharded runs: the same preset command run as shard `i` of `n` on many machines (a Kubernetes Indexed Job, a
 * Slurm array), each doing the expensive part (decoding, resizing, encoding and hashing the images of its rows)
 * into a part folder; then {@link mergeShards} writes the one output a single machine would have written,
 * byte for byte.
 *
 * The contract:
 * - Shard `i` of `n` reads whole parquet row groups, those with `index % n === i` (JSON rows by row index),
 *   validates its rows and processes their images into `<out>/shard-<i>-of-<n>/`: `images/ab/<sha256>.<ext>`
 *   and the journal `.prefpipe/images.jsonl` (what each source image became). It writes `part.json` last, after
 *   its stats: a part without it is not finished. A shard run again resumes (its images already made are kept).
 * - The merge checks that every shard `0..n-1` finished, with the same preset, options, input (same sha256 or
 *   Hub commit) and image fingerprint, then runs the whole job once more over the input, taking every image from
 *   the parts instead of making it: dedupe and near-duplicate groups across shards, the split, the rows, the
 *   rejects, `dataset_info.json`, the YAML and the report come out exactly as from a single run.
 */
import { readFile, readdir, rename, stat, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { named, pipeline, type PipelineOptions, type PipelineResult, type RunReport, type Shard, type StageContext, type StageReport } from '../pipeline/index.js'
import type { PreferenceSample } from '../record.js'
import type { JsonValue } from '../sinks/llamafactory.js'
import { processImages } from '../transforms/images/index.js'
import { resolveImagesOptions } from '../transforms/images/options.js'
import { imageJournal, imagesFingerprint } from '../transforms/images/reuse.js'
import { validateRanking } from '../transforms/validate-ranking.js'
import { checkOutputFolder, imageStageOptions, presetSource, type PresetRunOptions, type PresetSpec } from './prepare.js'

/** What a finished shard writes last into its folder (`part.json`). */
export interface ShardPart {
  prefpipePart: 1
  shard: Shard
  /** The preset that ran (`rlhf-v`). */
  preset: string
  /** The run's options, as the merge runs them again (no output folder, no token). */
  run: JsonValue
  /** What was read, as in the manifest (the file's sha256, or the Hub commit and files). */
  inputs: JsonValue
  /** The images' fingerprint (options and library versions); the merge takes images only under the same one. */
  fingerprint: string
  /** This shard's rows: read, kept by its own stages, rejected (by reason). */
  counts: { rowsIn: number; kept: number; rejected: number; rejectedByReason: Record<string, number>; imagesReused: number }
  /** Its stages' counters (no timings). */
  stages: Omit<StageReport, 'selfMs' | 'wallMs'>[]
}

/** The folder of shard `index` of `count` under a parts folder: `shard-00002-of-00008`. */
export function shardFolderName(shard: Shard): string {
  const pad = (n: number) => String(n).padStart(5, '0')
  return `shard-${pad(shard.index)}-of-${pad(shard.count)}`
}

/**
 * Parse a shard: `"i/n"` (0-based, `i < n`), or, with `count` alone, the index from the environment the
 * engines set: `JOB_COMPLETION_INDEX` (Kubernetes Indexed Job), else `SLURM_ARRAY_TASK_ID` minus
 * `SLURM_ARRAY_TASK_MIN` (Slurm array). Throws a clear error on anything else.
 * @example
 * parseShard('2/8') // { index: 2, count: 8 }
 * parseShard(undefined, 8, { JOB_COMPLETION_INDEX: '5' }) // { index: 5, count: 8 }
 */
export function parseShard(spec: string | undefined, count?: number, env: NodeJS.ProcessEnv = process.env): Shard {
  let index: number
  let n: number
  if (spec !== undefined) {
    const m = /^(\d+)\/(\d+)$/.exec(spec.trim())
    if (!m) throw new Error(`[prefpipe] --shard ${JSON.stringify(spec)}: give it as i/n, e.g. --shard 0/8 (0-based)`)
    index = Number(m[1])
    n = Number(m[2])
  } else {
    if (count === undefined) throw new Error('[prefpipe] give --shard i/n, or --shards n with the index in JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID')
    n = count
    const k8s = env.JOB_COMPLETION_INDEX
    const slurm = env.SLURM_ARRAY_TASK_ID
    if (k8s !== undefined && k8s !== '') index = Number(k8s)
    else if (slurm !== undefined && slurm !== '') index = Number(slurm) - Number(env.SLURM_ARRAY_TASK_MIN ?? 0)
    else throw new Error(`[prefpipe] --shards ${n}: no shard index in the environment (JOB_COMPLETION_INDEX for a Kubernetes Indexed Job, SLURM_ARRAY_TASK_ID for a Slurm array); give --shard i/${n} instead`)
  }
  if (!Number.isInteger(n) || n < 1) throw new Error(`[prefpipe] the shard count must be a whole number >= 1, got ${n}`)
  if (!Number.isInteger(index) || index < 0 || index >= n) throw new Error(`[prefpipe] the shard index must be 0..${n - 1}, got ${index}`)
  return { index, count: n }
}

/** Options of {@link prepareShard}: a preset run's options, the shard, and `out` = the parts folder. */
export interface ShardRunOptions extends PresetRunOptions {
  shard: Shard
}

/** What {@link prepareShard} resolves to. */
export interface ShardResult {
  /** The shard's folder (`<out>/shard-<i>-of-<n>`). */
  dir: string
  part: ShardPart
}

/**
 * Run shard `o.shard` of an image preset: read its row groups, validate, process their images into
 * `<o.out>/shard-<i>-of-<n>/`, then write `part.json`. Merge the parts with {@link mergeShards}.
 * @example
 * await prepareShard(RLHF_V_SPEC, { input: 'rlhf-v.parquet', out: '/shared/parts', shard: { index: 0, count: 4 } })
 */
export async function prepareShard(spec: PresetSpec, o: ShardRunOptions, pipelineOptions: PipelineOptions = {}): Promise<PipelineResult<ShardResult>> {
  if (spec.kind !== 'image') throw new Error(`[prefpipe] ${spec.preset} is a text dataset: it has no image work to share out; run it without --shard`)
  const dir = resolve(o.out, shardFolderName(o.shard))
  await checkOutputFolder(dir)
  const { source, inputs } = await presetSource(spec, o, pipelineOptions)
  const imageOptions = imageStageOptions(o)
  const fingerprint = await imagesFingerprint(resolveImagesOptions(imageOptions))
  const journal = await imageJournal({ root: dir, fingerprint, writeImages: true })
  const first = source()
  // The shard's rows go nowhere: later occurrences of an image need no bytes (memory stays flat).
  const images = processImages({ repeatedImages: 'reference', ...imageOptions, reuse: journal })
  const validate = validateRanking()
  const recorded = await inputs(first)
  // The shard's rows go no further: what the merge needs is in the journal and the image files.
  const drain = named('shard-part', async (input: AsyncIterable<PreferenceSample>, ctx: StageContext) => {
    let kept = 0
    for await (const _ of input) {
      kept++
      ctx.rejects.drain()
    }
    ctx.rejects.drain()
    return kept
  })
  const { result: kept, report, rejects } = await pipeline(first, validate, images, drain, { ...pipelineOptions, shard: o.shard })
  const part: ShardPart = {
    prefpipePart: 1,
    shard: o.shard,
    preset: spec.preset,
    run: runRecord(o),
    inputs: recorded,
    fingerprint,
    counts: { rowsIn: report.stages[0]!.out, kept, rejected: Object.values(report.rejected).reduce((a, b) => a + b, 0), rejectedByReason: sortKeys(report.rejected), imagesReused: journal.reused },
    stages: stagesOf(report),
  }
  const path = join(dir, 'part.json')
  await writeFile(`${path}.prefpipe-tmp-${process.pid}`, JSON.stringify(part, null, 2) + '\n')
  await rename(`${path}.prefpipe-tmp-${process.pid}`, path)
  return { result: { dir, part }, report, rejects }
}

/** A run's options as a shard records them for the merge: paths made absolute; no output folder, no token, no callbacks. */
function runRecord(o: ShardRunOptions): JsonValue {
  const abs = (p: string | undefined) => (p === undefined ? undefined : resolve(p))
  const hub = o.hub ? { revision: o.hub.revision, file: o.hub.file, offline: o.hub.offline } : undefined
  const { reuse: _ignored, ...imageOptions } = (o.imageOptions ?? {}) as Record<string, unknown>
  const record = {
    input: abs(o.input),
    name: o.name,
    mediaDir: abs(o.mediaDir),
    format: o.format,
    eval: o.eval,
    seed: o.seed,
    model: o.model,
    set: o.set,
    baseYaml: abs(o.baseYaml),
    imageOptions,
    hub,
  }
  return JSON.parse(JSON.stringify(record)) as JsonValue // drops the undefined ones
}

function stagesOf(report: RunReport): ShardPart['stages'] {
  return report.stages.map(({ selfMs: _s, wallMs: _w, ...rest }) => rest)
}

function sortKeys(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

/**
 * The part folders named by `paths`: each is a shard's folder (it has `part.json`, or is named
 * `shard-<i>-of-<n>`), or a parts folder holding `shard-*` folders. Sorted by shard.
 */
export async function findShardFolders(paths: readonly string[]): Promise<string[]> {
  const out: string[] = []
  for (const p of paths) {
    const abs = resolve(p)
    const st = await stat(abs).catch(() => undefined)
    if (!st?.isDirectory()) throw new Error(`[prefpipe] ${p}: no such folder (give the parts folder the shards wrote into, or shard folders)`)
    const isPart = (await stat(join(abs, 'part.json')).catch(() => undefined)) !== undefined || /^shard-\d+-of-\d+$/.test(abs.split('/').pop() ?? '')
    if (isPart) out.push(abs)
    else {
      const subs = (await readdir(abs, { withFileTypes: true })).filter((e) => e.isDirectory() && /^shard-\d+-of-\d+$/.test(e.name)).map((e) => join(abs, e.name))
      if (subs.length === 0) throw new Error(`[prefpipe] ${p} holds no shard folders (shard-<i>-of-<n>); give the --out the shards were run with`)
      out.push(...subs)
    }
  }
  return [...new Set(out)].sort()
}

/**
 * Read and check the parts of a sharded run: every shard `0..n-1` present once and finished (`part.json`), all
 * with the same preset, options, input and image fingerprint. Throws a message that says which shard to run.
 */
export async function readShardParts(dirs: readonly string[]): Promise<{ dir: string; part: ShardPart }[]> {
  const parts = await Promise.all(
    dirs.map(async (dir) => {
      const text = await readFile(join(dir, 'part.json'), 'utf8').catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') throw new Error(`[prefpipe] ${dir} has no part.json: that shard did not finish. Run it again (it resumes), then merge`)
        throw err
      })
      let part: ShardPart
      try {
        part = JSON.parse(text) as ShardPart
      } catch {
        throw new Error(`[prefpipe] ${join(dir, 'part.json')} is not valid JSON: run that shard again`)
      }
      if (part.prefpipePart !== 1 || typeof part.shard?.count !== 'number') throw new Error(`[prefpipe] ${join(dir, 'part.json')} is not a prefpipe shard part`)
      return { dir, part }
    }),
  )
  if (parts.length === 0) throw new Error('[prefpipe] no shard parts given')
  const first = parts[0]!.part
  const n = first.shard.count
  for (const { dir, part } of parts) {
    const differs = (what: string, a: unknown, b: unknown) => {
      if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`[prefpipe] the shards do not belong to one run: ${dir} has another ${what} (${JSON.stringify(a)} vs ${JSON.stringify(b)}). Merge parts of one run only`)
    }
    differs('shard count', part.shard.count, n)
    differs('preset', part.preset, first.preset)
    differs('set of options', part.run, first.run)
    differs('input', part.inputs, first.inputs)
    differs('image fingerprint (options or library versions)', part.fingerprint, first.fingerprint)
  }
  const seen = new Map<number, string>()
  for (const { dir, part } of parts) {
    const other = seen.get(part.shard.index)
    if (other !== undefined) throw new Error(`[prefpipe] shard ${part.shard.index} of ${n} is given twice (${other}, ${dir})`)
    seen.set(part.shard.index, dir)
  }
  const missing = Array.from({ length: n }, (_, i) => i).filter((i) => !seen.has(i))
  if (missing.length > 0) throw new Error(`[prefpipe] shard${missing.length > 1 ? 's' : ''} ${missing.join(', ')} of ${n} ${missing.length > 1 ? 'are' : 'is'} missing or unfinished: run ${missing.length > 1 ? 'them' : 'it'} (--shard ${missing[0]}/${n}), then merge`)
  return parts.sort((a, b) => a.part.shard.index - b.part.shard.index)
}
