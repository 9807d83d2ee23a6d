import { Command, InvalidArgumentError, Option } from 'commander'
import { relative, resolve, sep } from 'node:path'
import { isAbortError, type PipelineEvent, type PipelineOptions, type PipelineResult } from '../../pipeline/index.js'
import { PRESETS, type Preset } from '../../presets/index.js'
import type { PresetRunOptions, PreparedFolder } from '../../presets/prepare.js'
import { prepareShard, parseShard } from '../../presets/shard.js'
import { NoRowsKeptError } from '../../sinks/llamafactory.js'
import { formatSummaryTable } from '../../sinks/report.js'
import { byteProgress } from '../byte-progress.js'
import { cliLogger, globalFlags, type GlobalFlags } from '../output.js'
import { progressBar } from '../progress.js'
import { addLaunchOptions, launchFromCli, type LaunchCliOptions } from './launch.js'

interface PrepareCliOptions extends LaunchCliOptions {
  input?: string
  out: string
  name?: string
  mediaDir?: string
  format?: string
  eval?: number
  seed: number
  model?: string
  maxPixels?: number
  quality?: number
  resizeKernel?: 'cubic' | 'lanczos3'
  optimiseCoding?: boolean
  cutoffLen?: number
  nearDuplicates?: 'group' | 'drop'
  set: string[]
  baseYaml?: string
  revision?: string
  file?: string[]
  offline?: boolean
  launch?: boolean
  json?: boolean
  progress: boolean
  shard?: string
  shards?: number
}

const number = (what: string, check: (n: number) => boolean) => (v: string) => {
  const n = Number(v)
  if (!Number.isFinite(n) || !check(n)) throw new InvalidArgumentError(`${what}, got "${v}"`)
  return n
}
const collect = (v: string, prev: string[] = []) => [...prev, v]

/**
 * Register one command per preset (`prefpipe rlhf-v`, `prefpipe rlaif-v`, `prefpipe dpo-en-demo`): read the
 * preset's data (a local `--input`, or the Hub), validate, process images, split, write the folder, the YAML and
 * the report, print the summary, and optionally launch the training.
 * @example
 * registerPresetCommands(program) // in src/cli/main.ts
 */
export function registerPresetCommands(program: Command): void {
  for (const preset of Object.values(PRESETS)) registerPreset(program, preset)
}

