import { describe, expect, it } from 'vitest'
import {
  DEFAULT_COLUMNS,
  DEFAULT_TAGS,
  resolveMapping,
  sampleToSharegpt,
  sharegptToSample,
  type MapResult,
} from '../../src/formats/sharegpt.js'
import type { PreferenceSample, Reject } from '../../src/record.js'

const JPEG = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3])

/** An RLHF-V-shaped row; `patch` overrides any column. */
function row(patch: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    conversations: [{ from: 'human', value: '<image>What is shown?' }],
    chosen: { from: 'gpt', value: 'A cat.' },
    rejected: { from: 'gpt', value: 'A dog.' },
    images: [{ bytes: JPEG, path: 'cat.jpg' }],
    ...patch,
  }
}

const defaults = resolveMapping()

function ok(r: MapResult): PreferenceSample {
  if (!r.ok) throw new Error(`expected a sample, got reject ${JSON.stringify(r.reject)}`)
  return r.sample
}

function bad(r: MapResult): Reject {
  if (r.ok) throw new Error(`expected a reject, got sample ${JSON.stringify(r.sample)}`)
  return r.reject
}

describe('resolveMapping()', () => {
  it('defaults to RLHF-V columns and LLaMA-Factory tags', () => {
    expect(defaults).toEqual({ columns: DEFAULT_COLUMNS, tags: DEFAULT_TAGS })
    expect(DEFAULT_COLUMNS).toEqual({ messages: 'conversations', chosen: 'chosen', rejected: 'rejected', images: 'images' })
    expect(DEFAULT_TAGS).toEqual({
      role_tag: 'from',
      content_tag: 'value',
      user_tag: 'human',
      assistant_tag: 'gpt',
      observation_tag: 'observation',
      function_tag: 'function_call',
      system_tag: 'system',
    })
  })

  it('merges a subset over the defaults', () => {
    const m = resolveMapping({ columns: { messages: 'messages' }, tags: { user_tag: 'user' } })
    expect(m.columns).toEqual({ ...DEFAULT_COLUMNS, messages: 'messages' })
    expect(m.tags).toEqual({ ...DEFAULT_TAGS, user_tag: 'user' })
    expect(DEFAULT_COLUMNS.messages).toBe('conversations') // not mutated
  })
})

