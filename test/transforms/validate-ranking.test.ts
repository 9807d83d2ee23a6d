import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { named, pipeline, type Sink, type Source } from '../../src/pipeline/index.js'
import type { PreferenceSample, Reject } from '../../src/record.js'
import {
  DEFAULT_PLACEHOLDERS,
  FORBIDDEN_SPECIAL_TOKENS,
  RANKING_REJECT_REASONS,
  placeholdersFromEnv,
  validateRanking,
  type RankingRejectReason,
  type ValidateRankingOptions,
} from '../../src/transforms/validate-ranking.js'

const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

/** A valid RLHF-V-like sample; `patch` overrides any field. */
function sample(id: string, patch: Partial<PreferenceSample> = {}): PreferenceSample {
  return {
    id,
    messages: [{ role: 'user', content: '<image>What is shown?' }],
    chosen: { role: 'assistant', content: 'A cat on a mat.' },
    rejected: { role: 'assistant', content: 'A dog in a car.' },
    images: [{ bytes: PNG }],
    meta: {},
    ...patch,
  }
}

function source(samples: PreferenceSample[]): Source<PreferenceSample> {
  return named('rows', async function* () {
    yield* samples
  })
}

const collect: Sink<PreferenceSample, PreferenceSample[]> = named('collect', async (input: AsyncIterable<PreferenceSample>) => {
  const out: PreferenceSample[] = []
  for await (const s of input) out.push(s)
  return out
})

async function run(samples: PreferenceSample[], options?: ValidateRankingOptions) {
  return pipeline(source(samples), validateRanking(options), collect)
}

/** Run one sample; expect it rejected with `reason`, and return the reject. */
async function rejectOf(s: PreferenceSample, reason: RankingRejectReason, options?: ValidateRankingOptions): Promise<Reject> {
  const { result, rejects, report } = await run([s], options)
  expect(result).toEqual([])
  expect(rejects).toHaveLength(1)
  const r = rejects[0]!
  expect(r.reason).toBe(reason)
  expect(r.id).toBe(s.id)
  expect(r.stage).toBe('validate')
  expect(report.stages.find((st) => st.name === 'validate')!.dropped).toEqual({ [reason]: 1 })
  // Helpful: a sentence of some length, saying what to do, and JSON-serialisable detail.
  expect(r.message.length).toBeGreaterThan(30)
  expect(r.message).toMatch(/fix|drop|remove|move|merge|fill|point|add|download|re-|escape/i)
  expect(JSON.parse(JSON.stringify(r))).toEqual(r)
  return r
}

async function passes(s: PreferenceSample, options?: ValidateRankingOptions): Promise<void> {
  const { result, rejects } = await run([s], options)
  expect(rejects).toEqual([])
  expect(result).toEqual([s])
  expect(result[0]).toBe(s) // unchanged, same object
}

let dir: string
let goodFile: string
let emptyFile: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prefpipe-validate-'))
  goodFile = join(dir, 'ok.png')
  emptyFile = join(dir, 'empty.png')
  await writeFile(goodFile, PNG)
  await writeFile(emptyFile, new Uint8Array())
  await mkdir(join(dir, 'adir'))
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('RANKING_REJECT_REASONS', () => {
  it('lists the codes in rule order with one-line descriptions', () => {
    expect(Object.keys(RANKING_REJECT_REASONS)).toEqual([
      'prompt_empty',
      'system_turn_in_prompt',
      'role_order',
      'prompt_count_even',
      'prompt_turn_empty',
      'response_role',
      'response_empty',
      'responses_identical',
      'placeholder_in_system',
      'placeholder_in_response',
      'media_placeholder_unsupported',
      'image_count_mismatch',
      'special_token',
      'image_missing',
      'image_url',
      'image_empty',
      'image_not_found',
      'image_not_file',
      'image_unreadable',
    ])
    for (const d of Object.values(RANKING_REJECT_REASONS)) expect(d).not.toContain('\n')
  })

  it('lists the forbidden special tokens with a source each', () => {
    const tokens = FORBIDDEN_SPECIAL_TOKENS.map((t) => t.token)
    for (const t of ['<|image_pad|>', '<|video_pad|>', '<|vision_start|>', '<|vision_end|>', '<|vision_pad|>', '<|im_start|>', '<|im_end|>', '<|endoftext|>', '<|box_start|>']) {
      expect(tokens).toContain(t)
    }
    for (const t of FORBIDDEN_SPECIAL_TOKENS) {
      expect(t.token).toMatch(/^<\|[a-z_]+\|>$/)
      expect(t.source.length).toBeGreaterThan(5)
    }
    expect(new Set(tokens).size).toBe(tokens.length)
  })
})

