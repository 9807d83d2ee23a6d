import { appendFile, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildLaunchPlan, formatCommand, formatDryRun, shellQuote } from '../../src/launch/command.js'
import { loadTrainConfig, mergeOverrides, overrideTokens } from '../../src/launch/config.js'
import { deepspeedConfig, deepspeedFileName, deepspeedText } from '../../src/launch/deepspeed.js'
import { compactIndices, parseGpus, parseNvidiaSmi, resolveGpus } from '../../src/launch/gpus.js'
import { formatEntry } from '../../src/launch/display.js'
import { TrainerLogFollower, parseTrainerLogLine } from '../../src/launch/trainer-log.js'
import { emaSmooth, svgLinePlot } from '../../src/launch/plots.js'
import { estimateCheckpointBytes, guessModelParams } from '../../src/launch/preflight.js'
import { readTrainingResults, summarizeTraining } from '../../src/launch/results.js'
import { checkSvg, checkXml, pathPoints } from './svg.js'

describe('--gpus', () => {
  it('reads ranges, lists, counts and all', () => {
    expect(parseGpus('0-7')).toEqual({ kind: 'list', indices: [0, 1, 2, 3, 4, 5, 6, 7] })
    expect(parseGpus('0,2,4')).toEqual({ kind: 'list', indices: [0, 2, 4] })
    expect(parseGpus('0-3,6')).toEqual({ kind: 'list', indices: [0, 1, 2, 3, 6] })
    expect(parseGpus('3-3')).toEqual({ kind: 'list', indices: [3] })
    expect(parseGpus('3,')).toEqual({ kind: 'list', indices: [3] })
    expect(parseGpus('8')).toEqual({ kind: 'count', count: 8 })
    expect(parseGpus(8)).toEqual({ kind: 'count', count: 8 })
    expect(parseGpus([4, 5])).toEqual({ kind: 'list', indices: [4, 5] })
    expect(parseGpus('all')).toEqual({ kind: 'all' })
  })

  it('refuses what it cannot read, with the reason', () => {
    expect(() => parseGpus('7-0')).toThrow(/runs backwards/)
    expect(() => parseGpus('0,0')).toThrow(/GPU 0 is given twice/)
    expect(() => parseGpus('0')).toThrow(/at least 1/)
    expect(() => parseGpus('gpu0')).toThrow(/unexpected characters/)
    expect(() => parseGpus('')).toThrow(/no GPU given|unexpected/)
    expect(() => parseGpus(1.5)).toThrow(/whole number/)
  })

  it('resolves against the nvidia-smi inventory', () => {
    const inv = parseNvidiaSmi('0, NVIDIA A100-SXM4-80GB, 81920, 4\n1, NVIDIA A100-SXM4-80GB, 81920, 40321\n2, NVIDIA A100, PCIe, 40960, [N/A]\n')
    expect(inv).toEqual([
      { index: 0, name: 'NVIDIA A100-SXM4-80GB', memoryTotalMiB: 81920, memoryUsedMiB: 4 },
      { index: 1, name: 'NVIDIA A100-SXM4-80GB', memoryTotalMiB: 81920, memoryUsedMiB: 40321 },
      { index: 2, name: 'NVIDIA A100, PCIe', memoryTotalMiB: 40960, memoryUsedMiB: Number.NaN },
    ])
    expect(resolveGpus({ kind: 'count', count: 2 }, inv)).toEqual([0, 1])
    expect(resolveGpus({ kind: 'all' }, inv)).toEqual([0, 1, 2])
    expect(() => resolveGpus({ kind: 'count', count: 8 }, inv)).toThrow('8 GPUs asked for, but this machine has 3 GPUs (0-2)')
    expect(() => resolveGpus({ kind: 'list', indices: [1, 5] }, inv)).toThrow('GPU 5 asked for, but this machine has 3 GPUs (0-2)')
    expect(resolveGpus({ kind: 'count', count: 8 })).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
    expect(() => resolveGpus({ kind: 'all' })).toThrow(/needs nvidia-smi/)
    expect(compactIndices([0, 1, 2, 3, 6, 8, 9])).toBe('0-3,6,8,9')
  })
})

