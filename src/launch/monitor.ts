/**
 * The live monitor: follow a run's `trainer_log.jsonl` on a display while it trains ({@link watchTraining},
 * used by the launch), or follow a run that is already going and summarise it ({@link monitorTraining},
 * `prefpipe monitor`).
 */
import { stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { z } from 'zod'
import { loadTrainConfig, runPaths } from './config.js'
import { createDisplay, type MonitorDisplay } from './display.js'
import { checkOptions, writableStream } from './options.js'
import { writeTrainingReport } from './plots.js'
import { formatSummary, readTrainingResults, summarizeTraining, type TrainingSummary } from './results.js'
import { isFinalEntry, pollLoop, TRAINER_LOG, TrainerLogFollower, type TrainerLogEntry } from './trainer-log.js'

/** Options of {@link watchTraining}. */
export interface WatchOptions {
  outputDir: string
  display?: MonitorDisplay
  /** How often the log is read (ms, default 500). */
  pollMs?: number
  /** Show what the log already holds (default true); false: only what is added from now on. */
  fromStart?: boolean
  /** Stop following: the rest of the file is read, then the watch resolves. */
  signal?: AbortSignal
  /** Also resolve once the final entry (end of training) is read (default true). */
  stopAtEnd?: boolean
  /** Called with each entry. */
  onEntry?: (e: TrainerLogEntry) => void
}

/** What {@link watchTraining} saw. */
export interface WatchResult {
  /** Every entry of the current run, in order (an earlier run's, before the log was replaced, are dropped). */
  entries: TrainerLogEntry[]
  /** The end-of-training entry, when it was read. */
  final?: TrainerLogEntry
  /** Lines that were not log entries. */
  skipped: number
}

/**
 * Follow a run's `trainer_log.jsonl` until `signal` aborts (or the training ends), feeding a display.
 * @example
 * const stop = new AbortController()
 * const watching = watchTraining({ outputDir, display: createDisplay({ bar: true, progressStream: process.stderr }), signal: stop.signal })
 * // ... when the training process exits:
 * stop.abort()
 * const { entries } = await watching
 */
export async function watchTraining(opts: WatchOptions): Promise<WatchResult> {
  const follower = new TrainerLogFollower(opts.outputDir, { fromStart: opts.fromStart ?? true })
  let entries: TrainerLogEntry[] = []
  let final: TrainerLogEntry | undefined
  follower.onReset = () => {
    if (entries.length) opts.display?.note(`${TRAINER_LOG} was replaced: a new run started; following it`)
    entries = []
    final = undefined
  }
  await follower.init()
  const take = (batch: TrainerLogEntry[]) => {
    for (const e of batch) {
      entries.push(e)
      if (isFinalEntry(e)) final = e
      opts.display?.entry(e)
      opts.onEntry?.(e)
    }
  }
  for await (const batch of pollLoop(follower, opts.signal, opts.pollMs ?? 500)) {
    take(batch)
    if ((opts.stopAtEnd ?? true) && final) break
  }
  const result: WatchResult = { entries, skipped: follower.skipped }
  if (final) result.final = final
  return result
}

/** Options of {@link monitorTraining}. */
export interface MonitorOptions {
  /** The run's `output_dir`, or its training YAML (its `output_dir` is used). */
  target: string
  /** Follow the log until the training ends (default true); false: summarise what is there now. */
  follow?: boolean
  /** After the end-of-training line, how long to wait for `trainer_state.json` (ms, default 600 000). */
  waitResultsMs?: number
  /** A progress bar on a terminal (default true). */
  progress?: boolean
  /** Write the plots and `training.html` (default true). */
  plots?: boolean
  pollMs?: number
  /** Stop following (Ctrl-C): the summary of what is there is printed. */
  signal?: AbortSignal
  stdout?: NodeJS.WritableStream
  stderr?: NodeJS.WritableStream
}

/** What {@link monitorTraining} saw. */
export interface MonitorResult {
  outputDir: string
  entries: TrainerLogEntry[]
  /** The training ended (its end-of-training line was read). */
  finished: boolean
  summary: TrainingSummary
  plots?: string[]
  html?: string
}

const monitorSchema = z.strictObject({
  target: z.string().min(1, 'must not be empty'),
  follow: z.boolean().optional(),
  waitResultsMs: z.int().min(0).optional(),
  progress: z.boolean().optional(),
  plots: z.boolean().optional(),
  pollMs: z.int().min(10).optional(),
  signal: z.instanceof(AbortSignal).optional(),
  stdout: writableStream.optional(),
  stderr: writableStream.optional(),
})

/**
 * Follow a run that is already going (started by anyone): its `trainer_log.jsonl` from the top, live, until the
 * training ends or `signal` aborts; then the summary table on `stdout` and the plots in `output_dir`.
 * @example
 * const ac = new AbortController()
 * process.once('SIGINT', () => ac.abort())
 * await monitorTraining({ target: 'saves/qwen2_vl-7b/lora/dpo', signal: ac.signal })
 */
export async function monitorTraining(options: MonitorOptions): Promise<MonitorResult> {
  const opts = checkOptions(monitorSchema, options, 'monitor')
  const stdout = opts.stdout ?? process.stdout
  const stderr = opts.stderr ?? process.stderr
  let outputDir = opts.target
  if (/\.ya?ml$/i.test(opts.target)) {
    const cfg = await loadTrainConfig(opts.target)
    const dir = runPaths(cfg.effective, cfg.cwd).outputDir
    if (!dir) throw new Error(`[prefpipe] ${cfg.path} has no output_dir`)
    outputDir = dir
  }
  outputDir = resolve(outputDir)
  let entries: TrainerLogEntry[] = []
  let finished = false
  if (opts.follow ?? true) {
    const display = createDisplay({ bar: opts.progress ?? true, progressStream: stderr, stdout, stderr })
    const logPath = join(outputDir, 'trainer_log.jsonl')
    if (!(await stat(logPath).catch(() => undefined))) display.note(`prefpipe: waiting for ${logPath} (the training writes it from its first logged step)`)
    try {
      const watched = await watchTraining({ outputDir, display, fromStart: true, stopAtEnd: true, pollMs: opts.pollMs ?? 1000, ...(opts.signal ? { signal: opts.signal } : {}) })
      entries = watched.entries
      finished = !!watched.final
    } finally {
      display.stop()
    }
    if (finished && !opts.signal?.aborted) {
      // The end-of-training line comes before save_model / save_metrics / save_state: wait for trainer_state.json.
      const logMtime = (await stat(logPath).catch(() => undefined))?.mtimeMs ?? 0
      const end = Date.now() + (opts.waitResultsMs ?? 600_000)
      let said = false
      while (Date.now() < end && !opts.signal?.aborted) {
        const st = await stat(join(outputDir, 'trainer_state.json')).catch(() => undefined)
        if (st && st.mtimeMs >= logMtime - 2000) break
        if (!said) stderr.write('prefpipe: training done; waiting for trainer_state.json (the model is being saved)\n')
        said = true
        await new Promise((r) => setTimeout(r, opts.pollMs ?? 1000))
      }
    }
  }
  const results = await readTrainingResults(outputDir, entries.length ? { entries } : {})
  const summary = summarizeTraining(results)
  stdout.write(formatSummary(summary))
  const result: MonitorResult = { outputDir, entries, finished, summary }
  if ((opts.plots ?? true) && results.history.length) {
    const written = await writeTrainingReport(outputDir, results.history, summary, { title: outputDir })
    result.plots = written.plots
    result.html = written.html
    stdout.write(`plots: ${written.plots.map((p) => p.slice(outputDir.length + 1)).join(', ')}; page: ${written.html}\n`)
  }
  return result
}