describe('validateRanking(): prompt structure', () => {
  it('passes a valid single-turn row', () => passes(sample('ok')))

  it('passes a valid multi-turn row ending on an observation turn', () =>
    passes(
      sample('multi', {
        messages: [
          { role: 'user', content: '<image>What is it?' },
          { role: 'function', content: '{"name":"lookup"}' },
          { role: 'observation', content: 'a cat' },
        ],
      }),
    ))

  it('prompt_empty: no turns', async () => {
    const r = await rejectOf(sample('e', { messages: [], images: [] }), 'prompt_empty')
    expect(r.message).toMatch(/no turns/)
  })

  it('system_turn_in_prompt: a system turn inside the prompt', async () => {
    const r = await rejectOf(
      sample('sys', {
        messages: [
          { role: 'user', content: '<image>Hi' },
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: 'Well?' },
        ],
      }),
      'system_turn_in_prompt',
    )
    expect(r.message).toMatch(/prompt turn 1/)
    expect(r.detail).toEqual({ turn: 1 })
  })

  it('role_order: an assistant turn at an even index', async () => {
    const r = await rejectOf(
      sample('order', {
        messages: [
          { role: 'assistant', content: 'Hello' },
          { role: 'user', content: '<image>x' },
          { role: 'user', content: 'y' },
        ],
      }),
      'role_order',
    )
    expect(r.message).toMatch(/prompt turn 0 .*"assistant".*user or observation/)
    expect(r.detail).toMatchObject({ turn: 0, role: 'assistant' })
  })

  it('role_order: two user turns in a row', async () => {
    const r = await rejectOf(
      sample('order2', {
        messages: [
          { role: 'user', content: '<image>x' },
          { role: 'user', content: 'y' },
          { role: 'user', content: 'z' },
        ],
      }),
      'role_order',
    )
    expect(r.detail).toMatchObject({ turn: 1, role: 'user', expected: 'assistant or function' })
  })

  it('prompt_count_even: the prompt ends on an assistant turn', async () => {
    const r = await rejectOf(
      sample('even', {
        messages: [
          { role: 'user', content: '<image>x' },
          { role: 'assistant', content: 'y' },
        ],
      }),
      'prompt_count_even',
    )
    expect(r.message).toMatch(/2 turns.*odd/)
  })

  it('prompt_turn_empty: a whitespace-only user turn', async () => {
    const r = await rejectOf(
      sample('blank', {
        messages: [
          { role: 'user', content: '<image>x' },
          { role: 'assistant', content: 'y' },
          { role: 'user', content: '  \n' },
        ],
      }),
      'prompt_turn_empty',
    )
    expect(r.message).toMatch(/prompt turn 2/)
    expect(r.message).toMatch(/allowEmptyTurns/)
  })

  it('prompt_turn_empty: a turn that is only an image placeholder is fine', () =>
    passes(sample('img-only', { messages: [{ role: 'user', content: '<image>' }] })))

  it('allowEmptyTurns keeps empty turns', () =>
    passes(
      sample('blank-ok', {
        messages: [
          { role: 'user', content: '<image>x' },
          { role: 'assistant', content: '' },
          { role: 'user', content: 'go on' },
        ],
      }),
      { allowEmptyTurns: true },
    ))
})

