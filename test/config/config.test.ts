/**
 * Config files: schema, positions of problems, --set, defaults, paths relative to the file.
 */
import { describe, expect, it } from 'vitest'
import { ConfigError, formatConfig, parseConfig, parseConfigValue } from '../../src/config/load.js'
import { configToPrepare, launchOptionsFromConfig } from '../../src/config/run.js'

const NO_ENV = {}

const BASE = ['preset: rlhf-v', 'input: data/rlhf-v-sample.parquet', 'out: out/rlhf_v', 'seed: 42', ''].join('\n')

function issuesOf(text: string, set?: string[]): string[] {
  try {
    parseConfig(text, { env: NO_ENV, ...(set ? { set } : {}) })
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n')
    throw err
  }
  throw new Error('no error')
}

describe('parseConfig', () => {
  it('fills in the defaults of a preset', () => {
    expect(parseConfig(BASE, { env: NO_ENV })).toEqual({
      preset: 'rlhf-v',
      input: 'data/rlhf-v-sample.parquet',
      out: 'out/rlhf_v',
      name: 'rlhf_v',
      seed: 42,
      images: { maxPixels: 262144, quality: 90, cutoffLen: 2048, nearDuplicates: 'group' },
      model: 'qwen2-vl',
    })
  })

  it('a text preset gets no image defaults and refuses image-only keys', () => {
    expect(parseConfig('preset: dpo-en-demo\nout: o\n', { env: NO_ENV })).toEqual({ preset: 'dpo-en-demo', out: 'o', name: 'dpo_en_demo', seed: 0 })
    expect(issuesOf('preset: dpo-en-demo\nout: o\nlaunch: true\n')).toEqual(['prefpipe.yaml:3:9: launch: only for image datasets (text-only ones get no train_dpo.yaml)'])
  })

  it('reports each problem at its line and column', () => {
    const text = [
      'preset: rlhf-v', //
      'out: out/rlhf_v',
      'seed: 42',
      'images:',
      '  maxPixels: 100',
      '  nearDuplicats: group',
      'eval: 2.5',
      'launch: { gpus: -1 }',
      'train: { lora_rnak: 16 }',
      'outt: x',
      '',
    ].join('\n')
    const lines = issuesOf(text)
    expect(lines[0]).toBe('prefpipe.yaml:5:14: images.maxPixels: must be a whole number >= 784 (28 x 28)')
    expect(lines[1]).toBe('prefpipe.yaml:6:3: images.nearDuplicats: unknown key; did you mean "nearDuplicates"?')
    expect(lines[2]).toBe('prefpipe.yaml:7:7: eval: must be a fraction in (0, 1) or a whole row count >= 1')
    expect(lines[3]).toMatch(/^prefpipe\.yaml:8:17: launch\.gpus: /)
    expect(lines[4]).toMatch(/^prefpipe\.yaml:9:10: train\.lora_rnak: `lora_rnak` is not a `llamafactory-cli train` key.*did you mean `lora_rank`\?$/)
    expect(lines[5]).toBe('prefpipe.yaml:10:1: outt: unknown key; did you mean "out"?')
    expect(lines).toHaveLength(6)
  })

  it('reports YAML syntax errors and a missing preset/source with positions', () => {
    expect(issuesOf('preset: rlhf-v\nout: [a\n')[0]).toMatch(/^prefpipe\.yaml:\d+:\d+: /)
    expect(issuesOf('out: o\n')).toEqual(['prefpipe.yaml:1:1: give a preset (rlhf-v, ...) or a source ({ parquet | json | hub })'])
    expect(issuesOf('- a\n- b\n')).toEqual(['prefpipe.yaml:1:1: a config is a mapping of keys (preset or source, out, ...)'])
    expect(issuesOf('preset: rlhf-v\nsource: { parquet: a.parquet }\nout: o\nname: x\n')).toEqual(['prefpipe.yaml:2:9: source: give a preset or a source, not both'])
    expect(issuesOf('preset: rlhf-v\npreset: rlaif-v\nout: o\n')[0]).toMatch(/^prefpipe\.yaml:2:1: .*unique/i)
  })

  it('--set overrides any key, dotted, typed as YAML scalars; a bad value names its --set', () => {
    const c = parseConfig(BASE, { env: NO_ENV, set: ['eval=300', 'images.maxPixels=200704', 'train.lora_rank=16', 'launch.gpus=0-7', 'launch.dryRun=true', 'name=my_set', 'input=null'] })
    expect(c.eval).toBe(300)
    expect(c.images).toEqual({ maxPixels: 200704, quality: 90, cutoffLen: 2048, nearDuplicates: 'group' })
    expect(c.train).toEqual({ lora_rank: 16 })
    expect(c.launch).toEqual({ gpus: '0-7', dryRun: true })
    expect(c.name).toBe('my_set')
    expect(c.input).toBeUndefined()
    expect(issuesOf(BASE, ['eval=lots'])).toEqual(['--set eval=lots: eval: Invalid input: expected number, received string'])
    expect(issuesOf(BASE, ['images.maxPixel=1'])).toEqual(['--set images.maxPixel=1: images.maxPixel: unknown key; did you mean "maxPixels"?'])
    expect(issuesOf(BASE, ['=1'])).toEqual(['--set =1: write it as key=value, with a dotted key for nested values (images.maxPixels=200704)'])
  })

  it('types --set values as YAML does', () => {
    expect(parseConfigValue('200704')).toBe(200704)
    expect(parseConfigValue('0.05')).toBe(0.05)
    expect(parseConfigValue('true')).toBe(true)
    expect(parseConfigValue('null')).toBe(null)
    expect(parseConfigValue('0-7')).toBe('0-7')
    expect(parseConfigValue('[0, 2]')).toEqual([0, 2])
    expect(parseConfigValue('a: b')).toBe('a: b')
    expect(parseConfigValue('"42"')).toBe('42')
  })

  it('formats the resolved config as YAML in the schema order (--print-config)', () => {
    const c = parseConfig(['launch: { dryRun: true }', 'eval: 0.05', BASE].join('\n'), { env: NO_ENV, set: ['train.lora_rank=16'] })
    expect(formatConfig(c)).toBe(
      [
        'preset: rlhf-v',
        'input: data/rlhf-v-sample.parquet',
        'out: out/rlhf_v',
        'name: rlhf_v',
        'eval: 0.05',
        'seed: 42',
        'images:',
        '  maxPixels: 262144',
        '  quality: 90',
        '  cutoffLen: 2048',
        '  nearDuplicates: group',
        'model: qwen2-vl',
        'train:',
        '  lora_rank: 16',
        'launch:',
        '  dryRun: true',
        '',
      ].join('\n'),
    )
  })

  it('a source of your own: requires a name, takes format/columns, images: false for text', () => {
    expect(issuesOf('source: { parquet: d.parquet }\nout: o\n')).toEqual(['prefpipe.yaml:1:1: name is required with source (the dataset name in dataset_info.json)'])
    expect(issuesOf('source: { parquet: d.parquet, json: d.jsonl }\nout: o\nname: n\n')).toEqual(['prefpipe.yaml:1:37: source.json: give exactly one of parquet, json or hub'])
    const text = parseConfig('source: { json: rows.jsonl, format: alpaca }\nimages: false\nout: o\nname: n\n', { env: NO_ENV })
    expect(text).toEqual({ source: { json: 'rows.jsonl', format: 'alpaca' }, out: 'o', name: 'n', seed: 0, images: false })
    const { spec, options } = configToPrepare(text, '/base')
    expect(spec).toMatchObject({ preset: 'custom', kind: 'text', name: 'n' })
    expect(options).toMatchObject({ input: '/base/rows.jsonl', out: '/base/o', format: 'alpaca' })
  })
})

