/**
 * Preflight: everything that can be known before GPU time is spent. Each check gives `ok`, `info`, `warn` or
 * `fail`; any `fail` stops the launch with the list of what to fix.
 */
import { access, constants, readdir, readFile, stat, statfs } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { checkTrainKeys, warnTrainKeys } from '../llamafactory/train-args.js'
import { configString, datasetNames, runPaths, truthy, type RunPaths, type TrainConfig } from './config.js'
import { checkDatasets, type CheckResult, type ImageCheckMode } from './dataset-check.js'
import { compactIndices, queryGpus, resolveGpus, type GpuInfo, type GpuSelection } from './gpus.js'
import { execCapture, which } from './proc.js'

export type { CheckResult, ImageCheckMode } from './dataset-check.js'

/** What {@link preflight} checks against. */
export interface PreflightInput {
  config: TrainConfig
  /** The GPUs asked for. */
  gpus: GpuSelection
  /** The environment the training will run with (PATH finds the executables; ALLOW_EXTRA_ARGS etc. count). */
  env: NodeJS.ProcessEnv
  /** The LLaMA-Factory executable (default `llamafactory-cli`). */
  cli?: string
  /** Image paths to check: `all` (default), `sample`, `none`. */
  images?: ImageCheckMode
  /** How many distinct image paths a `sample` checks (default 1000). */
  imageSample?: number
  /** A GPU with more memory than this in use (MiB) counts as busy (default 2048). */
  busyMiB?: number
  /** Files the launch itself writes before starting (the `--deepspeed` preset): not expected to exist yet. */
  pending?: readonly string[]
}

/** What {@link preflight} found. */
export interface PreflightReport {
  /** No check failed. */
  ok: boolean
  checks: CheckResult[]
  /** Absolute path of the LLaMA-Factory executable, when found. */
  cliPath?: string
  /** Its version (`llamafactory-cli version`), when read. */
  cliVersion?: string
  /** The inventory `nvidia-smi` gave. */
  inventory?: GpuInfo[]
  /** The GPU indices the launch uses, when they could be resolved. */
  gpus?: number[]
  paths: RunPaths
}

/** Names of the weight files LLaMA-Factory treats as a finished model in `output_dir` (`CHECKPOINT_NAMES`). */
export const CHECKPOINT_NAMES = [
  'adapter_model.safetensors',
  'adapter_model.bin',
  'model.safetensors.index.json',
  'model.safetensors',
  'pytorch_model.bin.index.json',
  'pytorch_model.bin',
] as const

/**
 * Run every check (the slow ones, `llamafactory-cli version` and `nvidia-smi`, in parallel with the file checks):
 * - the config path has no whitespace; every key is one `llamafactory-cli train` accepts (`checkTrainKeys`);
 *   `model_name_or_path`, `output_dir` and (for training) `dataset` are set; a `deepspeed:` file exists;
 * - `llamafactory-cli` is on PATH and `llamafactory-cli version` answers;
 * - `nvidia-smi` lists at least the GPUs asked for; GPUs already busy are warned about;
 * - every dataset is in `dataset_info.json` with its file, and every image path exists (or a sample);
 * - `output_dir` is writable and holds no earlier run that would be overwritten or silently resumed;
 * - free disk for the checkpoints (a guess from the model size: a warning only).
 * @example
 * const report = await preflight({ config: await loadTrainConfig('train_dpo.yaml'), gpus: parseGpus('0-7'), env: process.env })
 * if (!report.ok) console.error(formatPreflight(report))
 */
export async function preflight(input: PreflightInput): Promise<PreflightReport> {
  const { config, env } = input
  const cfg = config.effective
  const paths = runPaths(cfg, config.cwd)
  const report: PreflightReport = { ok: true, checks: [], paths }
  const [cli, gpus, data, rest] = await Promise.all([
    checkCli(input.cli ?? 'llamafactory-cli', env, config.cwd),
    checkGpus(input.gpus, env, input.busyMiB ?? 2048),
    checkDatasets(cfg, paths, { cwd: config.cwd, images: input.images ?? 'all', imageSample: input.imageSample ?? 1000 }),
    checkConfigAndOutput(config, paths, env, input.pending ?? []),
  ])
  report.checks.push(...cli.checks, ...gpus.checks, ...rest.config, ...data, ...rest.output)
  if (cli.path) report.cliPath = cli.path
  if (cli.version) report.cliVersion = cli.version
  if (gpus.inventory) report.inventory = gpus.inventory
  if (gpus.selected) report.gpus = gpus.selected
  report.ok = !report.checks.some((c) => c.level === 'fail')
  return report
}