describe('validateRanking(): responses', () => {
  it('response_role: chosen tagged as user', async () => {
    const r = await rejectOf(sample('role', { chosen: { role: 'user', content: 'A cat.' } }), 'response_role')
    expect(r.message).toMatch(/chosen is a "user" turn/)
    expect(r.detail).toEqual({ field: 'chosen', role: 'user' })
  })

  it('response_role: rejected tagged as system', async () => {
    const r = await rejectOf(sample('role2', { rejected: { role: 'system', content: 'A dog.' } }), 'response_role')
    expect(r.detail).toEqual({ field: 'rejected', role: 'system' })
  })

  it('response_role: a function turn is accepted as a response (LLaMA-Factory even_tags)', () =>
    passes(sample('fn', { chosen: { role: 'function', content: '{"name":"f"}' } })))

  it('response_empty: whitespace-only rejected', async () => {
    const r = await rejectOf(sample('empty', { rejected: { role: 'assistant', content: ' \t ' } }), 'response_empty')
    expect(r.message).toMatch(/rejected is empty \(whitespace only\)/)
  })

  it('response_empty: empty chosen', async () => {
    const r = await rejectOf(sample('empty2', { chosen: { role: 'assistant', content: '' } }), 'response_empty')
    expect(r.detail).toEqual({ field: 'chosen' })
  })

  it('responses_identical: exact same text', async () => {
    const r = await rejectOf(sample('same', { rejected: { role: 'assistant', content: 'A cat on a mat.' } }), 'responses_identical')
    expect(r.message).toMatch(/"A cat on a mat\."/)
  })

  it('responses_identical: differing only in whitespace passes by default, fails with compareTrimmed', async () => {
    const s = sample('ws', { rejected: { role: 'assistant', content: 'A cat on a mat.\n' } })
    await passes(s)
    const r = await rejectOf(s, 'responses_identical', { compareTrimmed: true })
    expect(r.detail).toEqual({ exact: false })
  })
})

describe('validateRanking(): placeholders', () => {
  it('placeholder_in_system', async () => {
    const r = await rejectOf(sample('ps', { system: 'Look at <image> carefully.' }), 'placeholder_in_system')
    expect(r.detail).toMatchObject({ placeholder: '<image>', count: 1 })
  })

  it('a system prompt without placeholders passes', () => passes(sample('ps-ok', { system: 'You are a helpful assistant.' })))

  it('placeholder_in_response: <image> in chosen', async () => {
    const r = await rejectOf(sample('pr', { chosen: { role: 'assistant', content: 'See <image>.' } }), 'placeholder_in_response')
    expect(r.detail).toMatchObject({ field: 'chosen', placeholder: '<image>', kind: 'image' })
  })

  it('placeholder_in_response: <audio> in rejected', async () => {
    const r = await rejectOf(sample('pr2', { rejected: { role: 'assistant', content: 'Hear <audio>.' } }), 'placeholder_in_response')
    expect(r.detail).toMatchObject({ field: 'rejected', kind: 'audio' })
  })

  it('media_placeholder_unsupported: <video> in the prompt', async () => {
    const r = await rejectOf(sample('pv', { messages: [{ role: 'user', content: '<image><video>What happens?' }] }), 'media_placeholder_unsupported')
    expect(r.detail).toMatchObject({ turn: 0, kind: 'video' })
  })

  it('media_placeholder_unsupported: <audio> in the prompt', async () => {
    const r = await rejectOf(sample('pa', { messages: [{ role: 'user', content: '<image><audio>' }] }), 'media_placeholder_unsupported')
    expect(r.detail).toMatchObject({ kind: 'audio' })
  })

  it('image_count_mismatch: one placeholder, two images', async () => {
    const r = await rejectOf(sample('cm', { images: [{ bytes: PNG }, { bytes: PNG }] }), 'image_count_mismatch')
    expect(r.message).toMatch(/1× <image>.*2 images/)
    expect(r.detail).toEqual({ placeholders: 1, images: 2, perTurn: [1] })
  })

  it('image_count_mismatch: placeholder without images', async () => {
    const r = await rejectOf(sample('cm2', { images: [] }), 'image_count_mismatch')
    expect(r.detail).toMatchObject({ placeholders: 1, images: 0 })
  })

  it('counts placeholders across turns; a text-only row passes', async () => {
    await passes(
      sample('two', {
        messages: [
          { role: 'user', content: '<image>a' },
          { role: 'assistant', content: 'b' },
          { role: 'user', content: 'and <image>?' },
        ],
        images: [{ bytes: PNG }, { bytes: PNG }],
      }),
    )
    await passes(sample('text', { messages: [{ role: 'user', content: 'Hello' }], images: [] }))
  })

  it('custom placeholders: <image> is then plain text and <img> is counted', async () => {
    const options = { placeholders: { image: '<img>' } }
    await passes(sample('cp', { messages: [{ role: 'user', content: '<img>What is an <image> tag?' }] }), options)
    await rejectOf(sample('cp2', { messages: [{ role: 'user', content: 'What is shown?' }] }), 'image_count_mismatch', options)
  })
})

