/** The split names `datasets` recognises in file and folder names, by split. */
const SPLIT_KEYWORDS: Record<string, readonly string[]> = {
  train: ['train', 'training'],
  validation: ['validation', 'valid', 'dev', 'val'],
  test: ['test', 'testing', 'eval', 'evaluation'],
}

/** Options of {@link pickDataFiles}. */
export interface PickDataFilesOptions {
  /** The split to read when the files are split by name (default `train`). */
  split?: string
  /**
   * For the Hub's parquet conversion (`refs/convert/parquet`, laid out `<config>/<split>/0000.parquet`): the
   * config folder to read. Default `default` when there is one, else the first in alphabetical order.
   */
  config?: string
  /** The paths come from `refs/convert/parquet` (one folder per config). */
  converted?: boolean
}

/** Words of a path, split on the delimiters `datasets` uses around split keywords (`-._ /` and digits). */
function words(path: string): string[] {
  return path.toLowerCase().replace(/\.parquet$/, '').split(/[-._ /0-9]+/).filter(Boolean)
}

function splitOf(path: string, wanted: string): string | undefined {
  const w = new Set(words(path))
  for (const [split, keys] of Object.entries(SPLIT_KEYWORDS)) if (keys.some((k) => w.has(k))) return split
  // a split with another name (`dpo`, `pairs`): matched by its own name
  return w.has(wanted.toLowerCase()) ? wanted : undefined
}

/** Natural order: `2.parquet` before `10.parquet`; zero-padded shard names keep their order. */
const natural = new Intl.Collator('en', { numeric: true }).compare

/**
 * Pick the parquet data files of a repo from its file list, in reading order.
 *
 * 1. Only `*.parquet` files, outside hidden folders (`.git...`, `.cache/...`).
 * 2. For `refs/convert/parquet`, only the files of one config folder (see `config`).
 * 3. When some file names carry a split (`train-00000-of-00004.parquet`, `data/test/...`, `rlhf-v-train.parquet`:
 *    the keywords `datasets` uses), only the files of `split` (default `train`); when none does, every file.
 * 4. Natural order, so shards come as `00000, 00001, ...` and `2` before `10`.
 *
 * @example
 * pickDataFiles(['README.md', 'rlhf-v.parquet']) // ['rlhf-v.parquet']
 * pickDataFiles(['data/test-00000-of-00001.parquet', 'data/train-00001-of-00002.parquet', 'data/train-00000-of-00002.parquet'])
 * // ['data/train-00000-of-00002.parquet', 'data/train-00001-of-00002.parquet']
 */
export function pickDataFiles(paths: readonly string[], o: PickDataFilesOptions = {}): string[] {
  let files = paths.filter((p) => /\.parquet$/i.test(p) && !p.split('/').some((seg) => seg.startsWith('.')))
  if (o.converted || o.config !== undefined) {
    const configs = [...new Set(files.filter((p) => p.includes('/')).map((p) => p.split('/')[0]!))].sort()
    const config = o.config ?? (configs.includes('default') ? 'default' : configs[0])
    if (config !== undefined) files = files.filter((p) => p.startsWith(`${config}/`))
  }
  const wanted = o.split ?? 'train'
  const splits = files.map((p) => splitOf(p, wanted))
  if (splits.some((s) => s !== undefined)) files = files.filter((_, i) => splits[i] === wanted)
  else if (o.split !== undefined && o.split !== 'train') files = []
  return files.sort(natural)
}

/** The config folders of a `refs/convert/parquet` listing (for messages). */
export function convertedConfigs(paths: readonly string[]): string[] {
  return [...new Set(paths.filter((p) => /\.parquet$/i.test(p) && p.includes('/')).map((p) => p.split('/')[0]!))].sort()
}
