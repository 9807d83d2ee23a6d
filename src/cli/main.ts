#!/usr/bin/env node
import { Command, Option } from 'commander'
import { readFileSync } from 'node:fs'
import { relative } from 'node:path'
import { PipelineError, isAbortError, type RunReport } from '../pipeline/index.js'
import { prepareRlhfV } from '../presets/rlhf-v.js'
import { progressBar } from './progress.js'

// commander: the usual choice for a typed Node CLI with subcommands, help and errors done right.
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }

const program = new Command()
  .name('prefpipe')
  .description('Preference (DPO) datasets to LLaMA-Factory training folders')
  .version(pkg.version)
  .showHelpAfterError()

program
  .command('rlhf-v')
  .description('prepare llamafactory/RLHF-V (or a file in its schema) as a LLaMA-Factory DPO dataset folder')
  .requiredOption('--input <file>', 'a local RLHF-V-schema file (.parquet, .json or .jsonl)')
  .requiredOption('--out <dir>', 'output folder')
  .option('--name <name>', 'dataset name in dataset_info.json', 'rlhf_v')
  .option('--media-dir <dir>', 'for .json/.jsonl input: folder the image paths are relative to')
  .addOption(new Option('--no-progress', 'no progress bar'))
  .action(async (opts: { input: string; out: string; name: string; mediaDir?: string; progress: boolean }) => {
    const controller = new AbortController()
    const onSigint = () => controller.abort()
    process.once('SIGINT', onSigint)
    const bar = progressBar(opts.progress)
    const t0 = Date.now()
    try {
      const { result, report } = await prepareRlhfV(
        { input: opts.input, out: opts.out, name: opts.name, ...(opts.mediaDir ? { mediaDir: opts.mediaDir } : {}) },
        { signal: controller.signal, onEvent: bar.onEvent },
      )
      bar.stop()
      printSummary(`${opts.input} -> ${opts.out}`, report, result.counts, Date.now() - t0)
    } catch (err) {
      bar.stop()
      if (isAbortError(err)) {
        process.stderr.write('prefpipe: interrupted; nothing half-written was left in the output folder\n')
        process.exitCode = 130
        return
      }
      throw err
    } finally {
      process.off('SIGINT', onSigint)
    }
  })

interface Counts {
  kept: number
  rejected: number
  imagesWritten: number
  distinctImages: number
  imageBytes: number
}

function printSummary(what: string, report: RunReport, counts: Counts, ms: number): void {
  const reasons = Object.entries(report.rejected).sort(([a], [b]) => a.localeCompare(b))
  // Rows read = what the source produced plus what it could not map (those are rejects too).
  const source = report.stages[0]!
  const rowsIn = source.out + Object.values(source.dropped).reduce((a, b) => a + b, 0)
  const lines = [
    `prefpipe rlhf-v: ${what}`,
    `  rows in          ${rowsIn}`,
    `  kept             ${counts.kept}`,
    `  rejected         ${counts.rejected}`,
    ...reasons.map(([r, n]) => `    ${r.padEnd(30)} ${n}`),
    `  images written   ${counts.imagesWritten} new of ${counts.distinctImages} distinct (${(counts.imageBytes / 1e6).toFixed(1)} MB)`,
    `  done in ${(ms / 1000).toFixed(1)} s; rejected rows are in rejects.jsonl`,
  ]
  process.stdout.write(lines.join('\n') + '\n')
}

try {
  await program.parseAsync(process.argv)
} catch (err) {
  const msg = err instanceof PipelineError ? err.message : err instanceof Error ? err.message : String(err)
  process.stderr.write(`prefpipe: ${msg.replace(/^\[prefpipe\] /, '')}\n`)
  if (process.env.PREFPIPE_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`)
  process.exitCode = 1
}