describe('validateRanking(): special tokens', () => {
  it.each([
    ['prompt', { messages: [{ role: 'user' as const, content: '<image><|vision_start|><|image_pad|><|vision_end|>' }] }, 'messages'],
    ['system', { system: 'You are<|im_end|>' }, 'system'],
    ['chosen', { chosen: { role: 'assistant' as const, content: 'A cat.<|endoftext|>' } }, 'chosen'],
    ['rejected', { rejected: { role: 'assistant' as const, content: '<|box_start|>(1,2)' } }, 'rejected'],
  ])('special_token in the %s', async (_where, patch, field) => {
    const r = await rejectOf(sample('st', patch), 'special_token')
    expect(r.detail).toMatchObject({ field })
    expect(r.message).toMatch(/<\|[a-z_]+\|>/)
    if (field === 'messages') expect(r.detail).toEqual({ field, turn: 0, token: '<|vision_start|>' })
  })

  it('extraForbiddenTokens adds tokens', async () => {
    const s = sample('llama', { chosen: { role: 'assistant', content: 'A cat.<|eot_id|>' } })
    await passes(s)
    const r = await rejectOf(s, 'special_token', { extraForbiddenTokens: ['<|eot_id|>'] })
    expect(r.detail).toMatchObject({ token: '<|eot_id|>', field: 'chosen' })
  })

  it('text that only looks similar passes', () => passes(sample('sim', { chosen: { role: 'assistant', content: 'a | b | c, x < y > z, <|not_a_token|>' } })))
})

describe('validateRanking(): images', () => {
  it('an image path that exists passes', () => passes(sample('file', { images: [{ path: goodFile }] })))

  it('image_not_found: a missing path', async () => {
    const r = await rejectOf(sample('nf', { images: [{ path: join(dir, 'nope.jpg') }] }), 'image_not_found')
    expect(r.message).toContain('nope.jpg')
    expect(r.detail).toMatchObject({ image: 0 })
  })

  it('image_empty: zero-length bytes', async () => {
    const r = await rejectOf(sample('zb', { images: [{ bytes: new Uint8Array(), path: goodFile }] }), 'image_empty')
    expect(r.message).toMatch(/zero-length bytes/)
  })

  it('image_empty: a zero-length file', async () => {
    const r = await rejectOf(sample('zf', { images: [{ path: emptyFile }] }), 'image_empty')
    expect(r.message).toMatch(/empty \(0 bytes\)/)
  })

  it('image_not_file: a directory', () => rejectOf(sample('dir', { images: [{ path: join(dir, 'adir') }] }), 'image_not_file'))

  it('image_unreadable: a path stat cannot check (name too long)', async () => {
    const r = await rejectOf(sample('long', { images: [{ path: join(dir, 'a'.repeat(300)) }] }), 'image_unreadable')
    expect(r.detail).toMatchObject({ image: 0, code: 'ENAMETOOLONG' })
  })

  it('image_missing: neither bytes nor path', () => rejectOf(sample('none', { images: [{}] }), 'image_missing'))

  it('image_url: a URL path', async () => {
    const r = await rejectOf(sample('url', { images: [{ path: 'https://example.com/a.jpg' }] }), 'image_url')
    expect(r.detail).toMatchObject({ path: 'https://example.com/a.jpg' })
    await rejectOf(sample('data', { images: [{ path: 'data:image/png;base64,iVBOR' }] }), 'image_url')
  })

  it('reports the first bad image of several', async () => {
    const r = await rejectOf(
      sample('multi', {
        messages: [{ role: 'user', content: '<image><image><image>' }],
        images: [{ path: goodFile }, { path: join(dir, 'missing-1.jpg') }, { path: emptyFile }],
      }),
      'image_not_found',
    )
    expect(r.detail).toMatchObject({ image: 1 })
  })

  it('checkImageFiles: false skips the file system but not the other image rules', async () => {
    await passes(sample('nf-ok', { images: [{ path: join(dir, 'nope.jpg') }] }), { checkImageFiles: false })
    await rejectOf(sample('zb2', { images: [{ bytes: new Uint8Array() }] }), 'image_empty', { checkImageFiles: false })
  })

  it('counts the files it checked', async () => {
    const { report } = await run([sample('a', { images: [{ path: goodFile }] }), sample('b', { images: [{ path: goodFile }] })])
    expect(report.stages.find((s) => s.name === 'validate')!.counters).toEqual({ imageFilesChecked: 2 })
  })
})

