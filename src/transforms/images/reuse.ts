/**
 * Reusing processed images: a journal of what the images stage made of each distinct source image, so a
 * re-run (after a crash, or with another split) and a merge of shards take an image already processed with
 * the same options instead of decoding, resizing and encoding it again.
 *
 * A journal is `<root>/.prefpipe/images.jsonl`: a header line with the fingerprint of the options and library
 * versions that decide the output bytes, then one line per source image (by the sha256 of its bytes): the
 * output's sha256, size, file (`images/ab/<sha256>.<ext>`, relative to `<root>`), dimensions, format, pHash,
 * whether and why it was re-encoded, and what the source was; or the reason it was refused. An entry is used
 * only if its file is present in its root with that size and that sha256 (verified on every use), so a journal
 * line whose file never got written (a crash) or was changed is simply a miss.
 */
import { createHash } from 'node:crypto'
import { createWriteStream, type WriteStream } from 'node:fs'
import { mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import sharp from 'sharp'
import type { ImageSource } from '../../record.js'
import { prefpipeVersion } from '../../version.js'
import type { ImageFailure } from './decode.js'
import { PHASH_VERSION } from './phash.js'

/** A processed image as the images stage hands it on. `bytes` is null when it is read from `path`. */
export interface ReusableImage {
  ok: true
  bytes: Uint8Array | null
  /** Where the output bytes are, when `bytes` is null (a reused image). */
  path?: string
  /** The size of the output bytes (kept when `bytes` are dropped). */
  size: number
  sha256: string
  width: number
  height: number
  format: string
  reencoded: boolean
  /** Why it was re-encoded (empty when kept). */
  causes: string[]
  original: ImageSource
  phash: bigint
}

/** What the images stage made of one source image. */
export type ReusableOutcome = ReusableImage | ImageFailure

/** Where the images stage looks up and records processed images (see {@link imageJournal}). */
export interface ImageReuse {
  /** The outcome of this source image (sha256 of its bytes) from an earlier run with the same options, verified; else undefined. */
  lookup(sourceSha256: string): Promise<ReusableOutcome | undefined>
  /** Record the outcome of a source image processed in this run (resolves once its line, and its image file if the journal writes images, are written). */
  record(sourceSha256: string, outcome: ReusableOutcome): Promise<void>
  /**
   * The run finished: rewrite the journal with exactly the entries this run used, sorted (so a finished folder
   * is the same whatever the timing). After a failed run, leave it as appended (a re-run resumes from it).
   */
  finish(ok: boolean): Promise<void>
  /** How many images were taken from a journal instead of processed. */
  readonly reused: number
}

/** Options of {@link imageJournal}. */
export interface ImageJournalOptions {
  /** The folder whose `.prefpipe/images.jsonl` is read and written; entries' files are relative to it. */
  root: string
  /** The fingerprint of everything that decides an output (see {@link journalFingerprint}). */
  fingerprint: string
  /**
   * Also write each processed image's bytes into `root` (`images/ab/<sha256>.<ext>`), as a shard's part does.
   * Without it the images are written by the LLaMA-Factory sink into the same folder.
   */
  writeImages?: boolean
  /** More journals (shards' parts) to read from, never written. Their fingerprint must be the same. */
  readFrom?: string[]
}

const HEADER = 'prefpipeImageJournal'

/** A journal line for a made image: the image's description, its source, its file, and the pHash in hex. */
type OkEntry = Omit<ReusableImage, 'ok' | 'bytes' | 'path' | 'phash'> & { src: string; file: string; phash: string }
interface FailEntry {
  src: string
  fail: { reason: ImageFailure['reason']; message: string; detail?: Record<string, unknown> }
}
type Entry = OkEntry | FailEntry

/** The journal file of a folder. */
export function journalPath(root: string): string {
  return join(root, '.prefpipe', 'images.jsonl')
}

/** The content-addressed place of an output image in a folder: `images/ab/<sha256>.<ext>`. */
export function imageFile(sha256: string, ext: string): string {
  return `images/${sha256.slice(0, 2)}/${sha256}.${ext}`
}

/**
 * The fingerprint of the options that decide an output image, and of the libraries that make it (prefpipe's
 * version and sharp's libvips, mozjpeg, ... versions) and of the pHash definition ({@link PHASH_VERSION}): a journal
 * made under another fingerprint is not used.
 */
export function journalFingerprint(options: Record<string, unknown>, prefpipeVersion: string): string {
  const versions = sharp.versions as unknown as Record<string, string | undefined>
  const text = JSON.stringify({ options: sortObject(options), prefpipe: prefpipeVersion, sharp: sortObject(versions), phash: PHASH_VERSION })
  return createHash('sha256').update(text).digest('hex').slice(0, 32)
}

/** Options of the images stage that do not change what an image becomes (only which rows are kept, or how fast). */
const NOT_OUTPUT = new Set(['model', 'nearDuplicates', 'nearDuplicateDistance', 'dedupeRows', 'cutoffLen', 'charsPerToken', 'turnOverhead', 'defaultSystem', 'placeholder', 'concurrency', 'cacheBytes', 'repeatedImages', 'reuse'])

/**
 * The journal fingerprint of the images stage's resolved options: every option except those that only decide
 * which rows are kept or how fast it runs (an option added later counts, by default).
 * @example
 * const fingerprint = await imagesFingerprint(resolveImagesOptions({ maxPixels: 262144 }))
 */
export async function imagesFingerprint(resolved: object): Promise<string> {
  const picked = Object.fromEntries(Object.entries(resolved).filter(([k, v]) => !NOT_OUTPUT.has(k) && v !== undefined))
  return journalFingerprint(picked, await prefpipeVersion())
}

/**
 * Read the fingerprint a journal was made under (undefined when there is none, or it cannot be read).
 * @example
 * await journalFingerprintOf('parts/shard-0-of-4') // 'c0ffee…'
 */
export async function journalFingerprintOf(root: string): Promise<string | undefined> {
  const text = await readFile(journalPath(root), 'utf8').catch(() => '')
  const first = text.slice(0, text.indexOf('\n') === -1 ? text.length : text.indexOf('\n'))
  try {
    const h = JSON.parse(first) as Record<string, unknown>
    return typeof h.fingerprint === 'string' && h[HEADER] === 1 ? h.fingerprint : undefined
  } catch {
    return undefined
  }
}

/**
 * Open the journal of `root` (and the read-only journals of `readFrom`) for the images stage.
 * @example
 * const reuse = await imageJournal({ root: 'out/rlhf_v', fingerprint })
 * processImages({ reuse })
 */
export async function imageJournal(o: ImageJournalOptions): Promise<ImageReuse> {
  const own = journalPath(o.root)
  const known = new Map<string, { entry: Entry; root: string }>()
  // Parts first, then our own journal: ours wins (it is the one whose files live in our folder).
  for (const root of [...(o.readFrom ?? []), o.root]) {
    for (const entry of await readEntries(journalPath(root), o.fingerprint)) known.set(entry.src, { entry, root })
  }
  const used = new Map<string, Entry>()
  let reused = 0
  const madeDirs = new Set<string>()
  // One append stream for the whole run: lines go out in order and are coalesced by the stream (one write for
  // the lines queued behind the one in progress). A write error is kept and thrown by finish().
  let stream: WriteStream | undefined
  let streamError: Error | undefined
  let ready: Promise<WriteStream> | undefined
  /** Append a line; resolves once it is written (so a row is emitted only after its images' lines). */
  const append = (entry: Entry): Promise<void> => {
    ready ??= (async () => {
      await mkdir(dirname(own), { recursive: true })
      // A journal under another fingerprint (or a torn one) is replaced; ours is continued.
      const current = await readFile(own, 'utf8').catch(() => '')
      if (!current.startsWith(headerLine(o.fingerprint))) await writeFile(own, headerLine(o.fingerprint))
      const opened = createWriteStream(own, { flags: 'a' })
      opened.on('error', (err) => (streamError ??= err))
      stream = opened
      return opened
    })()
    const line = JSON.stringify(entry) + '\n'
    return ready.then((s) => new Promise<void>((resolve, reject) => s.write(line, (err) => (err ? reject(err) : resolve()))))
  }
  /** Every line appended so far written and the stream closed; then the first error of any of it thrown (`check`). */
  const closeStream = async (check: boolean) => {
    await ready?.catch(() => {})
    const s = stream
    // A later run of the stage with this journal opens it again.
    ready = undefined
    stream = undefined
    if (s && !s.destroyed) await new Promise<void>((resolve) => s.end(resolve))
    const err = streamError
    streamError = undefined
    if (check && err) throw err
  }

  const verified = async (e: OkEntry, root: string): Promise<boolean> => {
    const bytes = await readFile(join(root, e.file)).catch(() => undefined)
    return bytes !== undefined && bytes.byteLength === e.size && createHash('sha256').update(bytes).digest('hex') === e.sha256
  }

  return {
    get reused() {
      return reused
    },
    async lookup(src) {
      const hit = known.get(src)
      if (!hit) return undefined
      const { entry, root } = hit
      if ('fail' in entry) {
        used.set(src, entry)
        reused++
        return { ok: false, reason: entry.fail.reason, message: entry.fail.message, ...(entry.fail.detail ? { detail: entry.fail.detail } : {}) }
      }
      if (!(await verified(entry, root))) {
        known.delete(src)
        return undefined
      }
      used.set(src, entry)
      if (root !== o.root) await append(entry) // taken from a part: ours now records it too
      reused++
      return {
        ok: true,
        bytes: null,
        path: join(root, entry.file),
        size: entry.size,
        sha256: entry.sha256,
        width: entry.width,
        height: entry.height,
        format: entry.format,
        reencoded: entry.reencoded,
        causes: entry.causes,
        original: entry.original,
        phash: BigInt(`0x${entry.phash}`),
      }
    },
    async record(src, outcome) {
      let entry: Entry
      if (outcome.ok) {
        const file = imageFile(outcome.sha256, extOf(outcome.format))
        if (o.writeImages && outcome.bytes) await writeImage(join(o.root, file), outcome.bytes, madeDirs)
        entry = {
          src,
          sha256: outcome.sha256,
          size: outcome.size,
          file,
          width: outcome.width,
          height: outcome.height,
          format: outcome.format,
          reencoded: outcome.reencoded,
          causes: outcome.causes,
          original: outcome.original,
          phash: outcome.phash.toString(16).padStart(16, '0'),
        }
      } else {
        entry = { src, fail: { reason: outcome.reason, message: outcome.message, ...(outcome.detail ? { detail: outcome.detail } : {}) } }
      }
      used.set(src, entry)
      await append(entry)
    },
    async finish(ok) {
      await closeStream(ok)
      if (!ok) return
      const lines = [...used.values()].sort((a, b) => (a.src < b.src ? -1 : a.src > b.src ? 1 : 0)).map((e) => JSON.stringify(e) + '\n')
      await mkdir(dirname(own), { recursive: true })
      const tmp = `${own}.prefpipe-tmp-${process.pid}`
      await writeFile(tmp, headerLine(o.fingerprint) + lines.join(''))
      await rename(tmp, own)
    },
  }
}

function headerLine(fingerprint: string): string {
  return JSON.stringify({ [HEADER]: 1, fingerprint }) + '\n'
}

/** The entries of a journal made under `fingerprint`; a torn last line (a crash mid-append) is skipped. */
async function readEntries(path: string, fingerprint: string): Promise<Entry[]> {
  const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return ''
    throw err
  })
  if (!text.startsWith(headerLine(fingerprint))) return []
  const out: Entry[] = []
  for (const line of text.split('\n').slice(1)) {
    if (line === '') continue
    try {
      const e = JSON.parse(line) as Entry
      if (typeof e.src === 'string') out.push(e)
    } catch {
      // a torn line: that image is processed again
    }
  }
  return out
}

/** Write an image file atomically (tmp, then rename); a file already in place with its size is kept. */
async function writeImage(path: string, bytes: Uint8Array, madeDirs: Set<string>): Promise<void> {
  const have = await stat(path).catch(() => undefined)
  if (have?.isFile() && have.size === bytes.byteLength) return
  const dir = dirname(path)
  if (!madeDirs.has(dir)) {
    await mkdir(dir, { recursive: true })
    madeDirs.add(dir)
  }
  const tmp = join(dir, `.${path.slice(dir.length + 1)}.prefpipe-tmp-${process.pid}`)
  try {
    await writeFile(tmp, bytes)
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
}

/** The file extension of an output format (the sink names files the same way). */
export function extOf(format: string): string {
  const f = format.toLowerCase()
  if (f === 'jpeg' || f === 'jpg') return 'jpg'
  return f // png, webp, gif, tiff, bmp: as the sink names them
}

function sortObject(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}
