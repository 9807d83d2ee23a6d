import { z } from 'zod'
import { open, type FileHandle } from 'node:fs/promises'
import { basename, resolve } from 'node:path'
import { parquetMetadataAsync, parquetReadObjects, parquetSchema, readOffsetIndex } from 'hyparquet'
import type { AsyncBuffer, ColumnChunk, Compressors, FileMetaData, RowGroup } from 'hyparquet'
import { compressors as defaultCompressors } from 'hyparquet-compressors'
import { detectFormat } from '../formats/detect.js'
import type { RowMapper } from '../formats/mapper.js'
import { resolveMapping, sharegptToSample, type SharegptMapping } from '../formats/sharegpt.js'
import { abortError } from '../pipeline/errors.js'
import { checkOptions } from '../pipeline/options.js'
import { notUtf8Reject } from './utf8.js'
import { named } from '../pipeline/stage.js'
import type { Source, StageContext } from '../pipeline/types.js'
import type { PreferenceSample } from '../record.js'

/**
 * An {@link AsyncBuffer} (what hyparquet reads from) that can be closed, so a source owns exactly one
 * resource and releases it in its `finally`.
 */
export interface ClosableAsyncBuffer extends AsyncBuffer {
  /** Release the underlying resource. Waits for reads in flight; slices asked for afterwards reject. Idempotent. */
  close(): Promise<void>
}

/**
 * Open a local file as a {@link ClosableAsyncBuffer}: ONE `fs.promises` file handle, positional reads
 * (`pread`) for every slice, closed by `close()`. hyparquet's own `asyncBufferFromFile` opens a new read
 * stream per slice and has nothing to close, which is why the parquet source uses this one.
 *
 * Throws a clear error when the path does not exist or is not a regular file.
 *
 * @example
 * const file = await openFileBuffer('fixtures/rlhf-v-sample.parquet')
 * try { const footer = await file.slice(file.byteLength - 8) } finally { await file.close() }
 */
export async function openFileBuffer(path: string): Promise<ClosableAsyncBuffer> {
  let handle: FileHandle
  try {
    handle = await open(path, 'r')
  } catch (err) {
    throw fileError(path, err)
  }
  let size: number
  try {
    const st = await handle.stat()
    if (!st.isFile()) throw new Error(`[prefpipe] ${path} is not a regular file (a directory?); give the path of a .parquet file`)
    size = st.size
  } catch (err) {
    await handle.close().catch(() => {})
    throw err
  }
  const inFlight = new Set<Promise<unknown>>()
  let closing: Promise<void> | undefined

  const read = async (start: number, end: number): Promise<ArrayBuffer> => {
    const length = end - start
    const out = new Uint8Array(length)
    let done = 0
    while (done < length) {
      const { bytesRead } = await handle.read(out, done, length - done, start + done)
      if (bytesRead === 0) break
      done += bytesRead
    }
    if (done < length) throw new Error(`[prefpipe] ${path}: short read at byte ${start + done} (the file shrank while it was being read?)`)
    return out.buffer
  }

  return {
    byteLength: size,
    slice(start: number, end: number = size): Promise<ArrayBuffer> {
      if (closing) return Promise.reject(new Error(`[prefpipe] ${path}: read after the file was closed`))
      const s = Math.max(0, Math.min(start, size))
      const e = Math.max(s, Math.min(end, size))
      if (s === e) return Promise.resolve(new ArrayBuffer(0))
      const p = read(s, e)
      inFlight.add(p)
      const forget = () => inFlight.delete(p)
      p.then(forget, forget)
      return p
    },
    close(): Promise<void> {
      closing ??= (async () => {
        await Promise.allSettled([...inFlight])
        await handle.close()
      })()
      return closing
    },
  }
}

/** Options of {@link parquetSource}. `columns` and `tags` are spelled as in LLaMA-Factory's `dataset_info.json`. */
const isFunction = (v: unknown) => typeof v === 'function'
const mappingShape = {
  columns: z.record(z.string(), z.string().min(1)).optional(),
  tags: z.record(z.string(), z.string().min(1)).optional(),
  mapRow: z.custom<RowMapper>(isFunction, 'must be a row mapper function').optional(),
}
const parquetOptionsSchema = z.strictObject({
  path: z.string().min(1, 'must be the path of a parquet file'),
  name: z.string().min(1).optional(),
  compressors: z.record(z.string(), z.custom(isFunction, 'must be a decompressor function')).optional(),
  windowRows: z.int().min(1).optional(),
  windowMinBytes: z.int().min(0).optional(),
  open: z.custom(isFunction, 'must be a function (path) => Promise<ClosableAsyncBuffer>').optional(),
  ...mappingShape,
})