describe('the command', () => {
  const base = { config: '/abs/train_dpo.yaml', overrides: [] as string[], gpus: [0, 1, 2, 3, 4, 5, 6, 7], deepspeed: false, cwd: '/abs' }

  it('sets CUDA_VISIBLE_DEVICES and runs llamafactory-cli train <abs yaml>', () => {
    const plan = buildLaunchPlan(base)
    expect(plan).toEqual({
      file: 'llamafactory-cli',
      args: ['train', '/abs/train_dpo.yaml'],
      env: { CUDA_VISIBLE_DEVICES: '0,1,2,3,4,5,6,7', PYTHONUNBUFFERED: '1' },
      cwd: '/abs',
    })
    expect(formatDryRun(plan)).toBe('CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 PYTHONUNBUFFERED=1 llamafactory-cli train /abs/train_dpo.yaml\n')
  })

  it('multi-node: FORCE_TORCHRUN, NNODES, NODE_RANK, MASTER_ADDR and an explicit MASTER_PORT', () => {
    const plan = buildLaunchPlan({ ...base, overrides: ['num_train_epochs=1'], nnodes: 2, nodeRank: 1, masterAddr: '10.0.0.1' })
    expect(formatCommand(plan)).toBe(
      'CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 FORCE_TORCHRUN=1 NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 MASTER_PORT=29500 PYTHONUNBUFFERED=1 llamafactory-cli train /abs/train_dpo.yaml num_train_epochs=1',
    )
    expect(() => buildLaunchPlan({ ...base, nnodes: 2, masterAddr: '10.0.0.1' })).toThrow(/needs --node-rank/)
    expect(() => buildLaunchPlan({ ...base, nnodes: 2, nodeRank: 0 })).toThrow(/needs --master-addr/)
    expect(() => buildLaunchPlan({ ...base, nnodes: 2, nodeRank: 2, masterAddr: 'h' })).toThrow(/must be 0..1/)
  })

  it('DeepSpeed on one GPU gets FORCE_TORCHRUN=1; on several it does not need it', () => {
    expect(buildLaunchPlan({ ...base, gpus: [3], deepspeed: true }).env).toEqual({ CUDA_VISIBLE_DEVICES: '3', FORCE_TORCHRUN: '1', PYTHONUNBUFFERED: '1' })
    expect(buildLaunchPlan({ ...base, deepspeed: true }).env.FORCE_TORCHRUN).toBeUndefined()
  })

  it('quotes for a shell only what needs it', () => {
    expect(shellQuote('/abs/a.yaml')).toBe('/abs/a.yaml')
    expect(shellQuote('a b')).toBe("'a b'")
    expect(shellQuote("it's")).toBe(`'it'\\''s'`)
    expect(shellQuote('$(rm -rf ~)')).toBe("'$(rm -rf ~)'")
  })
})