function registerPreset(program: Command, preset: Preset): void {
  const image = preset.kind === 'image'
  const cmd = program
    .command(preset.name)
    .description(preset.description)
    .requiredOption('--out <dir>', 'output folder (an existing dataset_info.json there is merged)')
    .option('--input <file>', `a local file in the preset's schema (${preset.defaults.formats.join(', ')}); default: ${preset.repo} from the Hub`)
    .option('--name <name>', 'dataset name in dataset_info.json', preset.defaults.name)
    .option('--eval <size>', 'eval split: a fraction in (0, 1), or a row count >= 1 (images never on both sides)', number('a fraction in (0, 1) or a count >= 1', (n) => n > 0 && (n < 1 || Number.isInteger(n))))
    .option('--seed <n>', 'seed of the split', number('an integer', Number.isInteger), 0)
    .option('--media-dir <dir>', 'for .json/.jsonl input: the folder image paths are relative to')
    .option('--revision <rev>', 'Hub revision: branch, tag, commit sha or refs/convert/parquet (default main)')
    .option('--file <path>', 'Hub file(s) to read, in order (repeatable; default: the parquet data files)', collect)
    .option('--offline', 'use only the Hugging Face cache (as HF_HUB_OFFLINE=1)')
    .option('--json', 'print the summary as JSON (report.json) instead of a table')
    .addOption(new Option('--no-progress', 'no progress bars'))
  if (preset.kind === 'text') cmd.addOption(new Option('--format <shape>', 'row shape').choices(['auto', 'sharegpt', 'alpaca']).default('auto'))
  if (image) {
    cmd
      .option('--model <model>', 'qwen2-vl (default), qwen2.5-vl, qwen3-vl, or a Qwen-VL Hub id: sets the image grid and the YAML')
      .option('--max-pixels <n>', 'image pixel budget (image_max_pixels in the YAML)', number('a whole number >= 784', (n) => Number.isInteger(n) && n >= 784))
      .option('--quality <q>', 'JPEG quality of re-encoded images', number('1-100', (n) => Number.isInteger(n) && n >= 1 && n <= 100))
      .addOption(new Option('--resize-kernel <kernel>', 'resampling kernel of re-encoded images (cubic: Pillow\'s BICUBIC, as LLaMA-Factory)').choices(['cubic', 'lanczos3']))
      .option('--optimise-coding', 'optimise the JPEG Huffman tables (about 3 % smaller, slower)')
      .option('--cutoff-len <n>', 'token budget per row (cutoff_len in the YAML); longer rows are rejected', number('a whole number >= 1', (n) => Number.isInteger(n) && n >= 1))
      .addOption(new Option('--near-duplicates <what>', 'near-duplicate images: keep them in one group (split-aware) or drop their rows').choices(['group', 'drop']))
      .option('--set <key=value>', 'override a key of train_dpo.yaml (repeatable; checked against LLaMA-Factory\'s keys)', collect, [])
      .option('--base-yaml <file>', 'your own LLaMA-Factory YAML to start from (ours on top for the data keys, --set last)')
      .option('--launch', 'then train: run `llamafactory-cli train` on the GPUs (see `prefpipe launch --help`)')
      .option('--shard <i/n>', 'run as shard i of n (0-based): process whole row groups i, i+n, ... into <out>/shard-<i>-of-<n>; join with `prefpipe merge <out>`')
      .option('--shards <n>', 'run as one of n shards, the index from JOB_COMPLETION_INDEX (Kubernetes) or SLURM_ARRAY_TASK_ID (Slurm)', number('a whole number >= 1', (n) => Number.isInteger(n) && n >= 1))
    addLaunchOptions(cmd)
  }
  cmd.addHelpText(
    'after',
    `\nExamples:\n  npx prefpipe ${preset.name} --out data/${preset.defaults.name}                       # from the Hub (${preset.repo})\n` +
      `  npx prefpipe ${preset.name} --input local.${preset.defaults.formats[0]} --out out/${preset.defaults.name} --eval 0.05 --seed 42\n` +
      (image ? `  npx prefpipe ${preset.name} --out data/${preset.defaults.name} --launch --gpus 0-7\n` : ''),
  )
  cmd.action(async (opts: PrepareCliOptions, command: Command) => run(preset, opts, globalFlags(command)))
}

async function run(preset: Preset, opts: PrepareCliOptions, flags: GlobalFlags): Promise<void> {
  const runOptions: PresetRunOptions = {
    out: opts.out,
    ...(opts.input !== undefined ? { input: opts.input } : {}),
    ...(opts.name !== undefined ? { name: opts.name } : {}),
    ...(opts.mediaDir !== undefined ? { mediaDir: opts.mediaDir } : {}),
    ...(opts.format !== undefined ? { format: opts.format } : {}),
    ...(opts.eval !== undefined ? { eval: opts.eval } : {}),
    seed: opts.seed,
    ...(opts.model !== undefined ? { model: opts.model } : {}),
    ...(opts.set?.length ? { set: opts.set } : {}),
    ...(opts.baseYaml !== undefined ? { baseYaml: opts.baseYaml } : {}),
    imageOptions: {
      ...(opts.maxPixels !== undefined ? { maxPixels: opts.maxPixels } : {}),
      ...(opts.quality !== undefined ? { quality: opts.quality } : {}),
      ...(opts.resizeKernel !== undefined ? { resizeKernel: opts.resizeKernel } : {}),
      ...(opts.optimiseCoding ? { optimiseCoding: true } : {}),
      ...(opts.cutoffLen !== undefined ? { cutoffLen: opts.cutoffLen } : {}),
      ...(opts.nearDuplicates !== undefined ? { nearDuplicates: opts.nearDuplicates } : {}),
    },
    hub: {
      ...(opts.revision !== undefined ? { revision: opts.revision } : {}),
      ...(opts.file !== undefined ? { file: opts.file } : {}),
      ...(opts.offline ? { offline: true } : {}),
    },
  }
  if (opts.shard !== undefined || opts.shards !== undefined) return runShard(preset, runOptions, opts, flags)
  const config = await prepareAndReport((o) => preset.prepare(runOptions, o), { json: opts.json === true, progress: opts.progress, out: opts.out }, flags)
  if (opts.launch && config) await launchFromCli(config, [], { ...opts, ...(flags.quiet ? { monitor: false } : {}) })
}