export interface ParquetSourceOptions extends SharegptMapping {
  /** The parquet file. */
  path: string
  /** The name in sample ids (`<name>#<row>`). Default: the file's base name (`rlhf-v.parquet`). */
  name?: string
  /**
   * Decompressors, merged over those of `hyparquet-compressors` (snappy, gzip, zstd, brotli, lz4), which are
   * always on. Pass your own only to override one.
   */
  compressors?: Compressors
  /**
   * Rows per read window inside a big row group (default 256). Windows are used only where they pay off: the
   * row group has an offset index, and reading it by windows (each re-reads dictionary pages and any chunk
   * without an offset index) keeps the biggest window within half the row group and the total within two
   * passes; the window grows (doubling) until it does, else the row group is read whole.
   */
  windowRows?: number
  /**
   * Consider windows only for row groups whose mapped column chunks hold more than this many compressed bytes
   * (default 16 MiB). `0` considers every row group with more than `windowRows` rows.
   */
  windowMinBytes?: number
  /**
   * How to open `path` (default {@link openFileBuffer}: one file handle, closed when the source ends). Give
   * your own to read from elsewhere (an HTTP range reader) or to observe the reads in a test.
   */
  open?: (path: string) => Promise<ClosableAsyncBuffer>
  /**
   * Map each row yourself instead of reading it as sharegpt (`columns`/`tags` must then be left out): e.g.
   * `rlaifVMapper()`, `alpacaMapper()`. The source reads the mapper's `columns` (a missing one fails the run)
   * and the `optionalColumns` the file has, or every column when it declares none; it detaches and checks the
   * image bytes of its `imageColumns`. Image paths reach it unresolved (`resolvePath` is the identity).
   */
  mapRow?: RowMapper
}

const DEFAULT_WINDOW_ROWS = 256
const DEFAULT_WINDOW_MIN_BYTES = 16 * 1024 * 1024

/**
 * Read a sharegpt ranking dataset (RLHF-V's shape) from a local parquet file, one row group at a time.
 *
 * - **Memory** stays near one row group: each row group is read (only the mapped columns) when the previous
 *   one has been consumed, never ahead. A big row group (see `windowMinBytes`) whose column chunks have an
 *   offset index (`datasets` ≥ 5, parquet-rs, pyarrow with `write_page_index`) is read in windows of
 *   `windowRows` rows instead, fetching only the pages of each window, when that pays off (see `windowRows`):
 *   images in one huge dictionary page (pyarrow's default encoding) or in a single page cannot be windowed.
 * - **Ids** are `<name>#<row>` with the row's index in the whole file (shards keep the same ids); the index
 *   is also `meta.row`.
 * - **Shards**: shard `i/n` takes whole row groups, those with `rowGroupIndex % n === i`.
 * - **Images** come out as `{ bytes }` (a `Uint8Array` of its own, not a view on the row group's buffer, so a
 *   later stage holding one image does not pin a whole row group); the file's `path` of each image is kept in
 *   `meta.imagePaths` and never used to read anything. Null image lists and empty lists give no images.
 * - **Rows** that do not have the sharegpt ranking shape are rejected (`ctx.reject`) and the run goes on.
 * - **Text** is decoded as strict UTF-8: a row holding a string that is not valid UTF-8 (a Latin-1 export) is
 *   rejected (`text_not_utf8`, naming the column and the first bad byte), never written with U+FFFD mojibake.
 * - **Run errors** (thrown, naming the file and saying what to do): the path does not exist; it is empty, not a
 *   parquet file, or truncated (no footer); its data pages do not decode (cut or corrupt); its schema lacks a
 *   mapped column (with a hint at the preset or row mapper whose columns it has, e.g. RLAIF-V's). A file with
 *   0 rows is not an error here: it yields nothing (the presets refuse it before writing anything). The default `images` column may be absent (a text-only dataset); an `images` column you
 *   name yourself may not.
 * - **Abort**: `ctx.signal` is checked between reads and interrupts a read in flight; the file is closed in
 *   `finally` on completion, error and abort.
 * - **Progress**: after each batch, `{ done, total, bytes, totalBytes }` counting the rows and compressed bytes
 *   of this shard's row groups (a window counts its rows' share of its group's bytes). Counters: `rowGroups`,
 *   `windows`, `bytesRead` (the same bytes).
 *
 * Reads with `utf8: false`, which is required: otherwise hyparquet decodes the image bytes as a string. Any
 * `bytes` that is not a `Uint8Array` fails the run.
 *
 * @example
 * const { result } = await pipeline(
 *   parquetSource({ path: 'rlhf-v.parquet' }),
 *   validateRanking(),
 *   llamaFactory({ out: 'data', name: 'rlhf_v' }),
 * )
 * @example
 * // other column names, as in dataset_info.json
 * parquetSource({ path: 'pairs.parquet', columns: { messages: 'messages', chosen: 'good', rejected: 'bad' }, tags: { role_tag: 'role', content_tag: 'content', user_tag: 'user', assistant_tag: 'assistant' } })
 * @example
 * // another row shape: a row mapper (reads only the columns it declares)
 * parquetSource({ path: 'RLAIF-V-Dataset_000.parquet', mapRow: rlaifVMapper() })
 */