async function checkCli(cli: string, env: NodeJS.ProcessEnv, cwd: string): Promise<{ checks: CheckResult[]; path?: string; version?: string }> {
  const path = which(cli, env, cwd)
  if (!path) {
    return {
      checks: [
        {
          id: 'cli',
          level: 'fail',
          message: `${cli} not found on PATH: activate the Python environment LLaMA-Factory is installed in (pip install -e ".[torch,metrics]" in its checkout), or give its path with --cli`,
        },
      ],
    }
  }
  // `version` imports torch and transformers first: give it time.
  const r = await execCapture(path, ['version'], { env, cwd, timeoutMs: 180_000 })
  if (r.code !== 0) {
    const why = (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ') || r.error || `exit code ${r.code}`
    return { path, checks: [{ id: 'cli', level: 'fail', message: `${path} version failed (${why}): its Python environment is broken` }] }
  }
  const version = /version (\S+)/.exec(r.stdout)?.[1] ?? /version (\S+)/.exec(r.stderr)?.[1]
  if (!version) return { path, checks: [{ id: 'cli', level: 'warn', message: `${path} version printed no version; is it LLaMA-Factory's CLI?` }] }
  const checks: CheckResult[] = [{ id: 'cli', level: 'ok', message: `llamafactory-cli ${version} (${path})` }]
  if (version === '0.9.1.dev0') {
    checks.push({
      id: 'cli',
      level: 'warn',
      message: 'LLaMA-Factory 0.9.1.dev0: main-branch installs from 2024-11-02 to 2024-11-16 log logps/* and logits/* with chosen and rejected swapped (rewards/* are right); upgrade to 0.9.1 or later',
    })
  }
  return { path, version, checks }
}

async function checkGpus(selection: GpuSelection, env: NodeJS.ProcessEnv, busyMiB: number): Promise<{ checks: CheckResult[]; inventory?: GpuInfo[]; selected?: number[] }> {
  let inventory: GpuInfo[]
  try {
    inventory = await queryGpus({ env })
  } catch (err) {
    return { checks: [{ id: 'gpus', level: 'fail', message: (err as Error).message.replace(/^\[prefpipe\] /, '') }] }
  }
  let selected: number[]
  try {
    selected = resolveGpus(selection, inventory)
  } catch (err) {
    return { inventory, checks: [{ id: 'gpus', level: 'fail', message: (err as Error).message.replace(/^\[prefpipe\] /, '') }] }
  }
  const used = selected.map((i) => inventory.find((g) => g.index === i)!)
  const names = [...new Set(used.map((g) => `${g.name}${Number.isFinite(g.memoryTotalMiB) ? ` (${Math.round(g.memoryTotalMiB / 1024)} GB)` : ''}`))]
  const checks: CheckResult[] = [{ id: 'gpus', level: 'ok', message: `${selected.length} GPU${selected.length === 1 ? '' : 's'} ${compactIndices(selected)}: ${names.join(', ')}` }]
  for (const g of used) {
    if (g.memoryUsedMiB > busyMiB) {
      checks.push({
        id: 'gpus',
        level: 'warn',
        message: `GPU ${g.index} is busy: ${g.memoryUsedMiB} MiB of ${g.memoryTotalMiB} MiB already in use (another job?); the training may run out of memory there`,
      })
    }
  }
  return { inventory, selected, checks }
}

async function checkConfigAndOutput(config: TrainConfig, paths: RunPaths, env: NodeJS.ProcessEnv, pending: readonly string[]): Promise<{ config: CheckResult[]; output: CheckResult[] }> {
  const cfg = config.effective
  const out: CheckResult[] = []
  if (/\s/.test(config.path)) {
    out.push({ id: 'config', level: 'fail', message: `the config path "${config.path}" holds whitespace: llamafactory-cli joins and re-splits its arguments on whitespace, so it would break apart; move or rename it` })
  }
  const problems = checkTrainKeys(cfg, { env })
  for (const p of problems) out.push({ id: 'keys', level: 'fail', message: p.message })
  for (const w of warnTrainKeys(cfg, { env })) out.push({ id: 'keys', level: 'warn', message: w.message })
  if (problems.length === 0) out.push({ id: 'keys', level: 'ok', message: `all ${Object.keys(cfg).length} config keys are llamafactory-cli train keys` })
  if (!configString(cfg, 'model_name_or_path')) out.push({ id: 'config', level: 'fail', message: 'model_name_or_path is not set (LLaMA-Factory: "Please provide `model_name_or_path`.")' })
  const doTrain = truthy(cfg.do_train)
  if (doTrain && datasetNames(cfg.dataset).length === 0) out.push({ id: 'config', level: 'fail', message: 'do_train is set but dataset is not (LLaMA-Factory: "Please specify dataset for training.")' })
  if (paths.deepspeed && !pending.includes(paths.deepspeed)) {
    try {
      JSON.parse(await readFile(paths.deepspeed, 'utf8'))
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `not valid JSON: ${(err as Error).message}`
      out.push({ id: 'config', level: 'fail', message: `deepspeed: ${paths.deepspeed}: ${why}` })
    }
  }
  return { config: out, output: await checkOutput(cfg, paths, doTrain) }
}

/** The newest `checkpoint-<step>` folder of `dir`, as HF's `get_last_checkpoint` finds it. */
async function lastCheckpoint(dir: string): Promise<string | undefined> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => [])
  const steps = entries.filter((e) => e.isDirectory() && /^checkpoint-\d+$/.test(e.name)).map((e) => Number(e.name.slice(11)))
  return steps.length ? join(dir, `checkpoint-${Math.max(...steps)}`) : undefined
}

