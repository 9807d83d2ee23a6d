/**
 * A run's metrics once it has ended (or while it runs): the full DPO log history from `trainer_state.json`
 * (HF Trainer's `log_history`; `trainer_log.jsonl` only carries loss and accuracy), the final numbers from
 * `all_results.json`, and a summary table of both.
 */
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { TRAINER_LOG, parseTrainerLogLine, type TrainerLogEntry } from './trainer-log.js'

/** One record of `log_history`: numbers by metric name, with `step` (and usually `epoch`). */
export type LogRecord = Record<string, number> & { step: number }

/** Where the history came from, best first. */
export type HistorySource = 'trainer_state.json' | `checkpoint-${number}/trainer_state.json` | 'trainer_log.jsonl' | 'none'

/** A run's history and final results. */
export interface TrainingResults {
  outputDir: string
  source: HistorySource
  history: LogRecord[]
  /** `max_steps` of the trainer state, or `total_steps` of the log. */
  maxSteps?: number
  /** `all_results.json`, when there is one. */
  allResults?: Record<string, number>
}

/** `trainer_state.json` as far as we read it. */
interface TrainerState {
  log_history?: unknown
  max_steps?: unknown
  global_step?: unknown
}

async function readJson(path: string, since: number): Promise<unknown> {
  const st = await stat(path).catch(() => undefined)
  if (!st?.isFile() || st.mtimeMs < since) return undefined
  const text = await readFile(path, 'utf8').catch(() => '')
  try {
    return JSON.parse(text) as unknown
  } catch {
    // Python's json writes NaN / Infinity (a diverged grad_norm): not JSON, so read them as null.
    try {
      return JSON.parse(text.replace(/(?<=[:[,]\s*)-?(?:NaN|Infinity)(?=\s*[,\]}])/g, 'null')) as unknown
    } catch {
      return undefined
    }
  }
}

/** Keep the finite numeric fields of each record; records without a `step` are dropped. */
function numericRecords(list: unknown): LogRecord[] {
  if (!Array.isArray(list)) return []
  const out: LogRecord[] = []
  for (const r of list) {
    if (r === null || typeof r !== 'object') continue
    const rec: Record<string, number> = {}
    for (const [k, v] of Object.entries(r as Record<string, unknown>)) if (typeof v === 'number' && Number.isFinite(v)) rec[k] = v
    if (typeof rec.step === 'number') out.push(rec as LogRecord)
  }
  return out
}

/** A `trainer_log.jsonl` entry as a `log_history` record (`accuracy` is `rewards/accuracies`, `lr` is `learning_rate`). */
export function entryToRecord(e: TrainerLogEntry): LogRecord {
  const r: Record<string, number> = { step: e.current_steps }
  if (e.epoch !== undefined) r.epoch = e.epoch
  if (e.loss !== undefined) r.loss = e.loss
  if (e.eval_loss !== undefined) r.eval_loss = e.eval_loss
  if (e.accuracy !== undefined) r['rewards/accuracies'] = e.accuracy
  if (e.lr !== undefined) r.learning_rate = e.lr
  return r as LogRecord
}

/**
 * Read a run's results: `trainer_state.json` in `outputDir`, else the newest `checkpoint-<step>/trainer_state.json`
 * (a run that is still going or died), else `trainer_log.jsonl` (or the given entries). Files older than
 * `since` (ms since the epoch; an earlier run's) are ignored.
 * @example
 * const results = await readTrainingResults('saves/qwen2_vl-7b/lora/dpo')
 * results.history.at(-1)?.['rewards/margins']
 */
export async function readTrainingResults(outputDir: string, opts: { since?: number; entries?: readonly TrainerLogEntry[] } = {}): Promise<TrainingResults> {
  const since = opts.since ?? 0
  const out: TrainingResults = { outputDir, source: 'none', history: [] }
  const all = (await readJson(join(outputDir, 'all_results.json'), since)) as Record<string, unknown> | undefined
  if (all && typeof all === 'object') {
    const nums = Object.fromEntries(Object.entries(all).filter(([, v]) => typeof v === 'number' && Number.isFinite(v))) as Record<string, number>
    if (Object.keys(nums).length) out.allResults = nums
  }
  const fromState = (state: TrainerState | undefined, source: HistorySource): boolean => {
    if (!state || typeof state !== 'object') return false
    const history = numericRecords(state.log_history)
    if (history.length === 0) return false
    out.history = history
    out.source = source
    if (typeof state.max_steps === 'number') out.maxSteps = state.max_steps
    return true
  }
  if (fromState((await readJson(join(outputDir, 'trainer_state.json'), since)) as TrainerState, 'trainer_state.json')) return out
  const checkpoints = (await readdir(outputDir).catch(() => [] as string[]))
    .filter((n) => /^checkpoint-\d+$/.test(n))
    .map((n) => Number(n.slice(11)))
    .sort((a, b) => b - a)
  for (const step of checkpoints) {
    if (fromState((await readJson(join(outputDir, `checkpoint-${step}`, 'trainer_state.json'), since)) as TrainerState, `checkpoint-${step}/trainer_state.json`)) return out
  }
  let entries = opts.entries
  if (!entries) {
    const path = join(outputDir, TRAINER_LOG)
    const st = await stat(path).catch(() => undefined)
    if (st && st.mtimeMs >= since) {
      entries = (await readFile(path, 'utf8')).split('\n').map(parseTrainerLogLine).filter((e): e is TrainerLogEntry => e !== undefined)
    }
  }
  if (entries?.length) {
    out.history = entries.map(entryToRecord).filter((r) => Object.keys(r).length > 2 || r.loss !== undefined)
    out.source = 'trainer_log.jsonl'
    const total = entries[entries.length - 1]!.total_steps
    if (total) out.maxSteps = total
  }
  return out
}

