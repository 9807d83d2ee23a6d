import { z } from 'zod'
import { createReadStream, type ReadStream } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { basename, dirname, extname, isAbsolute, resolve } from 'node:path'
import { createInterface, type Interface } from 'node:readline'
import type { RowMapper } from '../formats/mapper.js'
import { resolveMapping, sharegptToSample, type SharegptMapping } from '../formats/sharegpt.js'
import { abortError } from '../pipeline/errors.js'
import { checkOptions } from '../pipeline/options.js'
import { named } from '../pipeline/stage.js'
import type { Source, StageContext } from '../pipeline/types.js'
import type { PreferenceSample } from '../record.js'
import { firstInvalidUtf8, notUtf8Reject } from './utf8.js'

const jsonOptionsSchema = z.strictObject({
  path: z.string().min(1, 'must be the path of a .json or .jsonl file'),
  mediaDir: z.string().min(1).optional(),
  name: z.string().min(1).optional(),
  progressEvery: z.int().min(1).optional(),
  columns: z.record(z.string(), z.string().min(1)).optional(),
  tags: z.record(z.string(), z.string().min(1)).optional(),
  mapRow: z.custom<RowMapper>((v) => typeof v === 'function', 'must be a row mapper function').optional(),
})

/** Options of {@link jsonSource}. `columns` and `tags` are spelled as in LLaMA-Factory's `dataset_info.json`. */
export interface JsonSourceOptions extends SharegptMapping {
  /** A `.jsonl` file (JSON Lines) or a `.json` file (a top-level array, or JSON Lines as HF's json builder accepts). */
  path: string
  /**
   * The folder relative image paths are resolved against. Default: **the folder of the data file**, which is
   * where such paths usually point. LLaMA-Factory's own default is `dataset_dir` (its `media_dir` defaults to
   * it), which differs when the data file sits in a sub-folder; pass `mediaDir` to resolve as a given
   * LLaMA-Factory config would. Absolute paths are kept as they are.
   */
  mediaDir?: string
  /** The name in sample ids (`<name>#<row>`). Default: the file's base name. */
  name?: string
  /** Report progress every this many rows (default 1000), and once at the end. */
  progressEvery?: number
  /**
   * Map each row yourself instead of reading it as sharegpt (`columns`/`tags` must then be left out): e.g.
   * `alpacaMapper()`, `rlaifVMapper()`. It gets the `resolvePath` described under Images. The source warns once
   * when the first row lacks one of the mapper's `columns`.
   */
  mapRow?: RowMapper
}

/**
 * Read a LLaMA-Factory-style sharegpt ranking dataset from a local `.jsonl` or `.json` file.
 *
 * - **`.jsonl`**: streamed line by line, so memory is bounded by the longest line. Blank lines are skipped and
 *   are not rows. A line that is not valid JSON is rejected (`json_invalid`, with its line number) and the run
 *   goes on; so is a line that is not valid UTF-8 (`text_not_utf8`, with the first bad byte: never read as
 *   U+FFFD mojibake). A leading UTF-8 BOM and CRLF line ends are fine.
 * - **`.json`** (and any other extension): if the first non-blank character is `[` the whole file is parsed as
 *   one JSON array (the whole file is held in memory; a file that is not valid JSON fails the run). Otherwise
 *   it is read as JSON Lines, streamed, as HF's `json` builder does.
 * - **Row index**: counts every row (every non-blank line of JSON Lines, invalid ones included; every element of
 *   an array). Ids are `<name>#<row>`; the index is also `meta.row`.
 * - **Images**: relative paths are resolved with `path.resolve(mediaDir, p)` (see `mediaDir` for the default);
 *   absolute paths are kept; `scheme://` URLs are kept as they are (for a later stage to reject). The
 *   paths as written are kept in `meta.imagePaths`.
 * - **Shards**: shard `i/n` takes the rows with `rowIndex % n === i` (a JSON file has no row groups).
 * - **Run errors** (thrown, naming the file): the path does not exist or is not a file; a `.json` array that is
 *   not valid UTF-8, not valid JSON, or whose top level is not an array.
 * - **Abort**: `ctx.signal` is checked per row and stops the read; the stream is closed in `finally`.
 *
 * @example
 * const { result } = await pipeline(
 *   jsonSource({ path: 'data/mllm_demo_dpo.jsonl', mediaDir: 'data' }),
 *   validateRanking(),
 *   llamaFactory({ out: 'out', name: 'demo' }),
 * )
 * @example
 * // alpaca ranking rows ({instruction, input, chosen, rejected}) through a row mapper
 * jsonSource({ path: 'comparison_gpt4_data_en.json', mapRow: alpacaMapper() })
 */
