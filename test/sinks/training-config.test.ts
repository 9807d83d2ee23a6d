import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { checkTrainKeys } from '../../src/llamafactory/train-args.js'
import { omegaConfScalarKind, parseOmegaConfYaml, parseSetArg, parseSetArgs } from '../../src/llamafactory/omegaconf.js'
import { pipeline } from '../../src/pipeline/index.js'
import { RLHF_V } from '../../src/presets/rlhf-v.js'
import { llamaFactory } from '../../src/sinks/llamafactory.js'
import {
  CONFIG_LAYOUT,
  MODEL_PRESETS,
  buildTrainingConfig,
  formatNumber,
  formatString,
  resolveModel,
  templateForModel,
  trainingConfig,
  writeTrainingConfig,
  writeTrainingConfigFor,
  type TrainingConfigOptions,
} from '../../src/sinks/training-config.js'
import { parquetSource } from '../../src/sources/parquet.js'
import { split } from '../../src/transforms/split.js'
import { SAMPLE, VENV_PYTHON, run } from '../helpers.js'

const NO_ENV = {}
const BASE: TrainingConfigOptions = { out: '/data/rlhf_v', name: 'rlhf_v', hasEval: true, maxPixels: 262144, cutoffLen: 2048, env: NO_ENV }

/** Every key we write, in file order (with an eval split). */
const EXPECTED_KEYS = [
  'model_name_or_path',
  'image_max_pixels',
  'trust_remote_code',
  'stage',
  'do_train',
  'finetuning_type',
  'lora_rank',
  'lora_target',
  'pref_beta',
  'pref_loss',
  'dataset_dir',
  'media_dir',
  'dataset',
  'template',
  'cutoff_len',
  'overwrite_cache',
  'preprocessing_num_workers',
  'dataloader_num_workers',
  'output_dir',
  'logging_steps',
  'save_steps',
  'plot_loss',
  'overwrite_output_dir',
  'save_only_model',
  'report_to',
  'per_device_train_batch_size',
  'gradient_accumulation_steps',
  'learning_rate',
  'num_train_epochs',
  'lr_scheduler_type',
  'warmup_ratio',
  'bf16',
  'ddp_timeout',
  'resume_from_checkpoint',
  'eval_dataset',
  'per_device_eval_batch_size',
  'eval_strategy',
  'eval_steps',
]
const EVAL_KEYS = ['eval_dataset', 'per_device_eval_batch_size', 'eval_strategy', 'eval_steps']

