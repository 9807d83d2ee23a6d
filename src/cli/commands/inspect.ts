import { Command, InvalidArgumentError, Option } from 'commander'
import { existsSync } from 'node:fs'
import { downloadDataFiles } from '../../sources/hub/download.js'
import { byteProgress } from '../byte-progress.js'
import { cliLogger, globalFlags, type GlobalFlags } from '../output.js'
import { inspectFile, type InspectResult, type InspectRow } from '../../inspect.js'
import { PRESET_NAMES } from '../../presets/index.js'

/** The inspect flags as commander parses them. */
interface InspectCliOptions {
  rows: number
  check: number
  preset?: string
  mediaDir?: string
  revision?: string
  file?: string
  offline?: boolean
  json?: boolean
  progress: boolean
}

/** Where a Hub argument's file came from (`inspect owner/name`). */
interface InspectHubOrigin {
  repo: string
  revision: string
  commit: string
  file: string
  /** Every data file downloaded; the first is inspected. */
  files: string[]
}

/** `owner/name`, as a Hub dataset id is written. */
const REPO_RE = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/

/**
 * The local file to inspect: `arg` itself when it exists (or does not look like a repo id); otherwise the Hub
 * dataset `arg`'s parquet data files (or `--file`) downloaded into the Hugging Face cache, the first of them.
 */
async function localFile(arg: string, opts: InspectCliOptions, flags: GlobalFlags): Promise<{ path: string; hub?: InspectHubOrigin }> {
  if (existsSync(arg) || !REPO_RE.test(arg)) {
    if (opts.revision !== undefined || opts.file !== undefined) throw new Error(`[prefpipe] inspect ${arg}: --revision and --file are for a Hub dataset (owner/name), not a local file`)
    return { path: arg }
  }
  const bar = byteProgress(process.stderr, opts.progress && !flags.quiet)
  const log = cliLogger(flags)
  try {
    const { resolved, files } = await downloadDataFiles({
      repo: arg,
      ...(opts.revision !== undefined ? { revision: opts.revision } : {}),
      ...(opts.file !== undefined ? { file: opts.file } : {}),
      ...(opts.offline ? { offline: true } : {}),
      onProgress: bar.update,
      log: { warn: log.warn, debug: log.debug },
    })
    const first = files[0]
    if (!first) throw new Error(`[prefpipe] ${arg}@${resolved.revision}: no parquet data files; name one with --file`)
    return { path: first.path, hub: { repo: resolved.repo, revision: resolved.revision, commit: resolved.commit, file: first.file, files: files.map((f) => f.file) } }
  } finally {
    bar.stop()
  }
}

function count(value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`not a whole number: ${value}`)
  return Number(value)
}

/**
 * Add `prefpipe inspect <file>`: schema, row groups, the first rows mapped to the record and what validation
 * would reject among the first rows, as text or (`--json`) as the {@link InspectResult} of `inspectFile`.
 * Nothing is written. Exit status 0 (rejects are findings, not failures); 1 when the file cannot be read.
 *
 * @example
 * const program = new Command('prefpipe')
 * registerInspect(program)
 * await program.parseAsync(['node', 'prefpipe', 'inspect', 'fixtures/rlhf-v-sample.parquet', '--rows', '2'])
 */
export function registerInspect(program: Command): Command {
  return program
    .command('inspect')
    .description('look into a dataset file (parquet, json, jsonl) or a Hub dataset (owner/name): schema, row groups, first rows as records, what validation would reject')
    .argument('<file>', 'a local .parquet, .json or .jsonl file, or a Hub dataset owner/name (its parquet data files are downloaded into the cache)')
    .option('-n, --rows <n>', 'rows to show, mapped to the record', count, 5)
    .option('--check <n>', 'rows to read and validate (from the start)', count, 1000)
    .option('--preset <name>', `read the rows as this preset does (${PRESET_NAMES.join(', ')}); default: detect the row shape`)
    .option('--media-dir <dir>', 'for .json/.jsonl input: folder the image paths are relative to')
    .option('--revision <rev>', 'Hub dataset: branch, tag, commit sha or refs/convert/parquet (default main)')
    .option('--file <path>', 'Hub dataset: the file to inspect (default: the first parquet data file)')
    .option('--offline', 'Hub dataset: use only the Hugging Face cache (as HF_HUB_OFFLINE=1)')
    .option('--json', 'print the result as JSON')
    .addOption(new Option('--no-progress', 'no download progress'))
    .addHelpText('after', `\nExamples:\n  npx prefpipe inspect fixtures/rlhf-v-sample.parquet\n  npx prefpipe inspect llamafactory/RLHF-V --rows 2\n  npx prefpipe inspect openbmb/RLAIF-V-Dataset --file RLAIF-V-Dataset_000.parquet --json`)
    .action(async (arg: string, opts: InspectCliOptions, command: Command) => {
      const { path: file, hub } = await localFile(arg, opts, globalFlags(command))
      const inspected = await inspectFile(file, {
        rows: opts.rows,
        check: opts.check,
        ...(opts.preset !== undefined ? { preset: opts.preset } : {}),
        ...(opts.mediaDir !== undefined ? { mediaDir: opts.mediaDir } : {}),
      })
      const result = hub ? { ...inspected, hub } : inspected
      const origin = hub ? `${hub.repo}@${hub.revision} (commit ${hub.commit.slice(0, 7)}): ${hub.file}${hub.files.length > 1 ? ` (1 of ${hub.files.length} data files)` : ''}\n` : ''
      process.stdout.write(opts.json ? `${JSON.stringify(result, null, 2)}\n` : origin + formatInspect(result))
    })
}