export function parquetSource(options: ParquetSourceOptions): Source<PreferenceSample> {
  checkOptions('parquetSource()', parquetOptionsSchema, options)
  const mapRow = options.mapRow
  if (mapRow && (options.columns !== undefined || options.tags !== undefined)) {
    throw new Error('[prefpipe] parquetSource: give either mapRow or columns/tags (the sharegpt mapping), not both')
  }
  const mapping = resolveMapping(options)
  const name = options.name ?? basename(options.path)
  const windowRows = Math.max(1, options.windowRows ?? DEFAULT_WINDOW_ROWS)
  const windowMinBytes = options.windowMinBytes ?? DEFAULT_WINDOW_MIN_BYTES
  const compressors: Compressors = { ...defaultCompressors, ...options.compressors }
  const openFile = options.open ?? openFileBuffer

  return named('parquet', async function* parquet(ctx: StageContext): AsyncGenerator<PreferenceSample> {
    const { signal, shard } = ctx
    if (signal.aborted) throw abortError(signal)
    const path = options.path
    const file = await openFile(path)
    const text = strictText()
    try {
      await checkMagic(file, path)
      const metadata = await readMetadata(file, path)
      const available = topLevelColumns(metadata)
      const wanted = mapRow ? mapperColumns(mapRow, available) : mappedColumns(mapping.columns, options.columns?.images !== undefined)
      const missing = wanted.required.filter((c) => !available.includes(c))
      if (missing.length > 0 && mapRow) {
        throw new Error(
          `[prefpipe] ${path} has no column${missing.length > 1 ? 's' : ''} ${missing.map((c) => `"${c}"`).join(', ')} ` +
            `(it has: ${available.map((c) => `"${c}"`).join(', ')}), which the row mapper (mapRow) reads`,
        )
      }
      if (missing.length > 0) {
        throw new Error(
          `[prefpipe] ${path} has no column${missing.length > 1 ? 's' : ''} ${missing.map((c) => `"${c}"`).join(', ')} ` +
            `(it has: ${available.map((c) => `"${c}"`).join(', ')}). ${formatHint(available)}Map your column names with the \`columns\` option, ` +
            `as in dataset_info.json, e.g. columns: { messages: "...", chosen: "...", rejected: "...", images: "..." }, or give a row mapper (mapRow)`,
        )
      }
      const columns = [...wanted.required, ...wanted.optional.filter((c) => available.includes(c))]
      const imagesColumn = !mapRow && mapping.columns.images && columns.includes(mapping.columns.images) ? mapping.columns.images : undefined
      const imageColumns = mapRow ? (mapRow.imageColumns ?? []).filter((c) => columns.includes(c)) : imagesColumn ? [imagesColumn] : []
      const rowMapping = { tags: mapping.tags, columns: { ...mapping.columns, images: imagesColumn } }
      if (!mapRow && mapping.columns.images && !imagesColumn) ctx.log.info(`${path}: no "${mapping.columns.images}" column; reading it as a dataset without images`)

      // This shard's row groups, with their first global row index.
      const groups: { index: number; start: number; rows: number; bytes: number; rg: RowGroup }[] = []
      let start = 0
      metadata.row_groups.forEach((rg, index) => {
        const rows = Number(rg.num_rows)
        if (index % shard.count === shard.index) groups.push({ index, start, rows, bytes: chunkBytes(rg, columns), rg })
        start += rows
      })
      const total = groups.reduce((n, g) => n + g.rows, 0)
      const totalBytes = groups.reduce((n, g) => n + g.bytes, 0)
      let done = 0
      let bytes = 0
      ctx.progress({ done, total, bytes, totalBytes })

      for (const g of groups) {
        const step = await windowStep(file, g.rg, columns, g.rows, g.bytes, windowRows, windowMinBytes)
        const windowed = step < g.rows
        for (let w = 0; w < g.rows; w += step) {
          if (signal.aborted) throw abortError(signal)
          const rowStart = g.start + w
          const rowEnd = Math.min(g.start + g.rows, rowStart + step)
          text.invalid = false
          const read = parquetReadObjects({
            file,
            metadata,
            columns,
            rowStart,
            rowEnd,
            utf8: false,
            compressors,
            useOffsetIndex: windowed,
            parsers: text.parsers as never,
          }).catch((err: unknown) => {
            throw readError(path, err, `rows ${rowStart}..${rowEnd - 1} (row group ${g.index})`)
          })
          const rows = await untilAborted(read, signal)
          if (rows.length !== rowEnd - rowStart) {
            throw new Error(`[prefpipe] ${path}: asked for rows ${rowStart}..${rowEnd - 1} of row group ${g.index}, got ${rows.length} rows`)
          }
          ctx.stats.count(windowed ? 'windows' : 'rowGroups')
          if (windowed && w === 0) ctx.stats.count('rowGroups')
          // A window's share of the row group's bytes (pages are not row-aligned; the last window squares it).
          const batchBytes = rowEnd === g.start + g.rows ? g.bytes - Math.round((g.bytes * w) / g.rows) : Math.round((g.bytes * (rowEnd - rowStart)) / g.rows)
          for (let i = 0; i < rows.length; i++) {
            const row = rows[i]!
            rows[i] = undefined as never // let consumed rows go
            const rowIndex = rowStart + i
            const id = `${name}#${rowIndex}`
            for (const c of imageColumns) detachImages(row[c], path, rowIndex, c)
            const notUtf8 = text.invalid ? findNotUtf8(row) : undefined
            if (notUtf8) {
              ctx.reject(notUtf8Reject(id, notUtf8))
              if (signal.aborted) throw abortError(signal)
              continue
            }
            const r = mapRow ? mapRow(row, id, identity) : sharegptToSample(row, id, rowMapping)
            if (r.ok) {
              r.sample.meta.row = rowIndex
              yield r.sample
            } else ctx.reject(r.reject)
            if (signal.aborted) throw abortError(signal)
          }
          done += rows.length
          bytes += batchBytes
          ctx.stats.count('bytesRead', batchBytes)
          ctx.progress({ done, total, bytes, totalBytes })
        }
      }
    } finally {
      await file.close()
    }
  })
}

