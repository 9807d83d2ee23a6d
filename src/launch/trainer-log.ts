/**
 * `<output_dir>/trainer_log.jsonl`, LLaMA-Factory's `LogCallback` output (one JSON object per line, see
 * `reference/llamafactory.md` 6.1): its entries, and reading it incrementally as it grows.
 */
import { open, stat } from 'node:fs/promises'
import { join } from 'node:path'

/** One line of `trainer_log.jsonl`. Fields with no value are absent (LLaMA-Factory drops `None`s). */
export interface TrainerLogEntry {
  current_steps: number
  total_steps: number
  loss?: number
  eval_loss?: number
  predict_loss?: number
  reward?: number
  /** `rewards/accuracies` of the train logs (eval logs do not fill it). */
  accuracy?: number
  /** The learning rate. */
  lr?: number
  epoch?: number
  percentage?: number
  /** `str(timedelta)`: `"0:12:34"`, `"1 day, 2:03:04"`. */
  elapsed_time?: string
  remaining_time?: string
  throughput?: number
  total_tokens?: number
  vram_allocated?: number
  vram_reserved?: number
}

/** The name of the log file in `output_dir`. */
export const TRAINER_LOG = 'trainer_log.jsonl'

/**
 * Parse one line of `trainer_log.jsonl`; `undefined` for a blank line or one that is not a log object.
 * @example
 * parseTrainerLogLine('{"current_steps": 10, "total_steps": 375, "loss": 0.6931, "accuracy": 0.5}')
 * // { current_steps: 10, total_steps: 375, loss: 0.6931, accuracy: 0.5 }
 */
export function parseTrainerLogLine(line: string): TrainerLogEntry | undefined {
  const text = line.trim()
  if (!text) return undefined
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    return undefined
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined
  const e = v as Record<string, unknown>
  if (typeof e.current_steps !== 'number' || typeof e.total_steps !== 'number') return undefined
  return e as unknown as TrainerLogEntry
}

/**
 * Whether an entry is the one LLaMA-Factory writes at the end of training (from the train summary: all steps
 * done, and no `loss`).
 */
export function isFinalEntry(e: TrainerLogEntry): boolean {
  return e.total_steps > 0 && e.current_steps >= e.total_steps && e.loss === undefined && e.eval_loss === undefined
}

/**
 * Reads `trainer_log.jsonl` incrementally: each {@link TrainerLogFollower.poll} returns the lines completed
 * since the last one. Handles a file that does not exist yet, a line written in pieces (kept until its newline
 * arrives), and a file replaced or truncated under it (LLaMA-Factory deletes the log when
 * `overwrite_output_dir` is set): then it starts over from the top of the new file.
 * @example
 * const f = new TrainerLogFollower('saves/qwen2_vl-7b/lora/dpo')
 * await f.init()
 * setInterval(async () => { for (const e of await f.poll()) console.log(e.current_steps, e.loss) }, 1000)
 */
export class TrainerLogFollower {
  readonly file: string
  private offset = 0
  private ino = -1
  private head = ''
  private partial: Buffer = Buffer.alloc(0)
  /** Lines that were not log objects (skipped). */
  skipped = 0
  /** How many times the file was replaced or truncated while followed. */
  resets = 0

  /** @param fromStart read what the file already holds (default true); false: only what is added from now on. */
  constructor(
    readonly outputDir: string,
    private readonly opts: { fromStart?: boolean } = {},
  ) {
    this.file = join(outputDir, TRAINER_LOG)
  }

  /** Note the file as it is now (call before the training starts when `fromStart` is false). */
  async init(): Promise<void> {
    if (this.opts.fromStart ?? true) return
    const st = await stat(this.file).catch(() => undefined)
    if (!st) return
    this.ino = st.ino
    this.offset = st.size
    this.head = await this.readHead()
  }

  private async readHead(): Promise<string> {
    const fh = await open(this.file, 'r').catch(() => undefined)
    if (!fh) return ''
    try {
      const buf = Buffer.alloc(64)
      const { bytesRead } = await fh.read(buf, 0, 64, 0)
      return buf.subarray(0, bytesRead).toString('latin1')
    } finally {
      await fh.close()
    }
  }