const EXPECTED_YAML = `# LLaMA-Factory DPO (LoRA) training config, written by prefpipe for the dataset folder
#   /data/rlhf_v
# from LLaMA-Factory's Qwen-VL LoRA DPO example (examples/train_lora/qwen3vl_lora_dpo.yaml, RLHF-V).
# Train with: llamafactory-cli train /data/rlhf_v/train_dpo.yaml

### model
model_name_or_path: Qwen/Qwen2-VL-7B-Instruct
image_max_pixels: 262144
trust_remote_code: true

### method
stage: dpo
do_train: true
finetuning_type: lora
lora_rank: 8
lora_target: all
pref_beta: 0.1
pref_loss: sigmoid

### dataset
dataset_dir: /data/rlhf_v
media_dir: /data/rlhf_v
dataset: rlhf_v_train
template: qwen2_vl
cutoff_len: 2048
overwrite_cache: true
preprocessing_num_workers: 16
dataloader_num_workers: 4

### output
output_dir: /data/saves/rlhf_v/qwen2_vl-7b/lora/dpo
logging_steps: 10
save_steps: 500
plot_loss: true
overwrite_output_dir: true
save_only_model: false
report_to: none

### train
per_device_train_batch_size: 1
gradient_accumulation_steps: 8
learning_rate: 5.0e-6
num_train_epochs: 3.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: true
ddp_timeout: 180000000
resume_from_checkpoint: null

### eval
eval_dataset: rlhf_v_eval
per_device_eval_batch_size: 1
eval_strategy: steps
eval_steps: 500
`

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prefpipe-train-config-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('the config for a sample run', () => {
  it('binds the folder the sink wrote, passes checkTrainKeys and holds exactly the expected keys', async () => {
    const out = join(dir, 'sample', 'rlhf_v')
    const { result: manifest } = await pipeline(
      parquetSource({ path: SAMPLE, columns: RLHF_V.columns }),
      split({ eval: 0.2, seed: 1 }),
      llamaFactory({ out, name: 'rlhf_v' }),
    )
    expect(manifest.datasets.eval?.rows).toBeGreaterThan(0)
    const written = await writeTrainingConfigFor(manifest, { maxPixels: 262144, cutoffLen: 2048, env: NO_ENV })
    expect(written.path).toBe(join(out, 'train_dpo.yaml'))
    expect(written.warnings).toEqual([])
    const text = await readFile(written.path, 'utf8')
    expect(text).toBe(written.yaml)
    const loaded = parseOmegaConfYaml(text) as Record<string, unknown>
    expect(loaded).toEqual(written.config)
    expect(Object.keys(loaded)).toEqual(EXPECTED_KEYS)
    expect(checkTrainKeys(loaded, { env: NO_ENV })).toEqual([])
    expect(loaded).toMatchObject({
      dataset_dir: out,
      media_dir: out,
      dataset: manifest.datasets.train.name,
      eval_dataset: manifest.datasets.eval!.name,
      image_max_pixels: 262144,
      cutoff_len: 2048,
      template: 'qwen2_vl',
      model_name_or_path: 'Qwen/Qwen2-VL-7B-Instruct',
      stage: 'dpo',
      eval_strategy: 'steps',
      output_dir: join(dir, 'sample', 'saves', 'rlhf_v', 'qwen2_vl-7b', 'lora', 'dpo'),
    })
    expect(loaded).not.toHaveProperty('max_samples')
    expect(loaded).not.toHaveProperty('val_size')
    // The names exist in the dataset_info.json next to it.
    const info = JSON.parse(await readFile(join(out, 'dataset_info.json'), 'utf8')) as Record<string, unknown>
    expect(info).toHaveProperty(String(loaded.dataset))
    expect(info).toHaveProperty(String(loaded.eval_dataset))
    // No temporary file left behind.
    expect((await readdir(out)).filter((f) => f.includes('prefpipe-tmp'))).toEqual([])
  })

  it('writes the expected text, the same every time (fixed order, ### groups like the example)', async () => {
    const a = await buildTrainingConfig(BASE)
    const b = await buildTrainingConfig(BASE)
    expect(a.yaml).toBe(EXPECTED_YAML)
    expect(b.yaml).toBe(a.yaml)
    expect(a.path).toBe('/data/rlhf_v/train_dpo.yaml')
    // YAML 1.2 readers see the same values.
    expect(parseYaml(a.yaml)).toEqual(a.config)
    expect(CONFIG_LAYOUT.flatMap((s) => s.keys)).toEqual(EXPECTED_KEYS)
  })

  it('without an eval split: no eval keys, and never val_size', async () => {
    const { config } = await buildTrainingConfig({ ...BASE, hasEval: false })
    expect(Object.keys(config)).toEqual(EXPECTED_KEYS.filter((k) => !EVAL_KEYS.includes(k)))
  })

  it('as the step after the sink', async () => {
    const out = join(dir, 'after', 'rlhf_v')
    const { result } = await pipeline(
      parquetSource({ path: SAMPLE, columns: RLHF_V.columns }),
      llamaFactory({ out, name: 'rlhf_v' }),
      trainingConfig({ model: 'qwen2.5-vl', maxPixels: 200704, cutoffLen: 4096, env: NO_ENV }),
    )
    expect(result.trainingConfig.path).toBe(join(out, 'train_dpo.yaml'))
    expect(result.trainingConfig.config).toMatchObject({ image_max_pixels: 200704, cutoff_len: 4096, model_name_or_path: 'Qwen/Qwen2.5-VL-7B-Instruct' })
    expect(result.trainingConfig.config).not.toHaveProperty('eval_dataset')
    expect(result.datasets.train.rows).toBeGreaterThan(0)
    expect(() => trainingConfig({ maxPixels: 0, cutoffLen: 1 })).toThrow(/maxPixels/)
  })

  it('replaces an existing file atomically', async () => {
    const out = join(dir, 'atomic')
    await writeTrainingConfig({ ...BASE, out })
    const second = await writeTrainingConfig({ ...BASE, out, overrides: { lora_rank: 32 } })
    expect(await readFile(second.path, 'utf8')).toContain('lora_rank: 32\n')
    expect((await readdir(out)).sort()).toEqual(['train_dpo.yaml'])
  })
})

