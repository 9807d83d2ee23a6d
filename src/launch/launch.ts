/**
 * The launch as one call: load the config, preflight, build the command, (write the DeepSpeed preset), run
 * `llamafactory-cli train` with live metrics, then summarise and plot the run. The CLI's `launch` command,
 * `rlhf-v --launch` and the pipeline step {@link launchDpo} all go through {@link launchTraining}.
 */
import { dirname, join } from 'node:path'
import { z } from 'zod'
import { buildLaunchPlan, formatCommand, formatDryRun, type LaunchPlan } from './command.js'
import { loadTrainConfig, mergeOverrides, runPaths, type Overrides, type TrainConfig } from './config.js'
import { deepspeedFileName, writeDeepspeedConfig, ZERO_PRESETS, type ZeroPreset } from './deepspeed.js'
import { parseGpus, resolveGpus, type GpuSpec } from './gpus.js'
import { createDisplay } from './display.js'
import { watchTraining } from './monitor.js'
import { checkOptions, writableStream } from './options.js'
import type { TrainerLogEntry } from './trainer-log.js'
import { formatSummary, readTrainingResults, summarizeTraining, type TrainingSummary } from './results.js'
import { writeTrainingReport } from './plots.js'
import { formatPreflight, preflight, PreflightError, type ImageCheckMode, type PreflightReport } from './preflight.js'
import { runLaunch } from './run.js'

/** Options of {@link launchTraining} (checked with zod). */
export interface LaunchOptions {
  /** The `llamafactory-cli train` YAML. */
  config: string
  /** `key=value` overrides after the config path (`['num_train_epochs=1']` or `{ num_train_epochs: 1 }`). */
  overrides?: Overrides
  /**
   * GPUs: a count (`8`), indices (`[0, 2, 4]`) or the `--gpus` text (`'0-7'`, `'0,2,4'`, `'8'`, `'all'`).
   * Default: the environment's `CUDA_VISIBLE_DEVICES` when it is a list of indices, else all GPUs.
   */
  gpus?: GpuSpec
  /** Multi-node: the number of nodes, this node's rank, the master's address and port (see {@link buildLaunchPlan}). */
  nnodes?: number
  nodeRank?: number
  masterAddr?: string
  masterPort?: number
  /** Write LLaMA-Factory's DeepSpeed ZeRO config next to the YAML and use it (`deepspeed=<abs path>`). */
  deepspeed?: ZeroPreset
  /** Preflight, then print the command (stdout) and run nothing. */
  dryRun?: boolean
  /** Run the preflight (default true). Without it, `gpus: 'all'` cannot be resolved. */
  preflight?: boolean
  /** Image paths the preflight checks: `all` (default), an even `sample`, or `none`. */
  images?: ImageCheckMode
  /** Size of the `sample` (default 1000). */
  imageSample?: number
  /** MiB in use above which a GPU is reported busy (default 2048). */
  busyMiB?: number
  /** After Ctrl-C, how long the training gets before SIGTERM (ms, default 30 000); SIGKILL `killMs` later (default 10 000). */
  graceMs?: number
  killMs?: number
  /** Follow `trainer_log.jsonl` while it runs (default true). */
  monitor?: boolean
  /** A progress bar when stderr is a terminal (default true; plain lines otherwise). */
  progress?: boolean
  /** Write the SVG plots and `training.html` after the run (default true). */
  plots?: boolean
  /** How often the log is read (ms, default 1000). */
  pollMs?: number
  /** The LLaMA-Factory executable (default `llamafactory-cli`, on the PATH). */
  cli?: string
  /** Working directory of the training (default: ours). Relative paths in the config are relative to it. */
  cwd?: string
  /** The environment the training inherits (default `process.env`). */
  env?: NodeJS.ProcessEnv
  /** Catch Ctrl-C / SIGTERM / SIGHUP while the training runs and forward them to it (default true). */
  forwardSignals?: boolean
  /** Aborting it interrupts the training (as Ctrl-C). */
  signal?: AbortSignal
  /** Where the dry-run command, the training's stdout and the summary go (default process.stdout). */
  stdout?: NodeJS.WritableStream
  /** Where the preflight report, progress and status lines and the training's stderr go (default process.stderr). */
  stderr?: NodeJS.WritableStream
}


