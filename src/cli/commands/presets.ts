import type { Command } from 'commander'
import { PRESETS, type Preset } from '../../presets/index.js'

/**
 * Add `prefpipe presets`: list every preset with its kind, Hub repo and description (`--json`: an array of
 * `{name, kind, repo, description, defaults}`).
 *
 * @example
 * const program = new Command('prefpipe')
 * registerPresets(program)
 * await program.parseAsync(['node', 'prefpipe', 'presets'])
 */
export function registerPresets(program: Command): Command {
  return program
    .command('presets')
    .description('list the dataset presets (name, kind, Hub repo, description)')
    .option('--json', 'print the list as JSON')
    .action((opts: { json?: boolean }) => {
      const list = Object.values(PRESETS)
      process.stdout.write(opts.json ? `${JSON.stringify(list.map(presetJson), null, 2)}\n` : formatPresets(list))
    })
}

function presetJson(p: Preset) {
  return { name: p.name, kind: p.kind, repo: p.repo, description: p.description, defaults: p.defaults }
}

/**
 * The text `prefpipe presets` prints: one line per preset (name, kind, repo), its description under it.
 *
 * @example
 * process.stdout.write(formatPresets(Object.values(PRESETS)))
 */
export function formatPresets(list: readonly Preset[]): string {
  const nameW = Math.max(...list.map((p) => p.name.length))
  const repoW = Math.max(...list.map((p) => p.repo.length))
  const lines = list.map((p) => `${p.name.padEnd(nameW)}  ${p.kind.padEnd(5)}  ${p.repo.padEnd(repoW)}  ${p.description}`)
  return `${lines.join('\n')}\n\nRun one with: prefpipe <preset> --input <file> --out <dir>   (prefpipe <preset> --help)\n`
}
