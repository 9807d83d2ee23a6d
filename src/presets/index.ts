import { autoMapper } from '../formats/detect.js'
import { sharegptMapper, type RowMapper } from '../formats/mapper.js'
import { rlaifVMapper } from '../formats/rlaif-v.js'
import type { PipelineOptions, PipelineResult, Source } from '../pipeline/index.js'
import type { PreferenceSample } from '../record.js'
import { DPO_EN_DEMO, dpoEnDemoSource, prepareDpoEnDemo, type DpoEnDemoOptions, type TextRankingFormat } from './dpo-en-demo.js'
import { preparePreset, type PresetRunOptions, type PresetSpec, type PreparedFolder } from './prepare.js'
import { RLAIF_V, RLAIF_V_SPEC, rlaifVSource } from './rlaif-v.js'
import { RLHF_V, RLHF_V_SPEC, fileSource } from './rlhf-v.js'

/** The names of the presets. */
export type PresetName = 'rlhf-v' | 'rlaif-v' | 'dpo-en-demo'

export type { PresetRunOptions } from './prepare.js'

/** A named dataset prefpipe knows how to prepare. */
export interface Preset {
  name: PresetName
  /** One line for `prefpipe presets`. */
  description: string
  /** The Hugging Face Hub dataset (`owner/name`). */
  repo: string
  /** `image`: rows carry images (multimodal DPO); `text`: text-only. */
  kind: 'image' | 'text'
  defaults: {
    /** Dataset name in `dataset_info.json`. */
    name: string
    /** The Hub split read. */
    split: string
    /** The Hub config (subset), when the repo has several. */
    config?: string
    /** Local file types the preset reads. */
    formats: readonly ('parquet' | 'json' | 'jsonl')[]
    /** The row shape (as `prefpipe inspect` reports it). */
    rowFormat: 'sharegpt' | 'rlaif-v' | 'sharegpt or alpaca'
  }
  /** A fresh row mapper for this preset's rows (for `prefpipe inspect --preset`). */
  mapper(): RowMapper
  /** A source for a local file in this preset's schema. */
  source(input: string, opts?: { mediaDir?: string; format?: TextRankingFormat }): Source<PreferenceSample>
  /** Read (a local `input`, or the Hub), validate, process, split and write the LLaMA-Factory folder. */
  prepare(opts: PresetRunOptions, pipelineOptions?: PipelineOptions): Promise<PipelineResult<PreparedFolder>>
  /** Where its data lives and how rows map (image presets: what a shard run needs, see `prepareShard`). */
  spec?: PresetSpec
}


/**
 * Every preset, by name: what `prefpipe presets` lists and `prefpipe <preset>` runs.
 *
 * @example
 * for (const p of Object.values(PRESETS)) console.log(p.name, p.kind, p.repo, p.description)
 * await PRESETS['rlaif-v'].prepare({ input: 'RLAIF-V-Dataset_000.parquet', out: 'out/rlaif_v' })
 */
export const PRESETS: Readonly<Record<PresetName, Preset>> = Object.freeze({
  'rlhf-v': {
    name: 'rlhf-v',
    description: 'RLHF-V: 5.7k multimodal preference pairs (sharegpt ranking rows, one image each) for Qwen2-VL DPO',
    repo: RLHF_V.repo,
    kind: 'image',
    defaults: { name: RLHF_V.name, split: 'train', formats: ['parquet', 'json', 'jsonl'], rowFormat: 'sharegpt' },
    mapper: () => sharegptMapper({ columns: RLHF_V.columns }),
    source: (input, o = {}) => fileSource(input, o.mediaDir),
    prepare: (o, p) => preparePreset(RLHF_V_SPEC, o, p),
    spec: RLHF_V_SPEC,
  },
  'rlaif-v': {
    name: 'rlaif-v',
    description: 'RLAIF-V: multimodal preference pairs with AI feedback (one image, a question, chosen/rejected strings per row)',
    repo: RLAIF_V.repo,
    kind: 'image',
    defaults: { name: RLAIF_V.name, split: RLAIF_V.split, formats: ['parquet', 'json', 'jsonl'], rowFormat: 'rlaif-v' },
    mapper: () => rlaifVMapper(),
    source: (input, o = {}) => rlaifVSource(input, o.mediaDir),
    prepare: (o, p) => preparePreset(RLAIF_V_SPEC, o, p),
    spec: RLAIF_V_SPEC,
  },
  'dpo-en-demo': {
    name: 'dpo-en-demo',
    description: "LLaMA-Factory's dpo_en_demo: text-only preference pairs (sharegpt ranking; alpaca ranking read too)",
    repo: DPO_EN_DEMO.repo,
    kind: 'text',
    defaults: { name: DPO_EN_DEMO.name, split: DPO_EN_DEMO.split, config: DPO_EN_DEMO.config, formats: ['json', 'jsonl', 'parquet'], rowFormat: 'sharegpt or alpaca' },
    mapper: () => autoMapper(['sharegpt', 'alpaca']),
    source: (input, o = {}) => dpoEnDemoSource(input, o.format ?? 'auto', o.mediaDir),
    prepare: (o, p) => prepareDpoEnDemo(o as DpoEnDemoOptions, p),
  },
})

/** The preset names, in registry order. */
export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[]

/**
 * The preset called `name`; throws a clear error listing the presets when there is none.
 *
 * @example
 * const preset = getPreset('rlaif-v')
 * const { result } = await preset.prepare({ input: 'sample.parquet', out: 'out' })
 */
export function getPreset(name: string): Preset {
  if (Object.hasOwn(PRESETS, name)) return PRESETS[name as PresetName]
  throw new Error(`[prefpipe] no preset "${name}"; the presets are: ${PRESET_NAMES.join(', ')} (see \`prefpipe presets\`)`)
}