describe('sharegptToSample(): mapping', () => {
  it('maps an RLHF-V row with the defaults', () => {
    const s = ok(sharegptToSample(row(), 'rlhf-v.parquet#0', defaults))
    expect(s).toEqual({
      id: 'rlhf-v.parquet#0',
      messages: [{ role: 'user', content: '<image>What is shown?' }],
      chosen: { role: 'assistant', content: 'A cat.' },
      rejected: { role: 'assistant', content: 'A dog.' },
      images: [{ bytes: JPEG }],
      meta: { imagePaths: ['cat.jpg'] },
    })
    expect(s.system).toBeUndefined()
    expect('system' in s).toBe(false)
  })

  it('maps every tag to its role, keeping multi-turn order', () => {
    const s = ok(
      sharegptToSample(
        row({
          conversations: [
            { from: 'human', value: '<image>a' },
            { from: 'function_call', value: 'b' },
            { from: 'observation', value: 'c' },
            { from: 'gpt', value: 'd' },
            { from: 'human', value: 'e' },
          ],
        }),
        'x',
        defaults,
      ),
    )
    expect(s.messages.map((t) => t.role)).toEqual(['user', 'function', 'observation', 'assistant', 'user'])
    expect(s.messages.map((t) => t.content)).toEqual(['<image>a', 'b', 'c', 'd', 'e'])
  })

  it('reads custom columns and tags (OpenAI-style names)', () => {
    const mapping = resolveMapping({
      columns: { messages: 'messages', chosen: 'good', rejected: 'bad', images: 'pics', system: 'sys' },
      tags: { role_tag: 'role', content_tag: 'content', user_tag: 'user', assistant_tag: 'assistant' },
    })
    const s = ok(
      sharegptToSample(
        {
          messages: [{ role: 'user', content: '<image>Hi' }],
          good: { role: 'assistant', content: 'Yes' },
          bad: { role: 'assistant', content: 'No' },
          pics: ['a.jpg'],
          sys: 'Be brief.',
          extra: 42,
        },
        'custom#1',
        mapping,
      ),
    )
    expect(s).toEqual({
      id: 'custom#1',
      messages: [{ role: 'user', content: '<image>Hi' }],
      chosen: { role: 'assistant', content: 'Yes' },
      rejected: { role: 'assistant', content: 'No' },
      images: [{ path: 'a.jpg' }],
      system: 'Be brief.',
      meta: { imagePaths: ['a.jpg'] },
    })
  })

  it('moves a leading system turn into `system`', () => {
    const s = ok(sharegptToSample(row({ conversations: [{ from: 'system', value: 'You are terse.' }, { from: 'human', value: '<image>Q' }] }), 'x', defaults))
    expect(s.system).toBe('You are terse.')
    expect(s.messages).toEqual([{ role: 'user', content: '<image>Q' }])
  })

  it('keeps a system turn that is not first as a system turn (validateRanking rejects it)', () => {
    const s = ok(
      sharegptToSample(
        row({ conversations: [{ from: 'human', value: '<image>Q' }, { from: 'system', value: 'late' }, { from: 'human', value: 'R' }] }),
        'x',
        defaults,
      ),
    )
    expect(s.system).toBeUndefined()
    expect(s.messages.map((t) => t.role)).toEqual(['user', 'system', 'user'])
  })

  it('reads the system column, and a leading system turn wins over it (as LLaMA-Factory)', () => {
    const mapping = resolveMapping({ columns: { system: 'system' } })
    expect(ok(sharegptToSample(row({ system: 'From the column.' }), 'x', mapping)).system).toBe('From the column.')
    const both = ok(sharegptToSample(row({ system: 'From the column.', conversations: [{ from: 'system', value: 'From the turn.' }, { from: 'human', value: 'Q' }] }), 'x', mapping))
    expect(both.system).toBe('From the turn.')
    expect(both.messages).toEqual([{ role: 'user', content: 'Q' }])
    expect(ok(sharegptToSample(row({ system: null }), 'x', mapping)).system).toBeUndefined()
    // Without a mapped system column, a `system` key in the row is ignored.
    expect(ok(sharegptToSample(row({ system: 'ignored' }), 'x', defaults)).system).toBeUndefined()
  })

  it('keeps an empty prompt and wrong-role responses for validateRanking to judge', () => {
    const s = ok(sharegptToSample(row({ conversations: [], chosen: { from: 'human', value: 'A cat.' } }), 'x', defaults))
    expect(s.messages).toEqual([])
    expect(s.chosen).toEqual({ role: 'user', content: 'A cat.' })
  })
})

