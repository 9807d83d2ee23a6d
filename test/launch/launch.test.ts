/**
 * The launch as users run it, with stand-in `nvidia-smi` and `llamafactory-cli` executables first on PATH
 * (see fakes.ts): the exact command and environment, the exit code, the monitor's numbers, the plots.
 */
import { existsSync } from 'node:fs'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { launchTraining, type LaunchResult } from '../../src/launch/launch.js'
import { PreflightError } from '../../src/launch/preflight.js'
import type { TrainerLogEntry } from '../../src/launch/trainer-log.js'
import { formatNumber, type LogRecord } from '../../src/launch/results.js'
import { collector, makeFakes, makeRun, readRecord, type Fakes, type RunSetup, type TrainRecord } from './fakes.js'
import { checkSvg, checkXml, pathPoints } from './svg.js'

interface Written {
  entries: TrainerLogEntry[]
  history: (LogRecord & { grad_norm?: number | null })[]
}

const quiet = () => ({ stdout: collector(), stderr: collector() })

describe('launch (stand-in GPUs and llamafactory-cli)', () => {
  let fakes: Fakes
  let run: RunSetup
  let result: LaunchResult
  let out: ReturnType<typeof quiet>

  beforeAll(async () => {
    fakes = await makeFakes()
    run = await makeRun(fakes.dir)
    out = quiet()
    result = await launchTraining({ config: run.config, gpus: '0-7', env: fakes.env(), forwardSignals: false, pollMs: 20, ...out })
  })
  afterAll(() => rm(fakes.dir, { recursive: true, force: true }))

  it('runs llamafactory-cli train <abs yaml> with CUDA_VISIBLE_DEVICES=0,...,7 and nothing else of ours', async () => {
    const rec = (await readRecord<TrainRecord>(fakes, 'train.json'))!
    expect(rec.argv).toEqual(['train', run.config])
    expect(rec.env.CUDA_VISIBLE_DEVICES).toBe('0,1,2,3,4,5,6,7')
    expect(rec.env.PYTHONUNBUFFERED).toBe('1')
    for (const k of ['FORCE_TORCHRUN', 'NNODES', 'NODE_RANK', 'MASTER_ADDR', 'MASTER_PORT']) expect(rec.env[k]).toBeUndefined()
    expect(rec.env.FAKE_RECORD).toBe(fakes.record) // the rest of the environment is inherited
    expect(rec.cwd).toBe(process.cwd())
    expect(result.command).toBe(`CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 PYTHONUNBUFFERED=1 llamafactory-cli train ${run.config}`)
    expect(result.exitCode).toBe(0)
  })

  it('asked nvidia-smi for the inventory with the documented query', async () => {
    const rec = (await readRecord<{ argv: string[] }>(fakes, 'nvidia-smi.json'))!
    expect(rec.argv).toEqual(['--query-gpu=index,name,memory.total,memory.used', '--format=csv,noheader,nounits'])
    expect(result.preflight?.ok).toBe(true)
    expect(result.preflight?.cliVersion).toBe('0.9.6.dev0')
    expect(result.preflight?.gpus).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
    expect(out.stderr.text()).toMatch(/ok {4}gpus {5}8 GPUs 0-7: NVIDIA A100-SXM4-80GB \(80 GB\)/)
    expect(out.stderr.text()).toMatch(/ok {4}images {3}all 2 distinct image paths found under media_dir/)
  })

  it("the monitor's numbers are the ones the training wrote", async () => {
    const written = (await readRecord<Written>(fakes, 'written.json'))!
    expect(result.entries).toEqual(written.entries)
    expect(written.entries.length).toBe(10) // 8 train logs, 1 eval, 1 final
    // Plain progress lines (stderr is not a terminal), one per entry, with the values written.
    const lines = out.stderr.text().split('\n').filter((l) => /^prefpipe: (step|done) /.test(l))
    expect(lines).toHaveLength(10)
    expect(lines[0]).toBe(`prefpipe: step 5/40 (12.5%)  loss ${written.entries[0]!.loss}  acc 0.5625  lr ${written.entries[0]!.lr!.toExponential(2)}  epoch 0.38  elapsed 0:00:03  ETA 0:00:18`)
    expect(lines.at(-1)).toBe('prefpipe: done 40/40 steps  epoch 3  elapsed 0:00:20')
  })

  it('summarises the full DPO metrics from trainer_state.json and all_results.json', async () => {
    const written = (await readRecord<Written>(fakes, 'written.json'))!
    const train = written.history.filter((h) => h.loss !== undefined)
    const last = train.at(-1)!
    const evalRec = written.history.find((h) => h.eval_loss !== undefined)!
    const s = result.summary!
    expect(s.source).toBe('trainer_state.json')
    expect(s).toMatchObject({ step: 40, maxSteps: 40, epoch: 3, trainRecords: 8 })
    for (const k of ['loss', 'rewards/chosen', 'rewards/rejected', 'rewards/margins', 'rewards/accuracies', 'logps/chosen', 'logps/rejected', 'logits/chosen', 'logits/rejected']) {
      expect(s.last[k]).toBe(last[k])
      expect(s.first[k]).toBe(train[0]![k])
      expect(s.eval[k]).toBe(evalRec[`eval_${k}`])
    }
    expect(s.first.grad_norm).toBeUndefined() // NaN in trainer_state.json: read, then left out
    expect(s.results).toEqual({ epoch: 3, total_flos: 1.2345e15, train_loss: written.history.at(-1)!.train_loss, train_runtime: 20.5, train_samples_per_second: 7.8, train_steps_per_second: 1.95 })
    const table = out.stdout.text()
    expect(table).toContain('training summary (trainer_state.json): step 40/40, epoch 3, 8 train logs')
    const f = (v: number | undefined) => formatNumber(v).replace('.', '\\.')
    expect(table).toMatch(new RegExp(`\\n  rewards/margins\\s+${f(train[0]!['rewards/margins'])}\\s+${f(last['rewards/margins'])}\\s+${f(evalRec['eval_rewards/margins'])}\\n`))
    expect(table).toMatch(/\n {2}train_samples_per_second {2,}7\.8\n/)
    expect(table).toMatch(/\n {2}train_runtime\s+20\.5\n/)
  })

  it('writes valid SVG plots with one point per logged value, and a self-contained training.html', async () => {
    const written = (await readRecord<Written>(fakes, 'written.json'))!
    const train = written.history.filter((h) => h.loss !== undefined)
    const files = ['training_loss.svg', 'training_rewards.svg', 'training_rewards_margins.svg', 'training_rewards_accuracies.svg']
    expect(result.plots).toEqual(files.map((f) => join(run.outputDir, f)))
    const svg = Object.fromEntries(await Promise.all(files.map(async (f) => [f, await readFile(join(run.outputDir, f), 'utf8')] as const)))
    for (const f of files) checkSvg(svg[f]!)
    expect(pathPoints(svg['training_loss.svg']!, 'train loss', 'raw')).toHaveLength(train.length)
    expect(pathPoints(svg['training_loss.svg']!, 'train loss', 'ema')).toHaveLength(train.length)
    expect(pathPoints(svg['training_loss.svg']!, 'eval loss', 'line')).toHaveLength(1)
    for (const s of ['chosen', 'rejected']) expect(pathPoints(svg['training_rewards.svg']!, s, 'ema')).toHaveLength(train.length)
    expect(pathPoints(svg['training_rewards_margins.svg']!, 'margin', 'raw')).toHaveLength(train.length)
    expect(pathPoints(svg['training_rewards_accuracies.svg']!, 'accuracy', 'raw')).toHaveLength(train.length)
    // Raw y positions follow the values: higher loss, higher on the page (smaller y).
    const ys = pathPoints(svg['training_loss.svg']!, 'train loss', 'raw').map((p) => p[1])
    const losses = train.map((h) => h.loss!)
    for (let i = 1; i < ys.length; i++) expect(Math.sign(ys[i - 1]! - ys[i]!)).toBe(Math.sign(losses[i]! - losses[i - 1]!))

    const html = await readFile(result.html!, 'utf8')
    expect(result.html).toBe(join(run.outputDir, 'training.html'))
    expect(html.startsWith('<!doctype html>')).toBe(true)
    expect(html.match(/<svg /g)).toHaveLength(4)
    expect(html).not.toMatch(/<script|src=|href=|<link/i)
    checkXml(html.replace(/^<!doctype html>\n/, '').replace(/<meta [^>]*>/g, ''))
  })

  it('tees the output to <output_dir>/prefpipe-launch.log', async () => {
    const log = await readFile(join(run.outputDir, 'prefpipe-launch.log'), 'utf8')
    expect(log).toMatch(/^==> prefpipe launch \d{4}-\d\d-\d\dT[\d:.]+Z in /)
    expect(log).toContain(`$ ${result.command}\n`)
    expect(log).toContain('Initializing 8 distributed tasks at: 127.0.0.1:41873')
    expect(log).toContain('| 40/40 [00:20<00:10, 2.00it/s]')
    expect(log).toMatch(/==> exit code 0 after [\d.]+ s\n$/)
    expect(out.stdout.text()).toContain('Initializing 8 distributed tasks') // and to our stdout
  })

  it('launches again over its own finished run (overwrite_output_dir: true) and follows only the new log', async () => {
    const o = quiet()
    const again = await launchTraining({ config: run.config, gpus: 2, env: fakes.env({ FAKE_STEPS: '10' }), forwardSignals: false, pollMs: 20, plots: false, ...o })
    expect(again.exitCode).toBe(0)
    expect(again.entries!.map((e) => e.total_steps)).toEqual([10, 10, 10])
    expect(o.stderr.text()).toMatch(/warn {2}output {3}output_dir .* holds an earlier run \(adapter_model\.safetensors\): overwrite_output_dir is set/)
    const rec = (await readRecord<TrainRecord>(fakes, 'train.json'))!
    expect(rec.env.CUDA_VISIBLE_DEVICES).toBe('0,1')
  })
})