/** The metrics shown first, in this order; the others follow sorted. */
export const SUMMARY_ORDER = [
  'loss',
  'rewards/chosen',
  'rewards/rejected',
  'rewards/margins',
  'rewards/accuracies',
  'logps/chosen',
  'logps/rejected',
  'logits/chosen',
  'logits/rejected',
  'sft_loss',
  'odds_ratio_loss',
  'grad_norm',
  'learning_rate',
] as const

/** Per-run bookkeeping fields of a record, not metrics. */
const NOT_METRICS = new Set(['step', 'epoch', 'total_flos', 'num_input_tokens_seen'])

/** What a run reached: first and last train values, last eval values, final results. */
export interface TrainingSummary {
  source: HistorySource
  /** The last step logged. */
  step: number
  maxSteps?: number
  epoch?: number
  /** Train records (those with `loss`). */
  trainRecords: number
  /** Metric -> value at the first train record. */
  first: Record<string, number>
  /** Metric -> value at the last train record. */
  last: Record<string, number>
  /** Metric (without `eval_`) -> value at the last eval record. */
  eval: Record<string, number>
  /** `all_results.json`. */
  results: Record<string, number>
}

/**
 * Summarise results for the table and the HTML page.
 * @example
 * const s = summarizeTraining(await readTrainingResults(outputDir))
 * s.last['rewards/accuracies'] // 0.83
 */
export function summarizeTraining(r: TrainingResults): TrainingSummary {
  const train = r.history.filter((h) => h.loss !== undefined)
  const evals = r.history.filter((h) => h.eval_loss !== undefined)
  const metrics = (rec: LogRecord | undefined, strip?: string): Record<string, number> => {
    const out: Record<string, number> = {}
    if (!rec) return out
    for (const [k, v] of Object.entries(rec)) {
      if (NOT_METRICS.has(k)) continue
      if (strip) {
        if (!k.startsWith(strip) || /_(runtime|samples_per_second|steps_per_second)$/.test(k)) continue
        out[k.slice(strip.length)] = v
      } else out[k] = v
    }
    return out
  }
  const lastRec = r.history[r.history.length - 1]
  const s: TrainingSummary = {
    source: r.source,
    step: lastRec?.step ?? 0,
    trainRecords: train.length,
    first: metrics(train[0]),
    last: metrics(train[train.length - 1]),
    eval: metrics(evals[evals.length - 1], 'eval_'),
    results: r.allResults ?? {},
  }
  if (r.maxSteps !== undefined) s.maxSteps = r.maxSteps
  const epoch = [...r.history].reverse().find((h) => h.epoch !== undefined)?.epoch
  if (epoch !== undefined) s.epoch = epoch
  return s
}

/** Metric names in display order. */
export function orderedMetrics(names: Iterable<string>): string[] {
  const set = new Set(names)
  const first = SUMMARY_ORDER.filter((k) => set.has(k))
  return [...first, ...[...set].filter((k) => !(SUMMARY_ORDER as readonly string[]).includes(k)).sort()]
}

/** A number for the table: 4 significant digits, exponent form when tiny or huge. */
export function formatNumber(v: number | undefined): string {
  if (v === undefined) return ''
  if (v === 0) return '0'
  const a = Math.abs(v)
  if (a < 1e-3 || a >= 1e7) return v.toExponential(3)
  return String(Number(v.toPrecision(4)))
}

/**
 * The summary as a text table for a terminal.
 * @example
 * process.stdout.write(formatSummary(summarizeTraining(results)))
 * // training summary (trainer_state.json): step 375/375, epoch 3
 * //   metric               first       last        eval
 * //   loss                 0.6931      0.4123      0.4511
 * //   ...
 */
export function formatSummary(s: TrainingSummary): string {
  if (s.source === 'none') return 'training summary: no metrics were logged\n'
  const head = `training summary (${s.source}): step ${s.step}${s.maxSteps ? `/${s.maxSteps}` : ''}${s.epoch !== undefined ? `, epoch ${formatNumber(s.epoch)}` : ''}, ${s.trainRecords} train log${s.trainRecords === 1 ? '' : 's'}`
  const names = orderedMetrics([...Object.keys(s.last), ...Object.keys(s.eval)])
  const hasEval = Object.keys(s.eval).length > 0
  const results = Object.keys(s.results).sort()
  const width = Math.max(20, ...[...names, ...results].map((n) => n.length + 2))
  const col = (t: string) => t.padEnd(12)
  const lines = [head, `  ${'metric'.padEnd(width)}${col('first')}${col('last')}${hasEval ? 'eval' : ''}`.trimEnd()]
  for (const n of names) lines.push(`  ${n.padEnd(width)}${col(formatNumber(s.first[n]))}${col(formatNumber(s.last[n]))}${hasEval ? formatNumber(s.eval[n]) : ''}`.trimEnd())
  if (results.length) {
    lines.push('  final (all_results.json)')
    for (const k of results) lines.push(`  ${k.padEnd(width)}${formatNumber(s.results[k])}`)
  }
  return lines.join('\n') + '\n'
}