/** The zod schema of {@link LaunchOptions} without `config` (shared with {@link launchDpo}). */
export const launchOptionsShape = {
  overrides: z.union([z.array(z.string()), z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()]))]).optional(),
  gpus: z.union([z.int().min(1), z.array(z.int().min(0)).min(1), z.string().min(1)]).optional(),
  nnodes: z.int().min(1).optional(),
  nodeRank: z.int().min(0).optional(),
  masterAddr: z.string().min(1).optional(),
  masterPort: z.int().min(1).max(65535).optional(),
  deepspeed: z.enum(ZERO_PRESETS).optional(),
  dryRun: z.boolean().optional(),
  preflight: z.boolean().optional(),
  images: z.enum(['all', 'sample', 'none']).optional(),
  imageSample: z.int().min(1).optional(),
  busyMiB: z.number().min(0).optional(),
  graceMs: z.int().min(0).optional(),
  killMs: z.int().min(0).optional(),
  monitor: z.boolean().optional(),
  progress: z.boolean().optional(),
  plots: z.boolean().optional(),
  pollMs: z.int().min(10).optional(),
  cli: z.string().min(1).optional(),
  cwd: z.string().min(1).optional(),
  env: z.record(z.string(), z.string().optional()).optional(),
  forwardSignals: z.boolean().optional(),
  signal: z.instanceof(AbortSignal).optional(),
  stdout: writableStream.optional(),
  stderr: writableStream.optional(),
}

const launchSchema = z.strictObject({ config: z.string().min(1, 'must not be empty'), ...launchOptionsShape })

/** What {@link launchTraining} did. */
export interface LaunchResult {
  /** True for a dry run: nothing was started or written. */
  dryRun: boolean
  /** The command as one shell line (variables, then argv). */
  command: string
  plan: LaunchPlan
  /** Absolute path of the YAML. */
  config: string
  /** Absolute `output_dir`. */
  outputDir?: string
  preflight?: PreflightReport
  /** The DeepSpeed preset file written (or, in a dry run, that would be). */
  deepspeedConfig?: string
  /** `<output_dir>/prefpipe-launch.log`. */
  logFile?: string
  /** The training's exit code (`128 + n` after signal `n`); absent in a dry run. */
  exitCode?: number
  signal?: NodeJS.Signals
  /** The signal forwarded to it first, when it was interrupted. */
  interrupted?: NodeJS.Signals
  durationMs?: number
  /** Every `trainer_log.jsonl` entry the monitor read during the run. */
  entries?: TrainerLogEntry[]
  summary?: TrainingSummary
  /** Absolute paths of the SVG plots written. */
  plots?: string[]
  /** Absolute path of `training.html`. */
  html?: string
}

/** The log file a launch writes in `output_dir`. */
export const LAUNCH_LOG = 'prefpipe-launch.log'

/** The GPUs to use when none are given: `CUDA_VISIBLE_DEVICES` when it lists indices, else all. */
function defaultGpus(env: NodeJS.ProcessEnv): GpuSpec {
  const cvd = env.CUDA_VISIBLE_DEVICES?.trim()
  if (cvd && /^\d+(,\d+)*$/.test(cvd)) return cvd.split(',').map(Number)
  return 'all'
}

/** Add the `--deepspeed` preset as an override (its file sits next to the YAML). */
function withDeepspeed(cfg: TrainConfig, preset: ZeroPreset): { cfg: TrainConfig; path: string } {
  const path = join(dirname(cfg.path), deepspeedFileName(preset))
  if (cfg.overrides.some((t) => t.startsWith('deepspeed='))) throw new TypeError(`[prefpipe] --deepspeed ${preset} and a deepspeed= override both say which DeepSpeed config to use; keep one`)
  const overrides = [...cfg.overrides, `deepspeed=${path}`]
  return { cfg: { ...cfg, overrides, effective: mergeOverrides(cfg.yaml, overrides) }, path }
}