describe('launch: environment and exit codes', () => {
  let fakes: Fakes
  let run: RunSetup
  beforeAll(async () => {
    fakes = await makeFakes()
    run = await makeRun(fakes.dir)
  })
  afterAll(() => rm(fakes.dir, { recursive: true, force: true }))

  it('multi-node: FORCE_TORCHRUN, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT reach the child', async () => {
    const r = await launchTraining({
      config: run.config,
      gpus: '0-7',
      nnodes: 2,
      nodeRank: 1,
      masterAddr: '10.0.0.1',
      masterPort: 29501,
      overrides: ['num_train_epochs=1', 'logging_steps=1'],
      env: fakes.env({ FAKE_STEPS: '5' }),
      forwardSignals: false,
      pollMs: 20,
      plots: false,
      ...quiet(),
    })
    expect(r.exitCode).toBe(0)
    const rec = (await readRecord<TrainRecord>(fakes, 'train.json'))!
    expect(rec.argv).toEqual(['train', run.config, 'num_train_epochs=1', 'logging_steps=1'])
    expect({ ...pick(rec.env, ['CUDA_VISIBLE_DEVICES', 'FORCE_TORCHRUN', 'NNODES', 'NODE_RANK', 'MASTER_ADDR', 'MASTER_PORT']) }).toEqual({
      CUDA_VISIBLE_DEVICES: '0,1,2,3,4,5,6,7',
      FORCE_TORCHRUN: '1',
      NNODES: '2',
      NODE_RANK: '1',
      MASTER_ADDR: '10.0.0.1',
      MASTER_PORT: '29501',
    })
  })

  it('--deepspeed z3 on one GPU: writes ds_z3_config.json next to the YAML, passes it as an absolute override, sets FORCE_TORCHRUN=1', async () => {
    const r = await launchTraining({ config: run.config, gpus: [5], deepspeed: 'z3', env: fakes.env({ FAKE_STEPS: '5' }), forwardSignals: false, pollMs: 20, plots: false, ...quiet() })
    expect(r.exitCode).toBe(0)
    const ds = join(run.datasetDir, 'ds_z3_config.json')
    const rec = (await readRecord<TrainRecord>(fakes, 'train.json'))!
    expect(rec.argv).toEqual(['train', run.config, `deepspeed=${ds}`])
    expect(rec.env.CUDA_VISIBLE_DEVICES).toBe('5')
    expect(rec.env.FORCE_TORCHRUN).toBe('1')
    const cfg = JSON.parse(await readFile(ds, 'utf8')) as { zero_optimization: { stage: number } }
    expect(cfg.zero_optimization.stage).toBe(3)
  })

  it("propagates the training's exit code, and 128+n when a signal killed it", async () => {
    const failed = await launchTraining({ config: run.config, gpus: 8, env: fakes.env({ FAKE_LF_MODE: 'fail' }), forwardSignals: false, pollMs: 20, ...quiet() })
    expect(failed.exitCode).toBe(1)
    const killed = await launchTraining({ config: run.config, gpus: 8, env: fakes.env({ FAKE_LF_MODE: 'signal' }), forwardSignals: false, pollMs: 20, ...quiet() })
    expect(killed).toMatchObject({ exitCode: 143, signal: 'SIGTERM' })
  })

  it('defaults to the GPUs of CUDA_VISIBLE_DEVICES, else all the machine has', async () => {
    const a = await launchTraining({ config: run.config, dryRun: true, env: fakes.env({ CUDA_VISIBLE_DEVICES: '2,3' }), ...quiet() })
    expect(a.plan.env.CUDA_VISIBLE_DEVICES).toBe('2,3')
    const b = await launchTraining({ config: run.config, dryRun: true, env: fakes.env({ FAKE_GPUS: '4' }), ...quiet() })
    expect(b.plan.env.CUDA_VISIBLE_DEVICES).toBe('0,1,2,3')
  })

  it('a dry run prints the command and starts nothing', async () => {
    await rm(join(fakes.record, 'train.json'), { force: true })
    const o = quiet()
    const r = await launchTraining({ config: run.config, gpus: '0-7', deepspeed: 'z2', dryRun: true, env: fakes.env(), ...o })
    const ds = join(run.datasetDir, 'ds_z2_config.json')
    expect(o.stdout.text()).toBe(`# writes ${ds} (DeepSpeed z2 preset)\nCUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 PYTHONUNBUFFERED=1 llamafactory-cli train ${run.config} deepspeed=${ds}\n`)
    expect(r.dryRun).toBe(true)
    expect(r.exitCode).toBeUndefined()
    expect(existsSync(ds)).toBe(false)
    expect(existsSync(join(fakes.record, 'train.json'))).toBe(false)
  })
})