/** `--shard i/n`: this machine's share of the image work, into `<out>/shard-<i>-of-<n>`; one line of summary. */
async function runShard(preset: Preset, runOptions: PresetRunOptions, opts: PrepareCliOptions, flags: GlobalFlags): Promise<void> {
  if (opts.launch) throw new Error('[prefpipe] --launch cannot run from a shard: merge the shards (`prefpipe merge`), then launch')
  const shard = parseShard(opts.shard, opts.shards)
  const spec = preset.spec
  if (!spec) throw new Error(`[prefpipe] ${preset.name} cannot run sharded (it has no image work to share out); run it without --shard`)
  const controller = new AbortController()
  const onSigint = () => controller.abort()
  process.once('SIGINT', onSigint)
  const rows = progressBar(opts.progress && !flags.quiet)
  try {
    const { result } = await prepareShard(spec, { ...runOptions, shard }, { signal: controller.signal, onEvent: (e) => rows.onEvent(e), log: cliLogger(flags) })
    rows.stop()
    const c = result.part.counts
    const where = relative(process.cwd(), result.dir) || result.dir
    if (opts.json) process.stdout.write(JSON.stringify(result.part, null, 2) + '\n')
    else if (!flags.quiet) process.stdout.write(`shard ${shard.index}/${shard.count}: ${c.rowsIn} rows read, ${c.kept} kept here, ${c.rejected} rejected; images in ${where}. When every shard is done: prefpipe merge ${relative(process.cwd(), opts.out) || opts.out} --out <dir>\n`)
  } catch (err) {
    rows.stop()
    if (isAbortError(err)) {
      process.stderr.write('prefpipe: interrupted; run the shard again to resume (its finished images are kept)\n')
      process.exitCode = 130
      return
    }
    throw err
  } finally {
    process.off('SIGINT', onSigint)
  }
}

/** How {@link prepareAndReport} shows a run. */
export interface ReportDisplayOptions {
  /** Print report.json instead of the summary table. */
  json: boolean
  /** Progress bars on stderr (only on a terminal). */
  progress: boolean
  /** The output folder, named in the message of a write error (disk full, read-only). */
  out?: string
}

/**
 * Run a prepare (a preset's, or a config's) with progress bars, Ctrl-C and the logger of the global flags,
 * then print the summary table (or `--json` report) and set the exit code: 1 when every row was rejected, 130
 * when interrupted. Returns the training config's path when the run wrote one and kept rows.
 * @example
 * const yaml = await prepareAndReport((o) => preset.prepare(runOptions, o), { json: false, progress: true }, flags)
 */
export async function prepareAndReport(
  prepare: (pipelineOptions: PipelineOptions) => Promise<PipelineResult<PreparedFolder>>,
  display: ReportDisplayOptions,
  flags: GlobalFlags,
): Promise<string | undefined> {
  const controller = new AbortController()
  const onSigint = () => controller.abort()
  process.once('SIGINT', onSigint)
  const show = display.progress && !flags.quiet
  const rows = progressBar(show)
  const bytes = byteProgress(process.stderr, show)
  const log = cliLogger(flags)
  const started = new Map<string, number>()
  const onEvent = (e: PipelineEvent) => {
    if (flags.verbose && e.type === 'stage-start') {
      started.set(e.stage, performance.now())
      log.debug(`stage ${e.stage} started`)
    }
    if (flags.verbose && e.type === 'stage-end') log.debug(`stage ${e.stage} ${e.ok ? 'finished' : 'failed'} after ${Math.round(performance.now() - (started.get(e.stage) ?? performance.now()))} ms`)
    if (e.type === 'progress' && e.stage === 'hub' && e.totalBytes !== undefined && e.done === e.bytes) return bytes.update({ file: 'download', done: e.done, total: e.totalBytes })
    rows.onEvent(e)
  }
  try {
    const { result } = await prepare({ signal: controller.signal, onEvent, log })
    rows.stop()
    bytes.stop()
    const summary = result.report.report
    if (display.json) process.stdout.write(JSON.stringify(summary, null, 2) + '\n')
    else if (!flags.quiet) process.stdout.write(formatSummaryTable(summary, { html: relative(process.cwd(), result.report.html) || result.report.html }))
    if (result.trainingConfig && !display.json && !flags.quiet) process.stdout.write(`training config: ${relative(process.cwd(), result.trainingConfig.path) || result.trainingConfig.path}\n`)
    if (summary.summary.rowsIn === 0) {
      process.stderr.write(`prefpipe: the input has no rows (an empty array or file?); nothing to train on. Check that it is the file you meant\n`)
      process.exitCode = 1
      return undefined
    }
    if (summary.summary.kept === 0) {
      const reasons = summary.rejected.reasons.map((r) => `${r.reason} ${r.count}`).join(', ')
      process.stderr.write(
        `prefpipe: every row was rejected (${summary.summary.rejected} of ${summary.summary.rowsIn}${reasons ? `: ${reasons}` : ''}); nothing to train on. ` +
          `See ${relative(process.cwd(), result.files.rejects) || result.files.rejects} for why each row was left out\n`,
      )
      process.exitCode = 1
      return undefined
    }
    return result.trainingConfig?.path
  } catch (err) {
    rows.stop()
    bytes.stop()
    if (isAbortError(err)) {
      process.stderr.write('prefpipe: interrupted; nothing half-written was left in the output folder\n')
      process.exitCode = 130
      return undefined
    }
    // Nothing kept over an earlier output: the sink left that output whole; say so plainly, exit 1.
    if (err instanceof Error && err.cause instanceof NoRowsKeptError) {
      process.stderr.write(`prefpipe: ${err.cause.message.replace(/^\[prefpipe\] /, '')}\n`)
      process.exitCode = 1
      return undefined
    }
    // A stage's own message already starts with "[prefpipe]": say it once ("stage "parquet" failed: <file>: ...").
    if (err instanceof Error && err.name === 'PipelineError') err.message = err.message.replace(/ failed: \[prefpipe\] /, ' failed: ')
    throw explainWriteError(err, display.out)
  } finally {
    process.off('SIGINT', onSigint)
  }
}