/**
 * The text `prefpipe inspect` prints for a result.
 *
 * @example
 * process.stdout.write(formatInspect(await inspectFile('data.parquet')))
 */
export function formatInspect(r: InspectResult): string {
  const out: string[] = []
  const mb = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} kB` : `${n} B`)
  out.push(`${r.path}`)
  out.push(`  file      ${r.type}, ${mb(r.bytes)}`)
  out.push(`  format    ${r.format ?? 'unknown'}${r.preset ? ` (preset ${r.preset})` : ''}`)
  if (r.numRows !== undefined) out.push(`  rows      ${r.numRows}`)
  if (r.parquet) {
    const p = r.parquet
    out.push(`  parquet   ${p.rowGroups.length} row group${p.rowGroups.length === 1 ? '' : 's'}, ${p.codecs.join(', ') || 'no codec'}, offset index: ${p.hasOffsetIndex ? 'yes' : 'no'}${p.createdBy ? `, by ${p.createdBy}` : ''}`)
  }
  out.push('', 'columns')
  const width = Math.max(0, ...r.columns.map((c) => c.name.length))
  for (const c of r.columns) {
    // The `datasets` feature, where it says more than the parquet type (Image, Audio, ClassLabel, ...).
    const hf = r.hfFeatures?.[c.name] !== undefined ? featureName(r.hfFeatures[c.name]) : undefined
    const note = hf !== undefined && /[A-Z]/.test(hf.replace(/Value\([^)]*\)/g, '')) ? `  (datasets: ${hf})` : ''
    out.push(`  ${c.name.padEnd(width)}  ${c.type}${note}`)
  }
  if (r.parquet && r.parquet.rowGroups.length > 0) {
    out.push('', 'row groups')
    for (const g of r.parquet.rowGroups) out.push(`  #${g.index}  ${g.numRows} rows  ${mb(g.compressedBytes)} compressed${g.hasOffsetIndex ? '  offset index' : ''}`)
  }
  if (r.note) out.push('', `note: ${r.note}`)
  for (const w of r.warnings) out.push('', `warning: ${w}`)
  if (r.rows.length > 0) {
    out.push('', `first ${r.rows.length} row${r.rows.length === 1 ? '' : 's'}`)
    for (const row of r.rows) out.push(...formatRow(row))
  }
  const v = r.validation
  if (v.rowsChecked > 0 || !r.note) {
    out.push('', `validation of ${v.complete ? 'all' : 'the first'} ${v.rowsChecked} row${v.rowsChecked === 1 ? '' : 's'}: ${v.kept} kept, ${v.rejected} rejected`)
    for (const [reason, n] of Object.entries(v.byReason)) out.push(`  ${reason.padEnd(30)} ${n}`)
    const shown = v.rejects.slice(0, 20)
    if (shown.length > 0) {
      out.push('')
      for (const rj of shown) out.push(`  ${rj.id}  ${rj.reason}: ${clip(rj.message, 160)}`)
      if (v.rejected > shown.length) out.push(`  ... ${v.rejected - shown.length} more (--json lists up to 100)`)
    }
  }
  return out.join('\n') + '\n'
}

function formatRow(row: InspectRow): string[] {
  const lines = [`  #${row.row} ${row.ok ? 'ok' : `REJECTED ${row.reject!.reason} (${row.reject!.stage ?? '?'})`}`]
  const s = row.sample
  if (s) {
    if (s.system !== undefined) lines.push(`      system     ${clip(s.system)}`)
    for (const t of s.messages) lines.push(`      ${t.role.padEnd(10)} ${clip(t.content)}`)
    lines.push(`      chosen     ${clip(s.chosen.content)}`)
    lines.push(`      rejected   ${clip(s.rejected.content)}`)
    for (const [i, img] of s.images.entries()) {
      const what = img.bytes !== undefined ? `${img.format ?? 'unknown format'}, ${img.bytes} bytes, sha256 ${img.sha256}` : `path ${img.path}`
      lines.push(`      image ${i}    ${what}`)
    }
  }
  if (row.reject && !s) lines.push(`      ${clip(row.reject.message, 160)}`)
  return lines
}

/** A `datasets` feature in short: `Image`, `Value(string)`, `[Image]`, `{from: Value(string), ...}`. */
function featureName(f: unknown, depth = 0): string {
  if (Array.isArray(f)) return `[${f.length > 0 ? featureName(f[0], depth + 1) : ''}]`
  if (f === null || typeof f !== 'object' || depth > 4) return String(f)
  const o = f as Record<string, unknown>
  if (typeof o._type === 'string') {
    if (o._type === 'Value') return `Value(${String(o.dtype)})`
    if (o._type === 'Sequence' || o._type === 'List') return `[${featureName(o.feature, depth + 1)}]`
    return o._type
  }
  return `{${Object.entries(o).map(([k, v]) => `${k}: ${featureName(v, depth + 1)}`).join(', ')}}`
}

/** One line of at most `n` characters, newlines shown as `\n`. */
function clip(text: string, n = 100): string {
  const one = text.replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\t/g, '\\t')
  return one.length > n ? `${one.slice(0, n - 1)}…` : one
}
