#!/usr/bin/env node
import { Command, CommanderError } from 'commander'
import { readFileSync } from 'node:fs'
import { registerDownload } from './commands/download.js'
import { registerInspect } from './commands/inspect.js'
import { registerLaunch } from './commands/launch.js'
import { registerMerge } from './commands/merge.js'
import { registerMonitor } from './commands/monitor.js'
import { registerPresetCommands } from './commands/prepare.js'
import { registerPresets } from './commands/presets.js'
import { registerRun } from './commands/run.js'
import { addGlobalOptions } from './output.js'

// commander: the usual choice for a typed Node CLI with subcommands, help and errors done right
// (v14: v15 needs Node 22).
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }

const program = new Command()
  .name('prefpipe')
  .description('Preference (DPO) datasets to LLaMA-Factory training folders, and the multi-GPU DPO launch')
  .version(pkg.version)
  .showHelpAfterError()
  .exitOverride()
addGlobalOptions(program)

registerPresetCommands(program)
registerRun(program)
registerMerge(program)
registerDownload(program)
registerLaunch(program)
registerMonitor(program)
registerInspect(program)
registerPresets(program)
program.addHelpText(
  'after',
  `
Exit codes: 0 done; 1 the run failed (the message says why; every row rejected counts too); 2 bad usage;
130 interrupted (Ctrl-C); a launch exits with the training's code.

Examples:
  npx prefpipe rlhf-v --input fixtures/rlhf-v-sample.parquet --out out/rlhf_v
  npx prefpipe rlhf-v --out data/rlhf_v --eval 0.05 --seed 42 --launch --gpus 0-7
  npx prefpipe inspect fixtures/rlhf-v-sample.parquet
  npx prefpipe run prefpipe.yaml --set eval=0.05

Output: -q/--quiet prints only errors (and the data asked for: --json, download paths, inspect); --verbose adds
the stages' debug lines on stderr. No colours are printed; progress bars draw only when stderr is a terminal.`,
)

try {
  await program.parseAsync(process.argv)
} catch (err) {
  if (err instanceof CommanderError) {
    // Help and version exit 0; usage errors (already printed by commander) exit 2.
    process.exitCode = err.exitCode === 0 ? 0 : 2
  } else {
    const msg = err instanceof Error ? err.message : String(err)
    process.stderr.write(`prefpipe: ${msg.replace(/^\[prefpipe\] /, '')}\n`)
    if (process.env.PREFPIPE_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`)
    process.exitCode = 1
  }
}