describe('config and overrides', () => {
  it('checks overrides: key=value, no whitespace, no --flags', () => {
    expect(overrideTokens(['learning_rate=1.0e-5', 'logging_steps=1'])).toEqual(['learning_rate=1.0e-5', 'logging_steps=1'])
    expect(overrideTokens({ num_train_epochs: 1, bf16: true, resume_from_checkpoint: null })).toEqual(['num_train_epochs=1', 'bf16=true', 'resume_from_checkpoint=null'])
    expect(() => overrideTokens(['output_dir=/a b'])).toThrow(/whitespace/)
    expect(() => overrideTokens(['--learning_rate'])).toThrow(/key=value/)
    expect(() => overrideTokens(['learning_rate'])).toThrow(/key=value/)
    expect(() => overrideTokens(['x;rm=1'])).toThrow(/key=value/)
  })

  it('merges overrides on top of the YAML, as OmegaConf does', () => {
    expect(mergeOverrides({ learning_rate: 5e-6, bf16: true }, ['learning_rate=1.0e-5', 'bf16=false', 'a.b=2'])).toEqual({ learning_rate: 1e-5, bf16: false, a: { b: 2 } })
  })

  it('refuses a .json config, a missing file and a non-mapping', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prefpipe-cfg-'))
    try {
      await expect(loadTrainConfig(join(dir, 'a.json'))).rejects.toThrow(/\.json config branch does not work/)
      await expect(loadTrainConfig(join(dir, 'missing.yaml'))).rejects.toThrow(/no such file/)
      await writeFile(join(dir, 'list.yaml'), '- a\n- b\n')
      await expect(loadTrainConfig(join(dir, 'list.yaml'))).rejects.toThrow(/must be a YAML mapping/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('DeepSpeed presets', () => {
  it("match LLaMA-Factory's examples/deepspeed files", () => {
    const z3 = deepspeedConfig('z3')
    expect(z3).toMatchObject({
      train_batch_size: 'auto',
      train_micro_batch_size_per_gpu: 'auto',
      gradient_accumulation_steps: 'auto',
      gradient_clipping: 'auto',
      zero_allow_untested_optimizer: true,
      fp16: { enabled: 'auto', loss_scale: 0, initial_scale_power: 16 },
      bf16: { enabled: 'auto' },
    })
    expect(z3.zero_optimization).toEqual({
      stage: 3,
      overlap_comm: false,
      contiguous_gradients: true,
      sub_group_size: 1e9,
      reduce_bucket_size: 'auto',
      stage3_prefetch_bucket_size: 'auto',
      stage3_param_persistence_threshold: 'auto',
      stage3_max_live_parameters: 1e9,
      stage3_max_reuse_distance: 1e9,
      stage3_gather_16bit_weights_on_model_save: true,
    })
    expect(deepspeedConfig('z3-offload').zero_optimization).toMatchObject({ stage: 3, offload_optimizer: { device: 'cpu', pin_memory: true }, offload_param: { device: 'cpu', pin_memory: true } })
    expect(deepspeedConfig('z2').zero_optimization).toMatchObject({ stage: 2, overlap_comm: false, contiguous_gradients: true })
    expect(deepspeedFileName('z3-offload')).toBe('ds_z3_offload_config.json')
    expect(JSON.parse(deepspeedText('z2'))).toEqual(deepspeedConfig('z2'))
  })
})

describe('disk estimate', () => {
  it('guesses the model size from its name', () => {
    expect(guessModelParams('Qwen/Qwen2-VL-7B-Instruct')).toBe(7e9)
    expect(guessModelParams('Qwen/Qwen2.5-VL-72B-Instruct')).toBe(72e9)
    expect(guessModelParams('Qwen/Qwen2-0.5B')).toBe(0.5e9)
    expect(guessModelParams('Qwen/Qwen3-VL-30B-A3B-Instruct')).toBe(30e9)
    expect(guessModelParams('llava-hf/llava-interleave-qwen-500m')).toBe(5e8)
    expect(guessModelParams('my-model')).toBeUndefined()
    const lora = estimateCheckpointBytes({ finetuning_type: 'lora', lora_rank: 8 }, 7e9)
    const full = estimateCheckpointBytes({ finetuning_type: 'full', save_total_limit: 1, save_only_model: true }, 7e9)
    expect(full).toBe(7e9 * 2 * 2)
    expect(lora).toBeLessThan(full)
  })
})

describe('trainer_log.jsonl', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prefpipe-follow-'))
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('parses the example line of LLaMA-Factory', () => {
    const line = '{"current_steps": 10, "total_steps": 375, "loss": 0.6931, "accuracy": 0.5, "lr": 1.2e-06, "epoch": 0.08, "percentage": 2.67, "elapsed_time": "0:01:23", "remaining_time": "0:50:40"}'
    const e = parseTrainerLogLine(line)!
    expect(e).toEqual({ current_steps: 10, total_steps: 375, loss: 0.6931, accuracy: 0.5, lr: 1.2e-6, epoch: 0.08, percentage: 2.67, elapsed_time: '0:01:23', remaining_time: '0:50:40' })
    expect(formatEntry(e)).toBe('step 10/375 (2.67%)  loss 0.6931  acc 0.5  lr 1.20e-6  epoch 0.08  elapsed 0:01:23  ETA 0:50:40')
    expect(parseTrainerLogLine('{"loss": 1}')).toBeUndefined()
    expect(parseTrainerLogLine('not json')).toBeUndefined()
  })

  it('follows a file that appears late, grows in pieces, and is replaced', async () => {
    const out = join(dir, 'run')
    const f = new TrainerLogFollower(out)
    await f.init()
    expect(await f.poll()).toEqual([]) // no folder, no file yet
    await mkdir(out)
    const log = join(out, 'trainer_log.jsonl')
    await writeFile(log, '{"current_steps": 1, "total_steps": 4, "loss": 0.7}\n{"current_steps": 2, "total')
    expect((await f.poll()).map((e) => e.current_steps)).toEqual([1])
    await appendFile(log, '_steps": 4, "loss": 0.6}\n')
    expect((await f.poll()).map((e) => e.loss)).toEqual([0.6])
    expect(await f.poll()).toEqual([])
    // A new run deletes the log and writes a new one.
    let resets = 0
    f.onReset = () => resets++
    await writeFile(`${log}.new`, '{"current_steps": 1, "total_steps": 9, "loss": 0.9}\n{"current_steps": 2, "total_steps": 9, "loss": 0.8}\n{"current_steps": 3, "total_steps": 9, "loss": 0.75}\n')
    await rename(`${log}.new`, log)
    expect((await f.poll()).map((e) => e.total_steps)).toEqual([9, 9, 9])
    expect(resets).toBe(1)
    // A last line without its newline is read by finish() (the writer is gone).
    await appendFile(log, '{"current_steps": 9, "total_steps": 9, "epoch": 3.0}')
    expect(await f.poll()).toEqual([])
    expect(await f.finish()).toEqual([{ current_steps: 9, total_steps: 9, epoch: 3 }])
  })

  it('skips the old content when told to follow only what comes', async () => {
    const out = join(dir, 'old')
    await mkdir(out)
    await writeFile(join(out, 'trainer_log.jsonl'), '{"current_steps": 100, "total_steps": 100, "loss": 0.1}\n')
    const f = new TrainerLogFollower(out, { fromStart: false })
    await f.init()
    expect(await f.poll()).toEqual([])
    await appendFile(join(out, 'trainer_log.jsonl'), '{"current_steps": 105, "total_steps": 200, "loss": 0.09}\n')
    expect((await f.poll()).map((e) => e.current_steps)).toEqual([105])
  })

  it('reads trainer_state.json with bare NaN values (Python json)', async () => {
    const out = join(dir, 'state')
    await mkdir(out)
    await writeFile(
      join(out, 'trainer_state.json'),
      '{"global_step": 10, "max_steps": 10, "log_history": [{"epoch": 1.0, "grad_norm": NaN, "loss": 0.69, "rewards/margins": 0.01, "step": 5}, {"eval_loss": 0.6, "eval_rewards/margins": 0.2, "eval_runtime": 1.0, "step": 10}, {"train_loss": 0.65, "step": 10, "epoch": 2.0}]}',
    )
    const r = await readTrainingResults(out)
    expect(r.source).toBe('trainer_state.json')
    expect(r.history[0]).toEqual({ epoch: 1, loss: 0.69, 'rewards/margins': 0.01, step: 5 })
    const s = summarizeTraining(r)
    expect(s.last).toEqual({ loss: 0.69, 'rewards/margins': 0.01 })
    expect(s.eval).toEqual({ loss: 0.6, 'rewards/margins': 0.2 })
    expect(s).toMatchObject({ step: 10, maxSteps: 10, epoch: 2 })
  })
})

describe('plots', () => {
  it("smooths with LLaMA-Factory's EMA weight", () => {
    const v = [1, 0, 0, 2]
    const w = 1.8 * (1 / (1 + Math.exp(-0.05 * v.length)) - 0.5)
    const want: number[] = []
    let last = v[0]!
    for (const x of v) want.push((last = last * w + (1 - w) * x))
    expect(emaSmooth(v)).toEqual(want)
    expect(emaSmooth([])).toEqual([])
  })

  it('the well-formedness check used on the plots catches broken XML', () => {
    expect(checkXml('<svg a="1"><g><path d="M1,2"/></g></svg>')).toBe('<svg a="1">')
    expect(() => checkXml('<svg><g></svg>')).toThrow(/closes/)
    expect(() => checkXml('<svg><g>')).toThrow(/unclosed/)
    expect(() => checkXml('<svg a=1></svg>')).toThrow(/bad tag/)
    expect(() => checkXml('<svg a="1" a="2"></svg>')).toThrow(/twice/)
    expect(() => checkXml('<svg>a & b</svg>')).toThrow(/entity/)
    expect(() => checkXml('<svg></svg><svg></svg>')).toThrow(/two root/)
  })

  it('draws a well-formed SVG with one path point per value', () => {
    const svg = svgLinePlot({
      title: 'loss <train> & "eval"',
      xLabel: 'step',
      series: [
        { label: 'train loss', color: '#1f77b4', points: [[5, 0.7], [10, 0.6], [15, 0.55]] },
        { label: 'eval loss', color: '#1f77b4', points: [[10, 0.65]], smooth: false, dashed: true },
      ],
    })
    checkSvg(svg)
    expect(pathPoints(svg, 'train loss', 'raw')).toHaveLength(3)
    expect(pathPoints(svg, 'train loss', 'ema')).toHaveLength(3)
    expect(pathPoints(svg, 'eval loss', 'line')).toHaveLength(1)
    expect(svg).toContain('<title>loss &lt;train&gt; &amp; &quot;eval&quot;</title>')
    // The same data gives the same bytes.
    expect(svgLinePlot({ title: 't', series: [{ label: 'a', color: '#000', points: [[1, 1]] }] })).toBe(svgLinePlot({ title: 't', series: [{ label: 'a', color: '#000', points: [[1, 1]] }] }))
  })
})