describe('preflight refuses before any GPU time', () => {
  let fakes: Fakes
  beforeAll(async () => {
    fakes = await makeFakes()
  })
  afterAll(() => rm(fakes.dir, { recursive: true, force: true }))

  async function refused(opts: Parameters<typeof launchTraining>[0]): Promise<{ messages: string[]; stderr: string }> {
    await rm(join(fakes.record, 'train.json'), { force: true })
    const o = quiet()
    const err = await launchTraining({ forwardSignals: false, ...o, ...opts }).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(PreflightError)
    expect(existsSync(join(fakes.record, 'train.json'))).toBe(false)
    return { messages: (err as PreflightError).report.checks.filter((c) => c.level === 'fail').map((c) => `${c.id}: ${c.message}`), stderr: o.stderr.text() }
  }

  it('too few GPUs', async () => {
    const run = await makeRun(join(fakes.dir, 'few'))
    const { messages, stderr } = await refused({ config: run.config, gpus: 8, env: fakes.env({ FAKE_GPUS: '4' }) })
    expect(messages).toEqual(['gpus: 8 GPUs asked for, but this machine has 4 GPUs (0-3)'])
    expect(stderr).toContain('prefpipe preflight: 1 problem to fix before launching')
    expect(stderr).toContain('  FAIL  gpus     8 GPUs asked for, but this machine has 4 GPUs (0-3)')
  })

  it('no llamafactory-cli on PATH', async () => {
    const noCli = await makeFakes({ withCli: false })
    try {
      const run = await makeRun(noCli.dir)
      const { messages } = await refused({ config: run.config, gpus: 8, env: { ...noCli.env(), PATH: noCli.bin } })
      expect(messages).toHaveLength(1)
      expect(messages[0]).toMatch(/^cli: llamafactory-cli not found on PATH: activate the Python environment LLaMA-Factory is installed in/)
    } finally {
      await rm(noCli.dir, { recursive: true, force: true })
    }
  })

  it('a broken NVIDIA driver', async () => {
    const run = await makeRun(join(fakes.dir, 'driver'))
    const { messages } = await refused({ config: run.config, gpus: 8, env: fakes.env({ FAKE_NVSMI_FAIL: '1' }) })
    expect(messages).toEqual([expect.stringMatching(/^gpus: nvidia-smi failed \(NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver/)])
  })

  it('a config key llamafactory-cli train does not accept (checkTrainKeys), in the YAML or an override', async () => {
    const run = await makeRun(join(fakes.dir, 'key'), { extraYaml: ['lora_rnak: 16'] })
    const { messages } = await refused({ config: run.config, gpus: 8, overrides: ['evaluation_strategy=steps'], env: fakes.env() })
    expect(messages).toHaveLength(2)
    expect(messages[0]).toMatch(/^keys: `evaluation_strategy` is not a `llamafactory-cli train` key.*use `eval_strategy` instead/)
    expect(messages[1]).toMatch(/^keys: `lora_rnak` is not a `llamafactory-cli train` key.*did you mean `lora_rank`\?/)
  })

  it('a missing image, named with its row', async () => {
    const run = await makeRun(join(fakes.dir, 'img'))
    await rm(run.images[1]!)
    const { messages } = await refused({ config: run.config, gpus: 8, env: fakes.env() })
    expect(messages).toEqual([
      `images: 1 missing image among all 2 distinct image paths, media_dir ${run.datasetDir}: images/ab/two.png (rlhf_v_train row 1; ${run.images[1]}). Tokenisation would stop with FileNotFoundError`,
    ])
  })

  it('a dataset that is not in dataset_info.json', async () => {
    const run = await makeRun(join(fakes.dir, 'ds'))
    const { messages } = await refused({ config: run.config, gpus: 8, overrides: ['dataset=rlhf_v_trian'], env: fakes.env() })
    expect(messages).toEqual([`datasets: dataset "rlhf_v_trian" is not in ${join(run.datasetDir, 'dataset_info.json')} (LLaMA-Factory: "Undefined dataset rlhf_v_trian in dataset_info.json."); did you mean "rlhf_v_train"?`])
  })

  it('an earlier run in output_dir without overwrite_output_dir (LLaMA-Factory would silently resume it)', async () => {
    const run = await makeRun(join(fakes.dir, 'resume'))
    await mkdir(join(run.outputDir, 'checkpoint-500'), { recursive: true })
    const { messages } = await refused({ config: run.config, gpus: 8, overrides: ['overwrite_output_dir=false'], env: fakes.env() })
    expect(messages).toEqual([
      `output: output_dir ${run.outputDir} holds an earlier run (last checkpoint ${join(run.outputDir, 'checkpoint-500')}) and overwrite_output_dir is not set: LLaMA-Factory would silently resume it. Continue it with resume_from_checkpoint=${join(run.outputDir, 'checkpoint-500')}, start over with overwrite_output_dir=true, or choose another output_dir`,
    ])
    // Weights without a checkpoint folder: LLaMA-Factory's own refusal.
    await rm(join(run.outputDir, 'checkpoint-500'), { recursive: true })
    await writeFile(join(run.outputDir, 'adapter_model.safetensors'), 'x')
    const again = await refused({ config: run.config, gpus: 8, overrides: ['overwrite_output_dir=false'], env: fakes.env() })
    expect(again.messages[0]).toContain('Output directory already exists and is not empty. Please set `overwrite_output_dir`.')
  })

  it('whitespace in the config path', async () => {
    const run = await makeRun(join(fakes.dir, 'with space'))
    const { messages } = await refused({ config: run.config, gpus: 8, env: fakes.env() })
    expect(messages).toEqual([expect.stringMatching(/^config: the config path ".*with space.*" holds whitespace: llamafactory-cli joins and re-splits/)])
  })

  it('warns (but launches) on a busy GPU and on the swapped-labels dev version', async () => {
    const run = await makeRun(join(fakes.dir, 'busy'))
    const o = quiet()
    const r = await launchTraining({ config: run.config, gpus: '0-3', dryRun: true, env: fakes.env({ FAKE_GPU_BUSY: '2', FAKE_LF_VERSION: '0.9.1.dev0' }), ...o })
    expect(r.preflight!.ok).toBe(true)
    expect(o.stderr.text()).toContain('  warn  gpus     GPU 2 is busy: 40321 MiB of 81920 MiB already in use (another job?)')
    expect(o.stderr.text()).toMatch(/warn {2}cli {6}LLaMA-Factory 0\.9\.1\.dev0: .* logps\/\* and logits\/\* with chosen and rejected swapped/)
  })

  it('rejects bad options when called', async () => {
    await expect(launchTraining({ config: 'x.yaml', gpus: 0 })).rejects.toThrow('[prefpipe] launch: invalid options: gpus:')
    await expect(launchTraining({ config: 'x.yaml', deepspeed: 'z4' as 'z3' })).rejects.toThrow(/deepspeed/)
    await expect(launchTraining({ config: 'x.yaml', bogus: 1 } as never)).rejects.toThrow(/invalid options: options: Unrecognized key: "bogus"|bogus/)
  })
})

function pick(env: Record<string, string>, keys: string[]): Record<string, string> {
  return Object.fromEntries(keys.filter((k) => env[k] !== undefined).map((k) => [k, env[k]!]))
}