const identity = (p: string) => p

/** What {@link parquetInfo} tells about a parquet file. */
export interface ParquetInfo {
  path: string
  /** File size in bytes. */
  bytes: number
  numRows: number
  /** Top-level column names, in schema order. */
  columns: string[]
  rowGroups: {
    index: number
    numRows: number
    /** Uncompressed size, as the writer reported it. */
    totalByteSize: number
    /** Sum of the column chunks' compressed sizes (what a read fetches). */
    compressedBytes: number
    /** Some column chunk of the row group has an offset index (writers leave it out of single-page chunks). */
    hasOffsetIndex: boolean
  }[]
  /** Every compression codec used by a column chunk. */
  codecs: string[]
  /** Every row group has an offset index (on its multi-page chunks at least): row windows are cheap. */
  hasOffsetIndex: boolean
  /** Keys of the file's key-value metadata (`huggingface`, `ARROW:schema`, ...). */
  keyValueKeys: string[]
  createdBy?: string
}

/**
 * Describe a parquet file from its footer alone (no data is read): columns, row groups with their rows and
 * byte sizes, codecs, whether it has an offset index, and its key-value metadata keys. The file is closed
 * before it returns. Throws the parquet source's clear errors (missing file, not parquet).
 *
 * @example
 * const info = await parquetInfo('rlhf-v.parquet')
 * console.log(info.numRows, info.rowGroups.length, info.codecs, info.hasOffsetIndex)
 */
