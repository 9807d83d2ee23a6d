import { Command, Option } from 'commander'
import { mergeShards } from '../../presets/merge.js'
import { globalFlags } from '../output.js'
import { prepareAndReport } from './prepare.js'

/**
 * `prefpipe merge <parts...> --out <dir>`: join the parts of a sharded run (`prefpipe <preset> --shard i/n`)
 * into the folder a single run writes, byte for byte.
 * @example
 * registerMerge(program) // in src/cli/main.ts
 */
export function registerMerge(program: Command): void {
  program
    .command('merge')
    .description('join the parts of a sharded run (--shard i/n) into the folder a single run would write')
    .argument('<parts...>', 'the parts folder the shards wrote into (their --out), or shard folders')
    .requiredOption('--out <dir>', 'output folder (the same as a single run\'s --out)')
    .option('--json', 'print the summary as JSON (report.json) instead of a table')
    .addOption(new Option('--no-progress', 'no progress bars'))
    .addHelpText(
      'after',
      `\nExamples:\n  npx prefpipe rlhf-v --input rlhf-v.parquet --out /shared/parts --shard 0/4   # on each of 4 machines, 0..3\n` +
        `  npx prefpipe merge /shared/parts --out data/rlhf_v\n`,
    )
    .action(async (parts: string[], opts: { out: string; json?: boolean; progress: boolean }, command: Command) => {
      await prepareAndReport((o) => mergeShards({ parts, out: opts.out }, o), { json: opts.json === true, progress: opts.progress, out: opts.out }, globalFlags(command))
    })
}