async function checkOutput(cfg: Record<string, unknown>, paths: RunPaths, doTrain: boolean): Promise<CheckResult[]> {
  const dir = paths.outputDir
  if (!dir) return [{ id: 'output', level: 'fail', message: 'output_dir is not set: set it in the config (or output_dir=<dir>) so checkpoints and logs have a home' }]
  const out: CheckResult[] = []
  const st = await stat(dir).catch(() => undefined)
  if (st && !st.isDirectory()) return [{ id: 'output', level: 'fail', message: `output_dir ${dir} exists and is not a directory` }]
  // Writable: the folder itself, or the nearest folder above it that exists (the training creates the rest).
  let probe = dir
  while (!(await stat(probe).catch(() => undefined))) probe = dirname(probe)
  try {
    await access(probe, constants.W_OK)
  } catch {
    return [{ id: 'output', level: 'fail', message: `output_dir ${dir} is not writable (${probe} refuses writes)` }]
  }
  const overwrite = truthy(cfg.overwrite_output_dir)
  const resumeFrom = configString(cfg, 'resume_from_checkpoint')
  if (resumeFrom && resumeFrom !== 'false' && resumeFrom !== 'False') {
    if (!['true', 'True'].includes(resumeFrom) && !(await stat(resumeFrom).catch(() => undefined))) {
      out.push({ id: 'output', level: 'fail', message: `resume_from_checkpoint ${resumeFrom} does not exist` })
    } else out.push({ id: 'output', level: 'info', message: `resumes from ${resumeFrom}` })
  } else if (st && doTrain) {
    const last = await lastCheckpoint(dir)
    const names = new Set(await readdir(dir).catch(() => [] as string[]))
    const weights = CHECKPOINT_NAMES.filter((n) => names.has(n))
    if (overwrite) {
      if (last || weights.length) out.push({ id: 'output', level: 'warn', message: `output_dir ${dir} holds an earlier run (${[last && last.slice(dir.length + 1), ...weights].filter(Boolean).join(', ')}): overwrite_output_dir is set, so it will be overwritten` })
    } else if (last) {
      out.push({
        id: 'output',
        level: 'fail',
        message: `output_dir ${dir} holds an earlier run (last checkpoint ${last}) and overwrite_output_dir is not set: LLaMA-Factory would silently resume it. Continue it with resume_from_checkpoint=${last}, start over with overwrite_output_dir=true, or choose another output_dir`,
      })
    } else if (weights.length) {
      out.push({
        id: 'output',
        level: 'fail',
        message: `output_dir ${dir} holds a trained model (${weights.join(', ')}) and overwrite_output_dir is not set: LLaMA-Factory stops with "Output directory already exists and is not empty. Please set \`overwrite_output_dir\`."; set overwrite_output_dir=true or choose another output_dir`,
      })
    }
  }
  if (!out.some((c) => c.level === 'fail')) out.push({ id: 'output', level: 'ok', message: `output_dir ${dir} is writable` })
  out.push(await checkDisk(cfg, probe))
  return out
}

/**
 * A guess of a model's parameter count from its name (`Qwen2-VL-7B-Instruct` -> 7e9, `Qwen2.5-VL-72B` -> 72e9,
 * `...-500M` -> 5e8); a MoE name (`30B-A3B`) gives the total. `undefined` when the name says nothing.
 * @example
 * guessModelParams('Qwen/Qwen2-VL-7B-Instruct') // 7000000000
 */