export function jsonSource(options: JsonSourceOptions): Source<PreferenceSample> {
  checkOptions('jsonSource()', jsonOptionsSchema, options)
  const mapRow = options.mapRow
  if (mapRow && (options.columns !== undefined || options.tags !== undefined)) {
    throw new Error('[prefpipe] jsonSource: give either mapRow or columns/tags (the sharegpt mapping), not both')
  }
  const mapping = resolveMapping(options)
  const name = options.name ?? basename(options.path)
  const every = Math.max(1, options.progressEvery ?? 1000)

  return named('json', async function* json(ctx: StageContext): AsyncGenerator<PreferenceSample> {
    const { signal, shard } = ctx
    const path = options.path
    if (signal.aborted) throw abortError(signal)
    const totalBytes = await fileSize(path)
    const mediaDir = resolve(options.mediaDir ?? dirname(resolve(path)))
    const resolvePath = (p: string) => (isAbsolute(p) || /^[a-z][a-z0-9+.-]+:/i.test(p) ? p : resolve(mediaDir, p))

    let done = 0
    let bytes = 0
    let warned = false
    ctx.progress({ done, bytes, totalBytes })

    /** Map one parsed row; returns the sample, or undefined when it was rejected or is another shard's. */
    const take = (value: unknown, rowIndex: number): PreferenceSample | undefined => {
      if (!warned) {
        warned = true
        if (mapRow) warnMissingColumns(value, mapRow.columns ?? [], path, ctx, 'the row mapper (mapRow) reads them')
        else warnMissingColumns(value, [mapping.columns.messages, mapping.columns.chosen, mapping.columns.rejected], path, ctx, 'map your column names with the `columns` option')
      }
      const id = `${name}#${rowIndex}`
      const r = mapRow ? mapRow(value, id, resolvePath) : sharegptToSample(value, id, mapping, resolvePath)
      if (!r.ok) {
        ctx.reject(r.reject)
        return undefined
      }
      r.sample.meta.row = rowIndex
      return r.sample
    }
    const mine = (rowIndex: number) => rowIndex % shard.count === shard.index

    const asArray = extname(path).toLowerCase() !== '.jsonl' && (await firstChar(path)) === '['
    if (asArray) {
      // A top-level array: parsed whole (JSON.parse has no streaming mode). One text: bytes that are not UTF-8
      // fail the run (there are no rows to reject one by one yet).
      const raw = await readFile(path)
      const bad = firstInvalidUtf8(raw)
      if (bad < raw.byteLength) {
        throw new Error(
          `[prefpipe] ${path} is not valid UTF-8 (bad bytes ${raw.subarray(bad, bad + 8).toString('hex')} at byte ${bad}); it was written in another encoding (Latin-1, cp1252?). Re-encode it as UTF-8 (e.g. iconv -f latin1 -t utf-8) and run again`,
        )
      }
      const text = stripBom(raw.toString('utf8'))
      let rows: unknown
      try {
        rows = JSON.parse(text)
      } catch (err) {
        throw new Error(`[prefpipe] ${path} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
      }
      if (!Array.isArray(rows)) throw new Error(`[prefpipe] ${path}: the top level is not an array of rows`)
      bytes = totalBytes
      const total = Math.max(0, Math.ceil((rows.length - shard.index) / shard.count))
      for (let i = 0; i < rows.length; i++) {
        if (signal.aborted) throw abortError(signal)
        if (!mine(i)) continue
        const s = take(rows[i], i)
        rows[i] = undefined
        done++
        if (s) yield s
        if (done % every === 0) ctx.progress({ done, total, bytes, totalBytes })
      }
      ctx.progress({ done, total, bytes, totalBytes })
      return
    }

    // JSON Lines: one row per non-blank line, streamed.
    let stream: ReadStream | undefined
    let lines: Interface | undefined
    try {
      // Read as latin1 (one char per byte, so line breaks split exactly as in UTF-8), then decode each line
      // strictly: a line that is not UTF-8 is rejected (text_not_utf8) rather than read with U+FFFD mojibake.
      stream = createReadStream(path, { encoding: 'latin1' })
      lines = createInterface({ input: stream, crlfDelay: Infinity, signal })
      const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
      let lineNo = 0
      let rowIndex = 0
      for await (const bytesOfLine of lines) {
        lineNo++
        if (signal.aborted) break
        const lineBytes = Buffer.from(bytesOfLine, 'latin1')
        let raw: string | undefined
        try {
          raw = utf8.decode(lineBytes)
        } catch {
          raw = undefined
        }
        if (raw === undefined) {
          const index = rowIndex++
          if (!mine(index)) continue
          done++
          ctx.reject(notUtf8Reject(`${name}#${index}`, { path: `line ${lineNo}`, bytes: lineBytes }))
          continue
        }
        const line = lineNo === 1 ? stripBom(raw) : raw
        if (line.trim() === '') continue
        const index = rowIndex++
        if (!mine(index)) continue
        done++
        let value: unknown
        try {
          value = JSON.parse(line)
        } catch (err) {
          const why = err instanceof Error ? err.message : String(err)
          ctx.reject({
            id: `${name}#${index}`,
            reason: 'json_invalid',
            message: `line ${lineNo} is not valid JSON: ${why}`,
            detail: { line: lineNo, text: line.length > 200 ? `${line.slice(0, 200)}…` : line },
          })
          continue
        }
        const s = take(value, index)
        if (s) yield s
        if (done % every === 0) ctx.progress({ done, bytes: stream.bytesRead, totalBytes })
      }
      if (signal.aborted) throw abortError(signal)
      bytes = stream.bytesRead
      ctx.progress({ done, total: done, bytes, totalBytes })
    } catch (err) {
      if (signal.aborted) throw abortError(signal)
      throw err
    } finally {
      lines?.close()
      if (stream) await closeStream(stream)
    }
  })
}

