import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  TRAIN_ARGS,
  checkTrainKeys,
  closestTrainKey,
  editDistance,
  formatUnusedKeysError,
  isKnownTrainKey,
  trainKeyField,
  warnTrainKeys,
} from '../../src/llamafactory/train-args.js'
import { ROOT } from '../helpers.js'

const NO_ENV = { env: {} }

describe('key data', () => {
  it('is our copy of the reference extraction, with its source recorded', () => {
    const copy = readFileSync(join(ROOT, 'src', 'llamafactory', 'llamafactory-args.json'), 'utf8')
    expect(TRAIN_ARGS.source.llamafactory_commit).toBe('ff6d4d12eeb035d6ce06805a5733dd7b29f2ac30')
    expect(TRAIN_ARGS.source.llamafactory_commit_date).toBe('2026-08-18')
    const ref = '/work/shared/reference/llamafactory-args.json'
    if (existsSync(ref)) expect(copy).toBe(readFileSync(ref, 'utf8'))
  })

  it('holds the 347 keys of the default train parser (llamafactory-args.md counts)', () => {
    const n = Object.values(TRAIN_ARGS.groups).reduce((a, g) => a + g.length, 0)
    expect(n).toBe(347)
    expect(TRAIN_ARGS.conditional_groups.megatron_bridge?.fields).toHaveLength(26)
  })
})

describe('isKnownTrainKey', () => {
  it('knows keys of every group and the union of transformers variants', () => {
    for (const k of ['model_name_or_path', 'dataset', 'media_dir', 'lora_rank', 'pref_beta', 'max_new_tokens', 'eval_strategy', 'output_dir', 'overwrite_output_dir', 'predict_with_generate']) {
      expect(isKnownTrainKey(k), k).toBe(true)
    }
    // 4.56-4.57 / 5.0 only
    expect(isKnownTrainKey('group_by_length')).toBe(true)
    expect(isKnownTrainKey('per_gpu_train_batch_size')).toBe(true)
    // 5.x only
    expect(isKnownTrainKey('train_sampling_strategy')).toBe(true)
  })

  it('does not know typos, removed keys, init=False fields, megatron keys or CLI negations', () => {
    for (const k of ['lora_rnak', 'evaluation_strategy', 'image_dir', 'compute_dtype', 'tensor_model_parallel_size', 'no_use_fast_tokenizer', 'kt_config']) {
      expect(isKnownTrainKey(k), k).toBe(false)
    }
  })
})

describe('closestTrainKey', () => {
  it('suggests by edit distance, counting a swap as one edit', () => {
    expect(editDistance('lora_rnak', 'lora_rank')).toBe(1)
    expect(editDistance('kitten', 'sitting')).toBe(3)
    expect(closestTrainKey('lora_rnak')).toBe('lora_rank')
    expect(closestTrainKey('learning_rat')).toBe('learning_rate')
    expect(closestTrainKey('pref_betta')).toBe('pref_beta')
    expect(closestTrainKey('cuttoff_len')).toBe('cutoff_len')
    expect(closestTrainKey('Lora_Rank')).toBe('lora_rank')
  })

  it('returns the key itself when known, and nothing when nothing is close', () => {
    expect(closestTrainKey('lora_rank')).toBe('lora_rank')
    expect(closestTrainKey('banana')).toBeUndefined()
    expect(closestTrainKey('completely_unrelated_option')).toBeUndefined()
  })
})

