/**
 * Preflight checks of the data a config trains on: every name in `dataset` / `eval_dataset` is an entry of
 * `<dataset_dir>/dataset_info.json`, its file is there, it fits the stage, and every image path its rows hold
 * resolves the way LLaMA-Factory resolves it (`<media_dir>/<path>`, else the working directory).
 */
import { createReadStream } from 'node:fs'
import { readdir, readFile, stat } from 'node:fs/promises'
import { extname, isAbsolute, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { editDistance } from '../llamafactory/train-args.js'
import { configString, datasetNames, type RunPaths } from './config.js'

/** One finding of a check: `fail` stops the launch, `warn` is printed, `ok`/`info` are for the record. */
export interface CheckResult {
  id: string
  level: 'ok' | 'info' | 'warn' | 'fail'
  message: string
}

/** How many image paths to check: all of them, an evenly spread sample, or none. */
export type ImageCheckMode = 'all' | 'sample' | 'none'

interface DatasetEntry {
  file_name?: unknown
  hf_hub_url?: unknown
  ms_hub_url?: unknown
  om_hub_url?: unknown
  script_url?: unknown
  cloud_file_name?: unknown
  formatting?: unknown
  ranking?: unknown
  columns?: Record<string, unknown>
}

/** Where a dataset's rows are, for the image check. */
interface LocalData {
  name: string
  files: string[]
  imagesColumn: string
}

const ALLOWED_EXT = new Set(['.arrow', '.csv', '.json', '.jsonl', '.parquet', '.txt'])
const REMOTE_KEYS = ['hf_hub_url', 'ms_hub_url', 'om_hub_url', 'script_url', 'cloud_file_name'] as const

/** Closest string by a cheap edit distance, for "did you mean" on dataset names. */
function closest(name: string, names: readonly string[]): string | undefined {
  let best: string | undefined
  let bestD = Math.max(2, Math.floor(name.length / 3)) + 1
  for (const n of names) {
    const d = editDistance(name, n)
    if (d < bestD) [best, bestD] = [n, d]
  }
  return best
}

/**
 * Check the datasets of a config, then (unless `images: 'none'`) the image paths of their local JSON/JSONL rows.
 * Parquet, arrow and hub datasets are not opened (a note says so).
 * @example
 * const results = await checkDatasets(cfg.effective, runPaths(cfg.effective, cfg.cwd), { cwd: cfg.cwd, images: 'all' })
 * results.filter((r) => r.level === 'fail')
 */
export async function checkDatasets(
  config: Record<string, unknown>,
  paths: RunPaths,
  opts: { cwd: string; images: ImageCheckMode; imageSample?: number },
): Promise<CheckResult[]> {
  const out: CheckResult[] = []
  const train = datasetNames(config.dataset)
  const evalNames = datasetNames(config.eval_dataset)
  const names = [...new Set([...train, ...evalNames])]
  if (names.length === 0) return out

  const tokenized = configString(config, 'tokenized_path')
  if (tokenized) {
    const dir = isAbsolute(tokenized) ? tokenized : resolve(opts.cwd, tokenized)
    const entries = await readdir(dir).catch(() => [])
    if (entries.length > 0) {
      out.push({ id: 'datasets', level: 'info', message: `tokenized_path ${dir} is not empty: LLaMA-Factory loads it and ignores the dataset settings, so they were not checked` })
      return out
    }
  }
  if (paths.datasetDir === 'ONLINE' || paths.datasetDir.startsWith('REMOTE:')) {
    out.push({ id: 'datasets', level: 'info', message: `dataset_dir is ${paths.datasetDir}: datasets come from the hub and were not checked` })
    return out
  }

  const infoPath = join(paths.datasetDir, 'dataset_info.json')
  let info: Record<string, DatasetEntry>
  try {
    const parsed = JSON.parse(await readFile(infoPath, 'utf8')) as unknown
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('it is not a JSON object')
    info = parsed as Record<string, DatasetEntry>
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    const why = e.code === 'ENOENT' ? 'no such file' : e.message
    out.push({ id: 'datasets', level: 'fail', message: `cannot open ${infoPath} (${why}): LLaMA-Factory stops with "Cannot open ${infoPath}"; check dataset_dir` })
    return out
  }

  const stage = configString(config, 'stage') ?? 'sft'
  const local: LocalData[] = []
  let failed = false
  for (const name of names) {
    const entry = Object.hasOwn(info, name) ? info[name] : undefined
    if (!entry || typeof entry !== 'object') {
      const hint = closest(name, Object.keys(info))
      out.push({
        id: 'datasets',
        level: 'fail',
        message: `dataset "${name}" is not in ${infoPath} (LLaMA-Factory: "Undefined dataset ${name} in dataset_info.json.")${hint ? `; did you mean "${hint}"?` : ''}`,
      })
      failed = true
      continue
    }
    // DPO and RM read pairs: every dataset must be a ranking one (the JSON boolean), and the other stages must not get one.
    const ranking = entry.ranking === true
    if ((stage === 'dpo' || stage === 'rm') && !ranking) {
      out.push({ id: 'datasets', level: 'fail', message: `dataset "${name}" has no "ranking": true in dataset_info.json, so stage ${stage} cannot use it ("The dataset is not applicable in the current training stage.")` })
      failed = true
    } else if ((stage === 'sft' || stage === 'pt') && ranking) {
      out.push({ id: 'datasets', level: 'fail', message: `dataset "${name}" is a ranking dataset, which stage ${stage} cannot use ("The dataset is not applicable in the current training stage.")` })
      failed = true
    }
    if (REMOTE_KEYS.some((k) => entry[k] !== undefined)) continue
    if (typeof entry.file_name !== 'string' || entry.file_name === '') {
      out.push({ id: 'datasets', level: 'fail', message: `dataset "${name}" in ${infoPath} has no file_name (nor a hub url)` })
      failed = true
      continue
    }
    const file = resolve(paths.datasetDir, entry.file_name)
    const st = await stat(file).catch(() => undefined)
    if (!st) {
      out.push({ id: 'datasets', level: 'fail', message: `dataset "${name}": ${file} not found (LLaMA-Factory: "File ${file} not found.")` })
      failed = true
      continue
    }
    const files = st.isDirectory() ? (await readdir(file)).sort().map((f) => join(file, f)) : [file]
    const exts = new Set(files.map((f) => extname(f).toLowerCase()))
    const badExt = [...exts].find((e) => !ALLOWED_EXT.has(e))
    if (badExt !== undefined || exts.size > 1) {
      const why = exts.size > 1 ? `holds files of different types (${[...exts].join(', ')}): "File types should be identical."` : `has a ${badExt || 'missing'} extension: "Allowed file types: arrow,csv,json,jsonl,parquet,txt."`
      out.push({ id: 'datasets', level: 'fail', message: `dataset "${name}": ${file} ${why}` })
      failed = true
      continue
    }
    const imagesColumn = typeof entry.columns?.images === 'string' ? entry.columns.images : undefined
    if (imagesColumn) local.push({ name, files, imagesColumn })
  }
  if (!failed) out.push({ id: 'datasets', level: 'ok', message: `dataset${names.length === 1 ? '' : 's'} ${names.join(', ')} found in ${infoPath}` })
  if (opts.images !== 'none' && local.length > 0) out.push(...(await checkImages(local, paths.mediaDir, opts.cwd, opts.images, opts.imageSample ?? 1000)))
  if (Number(config.val_size ?? 0) > 1e-6 && evalNames.length > 0) {
    out.push({ id: 'datasets', level: 'fail', message: 'val_size and eval_dataset are both set: LLaMA-Factory stops with "Cannot specify `val_size` if `eval_dataset` is not None."; keep one' })
  }
  return out
}

/** First place an image path is used, for messages. */
interface Use {
  dataset: string
  row: number
}

/** Read the image column of JSON/JSONL rows: each distinct path string with its first use. */
async function collectImages(data: LocalData[]): Promise<{ images: Map<string, Use>; other: number; unreadable: number; skipped: string[] }> {
  const images = new Map<string, Use>()
  let other = 0
  let unreadable = 0
  const skipped: string[] = []
  const take = (row: unknown, use: Use, column: string) => {
    if (row === null || typeof row !== 'object') return
    let v = (row as Record<string, unknown>)[column]
    if (v === undefined || v === null) return
    if (!Array.isArray(v)) v = [v]
    for (const item of v as unknown[]) {
      if (typeof item === 'string') {
        if (!images.has(item)) images.set(item, use)
      } else if (item && typeof item === 'object' && typeof (item as { path?: unknown }).path === 'string' && (item as { bytes?: unknown }).bytes == null) {
        // {bytes: null, path}: LLaMA-Factory opens d["path"] as is (not joined with media_dir); keep it with a marker.
        const p = `\0${(item as { path: string }).path}`
        if (!images.has(p)) images.set(p, use)
      } else other++
    }
  }
  for (const d of data) {
    for (const file of d.files) {
      const ext = extname(file).toLowerCase()
      if (ext === '.jsonl' || ext === '.json') {
        const head = await readHead(file)
        if (ext === '.json' && head.trimStart().startsWith('[')) {
          let rows: unknown
          try {
            rows = JSON.parse(await readFile(file, 'utf8'))
          } catch {
            unreadable++
            continue
          }
          if (Array.isArray(rows)) rows.forEach((r, i) => take(r, { dataset: d.name, row: i }, d.imagesColumn))
          continue
        }
        const rl = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity })
        let i = 0
        for await (const line of rl) {
          const row = i++
          if (!line.trim()) continue
          try {
            take(JSON.parse(line), { dataset: d.name, row }, d.imagesColumn)
          } catch {
            unreadable++
          }
        }
      } else skipped.push(file)
    }
  }
  return { images, other, unreadable, skipped }
}

