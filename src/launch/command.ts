/**
 * The command a launch runs: `llamafactory-cli train <abs cfg.yaml> [key=value ...]` with the environment
 * LLaMA-Factory's launcher reads (`reference/llamafactory.md` 5.1-5.3), and its one-line shell form for
 * `--dry-run`.
 */

/** Where and how many nodes train (multi-node goes through torchrun: `FORCE_TORCHRUN=1`). */
export interface NodeSetup {
  /** Number of nodes (default 1). */
  nnodes?: number
  /** This node's rank, 0 on the master (required when `nnodes > 1`). */
  nodeRank?: number
  /** The master node's address (required when `nnodes > 1`). */
  masterAddr?: string
  /** The rendezvous port (default 29500 when `nnodes > 1`; LLaMA-Factory picks a random one otherwise). */
  masterPort?: number
}

/** What {@link buildLaunchPlan} needs. */
export interface PlanInput extends NodeSetup {
  /** Absolute path of the training YAML. */
  config: string
  /** `key=value` overrides, already checked. */
  overrides: readonly string[]
  /** GPU indices for `CUDA_VISIBLE_DEVICES`, in order. */
  gpus: readonly number[]
  /** Whether the effective config uses DeepSpeed (then one GPU needs `FORCE_TORCHRUN=1`). */
  deepspeed: boolean
  /** The executable (default `llamafactory-cli`). */
  cli?: string
  /** The working directory of the training. */
  cwd: string
}

/** A launch, ready to spawn: `file` + `args` without a shell, `env` on top of the inherited environment. */
export interface LaunchPlan {
  file: string
  args: string[]
  /** Only the variables the launch sets, in the order they are printed. */
  env: Record<string, string>
  cwd: string
}

/** The default multi-node rendezvous port. */
export const DEFAULT_MASTER_PORT = 29500

/**
 * Build the launch: `CUDA_VISIBLE_DEVICES` from the GPUs; `FORCE_TORCHRUN=1` for multi-node and for DeepSpeed
 * on one GPU; `NNODES`, `NODE_RANK`, `MASTER_ADDR`, `MASTER_PORT` for multi-node (a port given on one node is
 * set too); `PYTHONUNBUFFERED=1` so the training's output reaches the terminal and the log as it happens,
 * not in 8 KB blocks (its stdout is a pipe to the log tee). Throws a `TypeError` on an inconsistent node setup.
 * @example
 * buildLaunchPlan({ config: '/abs/train_dpo.yaml', overrides: [], gpus: [0, 1, 2, 3, 4, 5, 6, 7], deepspeed: false, cwd: '/abs' })
 * // { file: 'llamafactory-cli', args: ['train', '/abs/train_dpo.yaml'],
 * //   env: { CUDA_VISIBLE_DEVICES: '0,1,2,3,4,5,6,7', PYTHONUNBUFFERED: '1' }, cwd: '/abs' }
 */
export function buildLaunchPlan(input: PlanInput): LaunchPlan {
  const nnodes = input.nnodes ?? 1
  if (!Number.isInteger(nnodes) || nnodes < 1) throw new TypeError(`[prefpipe] --nnodes ${nnodes}: must be a whole number of at least 1`)
  if (input.gpus.length === 0) throw new TypeError('[prefpipe] no GPU to launch on')
  const env: Record<string, string> = { CUDA_VISIBLE_DEVICES: input.gpus.join(',') }
  if (nnodes > 1) {
    if (input.nodeRank === undefined) throw new TypeError(`[prefpipe] --nnodes ${nnodes} needs --node-rank (0 on the master node, 1..${nnodes - 1} on the others)`)
    if (!input.masterAddr) throw new TypeError(`[prefpipe] --nnodes ${nnodes} needs --master-addr (the master node's address, the same on every node)`)
  }
  if (input.nodeRank !== undefined && (!Number.isInteger(input.nodeRank) || input.nodeRank < 0 || input.nodeRank >= nnodes)) {
    throw new TypeError(`[prefpipe] --node-rank ${input.nodeRank}: must be 0..${nnodes - 1} with --nnodes ${nnodes}`)
  }
  if (input.masterPort !== undefined && (!Number.isInteger(input.masterPort) || input.masterPort < 1 || input.masterPort > 65535)) {
    throw new TypeError(`[prefpipe] --master-port ${input.masterPort}: must be a port number (1-65535)`)
  }
  if (nnodes > 1 || (input.deepspeed && input.gpus.length === 1)) env.FORCE_TORCHRUN = '1'
  if (nnodes > 1) {
    env.NNODES = String(nnodes)
    env.NODE_RANK = String(input.nodeRank)
    env.MASTER_ADDR = input.masterAddr!
    env.MASTER_PORT = String(input.masterPort ?? DEFAULT_MASTER_PORT)
  } else {
    if (input.masterAddr) env.MASTER_ADDR = input.masterAddr
    if (input.masterPort !== undefined) env.MASTER_PORT = String(input.masterPort)
  }
  env.PYTHONUNBUFFERED = '1'
  return { file: input.cli ?? 'llamafactory-cli', args: ['train', input.config, ...input.overrides], env, cwd: input.cwd }
}

/**
 * Quote a word for a POSIX shell only when it needs it.
 * @example
 * shellQuote('/abs/train_dpo.yaml') // '/abs/train_dpo.yaml'
 * shellQuote("it's") // `'it'\''s'`
 */
export function shellQuote(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word
  return `'${word.replace(/'/g, `'\\''`)}'`
}

/**
 * The launch as one shell line: the variables it sets, then the command.
 * @example
 * formatCommand(plan) // 'CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 PYTHONUNBUFFERED=1 llamafactory-cli train /abs/train_dpo.yaml'
 */
export function formatCommand(plan: LaunchPlan): string {
  const vars = Object.entries(plan.env).map(([k, v]) => `${k}=${shellQuote(v)}`)
  return [...vars, shellQuote(plan.file), ...plan.args.map(shellQuote)].join(' ')
}

/**
 * What `--dry-run` prints on stdout: a runnable shell script. Comment lines first (the working directory when
 * it matters, files the launch would write), then the command line.
 * @example
 * formatDryRun(plan, { writes: ['/abs/ds_z3_config.json (DeepSpeed ZeRO-3)'] })
 * // '# writes /abs/ds_z3_config.json (DeepSpeed ZeRO-3)\nCUDA_VISIBLE_DEVICES=0,1 PYTHONUNBUFFERED=1 llamafactory-cli train /abs/cfg.yaml deepspeed=/abs/ds_z3_config.json\n'
 */
export function formatDryRun(plan: LaunchPlan, extra: { writes?: readonly string[]; cd?: boolean } = {}): string {
  const lines = (extra.writes ?? []).map((w) => `# writes ${w}`)
  const cmd = formatCommand(plan)
  lines.push(extra.cd ? `cd ${shellQuote(plan.cwd)} && ${cmd}` : cmd)
  return lines.join('\n') + '\n'
}