  /** The entries of every line completed since the last call. */
  async poll(): Promise<TrainerLogEntry[]> {
    const st = await stat(this.file).catch(() => undefined)
    if (!st) {
      if (this.ino !== -1) this.restart()
      return []
    }
    if (this.ino !== -1) {
      const head = this.offset > 0 ? await this.readHead() : ''
      const sameHead = this.offset === 0 || head.slice(0, Math.min(64, this.offset)) === this.head.slice(0, Math.min(64, this.offset))
      if (st.ino !== this.ino || st.size < this.offset || !sameHead) this.restart()
    }
    this.ino = st.ino
    if (st.size <= this.offset) return []
    const fh = await open(this.file, 'r')
    let chunk: Buffer
    try {
      const want = st.size - this.offset
      chunk = Buffer.alloc(want)
      const { bytesRead } = await fh.read(chunk, 0, want, this.offset)
      chunk = chunk.subarray(0, bytesRead)
    } finally {
      await fh.close()
    }
    if (this.offset < 64) this.head = (this.head + chunk.subarray(0, 64 - this.offset).toString('latin1')).slice(0, 64)
    this.offset += chunk.length
    const data = this.partial.length ? Buffer.concat([this.partial, chunk]) : chunk
    const out: TrainerLogEntry[] = []
    let start = 0
    for (let nl = data.indexOf(10); nl !== -1; nl = data.indexOf(10, start)) {
      this.take(data.subarray(start, nl).toString('utf8'), out)
      start = nl + 1
    }
    this.partial = Buffer.from(data.subarray(start))
    return out
  }

  /** Read what is left, including a last line without its newline (the writer is done). */
  async finish(): Promise<TrainerLogEntry[]> {
    const out = await this.poll()
    if (this.partial.length) {
      this.take(this.partial.toString('utf8'), out)
      this.partial = Buffer.alloc(0)
    }
    return out
  }

  private take(line: string, out: TrainerLogEntry[]): void {
    if (!line.trim()) return
    const e = parseTrainerLogLine(line)
    if (e) out.push(e)
    else this.skipped++
  }

  private restart(): void {
    this.offset = 0
    this.head = ''
    this.partial = Buffer.alloc(0)
    this.resets++
    this.onReset?.()
  }

  /** Called when the file is replaced or truncated (what was read before belongs to an earlier run). */
  onReset?: () => void
}

/**
 * Follow `<outputDir>/trainer_log.jsonl` as an async iterable of entries: it waits for the file to appear,
 * yields each line as it is completed, and ends after the final entry (end of training) or when `signal`
 * aborts (after reading what is left).
 * @example
 * for await (const e of followTrainerLog('saves/qwen2_vl-7b/lora/dpo', { signal })) console.log(e.current_steps, e.loss)
 */
export async function* followTrainerLog(outputDir: string, opts: { signal?: AbortSignal; pollMs?: number; fromStart?: boolean } = {}): AsyncGenerator<TrainerLogEntry> {
  const follower = new TrainerLogFollower(outputDir, { fromStart: opts.fromStart ?? true })
  await follower.init()
  for await (const batch of pollLoop(follower, opts.signal, opts.pollMs ?? 500)) {
    for (const e of batch) {
      yield e
      if (isFinalEntry(e)) return
    }
  }
}

/** Poll `follower` every `pollMs` until `signal` aborts, then read what is left once more. */
export async function* pollLoop(follower: TrainerLogFollower, signal: AbortSignal | undefined, pollMs: number): AsyncGenerator<TrainerLogEntry[]> {
  for (;;) {
    if (signal?.aborted) {
      yield await follower.finish()
      return
    }
    yield await follower.poll()
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, pollMs)
      function done() {
        clearTimeout(t)
        signal?.removeEventListener('abort', done)
        resolve()
      }
      signal?.addEventListener('abort', done, { once: true })
    })
  }
}
