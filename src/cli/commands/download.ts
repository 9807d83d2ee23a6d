import { Option, type Command } from 'commander'
import { cliLogger, globalFlags } from '../output.js'
import { isAbortError } from '../../pipeline/errors.js'
import { downloadDataFiles } from '../../sources/hub/download.js'
import { formatBytes } from '../../sources/hub/transfer.js'
import { byteProgress, type ProgressStream } from '../byte-progress.js'

/** Where the command writes, and the environment it reads (process's by default; tests pass their own). */
export interface DownloadCommandIO {
  stdout: { write(text: string): unknown }
  stderr: ProgressStream
  env: NodeJS.ProcessEnv
}

interface DownloadFlags {
  file?: string[]
  revision: string
  split?: string
  config?: string
  cacheDir?: string
  endpoint?: string
  offline?: boolean
  json?: boolean
  progress: boolean
}

/**
 * Register `prefpipe download <repo> [--file f ...] [--revision r]`: bring a dataset's files into the Hugging
 * Face cache (the one Python uses) and print their paths, one per line (or JSON lines with `--json`), with a
 * progress bar on stderr (plain lines when stderr is not a terminal). Without `--file`, the repo's parquet
 * data files. The token comes from `HF_TOKEN` or the token file, never from a flag (flags end up in shell
 * history and `ps`).
 *
 * @example
 * const program = new Command('prefpipe')
 * registerDownload(program)
 * await program.parseAsync(['node', 'prefpipe', 'download', 'llamafactory/RLHF-V'])
 */
export function registerDownload(program: Command, io: Partial<DownloadCommandIO> = {}): Command {
  const out = io.stdout ?? process.stdout
  const err = io.stderr ?? process.stderr
  const env = io.env ?? process.env
  return program
    .command('download')
    .description('download a dataset\'s files from the Hugging Face Hub into the Hugging Face cache (shared with Python) and print their paths')
    .argument('<repo>', 'dataset repo id, owner/name (e.g. llamafactory/RLHF-V)')
    .option('--file <path...>', 'file(s) in the repo (default: its parquet data files)')
    .option('--revision <rev>', 'branch, tag, commit sha, or refs/convert/parquet (the Hub\'s parquet conversion)', 'main')
    .option('--split <name>', 'without --file: the split whose files to take when file names carry one (default train)')
    .option('--config <name>', 'with refs/convert/parquet: the config folder (default: "default")')
    .option('--cache-dir <dir>', 'the hub cache (default: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub)')
    .option('--endpoint <url>', 'the Hub or a mirror (default: $HF_ENDPOINT, else https://huggingface.co)')
    .option('--offline', 'use the cache only, no network (as HF_HUB_OFFLINE=1)')
    .option('--json', 'print one JSON line per file: path, repo, file, commit, size, sha256, fromCache')
    .addOption(new Option('--no-progress', 'no progress on stderr'))
    .action(async (repo: string, flags: DownloadFlags, command: Command) => {
      const g = globalFlags(command)
      const controller = new AbortController()
      const onSigint = () => controller.abort()
      process.once('SIGINT', onSigint)
      const bar = byteProgress(err, flags.progress && !g.quiet)
      const log = cliLogger(g, err)
      try {
        const { resolved, files } = await downloadDataFiles({
          repo,
          revision: flags.revision,
          env,
          signal: controller.signal,
          log: { warn: log.warn, debug: log.debug },
          onProgress: bar.update,
          ...(flags.file ? { file: flags.file } : {}),
          ...(flags.split ? { split: flags.split } : {}),
          ...(flags.config ? { config: flags.config } : {}),
          ...(flags.cacheDir ? { cacheDir: flags.cacheDir } : {}),
          ...(flags.endpoint ? { endpoint: flags.endpoint } : {}),
          ...(flags.offline ? { offline: true } : {}),
        })
        bar.stop()
        for (const f of files) {
          if (flags.json) out.write(JSON.stringify({ path: f.path, repo: f.repo, file: f.file, revision: f.revision, commit: f.commit, size: f.size, sha256: f.sha256, fromCache: f.fromCache }) + '\n')
          else out.write(`${f.path}\n`)
        }
        const fetched = files.filter((f) => !f.fromCache)
        const bytes = fetched.reduce((n, f) => n + f.size, 0)
        if (!g.quiet) err.write(
          `prefpipe download: ${resolved.repo}@${resolved.revision} (commit ${resolved.commit.slice(0, 7)}): ${files.length} file${files.length === 1 ? '' : 's'}, ` +
            `${fetched.length === 0 ? 'all in the cache' : `${formatBytes(bytes)} downloaded and sha256-verified`}\n`,
        )
      } catch (e) {
        bar.stop()
        if (isAbortError(e)) {
          err.write('prefpipe: interrupted; the partial download is kept in the cache and resumes on the next run\n')
          process.exitCode = 130
          return
        }
        throw e
      } finally {
        process.off('SIGINT', onSigint)
      }
    })
}