describe('validateRanking(): order and counters', () => {
  it('keeps rows in order, rejects in order, and counts drops by reason', async () => {
    const rows: PreferenceSample[] = []
    for (let i = 0; i < 60; i++) {
      const kind = i % 5
      if (kind === 0) rows.push(sample(`r${i}`, { images: [{ path: goodFile }] }))
      else if (kind === 1) rows.push(sample(`r${i}`, { images: [{ path: join(dir, `missing-${i}.jpg`) }] }))
      else if (kind === 2) rows.push(sample(`r${i}`, { messages: [] , images: [] }))
      else if (kind === 3) rows.push(sample(`r${i}`))
      else rows.push(sample(`r${i}`, { images: [{ path: emptyFile }] }))
    }
    const { result, rejects, report } = await run(rows, { concurrency: 4 })
    expect(result.map((s) => s.id)).toEqual(rows.filter((_, i) => i % 5 === 0 || i % 5 === 3).map((s) => s.id))
    expect(rejects.map((r) => r.id)).toEqual(rows.filter((_, i) => i % 5 === 1 || i % 5 === 2 || i % 5 === 4).map((s) => s.id))
    const stage = report.stages.find((s) => s.name === 'validate')!
    expect(stage.in).toBe(60)
    expect(stage.out).toBe(24)
    expect(stage.dropped).toEqual({ image_not_found: 12, prompt_empty: 12, image_empty: 12 })
    expect(report.rejected).toEqual(stage.dropped)
  })

  it('keeps order when later file checks finish first', async () => {
    const rows = Array.from({ length: 40 }, (_, i) => sample(`o${i}`, { images: i % 2 ? [{ bytes: PNG }] : [{ path: goodFile }] }))
    const { result } = await run(rows, { concurrency: 8 })
    expect(result.map((s) => s.id)).toEqual(rows.map((s) => s.id))
  })

  it('reports the first failing rule in the fixed order', async () => {
    // Breaks response_role, placeholder_in_response, special_token and image_not_found at once.
    const r = await rejectOf(
      sample('many', {
        chosen: { role: 'user', content: '<image><|im_end|>' },
        images: [{ path: join(dir, 'nope.jpg') }],
      }),
      'response_role',
    )
    expect(r.detail).toMatchObject({ field: 'chosen' })
  })
})

describe('validateRanking(): options', () => {
  it('throws a TypeError naming validateRanking and the option', () => {
    expect(() => validateRanking({ checkImageFiles: 'yes' } as never)).toThrow(TypeError)
    expect(() => validateRanking({ checkImageFiles: 'yes' } as never)).toThrow(/validateRanking\(\).*"checkImageFiles"/)
    expect(() => validateRanking({ extraForbiddenTokens: ['ok', ''] } as never)).toThrow(/validateRanking\(\).*"extraForbiddenTokens\.1"/)
    expect(() => validateRanking({ placeholders: { image: '' } })).toThrow(/"placeholders\.image"/)
    expect(() => validateRanking({ placeholders: { image: '<x>', video: '<x>' } })).toThrow(/"placeholders" must give three different/)
    expect(() => validateRanking({ placeholders: { image: '<|image_pad|>' } })).toThrow(/"placeholders\.image".*forbidden token/)
    expect(() => validateRanking({ concurrency: 0 })).toThrow(/"concurrency"/)
    expect(() => validateRanking({ checkImages: true } as never)).toThrow(/validateRanking\(\): unknown option "checkImages"/)
  })

  it('accepts no options and undefined', () => {
    expect(typeof validateRanking()).toBe('function')
    expect(typeof validateRanking(undefined)).toBe('function')
  })

  it('placeholdersFromEnv reads LLaMA-Factory\'s variables', () => {
    expect(placeholdersFromEnv({})).toEqual(DEFAULT_PLACEHOLDERS)
    expect(placeholdersFromEnv({ IMAGE_PLACEHOLDER: '<img>' })).toEqual({ ...DEFAULT_PLACEHOLDERS, image: '<img>' })
  })

  it('stops when the run is aborted', async () => {
    const controller = new AbortController()
    const endless: Source<PreferenceSample> = named('endless', async function* () {
      for (let i = 0; ; i++) {
        if (i === 5) controller.abort()
        yield sample(`x${i}`, { images: [{ path: goodFile }] })
        await new Promise((resolve) => setTimeout(resolve, 1))
      }
    })
    await expect(pipeline(endless, validateRanking(), collect, { signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' })
  })
})
