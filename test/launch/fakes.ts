/**
 * Stand-ins for `nvidia-smi` and `llamafactory-cli`, written into a temp `bin/` that tests put first on PATH.
 * They record their argv and environment as JSON and, for `train` (a Node script), write `trainer_log.jsonl`, `trainer_state.json` and `all_results.json` over time, in the formats of
 * `reference/llamafactory.md` 6. What they do is set by environment variables (FAKE_*), which the launch passes on.
 */
import { existsSync, readFileSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

// Plain sh, so a preflight costs milliseconds, not a Node start-up per call.
const NVIDIA_SMI = [
  '#!/bin/sh',
  'if [ -n "$FAKE_RECORD" ]; then',
  `  out='{"argv":['; sep=''`,
  '  for a in "$@"; do out="$out$sep\\"$a\\""; sep=","; done',
  `  printf '%s]}' "$out" > "$FAKE_RECORD/nvidia-smi.json"`,
  'fi',
  'if [ -n "$FAKE_NVSMI_FAIL" ]; then',
  `  echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running."`,
  '  exit 9',
  'fi',
  'n=${FAKE_GPUS:-8}; i=0',
  'while [ $i -lt $n ]; do',
  '  used=4',
  '  case ",$FAKE_GPU_BUSY," in *",$i,"*) used=40321 ;; esac',
  '  echo "$i, NVIDIA A100-SXM4-80GB, 81920, $used"',
  '  i=$((i + 1))',
  'done',
  '',
].join('\n')

/** `llamafactory-cli version` in sh (LLaMA-Factory pads the version line to the box); `train` runs the Node script. */
function cliWrapper(script: string): string {
  return [
    '#!/bin/sh',
    'if [ "$1" = version ]; then',
    '  v=${FAKE_LF_VERSION:-0.9.6.dev0}',
    `  pad=''; i=\${#v}`,
    '  while [ $i -lt 21 ]; do pad="$pad "; i=$((i + 1)); done',
    `  echo '[2026-08-20 10:00:00,000] [INFO] [real_accelerator.py:254:get_accelerator] Setting ds_accelerator to cuda (auto detect)' >&2`,
    `  echo '----------------------------------------------------------'`,
    '  echo "| Welcome to LLaMA Factory, version $v$pad|"',
    `  echo '|                                                        |'`,
    `  echo '| Project page: https://github.com/hiyouga/LLaMA-Factory |'`,
    `  echo '----------------------------------------------------------'`,
    '  exit 0',
    'fi',
    `exec '${process.execPath}' '${script}' "$@"`,
    '',
  ].join('\n')
}

const LLAMAFACTORY_CLI = String.raw`
const fs = require('node:fs')
const path = require('node:path')
const { spawn } = require('node:child_process')
const rec = process.env.FAKE_RECORD
const args = process.argv.slice(2)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const note = (line) => rec && fs.appendFileSync(path.join(rec, 'signals.log'), line + '\n')

if (args[0] !== 'train') { process.stderr.write('unknown command ' + args[0] + '\n'); process.exit(2) }

const env = {}
for (const [k, v] of Object.entries(process.env)) env[k] = v
if (rec) fs.writeFileSync(path.join(rec, 'train.json'), JSON.stringify({ argv: args, env, cwd: process.cwd(), pid: process.pid }))

// The config: output_dir and overwrite_output_dir from the YAML, then the key=value overrides.
const cfg = {}
for (const line of fs.readFileSync(args[1], 'utf8').split('\n')) {
  const m = /^([A-Za-z_]+):\s*(.*?)\s*$/.exec(line)
  if (m) cfg[m[1]] = m[2]
}
for (const a of args.slice(2)) { const i = a.indexOf('='); cfg[a.slice(0, i)] = a.slice(i + 1) }
const out = path.resolve(cfg.output_dir)
const nproc = (process.env.CUDA_VISIBLE_DEVICES ?? '').split(',').filter(Boolean).length
process.stdout.write('[INFO|2026-08-20 10:00:01] llamafactory.launcher:143 >> Initializing ' + nproc + ' distributed tasks at: ' + (process.env.MASTER_ADDR ?? '127.0.0.1') + ':' + (process.env.MASTER_PORT ?? '41873') + '\n')

const mode = process.env.FAKE_LF_MODE ?? 'ok'
const total = Number(process.env.FAKE_STEPS ?? 40)
const every = Number(process.env.FAKE_LOG_EVERY ?? 5)
const evalAt = Number(process.env.FAKE_EVAL_AT ?? 20)
const delay = Number(process.env.FAKE_DELAY_MS ?? 15)
const r4 = (x) => Math.round(x * 10000) / 10000
const hms = (s) => { s = Math.round(s); return Math.floor(s / 3600) + ':' + String(Math.floor(s / 60) % 60).padStart(2, '0') + ':' + String(s % 60).padStart(2, '0') }
const logFile = path.join(out, 'trainer_log.jsonl')

function metrics(s) {
  const chosen = r4(0.02 * s + 0.1 * Math.sin(s))
  const rejected = r4(-0.03 * s + 0.1 * Math.cos(s))
  return {
    loss: r4(0.6931 * Math.exp(-s / 30) + 0.05 * Math.sin(s)),
    'rewards/chosen': chosen, 'rewards/rejected': rejected, 'rewards/margins': r4(chosen - rejected),
    'rewards/accuracies': r4(Math.min(1, 0.5 + s / 80)),
    'logps/chosen': r4(-250 + s), 'logps/rejected': r4(-260 - s / 2), 'logits/chosen': r4(-1.2 + s / 1000), 'logits/rejected': -1.25,
  }
}

async function train() {
  fs.mkdirSync(out, { recursive: true })
  if (/^(true|yes|1)$/i.test(cfg.overwrite_output_dir ?? '') && fs.existsSync(logFile)) fs.unlinkSync(logFile)
  const written = []
  const history = []
  let line = 0
  const append = async (entry) => {
    const text = JSON.stringify(entry) + '\n'
    // Every third line arrives in two writes, as a reader may catch a line half-written.
    if (++line % 3 === 0) {
      fs.appendFileSync(logFile, text.slice(0, 17))
      await sleep(delay * 2)
      fs.appendFileSync(logFile, text.slice(17))
    } else fs.appendFileSync(logFile, text)
    written.push(entry)
  }
  const epochs = 3
  for (let s = every; s <= total; s += every) {
    await sleep(delay)
    const m = metrics(s)
    const lr = r4(5e-6 * (1 - s / total) * 1e6) / 1e6
    const epoch = Math.round((epochs * s / total) * 100) / 100
    const el = s * 0.5
    await append({ current_steps: s, total_steps: total, loss: m.loss, accuracy: m['rewards/accuracies'], lr, epoch, percentage: Math.round(s / total * 10000) / 100, elapsed_time: hms(el), remaining_time: hms((total - s) * 0.5) })
    history.push({ epoch, grad_norm: s === every ? 'NaN' : r4(10 / s), learning_rate: lr, ...m, step: s })
    process.stderr.write('\r ' + Math.round(s / total * 100) + '%|' + '#'.repeat(Math.round(s / total * 10)).padEnd(10) + '| ' + s + '/' + total + ' [00:' + String(Math.round(el)).padStart(2, '0') + '<00:10, 2.00it/s]')
    if (s === evalAt) {
      const e = metrics(s + 2)
      const evalRec = { epoch, step: s, eval_runtime: 1.5, eval_samples_per_second: 12.3, eval_steps_per_second: 1.6 }
      for (const [k, v] of Object.entries(e)) if (k !== 'rewards/accuracies') evalRec['eval_' + k] = v
      evalRec['eval_rewards/accuracies'] = 0.7
      history.push(evalRec)
      await append({ current_steps: s, total_steps: total, eval_loss: e.loss, epoch, percentage: Math.round(s / total * 10000) / 100, elapsed_time: hms(el), remaining_time: hms((total - s) * 0.5) })
      process.stdout.write('\n***** eval metrics *****\n  eval_loss = ' + e.loss + '\n')
    }
  }
  process.stderr.write('\n')
  const trainLoss = r4(history.filter((h) => h.loss !== undefined).reduce((a, h) => a + h.loss, 0) / history.filter((h) => h.loss !== undefined).length)
  history.push({ epoch: epochs, step: total, total_flos: 1.2345e15, train_loss: trainLoss, train_runtime: 20.5, train_samples_per_second: 7.8, train_steps_per_second: 1.95 })
  await append({ current_steps: total, total_steps: total, epoch: epochs, percentage: 100.0, elapsed_time: hms(total * 0.5), remaining_time: '0:00:00' })
  const results = { epoch: epochs, total_flos: 1.2345e15, train_loss: trainLoss, train_runtime: 20.5, train_samples_per_second: 7.8, train_steps_per_second: 1.95 }
  fs.writeFileSync(path.join(out, 'train_results.json'), JSON.stringify(results, null, 4))
  fs.writeFileSync(path.join(out, 'all_results.json'), JSON.stringify(results, null, 4))
  fs.writeFileSync(path.join(out, 'adapter_model.safetensors'), 'weights')
  // HF writes trainer_state.json with Python's json: NaN stays a bare NaN.
  const state = { best_metric: null, epoch: epochs, eval_steps: evalAt, global_step: total, log_history: history, logging_steps: every, max_steps: total, num_train_epochs: epochs, save_steps: 500, train_batch_size: 1 }
  fs.writeFileSync(path.join(out, 'trainer_state.json'), JSON.stringify(state, null, 2).replace(/"NaN"/g, 'NaN'))
  if (rec) fs.writeFileSync(path.join(rec, 'written.json'), JSON.stringify({ entries: written, history: history.map((h) => (h.grad_norm === 'NaN' ? { ...h, grad_norm: null } : h)) }))
}

// A worker in the same process group (as torchrun's are): records its pid and what signals it gets.
function startWorker(kind) {
  const code = "const fs=require('fs');const p=require('path');const rec=process.env.FAKE_RECORD;" +
    "fs.writeFileSync(p.join(rec,'worker.pid'),String(process.pid));" +
    "for(const s of ['SIGINT','SIGTERM'])process.on(s,()=>{fs.appendFileSync(p.join(rec,'signals.log'),'worker '+s+'\\n');" +
    (kind === 'stubborn' ? "" : "process.exit(s==='SIGINT'?130:143)") + "});setInterval(()=>{},1000)"
  return spawn(process.execPath, ['-e', code], { stdio: 'inherit' })
}

async function main() {
  if (mode === 'ok') {
    await train()
    process.stdout.write('***** train metrics *****\n  train_loss = done\n')
    process.exit(Number(process.env.FAKE_EXIT ?? 0))
  }
  if (mode === 'fail') {
    process.stderr.write('Traceback (most recent call last):\n  File "launcher.py", line 23, in <module>\nValueError: Some keys are not used by the HfArgumentParser: [\'lora_rnak\']\n')
    process.exit(1)
  }
  if (mode === 'signal') {
    process.kill(process.pid, 'SIGTERM')
    await sleep(10000)
  }
  if (mode === 'sigint' || mode === 'stubborn') {
    const worker = startWorker(mode)
    fs.writeFileSync(path.join(rec, 'leader.pid'), String(process.pid))
    process.on('SIGINT', async () => {
      note('leader SIGINT')
      if (mode === 'sigint') {
        // torchrun waits for its workers, then exits with the signal's code.
        if (worker.exitCode === null && worker.signalCode === null) await new Promise((r) => worker.once('exit', r))
        process.exit(130)
      }
      process.exit(130)
    })
    process.on('SIGTERM', () => { note('leader SIGTERM'); process.exit(143) })
    fs.mkdirSync(out, { recursive: true })
    fs.appendFileSync(logFile, JSON.stringify({ current_steps: 5, total_steps: 40, loss: 0.69, accuracy: 0.5, lr: 5e-6, epoch: 0.38, percentage: 12.5, elapsed_time: '0:00:02', remaining_time: '0:00:14' }) + '\n')
    setInterval(() => {}, 1000)
  }
}
main()
`

/** The stand-ins, and where they record. */
export interface Fakes {
  dir: string
  bin: string
  /** Where the stand-ins write `train.json`, `nvidia-smi.json`, `written.json`, `signals.log`, `*.pid`. */
  record: string
  /** The environment for a launch: the stand-ins first on PATH, FAKE_RECORD set, `extra` on top. */
  env(extra?: Record<string, string>): NodeJS.ProcessEnv
}

/** What the `llamafactory-cli train` stand-in recorded. */
export interface TrainRecord {
  argv: string[]
  env: Record<string, string>
  cwd: string
  pid: number
}

/** Write both stand-ins into a fresh temp dir. `withCli: false` leaves `llamafactory-cli` out. */
export async function makeFakes(opts: { withCli?: boolean } = {}): Promise<Fakes> {
  const dir = await mkdtemp(join(tmpdir(), 'prefpipe-launch-'))
  const bin = join(dir, 'bin')
  const record = join(dir, 'record')
  await mkdir(bin)
  await mkdir(record)
  // nvidia-smi and `llamafactory-cli version` are sh; `train` execs Node on a .cjs file (CommonJS whatever
  // package.json is above the temp dir; exec keeps the pid, so the launched process is the Node one).
  await writeFile(join(bin, 'nvidia-smi'), NVIDIA_SMI)
  await chmod(join(bin, 'nvidia-smi'), 0o755)
  if (opts.withCli ?? true) {
    const script = join(dir, 'llamafactory-cli.cjs')
    await writeFile(script, LLAMAFACTORY_CLI)
    await writeFile(join(bin, 'llamafactory-cli'), cliWrapper(script))
    await chmod(join(bin, 'llamafactory-cli'), 0o755)
  }
  return {
    dir,
    bin,
    record,
    env(extra = {}) {
      const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, FAKE_RECORD: record, ...extra }
      // The launch's own choices must come from the launch, not from the test runner's environment.
      for (const k of ['CUDA_VISIBLE_DEVICES', 'FORCE_TORCHRUN', 'NNODES', 'NODE_RANK', 'MASTER_ADDR', 'MASTER_PORT', 'ALLOW_EXTRA_ARGS']) if (!(k in extra)) delete env[k]
      return env
    },
  }
}

