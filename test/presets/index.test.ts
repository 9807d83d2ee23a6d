import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pipeline, type Sink } from '../../src/pipeline/index.js'
import { PRESETS, PRESET_NAMES, getPreset } from '../../src/presets/index.js'
import type { PreferenceSample } from '../../src/record.js'
import { SAMPLE } from '../helpers.js'
import { PRESET_FIXTURES } from './helpers.js'

const FIXTURE: Record<string, string> = {
  'rlhf-v': SAMPLE,
  'rlaif-v': join(PRESET_FIXTURES, 'rlaif-v-sample.parquet'),
  'dpo-en-demo': join(PRESET_FIXTURES, 'dpo-en-demo.json'),
}

const count: Sink<PreferenceSample, number> = async (input) => {
  let n = 0
  for await (const _ of input) n++
  return n
}

describe('the preset registry', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prefpipe-presets-'))
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('lists every preset with its description, Hub repo, kind and defaults', () => {
    expect(PRESET_NAMES).toEqual(['rlhf-v', 'rlaif-v', 'dpo-en-demo'])
    expect(Object.isFrozen(PRESETS)).toBe(true)
    expect(PRESETS['rlhf-v']).toMatchObject({ repo: 'llamafactory/RLHF-V', kind: 'image', defaults: { name: 'rlhf_v' } })
    expect(PRESETS['rlaif-v']).toMatchObject({ repo: 'openbmb/RLAIF-V-Dataset', kind: 'image', defaults: { name: 'rlaif_v', split: 'train' } })
    expect(PRESETS['dpo-en-demo']).toMatchObject({ repo: 'llamafactory/DPO-En-Zh-20k', kind: 'text', defaults: { name: 'dpo_en_demo', config: 'en' } })
    for (const name of PRESET_NAMES) {
      const p = PRESETS[name]
      expect(p.name).toBe(name)
      expect(p.description.length).toBeGreaterThan(20)
      expect(p.repo).toMatch(/^[\w.-]+\/[\w.-]+$/)
    }
  })

  it('getPreset names the presets when there is no such one', () => {
    expect(getPreset('rlaif-v')).toBe(PRESETS['rlaif-v'])
    expect(() => getPreset('nope')).toThrow('no preset "nope"; the presets are: rlhf-v, rlaif-v, dpo-en-demo')
    expect(() => getPreset('toString')).toThrow(/no preset/)
  })

  it.each(PRESET_NAMES)('%s: its source and its mapper read its fixture', async (name) => {
    const p = PRESETS[name]
    const { result, report } = await pipeline(p.source(FIXTURE[name]!), count)
    expect(result).toBeGreaterThan(5)
    const mapped = report.stages[0]!.out
    expect(mapped).toBe(result)
    expect(typeof p.mapper()).toBe('function')
  })

  it('prepare runs the preset (here rlaif-v, with another name)', async () => {
    const { result } = await PRESETS['rlaif-v'].prepare({ input: FIXTURE['rlaif-v']!, out: join(dir, 'r'), name: 'rl' })
    expect(result.datasets.train.name).toBe('rl_train')
    expect(result.counts.kept).toBe(9)
  })
})