export async function parquetInfo(path: string, openFile: (path: string) => Promise<ClosableAsyncBuffer> = openFileBuffer): Promise<ParquetInfo> {
  const file = await openFile(path)
  try {
    await checkMagic(file, path)
    const metadata = await readMetadata(file, path)
    const codecs = new Set<string>()
    const rowGroups = metadata.row_groups.map((rg, index) => {
      for (const c of rg.columns) if (c.meta_data) codecs.add(c.meta_data.codec)
      return {
        index,
        numRows: Number(rg.num_rows),
        totalByteSize: Number(rg.total_byte_size),
        compressedBytes: chunkBytes(rg),
        hasOffsetIndex: hasOffsetIndex(rg),
      }
    })
    const info: ParquetInfo = {
      path,
      bytes: file.byteLength,
      numRows: Number(metadata.num_rows),
      columns: topLevelColumns(metadata),
      rowGroups,
      codecs: [...codecs],
      hasOffsetIndex: rowGroups.length > 0 && rowGroups.every((g) => g.hasOffsetIndex),
      keyValueKeys: (metadata.key_value_metadata ?? []).map((kv) => kv.key),
    }
    if (metadata.created_by) info.createdBy = metadata.created_by
    return info
  } finally {
    await file.close()
  }
}

function fileError(path: string, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  if (code === 'ENOENT') return new Error(`[prefpipe] ${path} does not exist (resolved to ${resolve(path)})`, { cause: err })
  if (code === 'EACCES' || code === 'EPERM') return new Error(`[prefpipe] ${path} cannot be read: permission denied`, { cause: err })
  if (code === 'EISDIR') return new Error(`[prefpipe] ${path} is a directory; give the path of a file`, { cause: err })
  return new Error(`[prefpipe] ${path} cannot be opened: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
}

/** Parquet files start and end with `PAR1`. */
async function checkMagic(file: AsyncBuffer, path: string): Promise<void> {
  const size = file.byteLength
  const hint = `it is not a parquet file (a parquet file starts and ends with the bytes "PAR1")`
  if (size === 0) throw new Error(`[prefpipe] ${path}: ${hint}; it has only 0 bytes: the file is empty (an interrupted download or export?). Download or export it again`)
  if (size < 12) throw new Error(`[prefpipe] ${path}: ${hint}; it has only ${size} bytes`)
  const head = new Uint8Array(await file.slice(0, 4))
  const tail = new Uint8Array(await file.slice(size - 4, size))
  const text = (b: Uint8Array) => JSON.stringify(Buffer.from(b).toString('latin1'))
  if (isPar1(head) && !isPar1(tail)) {
    throw new Error(
      `[prefpipe] ${path} is a truncated parquet file: it starts with "PAR1" but does not end with it (it ends with ${text(tail)}), so its footer is missing ` +
        `(an interrupted download or copy?). Download or copy it again (for a Hub file, delete it from the cache first)`,
    )
  }
  if (!isPar1(head) || !isPar1(tail)) {
    throw new Error(`[prefpipe] ${path}: ${hint}; it starts with ${text(head)} and ends with ${text(tail)}`)
  }
}

async function readMetadata(file: AsyncBuffer, path: string): Promise<FileMetaData> {
  try {
    return await parquetMetadataAsync(file)
  } catch (err) {
    throw new Error(`[prefpipe] ${path}: its parquet footer cannot be read (a truncated or corrupt file?): ${err instanceof Error ? err.message : String(err)}. Download or copy it again`, { cause: err })
  }
}

/** A data read that failed: the file's pages do not decode (cut, overwritten, or not what the footer says). */
function readError(path: string, err: unknown, where: string): Error {
  if (err instanceof Error && err.name === 'AbortError') return err
  const why = err instanceof Error ? err.message : String(err)
  return new Error(
    `[prefpipe] ${path}: ${where} cannot be read (${why}); the file is corrupt or truncated in its data pages (an interrupted download or copy?). ` +
      `Download or copy it again (for a Hub file, delete it from the cache first)`,
    { cause: err },
  )
}

/** For the missing-columns error: the preset or mapper that reads a file with these columns, if one does. */
function formatHint(available: string[]): string {
  const format = detectFormat(available, ['rlaif-v', 'alpaca'])
  if (format === 'rlaif-v') {
    return 'Its columns are those of RLAIF-V (image, question, chosen, rejected): read it with `prefpipe rlaif-v --input <file>`, or parquetSource({ path, mapRow: rlaifVMapper() }). '
  }
  if (format === 'alpaca') {
    return 'Its columns are those of an alpaca ranking dataset (instruction, input, chosen, rejected): read it with `prefpipe dpo-en-demo --format alpaca --input <file>`, or parquetSource({ path, mapRow: alpacaMapper() }). '
  }
  return ''
}

/**
 * Text of a string column whose bytes are not valid UTF-8. hyparquet decodes strings with a lenient
 * `TextDecoder`, which turns bad bytes into U+FFFD silently; the source decodes strictly instead, and a row
 * holding such a value is rejected (`text_not_utf8`) rather than written with mojibake.
 */
class NotUtf8 {
  constructor(readonly bytes: Uint8Array) {}
}

/** hyparquet `parsers` that decode strings strictly, and whether the last read met bytes that are not UTF-8. */
function strictText(): { parsers: { stringFromBytes(bytes: Uint8Array | undefined): unknown }; invalid: boolean } {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
  const state = {
    invalid: false,
    parsers: {
      stringFromBytes(bytes: Uint8Array | undefined): unknown {
        if (!bytes) return bytes
        try {
          return decoder.decode(bytes)
        } catch {
          state.invalid = true
          return new NotUtf8(bytes)
        }
      },
    },
  }
  return state
}

/** The path (`chosen.value`, `conversations.0.value`) of the first value of a row that is not UTF-8, with its bytes. */
function findNotUtf8(value: unknown, at: string[] = []): { path: string; bytes: Uint8Array } | undefined {
  if (value instanceof NotUtf8) return { path: at.join('.'), bytes: value.bytes }
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return undefined
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const found = findNotUtf8(v, [...at, k])
    if (found) return found
  }
  return undefined
}

function isPar1(b: Uint8Array): boolean {
  return b[0] === 0x50 && b[1] === 0x41 && b[2] === 0x52 && b[3] === 0x31
}

function topLevelColumns(metadata: FileMetaData): string[] {
  return parquetSchema(metadata).children.map((c) => c.element.name)
}

/**
 * The columns to read: messages, chosen and rejected always; images when it was named by the user (required)
 * or is the default (optional); the system column when named (required).
 */
function mappedColumns(
  c: { messages: string; chosen: string; rejected: string; images?: string; system?: string },
  imagesExplicit: boolean,
): { required: string[]; optional: string[] } {
  const required = [c.messages, c.chosen, c.rejected]
  const optional: string[] = []
  if (c.images) (imagesExplicit ? required : optional).push(c.images)
  if (c.system) required.push(c.system)
  return { required: [...new Set(required)], optional: optional.filter((x) => !required.includes(x)) }
}

/** The columns a row mapper reads: its `columns` (every column when it declares none), and its optional ones. */
function mapperColumns(m: RowMapper, available: string[]): { required: string[]; optional: string[] } {
  const required = [...new Set(m.columns ?? available)]
  return { required, optional: [...new Set(m.optionalColumns ?? [])].filter((c) => !required.includes(c)) }
}

function chunksOf(rg: RowGroup, columns?: string[]): ColumnChunk[] {
  return rg.columns.filter((c) => !columns || columns.includes(c.meta_data?.path_in_schema[0] ?? ''))
}

function chunkBytes(rg: RowGroup, columns?: string[]): number {
  return chunksOf(rg, columns).reduce((n, c) => n + Number(c.meta_data?.total_compressed_size ?? 0n), 0)
}

const indexed = (c: ColumnChunk) => c.offset_index_offset !== undefined && !!c.offset_index_length

/** Some column chunk of the row group has an offset index. */
function hasOffsetIndex(rg: RowGroup): boolean {
  return rg.columns.some(indexed)
}

/**
 * Rows per read of a row group: all of them, or a window size when windows pay off. A window reads only the
 * pages of its rows (located with the offset index, read here: a few bytes per page), plus what is not paged:
 * each chunk's dictionary page and, whole, any chunk without an offset index (writers leave it out of
 * single-page chunks; hyparquet-writer does). Windows are used when the group is big (`minBytes`, more than
 * `rows` rows), some chunk has an offset index, and some window size from `rows` up (doubling) keeps the
 * biggest window within half the group and all windows together within two passes over it.
 */
async function windowStep(
  file: AsyncBuffer,
  rg: RowGroup,
  columns: string[],
  groupRows: number,
  groupBytes: number,
  rows: number,
  minBytes: number,
): Promise<number> {
  if (groupRows <= rows || groupBytes <= minBytes) return groupRows
  const chunks = chunksOf(rg, columns)
  if (!chunks.some(indexed)) return groupRows
  /** Per chunk: bytes every window reads, and each page's rows and bytes. */
  const layouts: { fixed: number; pages: { start: number; end: number; bytes: number }[] }[] = []
  for (const c of chunks) {
    const m = c.meta_data
    if (!m) return groupRows
    if (!indexed(c)) {
      layouts.push({ fixed: Number(m.total_compressed_size), pages: [] })
      continue
    }
    const at = Number(c.offset_index_offset)
    const locations = readOffsetIndex({ view: new DataView(await file.slice(at, at + c.offset_index_length!)), offset: 0 }).page_locations
    if (locations.length === 0) return groupRows
    const chunkStart = Number(m.dictionary_page_offset || m.data_page_offset)
    layouts.push({
      // whatever precedes the first data page is the dictionary (also when dictionary_page_offset is unset)
      fixed: Math.max(0, Number(locations[0]!.offset) - chunkStart),
      pages: locations.map((p, i) => ({
        start: Number(p.first_row_index),
        end: i + 1 < locations.length ? Number(locations[i + 1]!.first_row_index) : groupRows,
        bytes: p.compressed_page_size,
      })),
    })
  }
  for (let step = rows; step <= groupRows / 2; step *= 2) {
    const windows = Math.ceil(groupRows / step)
    const bytes = new Array<number>(windows).fill(0)
    for (const l of layouts) {
      for (let w = 0; w < windows; w++) bytes[w]! += l.fixed
      for (const p of l.pages) {
        if (p.end <= p.start) continue
        for (let w = Math.floor(p.start / step); w <= Math.floor((p.end - 1) / step) && w < windows; w++) bytes[w]! += p.bytes
      }
    }
    const total = bytes.reduce((a, b) => a + b, 0)
    if (total <= 2 * groupBytes && Math.max(...bytes) <= groupBytes / 2) return step
  }
  return groupRows
}

/**
 * Check every image's `bytes` is a `Uint8Array` (the `utf8` trap) and give each its own buffer: hyparquet
 * returns views on the page buffer, and one kept view would keep the whole row group alive.
 */
function detachImages(value: unknown, path: string, row: number, column: string): void {
  if (value == null) return
  const list = Array.isArray(value) ? value : [value]
  list.forEach((img: unknown, k) => {
    if (img == null || typeof img !== 'object') return
    const o = img as { bytes?: unknown }
    if (o.bytes == null) return
    if (!(o.bytes instanceof Uint8Array)) {
      throw new Error(`[prefpipe] ${path}: row ${row}: ${column}[${k}].bytes was read as ${typeof o.bytes}, not bytes (a parquet reader must be called with utf8: false)`)
    }
    if (o.bytes.byteOffset !== 0 || o.bytes.byteLength !== o.bytes.buffer.byteLength) o.bytes = o.bytes.slice()
  })
}

/** Settle with `p`, or reject with an AbortError as soon as `signal` aborts (the abandoned `p` is silenced). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  p.catch(() => {})
  if (signal.aborted) return Promise.reject(abortError(signal))
  return new Promise<T>((resolveP, reject) => {
    const onAbort = () => reject(abortError(signal))
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort)
        resolveP(v)
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(e)
      },
    )
  })
}