/**
 * Launch a LLaMA-Factory training, the way LLaMA-Factory expects it:
 * `CUDA_VISIBLE_DEVICES=<gpus> [FORCE_TORCHRUN=1 NNODES=.. NODE_RANK=.. MASTER_ADDR=.. MASTER_PORT=..]
 * llamafactory-cli train <abs cfg.yaml> [key=value ...]`.
 *
 * 1. Preflight ({@link preflight}): any failure throws a {@link PreflightError} before anything runs.
 * 2. Dry run: the command goes to `stdout` as a shell script (`# writes ...` comments, then the line); done.
 * 3. The `--deepspeed` preset is written next to the YAML; the training is spawned ({@link runLaunch}: no
 *    shell, own process group, output to the terminal and `<output_dir>/prefpipe-launch.log`, Ctrl-C forwarded).
 * 4. While it runs, `trainer_log.jsonl` is followed on a progress bar (plain lines when not a terminal).
 * 5. When it ends: the summary table (from `trainer_state.json` `log_history` and `all_results.json`) on
 *    `stdout`, and the SVG plots and `training.html` in `output_dir`.
 *
 * Resolves with the exit code whatever it is (the CLI exits with it); see {@link launchDpo} for a step that
 * throws on failure.
 * @example
 * const r = await launchTraining({ config: 'data/rlhf_v/train_dpo.yaml', gpus: '0-7' })
 * process.exitCode = r.exitCode
 */