async function readHead(file: string): Promise<string> {
  const stream = createReadStream(file, { encoding: 'utf8', start: 0, end: 4095 })
  let s = ''
  for await (const chunk of stream) s += chunk as string
  return s.replace(/^\uFEFF/, '')
}

async function isFile(p: string): Promise<boolean> {
  return stat(p).then(
    (s) => s.isFile(),
    () => false,
  )
}

/** Evenly spread picks of `n` out of `items` (all when `n >= items.length`). */
function spread<T>(items: readonly T[], n: number): T[] {
  if (n >= items.length) return [...items]
  return Array.from({ length: n }, (_, k) => items[Math.floor((k * items.length) / n)]!)
}

async function checkImages(data: LocalData[], mediaDir: string, cwd: string, mode: ImageCheckMode, sampleSize: number): Promise<CheckResult[]> {
  const out: CheckResult[] = []
  const { images, other, unreadable, skipped } = await collectImages(data)
  if (skipped.length) out.push({ id: 'images', level: 'info', message: `image paths in ${skipped.length} non-JSON file(s) were not checked (${skipped[0]}${skipped.length > 1 ? ', ...' : ''})` })
  if (unreadable) out.push({ id: 'images', level: 'warn', message: `${unreadable} row(s) of the data files are not valid JSON (LLaMA-Factory's loader will fail on them)` })
  if (other) out.push({ id: 'images', level: 'info', message: `${other} image value(s) hold bytes, not paths: not checked` })
  const all = [...images.entries()]
  if (all.length === 0) return out
  const picked = mode === 'all' ? all : spread(all, sampleSize)
  const missing: [string, Use, string][] = []
  let viaCwd = 0
  let firstViaCwd: string | undefined
  for (let i = 0; i < picked.length; i += 64) {
    await Promise.all(
      picked.slice(i, i + 64).map(async ([item, use]) => {
        if (item.startsWith('\0')) {
          const p = resolve(cwd, item.slice(1))
          if (!(await isFile(p))) missing.push([item.slice(1), use, p])
          return
        }
        if (/^[a-z][a-z0-9+.-]*:\/\//i.test(item) || item.startsWith('data:')) {
          missing.push([item, use, 'a URL or data URI: LLaMA-Factory only opens local files'])
          return
        }
        const joined = resolve(mediaDir, item)
        if (await isFile(joined)) return
        // LLaMA-Factory warns "does not exist in `media_dir`. Use original path." and opens it from the working directory.
        if (await isFile(resolve(cwd, item))) {
          viaCwd++
          firstViaCwd ??= item
          return
        }
        missing.push([item, use, joined])
      }),
    )
  }
  const scope = picked.length === all.length ? `all ${all.length} distinct image paths` : `${picked.length} of ${all.length} distinct image paths (an even sample; check all with --images all)`
  if (missing.length) {
    missing.sort((a, b) => a[1].dataset.localeCompare(b[1].dataset) || a[1].row - b[1].row)
    const list = missing.slice(0, 5).map(([item, use, where]) => `${item} (${use.dataset} row ${use.row}; ${where})`)
    out.push({
      id: 'images',
      level: 'fail',
      message: `${missing.length} missing image${missing.length === 1 ? '' : 's'} among ${scope}, media_dir ${mediaDir}: ${list.join('; ')}${missing.length > 5 ? '; ...' : ''}. Tokenisation would stop with FileNotFoundError`,
    })
  } else out.push({ id: 'images', level: 'ok', message: `${scope} found under media_dir ${mediaDir}` })
  if (viaCwd) {
    out.push({ id: 'images', level: 'warn', message: `${viaCwd} image path(s) are not under media_dir but only relative to the working directory (e.g. ${firstViaCwd}): they work only when launched from ${cwd}` })
  }
  return out
}