/** Read a JSON record the stand-ins wrote (`undefined` when they did not). */
export async function readRecord<T>(fakes: Fakes, name: string): Promise<T | undefined> {
  const p = join(fakes.record, name)
  return existsSync(p) ? (JSON.parse(await readFile(p, 'utf8')) as T) : undefined
}

/** A training setup: a dataset folder LLaMA-Factory would accept (2 rows, 2 images) and a YAML pointing at it. */
export interface RunSetup {
  /** Absolute path of `train_dpo.yaml`. */
  config: string
  datasetDir: string
  outputDir: string
  images: string[]
}

/** One PNG's bytes (1x1), enough for a file that exists. */
const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082', 'hex')

/**
 * Write `<dir>/<name>/` (dataset_info.json, rows, images) and `<dir>/<name>/train_dpo.yaml`.
 * `extraYaml` lines are appended to the YAML.
 */
export async function makeRun(dir: string, opts: { name?: string; extraYaml?: string[]; outputDir?: string } = {}): Promise<RunSetup> {
  const datasetDir = join(dir, opts.name ?? 'data')
  await mkdir(join(datasetDir, 'images', 'ab'), { recursive: true })
  const images = ['images/ab/one.png', 'images/ab/two.png']
  for (const i of images) await writeFile(join(datasetDir, i), PNG)
  const rows = images.map((img, i) =>
    JSON.stringify({ conversations: [{ from: 'human', value: `<image>What is in picture ${i}?` }], chosen: { from: 'gpt', value: 'A cat.' }, rejected: { from: 'gpt', value: 'A dog.' }, images: [img] }),
  )
  await writeFile(join(datasetDir, 'rlhf_v_train.jsonl'), rows.join('\n') + '\n')
  await writeFile(
    join(datasetDir, 'dataset_info.json'),
    JSON.stringify({ rlhf_v_train: { file_name: 'rlhf_v_train.jsonl', formatting: 'sharegpt', ranking: true, columns: { messages: 'conversations', chosen: 'chosen', rejected: 'rejected', images: 'images' } } }, null, 2),
  )
  const outputDir = opts.outputDir ?? join(dir, 'saves', 'qwen2_vl-7b', 'lora', 'dpo')
  const yaml = [
    '### model',
    'model_name_or_path: Qwen/Qwen2-VL-7B-Instruct',
    'image_max_pixels: 262144',
    'trust_remote_code: true',
    '### method',
    'stage: dpo',
    'do_train: true',
    'finetuning_type: lora',
    'lora_rank: 8',
    'lora_target: all',
    'pref_beta: 0.1',
    'pref_loss: sigmoid',
    '### dataset',
    'dataset: rlhf_v_train',
    `dataset_dir: ${datasetDir}`,
    `media_dir: ${datasetDir}`,
    'template: qwen2_vl',
    'cutoff_len: 2048',
    '### output',
    `output_dir: ${outputDir}`,
    'logging_steps: 5',
    'save_steps: 500',
    'plot_loss: true',
    'overwrite_output_dir: true',
    'report_to: none',
    '### train',
    'per_device_train_batch_size: 1',
    'gradient_accumulation_steps: 8',
    'learning_rate: 5.0e-6',
    'num_train_epochs: 3.0',
    'lr_scheduler_type: cosine',
    'warmup_ratio: 0.1',
    'bf16: true',
    'ddp_timeout: 180000000',
    ...(opts.extraYaml ?? []),
  ]
  const config = join(datasetDir, 'train_dpo.yaml')
  await writeFile(config, yaml.join('\n') + '\n')
  return { config, datasetDir, outputDir, images: images.map((i) => join(datasetDir, i)) }
}

/** A sink for a launch's stdout/stderr in tests: collects what is written. */
export function collector(): NodeJS.WritableStream & { text: () => string } {
  let buf = ''
  const s = {
    write(chunk: string | Uint8Array): boolean {
      buf += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8')
      return true
    },
    text: () => buf,
  }
  return s as unknown as NodeJS.WritableStream & { text: () => string }
}

/** Wait until `check()` is truthy (polling), or fail after `ms`. */
export async function waitFor<T>(check: () => T | Promise<T>, ms = 5000, what = 'condition'): Promise<NonNullable<T>> {
  const end = Date.now() + ms
  for (;;) {
    const v = await check()
    if (v) return v as NonNullable<T>
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/**
 * Whether a process is alive: `process.kill(pid, 0)` succeeds and it is not a zombie. (An orphaned worker is
 * re-parented to PID 1, which on some containers never reaps it: it stays a zombie, dead but listed.)
 */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]!)
  } catch {
    return !existsSync('/proc/self/stat') // no /proc (not Linux): kill(pid, 0) is all there is
  }
}