describe('checkTrainKeys', () => {
  const good = { model_name_or_path: 'Qwen/Qwen2-VL-7B-Instruct', stage: 'dpo', do_train: true, finetuning_type: 'lora', lora_rank: 8, dataset: 'x', output_dir: '/tmp/o' }

  it('accepts a valid config', () => {
    expect(checkTrainKeys(good, NO_ENV)).toEqual([])
  })

  it('refuses an unknown key with LLaMA-Factory\'s message and a did-you-mean', () => {
    const problems = checkTrainKeys({ ...good, lora_rnak: 16 }, NO_ENV)
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatchObject({ key: 'lora_rnak', kind: 'unknown', suggestion: 'lora_rank' })
    expect(problems[0]!.message).toContain("Some keys are not used by the HfArgumentParser: ['lora_rnak']")
    expect(problems[0]!.message).toContain('did you mean `lora_rank`?')
    expect(formatUnusedKeysError(problems)).toBe("ValueError: Some keys are not used by the HfArgumentParser: ['lora_rnak']")
  })

  it('lists every refused key, sorted, like parse_dict', () => {
    const problems = checkTrainKeys({ zzz_bad: 1, ...good, aaa_bad: 2, evaluation_strategy: 'steps' }, NO_ENV)
    expect(problems.map((p) => p.key)).toEqual(['aaa_bad', 'evaluation_strategy', 'zzz_bad'])
    expect(formatUnusedKeysError(problems)).toBe(
      "ValueError: Some keys are not used by the HfArgumentParser: ['aaa_bad', 'evaluation_strategy', 'zzz_bad']",
    )
    expect(formatUnusedKeysError([])).toBe('')
  })

  it('says what replaces a removed or renamed key', () => {
    const [p] = checkTrainKeys({ ...good, evaluation_strategy: 'steps' }, NO_ENV)
    expect(p).toMatchObject({ key: 'evaluation_strategy', kind: 'removed', suggestion: 'eval_strategy' })
    expect(p!.message).toContain('use `eval_strategy` instead')
    const [q] = checkTrainKeys({ ...good, image_resolution: 512 }, NO_ENV)
    expect(q).toMatchObject({ kind: 'removed', suggestion: 'image_max_pixels' })
    expect(q!.message).toContain('pixel count')
    const [r] = checkTrainKeys({ ...good, ray_run_name: 'x' }, NO_ENV)
    expect(r).toMatchObject({ kind: 'removed' })
    expect(r!.suggestion).toBeUndefined()
    expect(r!.message).toContain('no replacement')
  })

  it('accepts Megatron-Bridge keys only with USE_MEGATRON_BRIDGE=1', () => {
    const cfg = { ...good, tensor_model_parallel_size: 2 }
    expect(checkTrainKeys(cfg, NO_ENV)).toMatchObject([{ key: 'tensor_model_parallel_size', kind: 'conditional' }])
    expect(checkTrainKeys(cfg, NO_ENV)[0]!.message).toContain('USE_MEGATRON_BRIDGE=1')
    expect(checkTrainKeys(cfg, { env: { USE_MEGATRON_BRIDGE: '1' } })).toEqual([])
    expect(checkTrainKeys(cfg, { env: { USE_MEGATRON_BRIDGE: 'true' } })).toEqual([])
    expect(checkTrainKeys(cfg, { env: { USE_MEGATRON_BRIDGE: '0' } })).toHaveLength(1)
  })

  it('refuses init=False fields, train-only exclusions and CLI negations', () => {
    expect(checkTrainKeys({ ...good, compute_dtype: 'bf16' }, NO_ENV)).toMatchObject([{ key: 'compute_dtype', kind: 'init_false' }])
    expect(checkTrainKeys({ ...good, kt_config: 'x' }, NO_ENV)[0]!.message).toContain('not by train')
    expect(checkTrainKeys({ ...good, no_use_fast_tokenizer: true }, NO_ENV)).toMatchObject([
      { key: 'no_use_fast_tokenizer', kind: 'unknown', suggestion: 'use_fast_tokenizer' },
    ])
  })

  it('lets ALLOW_EXTRA_ARGS=1 (or true/y) turn the check off, as LLaMA-Factory does', () => {
    const cfg = { ...good, lora_rnak: 16, evaluation_strategy: 'steps' }
    for (const v of ['1', 'true', 'Y', 'TRUE']) expect(checkTrainKeys(cfg, { env: { ALLOW_EXTRA_ARGS: v } })).toEqual([])
    expect(checkTrainKeys(cfg, { env: { ALLOW_EXTRA_ARGS: 'no' } })).toHaveLength(2)
    const warnings = warnTrainKeys(cfg, { env: { ALLOW_EXTRA_ARGS: '1' } })
    expect(warnings.map((w) => [w.key, w.kind])).toEqual([
      ['evaluation_strategy', 'ignored'],
      ['lora_rnak', 'ignored'],
    ])
    expect(warnings[1]!.suggestion).toBe('lora_rank')
  })

  it('reads process.env by default', () => {
    const before = process.env.ALLOW_EXTRA_ARGS
    process.env.ALLOW_EXTRA_ARGS = '1'
    try {
      expect(checkTrainKeys({ lora_rnak: 1 })).toEqual([])
    } finally {
      if (before === undefined) delete process.env.ALLOW_EXTRA_ARGS
      else process.env.ALLOW_EXTRA_ARGS = before
    }
  })
})

describe('warnTrainKeys', () => {
  it('accepts the union of transformers variants but names variant-only keys', () => {
    const cfg = { group_by_length: true, train_sampling_strategy: 'group_by_length', use_cache: false, warmup_ratio: 0.1, lora_rank: 8 }
    expect(checkTrainKeys(cfg, NO_ENV)).toEqual([])
    const w = warnTrainKeys(cfg, NO_ENV)
    expect(w.map((x) => [x.key, x.kind])).toEqual([
      ['group_by_length', 'variant'],
      ['train_sampling_strategy', 'variant'],
      ['use_cache', 'variant'],
      ['warmup_ratio', 'deprecated'],
    ])
    expect(w.find((x) => x.key === 'use_cache')!.suggestion).toBe('use_kv_cache')
    expect(w.find((x) => x.key === 'group_by_length')!.message).toContain('4.56-4.57')
  })
})

describe('trainKeyField', () => {
  it('gives type, default and choices', () => {
    expect(trainKeyField('pref_loss')).toMatchObject({ type: 'enum', default: 'sigmoid' })
    expect(trainKeyField('pref_loss')!.choices).toContain('sigmoid')
    expect(trainKeyField('image_max_pixels')!.default).toBe(589824)
    expect(trainKeyField('tensor_model_parallel_size')).toBeDefined()
    expect(trainKeyField('lora_rnak')).toBeUndefined()
  })
})
