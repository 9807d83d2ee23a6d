import cliProgress from 'cli-progress'
import { formatBytes } from '../sources/hub/transfer.js'

/** Where the progress goes: stderr, or a stand-in in tests. */
export interface ProgressStream {
  write(text: string): unknown
  isTTY?: boolean
}

/** One update of a byte transfer. */
export interface ByteUpdate {
  file: string
  done: number
  total: number
}

/**
 * A download progress display on `stream` (stderr): on a terminal a cli-progress bar per file with bytes,
 * speed and ETA, redrawn in place; otherwise plain lines, one per 10 % of each file, so logs stay short.
 * Returns `update` (feed it every progress event) and `stop` (call once, also on errors).
 *
 * @example
 * const p = byteProgress(process.stderr)
 * await downloadDatasetFile({ repo, file, onProgress: p.update })
 * p.stop()
 */
export function byteProgress(stream: ProgressStream, enabled = true): { update: (u: ByteUpdate) => void; stop: () => void } {
  if (!enabled) return { update: () => {}, stop: () => {} }
  let file: string | undefined
  let samples: { t: number; done: number }[] = []
  const speedOf = (done: number): number => {
    const t = Date.now()
    samples.push({ t, done })
    while (samples.length > 2 && t - samples[0]!.t > 3000) samples.shift()
    const first = samples[0]!
    return t > first.t ? ((done - first.done) * 1000) / (t - first.t) : 0
  }
  const rate = (bps: number) => (bps > 0 ? `${formatBytes(Math.round(bps))}/s` : '-')

  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        stream: stream as NodeJS.WritableStream,
        format: '  {file} [{bar}] {percentage}% | {doneH} / {totalH} | {speed} | ETA {eta_formatted}',
        hideCursor: true,
        clearOnComplete: false,
        etaBuffer: 50,
        fps: 10,
      },
      cliProgress.Presets.shades_classic,
    )
    let running = false
    return {
      update(u) {
        const payload = { file: u.file, doneH: formatBytes(u.done), totalH: formatBytes(u.total), speed: rate(speedOf(u.done)) }
        if (u.file !== file) {
          if (running) bar.stop()
          file = u.file
          samples = []
          bar.start(u.total, u.done, payload)
          running = true
        } else bar.update(u.done, payload)
      },
      stop() {
        if (running) bar.stop()
        running = false
      },
    }
  }

  // Not a terminal: a line at the start, at each 10 %, and at the end of each file.
  let step = -1
  let started = 0
  return {
    update(u) {
      if (u.file !== file) {
        file = u.file
        samples = []
        step = -1
        started = Date.now()
      }
      const s = u.total > 0 ? Math.floor((10 * u.done) / u.total) : 10
      if (s === step) return
      step = s
      const speed = speedOf(u.done)
      const eta = speed > 0 && u.done < u.total ? `, ETA ${Math.ceil((u.total - u.done) / speed)} s` : ''
      const took = u.done >= u.total && Date.now() > started ? `, ${((Date.now() - started) / 1000).toFixed(1)} s` : ''
      stream.write(`  ${u.file}: ${formatBytes(u.done)} / ${formatBytes(u.total)} (${u.total > 0 ? Math.floor((100 * u.done) / u.total) : 100}%), ${rate(speed)}${eta}${took}\n`)
    },
    stop() {},
  }
}