describe('models', () => {
  it('presets give the model and its template', async () => {
    expect((await buildTrainingConfig({ ...BASE, model: 'qwen2.5-vl' })).config).toMatchObject({
      model_name_or_path: 'Qwen/Qwen2.5-VL-7B-Instruct',
      template: 'qwen2_vl',
      output_dir: '/data/saves/rlhf_v/qwen2_5vl-7b/lora/dpo',
    })
    expect((await buildTrainingConfig({ ...BASE, model: 'qwen3-vl' })).config).toMatchObject({
      model_name_or_path: 'Qwen/Qwen3-VL-4B-Instruct',
      template: 'qwen3_vl_nothink',
    })
    expect(Object.keys(MODEL_PRESETS)).toEqual(['qwen2-vl', 'qwen2.5-vl', 'qwen3-vl'])
  })

  it('a Qwen-VL model id gets its template; others must say theirs', () => {
    expect(templateForModel('Qwen/Qwen2-VL-2B-Instruct')).toBe('qwen2_vl')
    expect(templateForModel('Qwen/Qwen2.5-VL-72B-Instruct')).toBe('qwen2_vl')
    expect(templateForModel('Qwen/Qwen3-VL-8B-Instruct')).toBe('qwen3_vl_nothink')
    expect(templateForModel('Qwen/Qwen3-VL-8B-Thinking')).toBe('qwen3_vl')
    expect(templateForModel('meta-llama/Llama-3.2-11B-Vision')).toBeUndefined()
    expect(resolveModel('Qwen/Qwen2-VL-2B-Instruct')).toEqual({ modelNameOrPath: 'Qwen/Qwen2-VL-2B-Instruct', template: 'qwen2_vl', slug: 'qwen2-vl-2b-instruct' })
    expect(() => resolveModel('llava')).toThrow(/not a preset .* give \{ modelNameOrPath, template \}/)
    expect(resolveModel({ modelNameOrPath: '/m/llava', template: 'llava' })).toEqual({ modelNameOrPath: '/m/llava', template: 'llava', slug: 'llava' })
  })

  it("the template follows a model set by the user's keys", async () => {
    const { config } = await buildTrainingConfig({ ...BASE, overrides: { model_name_or_path: 'Qwen/Qwen3-VL-8B-Instruct' } })
    expect(config.template).toBe('qwen3_vl_nothink')
    await expect(buildTrainingConfig({ ...BASE, overrides: { model_name_or_path: 'org/other' } })).rejects.toThrow(/set `template` too/)
    const mismatch = await buildTrainingConfig({ ...BASE, overrides: { template: 'llama3' } })
    expect(mismatch.warnings.join('\n')).toMatch(/"llama3" is not LLaMA-Factory's template for Qwen\/Qwen2-VL-7B-Instruct \(qwen2_vl\)/)
  })
})

describe('overrides and base YAML', () => {
  it('overrides win, typed as OmegaConf types --set values', async () => {
    const { config, yaml } = await buildTrainingConfig({
      ...BASE,
      overrides: ['lora_rank=16', 'learning_rate=1e-5', 'bf16=false', 'report_to=[wandb,tensorboard]', 'lr_scheduler_kwargs.min_lr=1e-7'],
    })
    expect(config).toMatchObject({ lora_rank: 16, learning_rate: 1e-5, bf16: false, report_to: ['wandb', 'tensorboard'], lr_scheduler_kwargs: { min_lr: 1e-7 } })
    expect(yaml).toContain('learning_rate: 1.0e-5\n')
    expect(yaml).toContain('### yours (base YAML and overrides)\nlr_scheduler_kwargs: {min_lr: 1.0e-7}\n')
    const obj = await buildTrainingConfig({ ...BASE, overrides: { lora_rank: 16, 'lr_scheduler_kwargs.min_lr': 1e-7 } })
    expect(obj.config).toMatchObject({ lora_rank: 16, lr_scheduler_kwargs: { min_lr: 1e-7 } })
  })

  it('refuses a misspelt key with the closest key', async () => {
    await expect(buildTrainingConfig({ ...BASE, overrides: ['lora_rnak=16'] })).rejects.toThrow(/`lora_rnak`.*did you mean `lora_rank`\?/)
    await expect(buildTrainingConfig({ ...BASE, overrides: { lora_rnak: 16 } })).rejects.toThrow(
      /Some keys are not used by the HfArgumentParser: \['lora_rnak'\]/,
    )
  })

  it('names eval_strategy for evaluation_strategy', async () => {
    await expect(buildTrainingConfig({ ...BASE, overrides: { evaluation_strategy: 'steps' } })).rejects.toThrow(/use `eval_strategy` instead/)
  })

  it('ALLOW_EXTRA_ARGS=1 lets unknown keys through, as LLaMA-Factory does', async () => {
    const { config, yaml } = await buildTrainingConfig({ ...BASE, env: { ALLOW_EXTRA_ARGS: '1' }, overrides: { my_note: 'x' } })
    expect(config.my_note).toBe('x')
    expect(yaml).toMatch(/### yours \(base YAML and overrides\)\nmy_note: x\n$/)
  })

  it('refuses val_size with an eval split, allows it without', async () => {
    await expect(buildTrainingConfig({ ...BASE, overrides: { val_size: 0.1 } })).rejects.toThrow(/`val_size` cannot be combined with `eval_dataset`/)
    const { config } = await buildTrainingConfig({ ...BASE, hasEval: false, overrides: { val_size: 0.1, eval_strategy: 'steps', eval_steps: 100 } })
    expect(config).toMatchObject({ val_size: 0.1, eval_strategy: 'steps' })
    expect(config).not.toHaveProperty('eval_dataset')
    await expect(buildTrainingConfig({ ...BASE, hasEval: false, overrides: { eval_strategy: 'steps' } })).rejects.toThrow(/needs an eval set/)
    await expect(buildTrainingConfig({ ...BASE, hasEval: false, overrides: { do_eval: true } })).rejects.toThrow(/needs an eval set/)
  })

  it('checks types of our keys and of the others', async () => {
    await expect(buildTrainingConfig({ ...BASE, overrides: { lora_rank: 'sixteen' } })).rejects.toThrow(/`lora_rank`/)
    await expect(buildTrainingConfig({ ...BASE, overrides: { pref_loss: 'dpo' } })).rejects.toThrow(/`pref_loss`/)
    await expect(buildTrainingConfig({ ...BASE, overrides: { stage: 'sft' } })).rejects.toThrow(/stage must be "dpo"/)
    await expect(buildTrainingConfig({ ...BASE, overrides: { lora_alpha: '16' } })).rejects.toThrow(/`lora_alpha` must be null or an integer \(got "16"\)/)
    await expect(buildTrainingConfig({ ...BASE, overrides: { max_grad_norm: true } })).rejects.toThrow(/`max_grad_norm` must be a number/)
    await expect(buildTrainingConfig({ ...BASE, overrides: { x: undefined } as never, env: { ALLOW_EXTRA_ARGS: '1' } })).rejects.toThrow(/x: undefined is not a YAML value/)
    // An enum value outside the extracted choices is a warning (choices vary by transformers version).
    const { warnings } = await buildTrainingConfig({ ...BASE, overrides: { optim: 'adamw_hf' } })
    expect(warnings.join('\n')).toMatch(/`optim: "adamw_hf"` is not one of the values/)
  })

  it('refuses a cutoff_len below the budget the rows were checked with', async () => {
    await expect(buildTrainingConfig({ ...BASE, overrides: { cutoff_len: 1024 } })).rejects.toThrow(/below the budget the rows were checked against \(2048\)/)
    expect((await buildTrainingConfig({ ...BASE, overrides: { cutoff_len: 4096 } })).config.cutoff_len).toBe(4096)
  })

  it('merges a base YAML: theirs win over ours, overrides over theirs, the data binding stays ours', async () => {
    const basePath = join(dir, 'base.yaml')
    await writeFile(
      basePath,
      [
        '### my usual settings',
        'model_name_or_path: Qwen/Qwen2.5-VL-7B-Instruct',
        'dataset: rlhf_v',
        'dataset_dir: data',
        'learning_rate: 1e-6',
        'lora_rank: 64',
        'lora_alpha: 128',
        'bf16: yes',
        'max_samples: 1000',
        'output_dir: saves/mine',
        'deepspeed: examples/deepspeed/ds_z3_config.json',
        'run_name: "2024-01-01"',
        'report_to: [tensorboard]',
        '',
      ].join('\n'),
    )
    const { config, warnings, yaml } = await buildTrainingConfig({ ...BASE, baseYaml: basePath, overrides: ['lora_rank=32'] })
    expect(config).toMatchObject({
      model_name_or_path: 'Qwen/Qwen2.5-VL-7B-Instruct',
      template: 'qwen2_vl',
      learning_rate: 1e-6,
      lora_rank: 32,
      lora_alpha: 128,
      bf16: true,
      max_samples: 1000,
      output_dir: 'saves/mine',
      run_name: '2024-01-01',
      report_to: ['tensorboard'],
      dataset: 'rlhf_v_train',
      dataset_dir: '/data/rlhf_v',
      pref_beta: 0.1, // ours, untouched
    })
    const w = warnings.join('\n')
    expect(w).toMatch(/base YAML: `dataset: "rlhf_v"` ignored; this folder's is "rlhf_v_train"/)
    expect(w).toMatch(/base YAML: `dataset_dir: "data"` ignored/)
    expect(w).toMatch(/`max_samples: 1000` keeps only the first 1000 rows/)
    expect(w).toMatch(/`output_dir: saves\/mine` is relative/)
    expect(w).toMatch(/`deepspeed: examples\/deepspeed\/ds_z3_config.json` is relative/)
    // Their extra keys, in their order, after ours.
    expect(yaml).toMatch(/### yours \(base YAML and overrides\)\nlora_alpha: 128\nmax_samples: 1000\ndeepspeed: examples\/deepspeed\/ds_z3_config.json\nrun_name: "2024-01-01"\n$/)
    // An override can still force a data key.
    const forced = await buildTrainingConfig({ ...BASE, baseYaml: basePath, overrides: { dataset: 'rlhf_v_train,other' } })
    expect(forced.config.dataset).toBe('rlhf_v_train,other')
    // As an object too; and a typo in it is refused.
    expect((await buildTrainingConfig({ ...BASE, baseYaml: { lora_rank: 4 } })).config.lora_rank).toBe(4)
    await expect(buildTrainingConfig({ ...BASE, baseYaml: { lora_rnak: 4 } })).rejects.toThrow(/did you mean `lora_rank`/)
  })

  it('reports a bad base YAML clearly', async () => {
    await expect(buildTrainingConfig({ ...BASE, baseYaml: join(dir, 'missing.yaml') })).rejects.toThrow(/missing.yaml: no such file/)
    await expect(buildTrainingConfig({ ...BASE, baseYaml: join(dir, 'cfg.json') })).rejects.toThrow(/must be a .yaml or .yml file/)
    const list = join(dir, 'list.yaml')
    await writeFile(list, '- a\n- b\n')
    await expect(buildTrainingConfig({ ...BASE, baseYaml: list })).rejects.toThrow(/must be a mapping/)
    const dup = join(dir, 'dup.yaml')
    await writeFile(dup, 'a: 1\na: 2\n')
    await expect(buildTrainingConfig({ ...BASE, baseYaml: dup })).rejects.toThrow(/not valid YAML: Map keys must be unique/)
  })

  it('validates its options', async () => {
    await expect(buildTrainingConfig({ ...BASE, maxPixels: 100 })).rejects.toThrow(/"maxPixels" is invalid/)
    await expect(buildTrainingConfig({ ...BASE, cutoffLen: 0 })).rejects.toThrow(/"cutoffLen" is invalid/)
    await expect(buildTrainingConfig({ ...BASE, name: '../x' })).rejects.toThrow(/"name" is invalid/)
    await expect(buildTrainingConfig({ ...BASE, fileName: 'train.json' })).rejects.toThrow(/\.yaml or \.yml/)
    await expect(buildTrainingConfig({ ...BASE, bogus: 1 } as never)).rejects.toThrow(/unknown option "bogus"/)
    expect((await buildTrainingConfig({ ...BASE, outputDir: 'rel/out' })).config.output_dir).toBe(join(process.cwd(), 'rel/out'))
  })
})

describe('--set values (OmegaConf typing)', () => {
  const cases: [string, unknown][] = [
    ['lora_rank=16', 16],
    ['learning_rate=1e-5', 1e-5],
    ['learning_rate=5.0e-6', 5e-6],
    ['num_train_epochs=3.0', 3],
    ['bf16=false', false],
    ['bf16=True', true],
    ['bf16=yes', true],
    ['bf16=off', false],
    ['x=y', 'y'],
    ['x=null', null],
    ['x=~', null],
    ['x=', null],
    ['x=0755', 493],
    ['x=1_000', 1000],
    ['x=0x1f', 31],
    ['x=1:30', 90],
    ['x=.inf', Number.POSITIVE_INFINITY],
    ['x=2024-01-01', '2024-01-01'],
    ["x='16'", '16'],
    ['x="a b"', 'a b'],
    ['x=a=b', 'a=b'],
    ['report_to=none', 'none'],
    ['report_to=[wandb, tensorboard]', ['wandb', 'tensorboard']],
    ['x={a: 1, b: [yes, "no"]}', { a: 1, b: [true, 'no'] }],
  ]
  for (const [arg, value] of cases) {
    it(`${arg} -> ${JSON.stringify(value)}`, () => {
      expect(parseSetArg(arg)[1]).toEqual(value)
    })
  }

  it('nests dotted keys, later ones win', () => {
    expect(parseSetArgs(['a.b=1', 'a.c=x', 'lora_rank=8', 'lora_rank=16'])).toEqual({ a: { b: 1, c: 'x' }, lora_rank: 16 })
  })

  it('refuses what is not key=value', () => {
    expect(() => parseSetArg('lora_rank')).toThrow(/write it as key=value/)
    expect(() => parseSetArg('=3')).toThrow(/write it as key=value/)
    expect(() => parseSetArg('--lora_rank=3')).toThrow(/is not a config key/)
    expect(() => parseSetArg('x=[a, b')).toThrow(/the value is not valid YAML/)
  })

  it('formats numbers and strings so every YAML reader agrees', () => {
    expect(formatNumber(5e-6)).toBe('5.0e-6')
    expect(formatNumber(1.5e-7)).toBe('1.5e-7')
    expect(formatNumber(3, true)).toBe('3.0')
    expect(formatNumber(3)).toBe('3')
    expect(formatNumber(0.1)).toBe('0.1')
    expect(formatNumber(1e21)).toBe('1.0e+21')
    expect(formatNumber(180000000)).toBe('180000000')
    expect(formatNumber(-0.5)).toBe('-0.5')
    expect(formatNumber(Number.NaN)).toBe('.nan')
    expect(formatNumber(Number.NEGATIVE_INFINITY)).toBe('-.inf')
    expect(formatString('Qwen/Qwen2-VL-7B-Instruct')).toBe('Qwen/Qwen2-VL-7B-Instruct')
    expect(formatString('/abs/path/x_y.z')).toBe('/abs/path/x_y.z')
    for (const s of ['yes', 'No', 'on', 'y', 'null', '', '2024-01-01', '1e-5', '0755', 'a b', 'a: b', '#x', '-x', '.inf', 'x,y', '\u0085']) {
      const f = formatString(s)
      expect(f.startsWith('"'), s).toBe(true)
      expect(parseOmegaConfYaml(`k: ${f}`)).toEqual({ k: s })
      expect(parseYaml(`k: ${f}`)).toEqual({ k: s })
    }
    for (const k of ['3', '-1', '0b11']) expect(omegaConfScalarKind(k)).toBe('int')
  })
})

// PyYAML is what OmegaConf parses with (plus the loader tweaks below); the venv has it (scripts/python-venv.sh).
const OMEGA_LOADER = `
import json, re, sys, yaml
class OmegaLoader(yaml.SafeLoader):
    pass
OmegaLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:
     [-+]?(?:[0-9][0-9_]*)\\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\\.[0-9_]*
    |[-+]?\\.(?:inf|Inf|INF)
    |\\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)
OmegaLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in OmegaLoader.yaml_implicit_resolvers.items()
}
def typed(v):
    if isinstance(v, dict):
        return ["dict", {k: typed(x) for k, x in v.items()}]
    if isinstance(v, list):
        return ["list", [typed(x) for x in v]]
    if isinstance(v, float) and v != v:
        return ["float", "nan"]
    if isinstance(v, float) and v in (float("inf"), float("-inf")):
        return ["float", "inf" if v > 0 else "-inf"]
    return [type(v).__name__, v]
`

describe.skipIf(!existsSync(VENV_PYTHON))('read back by Python (PyYAML, and the OmegaConf loader)', () => {
  /** Our expectation of the Python type of a config value. */
  const FLOATS = new Set(['learning_rate', 'num_train_epochs', 'pref_beta', 'warmup_ratio'])
  function expectedTyped(v: unknown, key?: string): unknown {
    if (v === null) return ['NoneType', null]
    if (typeof v === 'boolean') return ['bool', v]
    if (typeof v === 'string') return ['str', v]
    if (typeof v === 'number') {
      if (Number.isNaN(v)) return ['float', 'nan']
      if (!Number.isFinite(v)) return ['float', v > 0 ? 'inf' : '-inf']
      return [Number.isInteger(v) && !(key && FLOATS.has(key)) ? 'int' : 'float', v]
    }
    if (Array.isArray(v)) return ['list', v.map((x) => expectedTyped(x))]
    return ['dict', Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, expectedTyped(x)]))]
  }

  it('loads the YAML to the same values and types', async () => {
    const out = join(dir, 'python')
    const { path, config } = await writeTrainingConfig({
      ...BASE,
      out,
      overrides: {
        report_to: ['tensorboard'],
        lr_scheduler_kwargs: { min_lr: 1e-7, note: 'on' },
        run_name: 'yes',
        hub_model_id: '2024-01-01',
        learning_rate: 1e-7,
        max_grad_norm: 1,
        weight_decay: 0.0,
      },
    })
    const script = `${OMEGA_LOADER}
text = open(sys.argv[1], encoding="utf-8").read()
safe = yaml.safe_load(text)
omega = yaml.load(text, Loader=OmegaLoader)
print(json.dumps({"safe": {k: typed(v) for k, v in safe.items()}, "omega": {k: typed(v) for k, v in omega.items()}, "order": list(safe)}))
`
    const r = await run(VENV_PYTHON, ['-c', script, path])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const got = JSON.parse(r.stdout) as { safe: Record<string, unknown>; omega: Record<string, unknown>; order: string[] }
    const want = Object.fromEntries(Object.entries(config).map(([k, v]) => [k, expectedTyped(v, k)]))
    // max_grad_norm / weight_decay are float fields: written 1.0 / 0.0, so Python sees floats.
    want.max_grad_norm = ['float', 1]
    want.weight_decay = ['float', 0]
    expect(got.safe).toEqual(want)
    expect(got.omega).toEqual(want)
    expect(got.order).toEqual(Object.keys(config))
  })

  it('types --set values as the OmegaConf loader does', async () => {
    const values = ['16', '-3', '1e-5', '5.0e-6', '3.0', '1.', '.5', 'true', 'True', 'yes', 'on', 'OFF', 'y', 'n', 'null', '~', '', '0755', '09', '1_000',
      '0x1f', '0b101', '1:30', '2024-01-01', '12:30:00', '.inf', '-.inf', 'none', 'wandb', "'16'", '"yes"', '[a, 1, yes]', '{a: 1e-3}', '+5', '-0']
    const script = `${OMEGA_LOADER}
print(json.dumps([typed(yaml.load(v, Loader=OmegaLoader)) for v in json.loads(sys.argv[1])]))
`
    const r = await run(VENV_PYTHON, ['-c', script, JSON.stringify(values)])
    expect(r.stderr).toBe('')
    const py = JSON.parse(r.stdout) as [string, unknown][]
    values.forEach((v, i) => {
      const ours = parseSetArg(`x=${v}`)[1]
      const [type, value] = py[i]!
      // Types: compare the Python type with our value's kind (a plain scalar's kind for ints vs floats).
      const expectedType = (expectedTyped(ours) as [string, unknown])[0]
      if (typeof ours === 'number' && !v.startsWith('[') && !v.startsWith('{')) {
        expect([v, type]).toEqual([v, omegaConfScalarKind(v)])
        expect(value === 'inf' || value === '-inf' ? (value === 'inf' ? Infinity : -Infinity) : value, v).toBe(ours)
      } else {
        expect([v, type === 'int' || type === 'float' ? 'number' : type]).toEqual([v, expectedType === 'int' || expectedType === 'float' ? 'number' : expectedType])
        expect(JSON.parse(JSON.stringify(unTyped(py[i])))).toEqual(ours)
      }
    })
  })
})

/** Strip the [type, value] pairs of the Python output back to values. */
function unTyped(t: unknown): unknown {
  const [type, v] = t as [string, unknown]
  if (type === 'list') return (v as unknown[]).map(unTyped)
  if (type === 'dict') return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, unTyped(x)]))
  return v
}
