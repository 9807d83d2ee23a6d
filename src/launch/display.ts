/**
 * Showing a training's progress: a cli-progress bar on a terminal (with the training's output scrolling above
 * it), plain lines elsewhere.
 */
import cliProgress from 'cli-progress'
import { isFinalEntry, type TrainerLogEntry } from './trainer-log.js'

/** A number for a progress line: 4 significant digits, exponent form when small. */
export function formatMetric(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return '-'
  if (v !== 0 && Math.abs(v) < 1e-3) return v.toExponential(2)
  return String(Number(v.toPrecision(4)))
}

/** A learning rate: `1.20e-6`. */
function formatLr(lr: number): string {
  return lr.toExponential(2).replace('e+', 'e')
}

/**
 * An entry as one plain line.
 * @example
 * formatEntry({ current_steps: 10, total_steps: 375, loss: 0.6931, accuracy: 0.5, lr: 1.2e-6, epoch: 0.08, percentage: 2.67, elapsed_time: '0:01:23', remaining_time: '0:50:40' })
 * // 'step 10/375 (2.67%)  loss 0.6931  acc 0.5  lr 1.20e-6  epoch 0.08  elapsed 0:01:23  ETA 0:50:40'
 */
export function formatEntry(e: TrainerLogEntry): string {
  const pct = e.percentage ?? (e.total_steps ? Math.round((e.current_steps / e.total_steps) * 10000) / 100 : 0)
  const parts = [`step ${e.current_steps}/${e.total_steps} (${pct}%)`]
  if (isFinalEntry(e)) parts[0] = `done ${e.current_steps}/${e.total_steps} steps`
  if (e.loss !== undefined) parts.push(`loss ${formatMetric(e.loss)}`)
  if (e.eval_loss !== undefined) parts.push(`eval_loss ${formatMetric(e.eval_loss)}`)
  if (e.accuracy !== undefined) parts.push(`acc ${formatMetric(e.accuracy)}`)
  if (e.lr !== undefined) parts.push(`lr ${formatLr(e.lr)}`)
  if (e.epoch !== undefined) parts.push(`epoch ${formatMetric(e.epoch)}`)
  if (e.elapsed_time) parts.push(`elapsed ${e.elapsed_time}`)
  if (e.remaining_time && !isFinalEntry(e)) parts.push(`ETA ${e.remaining_time}`)
  return parts.join('  ')
}

/** Shows the training's progress (and, during a launch, its output). */
export interface MonitorDisplay {
  /** A chunk of the training's own output. */
  output(chunk: Buffer, stream: 'stdout' | 'stderr'): void
  /** A new log entry. */
  entry(e: TrainerLogEntry): void
  /** A line of our own (a status message). */
  note(message: string): void
  /** Stop drawing (flushes what is pending). */
  stop(): void
}

/** Options of {@link createDisplay}. */
export interface DisplayOptions {
  /** Draw a progress bar (only honoured when `progressStream` is a terminal). */
  bar: boolean
  /** Where progress (bar or lines) goes. */
  progressStream: NodeJS.WriteStream | NodeJS.WritableStream
  /** Where the training's stdout goes (default process.stdout). */
  stdout?: NodeJS.WritableStream
  /** Where the training's stderr goes (default process.stderr). */
  stderr?: NodeJS.WritableStream
  /** Prefix of plain progress lines (default `''`). */
  prefix?: string
}

/**
 * A display: on a terminal, a cli-progress bar (steps, loss, accuracy, lr, ETA) with the training's output
 * scrolling above it (whole lines; tqdm's in-place updates are dropped while the bar shows, since the bar
 * says the same); elsewhere the output as it comes and one plain line per log entry.
 * @example
 * const display = createDisplay({ bar: true, progressStream: process.stderr })
 * display.entry({ current_steps: 10, total_steps: 375, loss: 0.69 })
 * display.stop()
 */
export function createDisplay(opts: DisplayOptions): MonitorDisplay {
  const out = opts.stdout ?? process.stdout
  const err = opts.stderr ?? process.stderr
  const prefix = opts.prefix ?? ''
  const isTTY = (opts.progressStream as NodeJS.WriteStream).isTTY === true
  if (!opts.bar || !isTTY) {
    // Our lines share a stream with the training's output, which may stop mid-line (tqdm's \r updates):
    // start ours on a line of their own.
    const midLine = new Map<NodeJS.WritableStream, boolean>()
    const line = (text: string) => {
      const s = opts.progressStream
      s.write(`${midLine.get(s) ? '\n' : ''}${text}\n`)
      midLine.set(s, false)
    }
    return {
      output(chunk, s) {
        const target = s === 'stdout' ? out : err
        target.write(chunk)
        if (chunk.length) midLine.set(target, chunk[chunk.length - 1] !== 10)
      },
      entry: (e) => line(`${prefix}${formatEntry(e)}`),
      note: (m) => line(`${prefix}${m}`),
      stop: () => {},
    }
  }
  const multi = new cliProgress.MultiBar(
    {
      stream: opts.progressStream as NodeJS.WriteStream,
      format: '  training [{bar}] {value}/{total} steps {percentage}% | loss {loss} | acc {acc} | lr {lr} | ETA {remaining}',
      hideCursor: false,
      clearOnComplete: false,
      gracefulExit: false,
      barsize: 30,
    },
    cliProgress.Presets.shades_classic,
  )
  let bar: cliProgress.SingleBar | undefined
  const pending = { stdout: '', stderr: '' }
  const payload = (e: TrainerLogEntry) => ({
    loss: formatMetric(e.loss ?? e.eval_loss),
    acc: formatMetric(e.accuracy),
    lr: e.lr === undefined ? '-' : formatLr(e.lr),
    remaining: e.remaining_time ?? '-',
  })
  let last: ReturnType<typeof payload> | undefined
  return {
    output(chunk, s) {
      if (!bar) return void (s === 'stdout' ? out : err).write(chunk)
      const text = pending[s] + chunk.toString('utf8')
      const lines = text.split('\n')
      pending[s] = lines.pop() ?? ''
      // A line redrawn with \r shows its last state; keep only that.
      for (const line of lines) multi.log(`${line.slice(line.lastIndexOf('\r') + 1)}\n`)
      if (pending[s].length > 65536) pending[s] = pending[s].slice(pending[s].lastIndexOf('\r') + 1)
    },
    entry(e) {
      const p = payload(e)
      // Eval and final entries carry no train loss: keep showing the last train values.
      const shown = e.loss === undefined && last ? { ...last, remaining: p.remaining } : p
      if (e.loss !== undefined) last = p
      if (!bar) bar = multi.create(e.total_steps, e.current_steps, shown)
      else {
        bar.setTotal(e.total_steps)
        bar.update(e.current_steps, shown)
      }
      if (e.eval_loss !== undefined) multi.log(`${prefix}${formatEntry(e)}\n`)
    },
    note(m) {
      if (bar) multi.log(`${m}\n`)
      else opts.progressStream.write(`${m}\n`)
    },
    stop() {
      for (const s of ['stdout', 'stderr'] as const) if (pending[s]) multi.log(`${pending[s].slice(pending[s].lastIndexOf('\r') + 1)}\n`)
      if (bar) {
        multi.update()
        multi.stop()
      }
    },
  }
}
