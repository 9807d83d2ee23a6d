import { Command, Option } from 'commander'
import { ConfigError, formatConfig, loadConfig } from '../../config/load.js'
import { prepareFromConfig, resolveConfigPaths } from '../../config/run.js'
import { globalFlags } from '../output.js'
import { launchFromCli, type LaunchCliOptions } from './launch.js'
import { prepareAndReport } from './prepare.js'

interface RunCliOptions {
  set: string[]
  printConfig?: boolean
  json?: boolean
  progress: boolean
}

const collect = (v: string, prev: string[] = []) => [...prev, v]

/**
 * Register `prefpipe run <config.yaml> [--set key=value ...] [--print-config]`: the job of a preset command,
 * written in a config file (see `src/config/schema.ts` for the keys). Relative paths in the file are relative
 * to its folder. A bad config is refused with `file:line:col` of each problem (exit 2).
 * @example
 * registerRun(program) // in src/cli/main.ts
 */
export function registerRun(program: Command): Command {
  return program
    .command('run')
    .description('prepare (and, with launch:, train) as a config file says: preset or source, out, eval, images, model, train keys, launch')
    .argument('<config>', 'a prefpipe YAML config (e.g. prefpipe.yaml)')
    .option('--set <key=value>', 'override a config key (repeatable; dotted for nested keys: images.maxPixels=200704, train.lora_rank=16; values typed as YAML scalars)', collect, [])
    .option('--print-config', 'print the config as it would run (defaults filled in, --set applied) as YAML, and exit')
    .option('--json', 'print the summary as JSON (report.json) instead of a table')
    .addOption(new Option('--no-progress', 'no progress bars'))
    .addHelpText(
      'after',
      `
A config (relative paths are relative to its folder):

  preset: rlhf-v                           # rlhf-v | rlaif-v | dpo-en-demo; or source: (below)
  input: fixtures/rlhf-v-sample.parquet    # optional: a local file; without it, the preset's Hub dataset
  # hub: { revision: main, file: rlhf-v.parquet, offline: false }   # preset from the Hub
  # source: { parquet: data.parquet }      # or { json: rows.jsonl, mediaDir: images }, or
  #                                          { hub: { repo: owner/name, revision, file } };
  #                                          format: sharegpt | alpaca | rlaif-v | auto; columns:, tags:
  out: out/rlhf_v
  name: rlhf_v                             # default: the preset's (required with source)
  eval: 0.05                               # a fraction, or a row count
  seed: 42
  images: { maxPixels: 262144, quality: 90, cutoffLen: 2048, nearDuplicates: group }   # false: text only (source)
  model: qwen2-vl                          # qwen2-vl | qwen2.5-vl | qwen3-vl | a Qwen-VL Hub id
  train: { lora_rank: 16 }                 # keys of train_dpo.yaml, checked against LLaMA-Factory's
  baseYaml: my.yaml
  launch: { gpus: 0-7, dryRun: true }      # or launch: true; keys as the launch flags (camelCase)

Examples:
  npx prefpipe run prefpipe.yaml
  npx prefpipe run prefpipe.yaml --set eval=300 --set images.maxPixels=200704
  npx prefpipe run prefpipe.yaml --set launch.dryRun=true --print-config`,
    )
    .action(async (file: string, opts: RunCliOptions, command: Command) => {
      const flags = globalFlags(command)
      let loaded
      try {
        loaded = await loadConfig(file, { set: opts.set })
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err
        process.stderr.write(`${err.message.split('\n').map((l) => `prefpipe: ${l}`).join('\n')}\n`)
        process.exitCode = 2
        return
      }
      if (opts.printConfig) {
        process.stdout.write(formatConfig(loaded.config))
        return
      }
      const yaml = await prepareAndReport((o) => prepareFromConfig(loaded, o), { json: opts.json === true, progress: opts.progress }, flags)
      // launch: has the launch flags' names (grace in seconds), so it goes through the same path as --launch.
      const launch = resolveConfigPaths(loaded.config, loaded.baseDir).launch
      if (typeof launch !== 'object' || !yaml) return
      const cli: LaunchCliOptions = { ...launch, ...(flags.quiet ? { monitor: false } : {}) }
      await launchFromCli(yaml, [], cli)
    })
}