export function guessModelParams(name: string): number | undefined {
  const m = /(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)([BbMm])(?![A-Za-z0-9])/.exec(name.split('/').pop() ?? name)
  if (!m) return undefined
  return Number(m[1]) * (m[2]!.toLowerCase() === 'b' ? 1e9 : 1e6)
}

/** Sum of the weight files' sizes of a local model folder, as a parameter count (2 bytes each, bf16). */
async function localModelParams(dir: string): Promise<number | undefined> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => undefined)
  if (!entries) return undefined
  let bytes = 0
  for (const e of entries) if (e.isFile() && /\.(safetensors|bin)$/.test(e.name)) bytes += (await stat(join(dir, e.name))).size
  return bytes > 0 ? bytes / 2 : undefined
}

/**
 * Estimated disk a run's checkpoints take, from the model size: LoRA adapters (fp32) of about 0.3% of the
 * parameters per rank-8, full weights in bf16, plus Adam state (fp32 master + 2 moments) unless
 * `save_only_model`; times `save_total_limit` checkpoints (3 assumed when unset), plus the final model.
 * @example
 * estimateCheckpointBytes({ finetuning_type: 'lora', lora_rank: 8, save_total_limit: 2 }, 7e9)
 */
export function estimateCheckpointBytes(cfg: Record<string, unknown>, params: number): number {
  const type = configString(cfg, 'finetuning_type') ?? 'lora'
  const onlyModel = truthy(cfg.save_only_model)
  let weights: number
  let optimizer: number
  if (type === 'lora') {
    const rank = Number(cfg.lora_rank ?? 8) || 8
    const trainable = params * 0.003 * (rank / 8)
    weights = trainable * 4
    optimizer = trainable * 8
  } else {
    weights = params * 2
    optimizer = params * 12
  }
  const perCheckpoint = weights + (onlyModel ? 0 : optimizer)
  const limit = Number(cfg.save_total_limit)
  const kept = Number.isInteger(limit) && limit > 0 ? limit : 3
  return perCheckpoint * kept + weights
}

const GB = 1024 ** 3

async function checkDisk(cfg: Record<string, unknown>, existingDir: string): Promise<CheckResult> {
  let free: number
  try {
    const s = await statfs(existingDir)
    free = s.bavail * s.bsize
  } catch {
    return { id: 'disk', level: 'info', message: `cannot read the free space of ${existingDir}` }
  }
  const model = configString(cfg, 'model_name_or_path') ?? ''
  const params = (await localModelParams(model)) ?? guessModelParams(model)
  const freeText = `${(free / GB).toFixed(1)} GB free at ${existingDir}`
  if (!params) return { id: 'disk', level: 'info', message: `${freeText}; cannot guess the size of ${model || 'the model'} to estimate the checkpoints` }
  const need = estimateCheckpointBytes(cfg, params)
  const needText = `about ${(need / GB).toFixed(1)} GB of checkpoints (a guess for ${(params / 1e9).toFixed(1)}B parameters, ${configString(cfg, 'finetuning_type') ?? 'lora'})`
  if (free < need * 1.2) return { id: 'disk', level: 'warn', message: `${freeText}, but the run may write ${needText}: set save_total_limit, save_only_model, or free some space` }
  return { id: 'disk', level: 'ok', message: `${freeText} for ${needText}` }
}

/**
 * The report as lines for a terminal: `ok`, `info`, `warn`, `FAIL` and the message.
 * @example
 * process.stderr.write(formatPreflight(report))
 */
export function formatPreflight(report: PreflightReport): string {
  const tag = { ok: 'ok   ', info: 'info ', warn: 'warn ', fail: 'FAIL ' } as const
  const lines = report.checks.map((c) => `  ${tag[c.level]} ${c.id.padEnd(8)} ${c.message}`)
  const fails = report.checks.filter((c) => c.level === 'fail').length
  lines.unshift(`prefpipe preflight: ${report.ok ? 'ready to launch' : `${fails} problem${fails === 1 ? '' : 's'} to fix before launching`}`)
  return lines.join('\n') + '\n'
}

/** The error a launch throws when the preflight fails: the report is on it. */
export class PreflightError extends Error {
  override name = 'PreflightError'
  constructor(readonly report: PreflightReport) {
    const fails = report.checks.filter((c) => c.level === 'fail')
    super(`[prefpipe] preflight failed, nothing was launched:\n${fails.map((f) => `  - ${f.id}: ${f.message}`).join('\n')}`)
  }
}