/** The errno code of an error or of one of its causes (a stage error wraps the file system's). */
function errnoOf(err: unknown): { code: string; path?: string } | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code
    if (typeof code === 'string') {
      // The first error with a code decides: a file system errno, or one of ours that already says what to do.
      if (!/^E[A-Z]+$/.test(code)) return undefined
      const path = (e as NodeJS.ErrnoException).path
      return path !== undefined ? { code, path } : { code }
    }
  }
  return undefined
}

/**
 * A run that failed writing its output (disk full, quota, read-only, permission): say so in words, name the file
 * (or the folder: a write stream's error carries no path), and say what to do. The sink removes its temporary
 * files and renames nothing on failure, so an earlier output in the folder stays as it was. Errors that already
 * say what to do (a code that is not an errno, e.g. `PREFPIPE_OUTPUT`) and permission errors on other paths (the
 * input, the HF cache) pass through unchanged.
 */
function explainWriteError(err: unknown, out: string | undefined): unknown {
  const e = errnoOf(err)
  if (!e) return err
  const outAbs = out !== undefined ? resolve(out) : undefined
  const inOut = outAbs !== undefined && e.path !== undefined && (resolve(e.path) === outAbs || resolve(e.path).startsWith(outAbs + sep))
  // Permission errors are about the output only when they name a path in it (not the input, not the cache).
  if ((e.code === 'EACCES' || e.code === 'EPERM') && !inOut) return err
  const where = e.path ?? (out !== undefined ? `the output folder ${out}` : 'the output folder')
  const inFolder = inOut ? ` (in --out ${out})` : ''
  // Elsewhere (the HF cache, HF_HUB_CACHE): another --out would not help.
  const orOut = e.path === undefined || inOut ? ' (or give another --out)' : ''
  const what: Record<string, string> = {
    ENOSPC: `no space left on the device writing ${where}${inFolder}: free space there${orOut} and run again`,
    EDQUOT: `disk quota exceeded writing ${where}${inFolder}: free space or raise the quota${orOut} and run again`,
    EROFS: `cannot write ${where}${inFolder}: read-only file system; give another --out`,
    EACCES: `cannot write ${where}${inFolder}: permission denied; give another --out, or make it writable`,
    EPERM: `cannot write ${where}${inFolder}: operation not permitted; give another --out, or make it writable`,
  }
  const text = what[e.code]
  if (!text) return err
  const cause = err instanceof Error ? ` (${err.message.replace(/^\[prefpipe\] /, '')})` : ''
  return new Error(`[prefpipe] ${text}${cause}. Nothing half-written was left in place: every file is written under a temporary name and renamed only once complete`, { cause: err })
}