async function fileSize(path: string): Promise<number> {
  try {
    const st = await stat(path)
    if (!st.isFile()) throw new Error(`[prefpipe] ${path} is not a regular file (a directory?); give the path of a .json or .jsonl file`)
    return st.size
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new Error(`[prefpipe] ${path} does not exist (resolved to ${resolve(path)})`, { cause: err })
    if (code === 'EACCES' || code === 'EPERM') throw new Error(`[prefpipe] ${path} cannot be read: permission denied`, { cause: err })
    throw err
  }
}

/** The first non-blank character of a file (after a BOM), reading only as far as needed. */
async function firstChar(path: string): Promise<string | undefined> {
  const stream = createReadStream(path, { encoding: 'utf8', highWaterMark: 4096 })
  try {
    for await (const chunk of stream) {
      const m = /[^\s\uFEFF]/.exec(chunk as string)
      if (m) return m[0]
    }
    return undefined
  } finally {
    await closeStream(stream)
  }
}

/** Destroy a file stream and wait until its file descriptor is closed. */
function closeStream(stream: ReadStream): Promise<void> {
  if (stream.closed) return Promise.resolve()
  return new Promise((resolveP) => {
    stream.once('close', () => resolveP())
    stream.destroy()
  })
}

function stripBom(s: string): string {
  return s.charCodeAt(0) === 0xfeff ? s.slice(1) : s
}

/** Warn once when the first row has none of a mapped column: most likely the `columns` option is wrong. */
function warnMissingColumns(value: unknown, columns: readonly string[], path: string, ctx: StageContext, hint: string): void {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return
  const keys = Object.keys(value)
  const missing = columns.filter((c) => !keys.includes(c))
  if (missing.length > 0) {
    ctx.log.warn(`${path}: the first row has no ${missing.map((c) => `"${c}"`).join(', ')} (it has ${keys.map((k) => `"${k}"`).join(', ')}); ${hint}`)
  }
}