export async function launchTraining(options: LaunchOptions): Promise<LaunchResult> {
  const opts = checkOptions(launchSchema, options, 'launch')
  const env = opts.env ?? process.env
  const cwd = opts.cwd ?? process.cwd()
  const stdout = opts.stdout ?? process.stdout
  const stderr = opts.stderr ?? process.stderr
  const say = (m: string) => void stderr.write(`prefpipe: ${m}\n`)
  const selection = parseGpus(opts.gpus ?? defaultGpus(env))

  let cfg = await loadTrainConfig(opts.config, opts.overrides ?? [], { cwd })
  let dsPath: string | undefined
  if (opts.deepspeed) {
    const had = cfg.yaml.deepspeed !== undefined && cfg.yaml.deepspeed !== null
    ;({ cfg, path: dsPath } = withDeepspeed(cfg, opts.deepspeed))
    if (had) say(`--deepspeed ${opts.deepspeed} replaces the config's deepspeed: ${String(cfg.yaml.deepspeed)}`)
  }
  const paths = runPaths(cfg.effective, cfg.cwd)

  let report: PreflightReport | undefined
  if (opts.preflight ?? true) {
    report = await preflight({
      config: cfg,
      gpus: selection,
      env,
      cli: opts.cli ?? 'llamafactory-cli',
      images: opts.images ?? 'all',
      imageSample: opts.imageSample ?? 1000,
      busyMiB: opts.busyMiB ?? 2048,
      pending: dsPath ? [dsPath] : [],
    })
    stderr.write(formatPreflight(report))
    if (!report.ok) throw new PreflightError(report)
  }
  const gpus = report?.gpus ?? resolveGpus(selection)
  const ds = cfg.effective.deepspeed
  const usesDeepspeed = ds !== undefined && ds !== null && ds !== '' && ds !== false
  const plan = buildLaunchPlan({
    config: cfg.path,
    overrides: cfg.overrides,
    gpus,
    deepspeed: usesDeepspeed,
    cwd: cfg.cwd,
    ...(opts.cli ? { cli: opts.cli } : {}),
    ...(opts.nnodes !== undefined ? { nnodes: opts.nnodes } : {}),
    ...(opts.nodeRank !== undefined ? { nodeRank: opts.nodeRank } : {}),
    ...(opts.masterAddr !== undefined ? { masterAddr: opts.masterAddr } : {}),
    ...(opts.masterPort !== undefined ? { masterPort: opts.masterPort } : {}),
  })
  if (usesDeepspeed && gpus.length === 1 && (opts.nnodes ?? 1) === 1) say('DeepSpeed on one GPU: FORCE_TORCHRUN=1 is set, as LLaMA-Factory requires')
  const result: LaunchResult = { dryRun: !!opts.dryRun, command: formatCommand(plan), plan, config: cfg.path }
  if (paths.outputDir) result.outputDir = paths.outputDir
  if (report) result.preflight = report
  if (dsPath) result.deepspeedConfig = dsPath

  if (opts.dryRun) {
    const writes = dsPath ? [`${dsPath} (DeepSpeed ${opts.deepspeed} preset)`] : []
    stdout.write(formatDryRun(plan, { writes, cd: cfg.cwd !== process.cwd() }))
    return result
  }

  if (opts.deepspeed) await writeDeepspeedConfig(dirname(cfg.path), opts.deepspeed)
  const outputDir = paths.outputDir
  if (!outputDir) say('the config has no output_dir: no launch log, live metrics or plots')
  const logFile = outputDir ? join(outputDir, LAUNCH_LOG) : undefined
  if (logFile) result.logFile = logFile
  const since = Date.now() - 2000
  const monitor = (opts.monitor ?? true) && !!outputDir
  const display = createDisplay({ bar: opts.progress ?? true, progressStream: stderr, stdout, stderr, prefix: 'prefpipe: ' })
  const stopWatch = new AbortController()
  const watching = monitor ? watchTraining({ outputDir: outputDir!, display, fromStart: false, signal: stopWatch.signal, stopAtEnd: false, pollMs: opts.pollMs ?? 1000 }) : undefined
  say(`launching: ${result.command}`)
  try {
    const run = await runLaunch({
      plan,
      env,
      ...(logFile ? { logFile } : {}),
      onOutput: (chunk, s) => display.output(chunk, s),
      notify: (m) => display.note(`prefpipe: ${m}`),
      graceMs: opts.graceMs ?? 30_000,
      killMs: opts.killMs ?? 10_000,
      forwardSignals: opts.forwardSignals ?? true,
      ...(opts.signal ? { signal: opts.signal } : {}),
    })
    result.exitCode = run.exitCode
    result.durationMs = run.durationMs
    if (run.signal) result.signal = run.signal
    if (run.interrupted) result.interrupted = run.interrupted
  } finally {
    stopWatch.abort()
    const watched = await watching?.catch(() => undefined)
    if (watched) result.entries = watched.entries
    display.stop()
  }

  if (outputDir) {
    const results = await readTrainingResults(outputDir, { since, ...(result.entries ? { entries: result.entries } : {}) })
    const summary = summarizeTraining(results)
    result.summary = summary
    stdout.write(formatSummary(summary))
    if ((opts.plots ?? true) && results.history.length) {
      try {
        const lines = [`${result.command}`, `exit code ${result.exitCode}${result.interrupted ? ` (interrupted: ${result.interrupted})` : ''}`]
        const written = await writeTrainingReport(outputDir, results.history, summary, { title: outputDir, lines })
        result.plots = written.plots
        result.html = written.html
        stdout.write(`plots: ${written.plots.map((p) => p.slice(outputDir.length + 1)).join(', ')}; page: ${written.html}\n`)
      } catch (err) {
        say(`could not write the plots: ${(err as Error).message}`)
      }
    }
  }
  const how = result.interrupted ? `interrupted (${result.interrupted}); ` : ''
  say(`training ${result.exitCode === 0 ? 'finished' : 'failed'}: ${how}exit code ${result.exitCode}${logFile ? `; log: ${logFile}` : ''}`)
  return result
}