describe('sharegptToSample(): rows it cannot read', () => {
  it('string chosen -> response_not_object', () => {
    const r = bad(sharegptToSample(row({ chosen: 'A cat.' }), 'row#3', defaults))
    expect(r).toMatchObject({ id: 'row#3', reason: 'response_not_object', detail: { column: 'chosen' } })
    expect(r.message).toContain('{"from": "gpt", "value": "..."}')
  })

  it('string rejected -> response_not_object', () => {
    expect(bad(sharegptToSample(row({ rejected: 'A dog.' }), 'x', defaults))).toMatchObject({ reason: 'response_not_object', detail: { column: 'rejected' } })
  })

  it('unknown role tag in the prompt -> role_unknown, naming the original index', () => {
    const r = bad(sharegptToSample(row({ conversations: [{ from: 'system', value: 's' }, { from: 'user', value: 'Q' }] }), 'row#4', defaults))
    expect(r).toMatchObject({ id: 'row#4', reason: 'role_unknown', detail: { where: 'conversations[1]', tag: 'user' } })
    expect(r.message).toContain('"user"')
    expect(r.message).toContain('human, gpt')
  })

  it('unknown role tag in chosen -> role_unknown', () => {
    expect(bad(sharegptToSample(row({ chosen: { from: 'assistant', value: 'A' } }), 'x', defaults))).toMatchObject({ reason: 'role_unknown', detail: { where: 'chosen', tag: 'assistant' } })
  })

  it('missing content key -> row_shape, with the path', () => {
    const r = bad(sharegptToSample(row({ conversations: [{ from: 'human', text: 'Q' }] }), 'row#5', defaults))
    expect(r).toMatchObject({ id: 'row#5', reason: 'row_shape', detail: { path: 'conversations.0.value' } })
    expect(r.message).toMatch(/conversations\.0\.value/)
  })

  it('missing role key, non-string content, missing chosen -> row_shape', () => {
    expect(bad(sharegptToSample(row({ conversations: [{ value: 'Q' }] }), 'x', defaults))).toMatchObject({ reason: 'row_shape', detail: { path: 'conversations.0.from' } })
    expect(bad(sharegptToSample(row({ conversations: [{ from: 'human', value: 7 }] }), 'x', defaults))).toMatchObject({ reason: 'row_shape' })
    const noValue = bad(sharegptToSample(row({ chosen: { from: 'gpt' } }), 'x', defaults))
    expect(noValue).toMatchObject({ reason: 'row_shape', detail: { path: 'chosen.value' } })
    expect(noValue.message).toMatch(/chosen\.value: .*expected string, received undefined/)
    expect(bad(sharegptToSample(row({ chosen: undefined }), 'x', defaults))).toMatchObject({ reason: 'row_shape', detail: { path: 'chosen' } })
    expect(bad(sharegptToSample(row({ conversations: undefined }), 'x', defaults))).toMatchObject({ reason: 'row_shape', detail: { path: 'conversations' } })
  })

  it('a row that is not an object -> row_shape', () => {
    expect(bad(sharegptToSample(null, 'x', defaults))).toMatchObject({ reason: 'row_shape', detail: { path: '' } })
    expect(bad(sharegptToSample([], 'x', defaults)).reason).toBe('row_shape')
  })

  it('an image with neither bytes nor path -> image_missing', () => {
    const r = bad(sharegptToSample(row({ conversations: [{ from: 'human', value: '<image><image>' }], images: ['a.jpg', { bytes: null, path: null }] }), 'x', defaults))
    expect(r).toMatchObject({ reason: 'image_missing', detail: { index: 1 } })
  })

  it('a malformed image value -> row_shape', () => {
    expect(bad(sharegptToSample(row({ images: [42] }), 'x', defaults)).reason).toBe('row_shape')
  })
})

describe('sharegptToSample(): images', () => {
  const resolve = (p: string) => `/media/${p}`

  it('{bytes, path}: keeps the bytes, not the path, and remembers the source path', () => {
    const s = ok(sharegptToSample(row({ images: [{ bytes: JPEG, path: 'cat.jpg' }] }), 'x', defaults, resolve))
    expect(s.images).toEqual([{ bytes: JPEG }])
    expect(s.images[0]!.bytes).toBe(JPEG)
    expect(s.meta).toEqual({ imagePaths: ['cat.jpg'] })
  })

  it('{bytes, path: null}: no source path in meta', () => {
    const s = ok(sharegptToSample(row({ images: [{ bytes: JPEG, path: null }] }), 'x', defaults, resolve))
    expect(s.images).toEqual([{ bytes: JPEG }])
    expect(s.meta).toEqual({})
  })

  it('{bytes: null, path}: the path, resolved', () => {
    const s = ok(sharegptToSample(row({ images: [{ bytes: null, path: 'cat.jpg' }] }), 'x', defaults, resolve))
    expect(s.images).toEqual([{ path: '/media/cat.jpg' }])
    expect(s.meta).toEqual({ imagePaths: ['cat.jpg'] })
  })

  it('string paths: resolved, in order', () => {
    const s = ok(sharegptToSample(row({ conversations: [{ from: 'human', value: '<image><image>' }], images: ['a.jpg', 'b/c.png'] }), 'x', defaults, resolve))
    expect(s.images).toEqual([{ path: '/media/a.jpg' }, { path: '/media/b/c.png' }])
    expect(s.meta).toEqual({ imagePaths: ['a.jpg', 'b/c.png'] })
  })

  it('without resolvePath, paths are kept as is', () => {
    expect(ok(sharegptToSample(row({ images: ['a.jpg'] }), 'x', defaults)).images).toEqual([{ path: 'a.jpg' }])
  })

  it('null, missing or [] images -> []', () => {
    for (const images of [null, undefined, []]) {
      const s = ok(sharegptToSample(row({ images, conversations: [{ from: 'human', value: 'Q' }] }), 'x', defaults))
      expect(s.images).toEqual([])
      expect(s.meta).toEqual({})
    }
    const { images: _drop, ...noColumn } = row()
    expect(ok(sharegptToSample(noColumn, 'x', defaults)).images).toEqual([])
  })

  it('a bare string image -> one image (as LLaMA-Factory _find_medias)', () => {
    const s = ok(sharegptToSample(row({ images: 'cat.jpg' }), 'x', defaults, resolve))
    expect(s.images).toEqual([{ path: '/media/cat.jpg' }])
  })

  it('a bare {bytes, path} image -> one image', () => {
    expect(ok(sharegptToSample(row({ images: { bytes: JPEG, path: 'cat.jpg' } }), 'x', defaults)).images).toEqual([{ bytes: JPEG }])
  })

  it('no images column mapped -> [] even if the row has one', () => {
    const mapping = resolveMapping({ columns: { images: undefined } })
    expect(ok(sharegptToSample(row(), 'x', mapping)).images).toEqual([])
  })
})

