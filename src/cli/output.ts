/**
 * The CLI's global output flags, on every command: `--quiet` (no progress, no summary, no warnings: only
 * errors and the data asked for, such as `--json`, download paths or inspect's report) and `--verbose` (the
 * stages' info and debug messages on stderr).
 *
 * Colours: prefpipe prints none. The progress bars (cli-progress) draw only when stderr is a terminal and use
 * plain characters; on a terminal they move the cursor, but never set colours, so `NO_COLOR` is honoured as is.
 */
import type { Command } from 'commander'
import type { Logger } from '../pipeline/index.js'

/** The global flags as a command sees them. */
export interface GlobalFlags {
  quiet: boolean
  verbose: boolean
}

/**
 * Add `-q, --quiet` and `--verbose` to the program (commander reads them before or after the subcommand).
 * @example
 * addGlobalOptions(program) // in src/cli/main.ts, before the commands
 */
export function addGlobalOptions(program: Command): Command {
  return program
    .option('-q, --quiet', 'print only errors (and the data asked for: --json, paths); no progress, no summary')
    .option('--verbose', "print the stages' info and debug messages on stderr")
}

/**
 * The global flags of the command being run (`command.optsWithGlobals()`); `--quiet` wins over `--verbose`.
 * @example
 * cmd.action(async (opts, command) => { const { quiet } = globalFlags(command) })
 */
export function globalFlags(command: Command): GlobalFlags {
  const o = command.optsWithGlobals<{ quiet?: boolean; verbose?: boolean }>()
  const quiet = o.quiet === true
  return { quiet, verbose: !quiet && o.verbose === true }
}

/**
 * The pipeline logger for the flags: warnings on stderr (none with `--quiet`), and with `--verbose` info and
 * debug messages too, each line prefixed with its level.
 * @example
 * await pipeline(source, sink, { log: cliLogger(globalFlags(command)) })
 */
export function cliLogger(flags: GlobalFlags, stream: { write(text: string): unknown } = process.stderr): Logger {
  const line = (level: string, m: string) => void stream.write(`prefpipe: ${level}${m}\n`)
  return {
    debug: (m) => (flags.verbose ? line('debug: ', m) : undefined),
    info: (m) => (flags.verbose ? line('info: ', m) : undefined),
    warn: (m) => (flags.quiet ? undefined : line('', m)),
  }
}
