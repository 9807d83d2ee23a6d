import { Command, InvalidArgumentError, Option } from 'commander'
import { launchTraining, type LaunchOptions } from '../../launch/launch.js'
import { PreflightError } from '../../launch/preflight.js'
import { ZERO_PRESETS, type ZeroPreset } from '../../launch/deepspeed.js'
import type { GpuSpec } from '../../launch/gpus.js'
import { globalFlags } from '../output.js'

/** The launch flags as commander parses them. */
export interface LaunchCliOptions {
  gpus?: GpuSpec
  nnodes?: number
  nodeRank?: number
  masterAddr?: string
  masterPort?: number
  deepspeed?: ZeroPreset
  dryRun?: boolean
  preflight?: boolean
  images?: 'all' | 'sample' | 'none'
  imageSample?: number
  grace?: number
  monitor?: boolean
  plots?: boolean
  progress?: boolean
  cli?: string
  pollMs?: number
}

function int(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`not a whole number: ${value}`)
    const n = Number(value)
    if (n < min || n > max) throw new InvalidArgumentError(`must be ${min}..${max}`)
    return n
  }
}

function seconds(value: string): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`not a number of seconds: ${value}`)
  return n
}

/** Every launch flag, for `launch` and for commands that launch after preparing (`rlhf-v --launch`). */
function launchFlags(): Option[] {
  return [
    new Option('--gpus <gpus>', 'GPUs: a count (8), a range (0-7), a list (0,2,4) or all (default: $CUDA_VISIBLE_DEVICES, else all)'),
    new Option('--nnodes <n>', 'number of nodes (multi-node through torchrun)').argParser(int(1)),
    new Option('--node-rank <i>', "this node's rank: 0 on the master node").argParser(int(0)),
    new Option('--master-addr <host>', "the master node's address (same on every node)"),
    new Option('--master-port <port>', 'the rendezvous port (multi-node default 29500)').argParser(int(1, 65535)),
    new Option('--deepspeed <preset>', "write LLaMA-Factory's DeepSpeed config next to the YAML and use it").choices([...ZERO_PRESETS]),
    new Option('--dry-run', 'run the preflight, print the exact command and environment, run nothing'),
    new Option('--no-preflight', 'skip the preflight checks (nvidia-smi, llamafactory-cli, config, data, output)'),
    new Option('--images <mode>', 'image paths the preflight checks').choices(['all', 'sample', 'none']).default('all'),
    new Option('--image-sample <n>', 'how many distinct image paths --images sample checks').argParser(int(1)).default(1000),
    new Option('--grace <seconds>', 'after Ctrl-C, how long the training gets to stop before SIGTERM').argParser(seconds).default(30),
    new Option('--no-monitor', 'do not follow trainer_log.jsonl while it trains'),
    new Option('--no-plots', 'do not write the SVG plots and training.html'),
    new Option('--no-progress', 'plain progress lines even on a terminal'),
    new Option('--cli <path>', 'the llamafactory-cli executable (default: the one on PATH)'),
    new Option('--poll-ms <ms>', 'how often trainer_log.jsonl is read').argParser(int(10)).hideHelp(),
  ]
}

/**
 * Add the launch flags to a command, skipping any it already has (e.g. `--no-progress` on `rlhf-v`).
 * @example
 * addLaunchOptions(program.command('rlhf-v').option('--launch', 'train once prepared'))
 */
export function addLaunchOptions(cmd: Command): Command {
  for (const opt of launchFlags()) if (!cmd.options.some((o) => o.long === opt.long)) cmd.addOption(opt)
  return cmd
}

/**
 * The launch flags as {@link launchTraining} options.
 * @example
 * await launchTraining({ config, ...launchOptionsFromCli(opts) })
 */
export function launchOptionsFromCli(opts: LaunchCliOptions): Omit<LaunchOptions, 'config'> {
  const o: Omit<LaunchOptions, 'config'> = {}
  if (opts.gpus !== undefined) o.gpus = opts.gpus
  if (opts.nnodes !== undefined) o.nnodes = opts.nnodes
  if (opts.nodeRank !== undefined) o.nodeRank = opts.nodeRank
  if (opts.masterAddr !== undefined) o.masterAddr = opts.masterAddr
  if (opts.masterPort !== undefined) o.masterPort = opts.masterPort
  if (opts.deepspeed !== undefined) o.deepspeed = opts.deepspeed
  if (opts.dryRun) o.dryRun = true
  if (opts.preflight === false) o.preflight = false
  if (opts.images !== undefined) o.images = opts.images
  if (opts.imageSample !== undefined) o.imageSample = opts.imageSample
  if (opts.grace !== undefined) o.graceMs = Math.round(opts.grace * 1000)
  if (opts.monitor === false) o.monitor = false
  if (opts.plots === false) o.plots = false
  if (opts.progress === false) o.progress = false
  if (opts.cli !== undefined) o.cli = opts.cli
  if (opts.pollMs !== undefined) o.pollMs = opts.pollMs
  return o
}

/**
 * Launch a config from a command's action and set the exit code: the training's, or 1 when the preflight
 * refuses (its report is already on stderr). Other errors are thrown for the CLI's handler.
 * @example
 * await launchFromCli(result.trainingConfig.path, [], opts) // in rlhf-v's action, with --launch
 */
export async function launchFromCli(config: string, overrides: readonly string[], opts: LaunchCliOptions): Promise<number> {
  try {
    const r = await launchTraining({ config, overrides: [...overrides], ...launchOptionsFromCli(opts) })
    const code = r.dryRun ? 0 : (r.exitCode ?? 1)
    process.exitCode = code
    return code
  } catch (err) {
    if (err instanceof PreflightError) {
      process.stderr.write('prefpipe: preflight failed; nothing was launched\n')
      process.exitCode = 1
      return 1
    }
    throw err
  }
}

/**
 * `prefpipe launch <config.yaml> [key=value ...]`: preflight, then `llamafactory-cli train` on the GPUs, with
 * live metrics, a summary and plots; the exit code is the training's.
 * @example
 * registerLaunch(program) // in src/cli/main.ts
 */
export function registerLaunch(program: Command): Command {
  const cmd = program
    .command('launch')
    .description('launch LLaMA-Factory training of a config on the GPUs (preflight, live metrics, summary, plots)')
    .argument('<config>', 'the llamafactory-cli train YAML (e.g. data/rlhf_v/train_dpo.yaml)')
    .argument('[overrides...]', 'key=value overrides passed after the config (e.g. num_train_epochs=1)')
  addLaunchOptions(cmd)
  cmd.addHelpText(
    'after',
    `
Examples:
  prefpipe launch data/rlhf_v/train_dpo.yaml --gpus 0-7
  prefpipe launch data/rlhf_v/train_dpo.yaml --gpus 0-7 --dry-run
  prefpipe launch data/rlhf_v/train_dpo.yaml --gpus 8 --deepspeed z3 learning_rate=1.0e-5
  prefpipe launch data/rlhf_v/train_dpo.yaml --nnodes 2 --node-rank 0 --master-addr 10.0.0.1 --master-port 29500`,
  )
  cmd.action(async (config: string, overrides: string[], opts: LaunchCliOptions, command: Command) => {
    // --quiet: no live progress (the training's own output and the final summary still show).
    await launchFromCli(config, overrides, globalFlags(command).quiet ? { ...opts, monitor: false } : opts)
  })
  return cmd
}
