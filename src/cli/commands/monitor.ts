import { Command, InvalidArgumentError, Option } from 'commander'
import { Writable } from 'node:stream'
import { monitorTraining } from '../../launch/monitor.js'
import { globalFlags } from '../output.js'

interface MonitorCliOptions {
  follow: boolean
  plots: boolean
  progress: boolean
  wait: number
  pollMs?: number
}

/**
 * `prefpipe monitor <output_dir | config.yaml>`: follow a run that is already going (live steps, loss,
 * accuracy, lr, ETA), then print its summary and write its plots. Ctrl-C stops following and summarises what
 * is there. Exits 1 when there is nothing to show.
 * @example
 * registerMonitor(program) // in src/cli/main.ts
 */
export function registerMonitor(program: Command): Command {
  return program
    .command('monitor')
    .description("follow a LLaMA-Factory run's metrics live, then print its summary and write plots")
    .argument('<run>', "the run's output_dir, or its training YAML")
    .option('--no-follow', 'summarise what is there now, without following')
    .option('--no-plots', 'do not write the SVG plots and training.html')
    .option('--no-progress', 'plain progress lines even on a terminal')
    .addOption(
      new Option('--wait <seconds>', 'after the training ends, how long to wait for trainer_state.json')
        .argParser((v: string) => {
          const n = Number(v)
          if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`not a number of seconds: ${v}`)
          return n
        })
        .default(600),
    )
    .addOption(
      new Option('--poll-ms <ms>', 'how often trainer_log.jsonl is read')
        .argParser((v: string) => {
          const n = Number(v)
          if (!Number.isInteger(n) || n < 10) throw new InvalidArgumentError(`must be a whole number of at least 10: ${v}`)
          return n
        })
        .hideHelp(),
    )
    .action(async (target: string, opts: MonitorCliOptions, command: Command) => {
      const { quiet } = globalFlags(command)
      const ac = new AbortController()
      const onSigint = () => {
        if (ac.signal.aborted) process.exit(130)
        process.stderr.write('\nprefpipe: stopped following; summarising what is there (Ctrl-C again to quit now)\n')
        ac.abort()
      }
      process.on('SIGINT', onSigint)
      try {
        const r = await monitorTraining({
          target,
          follow: opts.follow,
          plots: opts.plots,
          progress: opts.progress && !quiet,
          // --quiet: no live progress lines (stderr); the summary (stdout) still shows.
          ...(quiet ? { stderr: new Writable({ write: (_chunk, _enc, done) => done() }) } : {}),
          waitResultsMs: Math.round(opts.wait * 1000),
          signal: ac.signal,
          ...(opts.pollMs !== undefined ? { pollMs: opts.pollMs } : {}),
        })
        if (r.summary.source === 'none') process.exitCode = 1
      } finally {
        process.off('SIGINT', onSigint)
      }
    })
}