describe('sampleToSharegpt()', () => {
  const sample: PreferenceSample = {
    id: 'a#1',
    messages: [
      { role: 'user', content: '<image>Q1' },
      { role: 'function', content: '{"f":1}' },
      { role: 'observation', content: 'obs' },
      { role: 'assistant', content: 'A1' },
      { role: 'user', content: 'Q2' },
    ],
    chosen: { role: 'assistant', content: 'Good.' },
    rejected: { role: 'assistant', content: 'Bad.' },
    images: [{ bytes: JPEG }],
    system: 'Be kind.',
    meta: {},
  }

  it('writes the default tags, a leading system turn and the given image paths', () => {
    expect(sampleToSharegpt(sample, ['images/ab/abc.jpg'])).toEqual({
      conversations: [
        { from: 'system', value: 'Be kind.' },
        { from: 'human', value: '<image>Q1' },
        { from: 'function_call', value: '{"f":1}' },
        { from: 'observation', value: 'obs' },
        { from: 'gpt', value: 'A1' },
        { from: 'human', value: 'Q2' },
      ],
      chosen: { from: 'gpt', value: 'Good.' },
      rejected: { from: 'gpt', value: 'Bad.' },
      images: ['images/ab/abc.jpg'],
    })
  })

  it('writes no system turn for an absent or empty system prompt, and does not mutate the sample', () => {
    const { system: _s, ...noSystem } = sample
    expect(sampleToSharegpt(noSystem, []).conversations[0]).toEqual({ from: 'human', value: '<image>Q1' })
    expect(sampleToSharegpt({ ...sample, system: '' }, []).conversations).toHaveLength(5)
    expect(sample.messages).toHaveLength(5)
  })

  it('round-trips through sharegptToSample (images become the written paths)', () => {
    const out = sampleToSharegpt(sample, ['images/ab/abc.jpg'])
    const back = ok(sharegptToSample(JSON.parse(JSON.stringify(out)), sample.id, defaults))
    expect(back).toEqual({ ...sample, images: [{ path: 'images/ab/abc.jpg' }], meta: { imagePaths: ['images/ab/abc.jpg'] } })
    // ... and the row it writes back is the same row.
    expect(sampleToSharegpt(back, ['images/ab/abc.jpg'])).toEqual(out)
  })

  it('round-trips an RLHF-V row (default tags, no system)', () => {
    const first = ok(sharegptToSample(row({ images: ['cat.jpg'] }), 'x', defaults))
    const out = sampleToSharegpt(first, ['cat.jpg'])
    expect(out).toEqual({ ...row({ images: ['cat.jpg'] }) })
  })
})
