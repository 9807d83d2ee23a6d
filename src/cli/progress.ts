import cliProgress from 'cli-progress'
import type { PipelineEvent } from '../pipeline/index.js'

/**
 * A progress bar on stderr for the source's rows (cli-progress: a small, well-kept bar that redraws in place
 * and degrades to nothing when stderr is not a terminal). Returns the event handler and a `stop()`.
 */
export function progressBar(enabled: boolean): { onEvent: (e: PipelineEvent) => void; stop: () => void } {
  if (!enabled || !process.stderr.isTTY) return { onEvent: () => {}, stop: () => {} }
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: '  {stage} [{bar}] {value}/{total} rows  {percentage}%  {eta_formatted} left', hideCursor: true, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  )
  let started = false
  return {
    onEvent(e) {
      if (e.type !== 'progress' || e.total === undefined) return
      if (!started) {
        bar.start(e.total, e.done, { stage: e.stage })
        started = true
      } else bar.update(e.done, { stage: e.stage })
    },
    stop() {
      if (started) bar.stop()
    },
  }
}