describe('configToPrepare', () => {
  it('resolves relative paths against the config folder and maps keys onto preparePreset', () => {
    const c = parseConfig(BASE + 'eval: 0.1\nbaseYaml: my.yaml\ntrain: { lora_rank: 16 }\nlaunch: { gpus: 8, grace: 5, cli: bin/llamafactory-cli }\n', { env: NO_ENV })
    const { spec, options } = configToPrepare(c, '/project')
    expect(spec.preset).toBe('rlhf-v')
    expect(options).toEqual({
      out: '/project/out/rlhf_v',
      name: 'rlhf_v',
      seed: 42,
      eval: 0.1,
      imageOptions: { maxPixels: 262144, quality: 90, cutoffLen: 2048, nearDuplicates: 'group' },
      model: 'qwen2-vl',
      set: { lora_rank: 16 },
      baseYaml: '/project/my.yaml',
      input: '/project/data/rlhf-v-sample.parquet',
    })
    expect(launchOptionsFromConfig(c, '/project')).toEqual({ gpus: 8, graceMs: 5000, cli: '/project/bin/llamafactory-cli' })
    expect(launchOptionsFromConfig(parseConfig(BASE, { env: NO_ENV }), '/project')).toBeUndefined()
  })

  it('reads the preset from the Hub when there is no input', () => {
    const c = parseConfig('preset: rlhf-v\nout: o\nhub: { revision: v1, file: rlhf-v.parquet }\n', { env: NO_ENV })
    expect(configToPrepare(c, '/p').options).toMatchObject({ out: '/p/o', hub: { revision: 'v1', file: 'rlhf-v.parquet' } })
    expect(configToPrepare(c, '/p').options.input).toBeUndefined()
  })
})
