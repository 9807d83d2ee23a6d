import { describe, expect, it } from 'vitest'
import { alpacaMapper, alpacaToSample, DEFAULT_ALPACA_COLUMNS } from '../../src/formats/alpaca.js'
import { autoMapper, detectFormat, mapperFor } from '../../src/formats/detect.js'
import { rowMapper, sharegptMapper, toImageRefs } from '../../src/formats/mapper.js'
import { RLAIF_V_COLUMNS, rlaifVMapper, rlaifVToSample } from '../../src/formats/rlaif-v.js'
import type { MapResult } from '../../src/formats/sharegpt.js'
import type { PreferenceSample, Reject } from '../../src/record.js'

const ok = (r: MapResult): PreferenceSample => {
  if (!r.ok) throw new Error(`expected a sample, got ${JSON.stringify(r.reject)}`)
  return r.sample
}
const rej = (r: MapResult): Reject => {
  if (r.ok) throw new Error(`expected a reject, got ${JSON.stringify(r.sample)}`)
  return r.reject
}
const bytes = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3])

describe('rlaifVToSample', () => {
  const row = {
    ds_name: 'RLAIF-V',
    image: { bytes, path: 'cat.jpg' },
    question: 'What animal is this?',
    chosen: 'A tabby cat.',
    rejected: 'A small dog.',
    origin_dataset: 'COCO',
    origin_split: '{"model": "OmniLMM-12B"}',
    idx: '17',
    image_path: 'COCO/images/cat.jpg',
  }

  it('maps a row: one <image> user turn, string answers as assistant turns, the image, meta kept', () => {
    const s = ok(rlaifVToSample(row, 'r#0'))
    expect(s).toEqual({
      id: 'r#0',
      messages: [{ role: 'user', content: '<image>\nWhat animal is this?' }],
      chosen: { role: 'assistant', content: 'A tabby cat.' },
      rejected: { role: 'assistant', content: 'A small dog.' },
      images: [{ bytes }],
      meta: {
        ds_name: 'RLAIF-V',
        idx: '17',
        origin_dataset: 'COCO',
        origin_split: '{"model": "OmniLMM-12B"}',
        image_path: 'COCO/images/cat.jpg',
        imagePaths: ['cat.jpg'],
      },
    })
    expect(s.system).toBeUndefined()
  })

  it('keeps a question that already holds the placeholder as it is; honours another placeholder', () => {
    expect(ok(rlaifVToSample({ ...row, question: 'Look: <image>\nWhat is it?' }, 'r#1')).messages[0]!.content).toBe('Look: <image>\nWhat is it?')
    expect(ok(rlaifVToSample(row, 'r#1', undefined, { placeholder: '<img>' })).messages[0]!.content).toBe('<img>\nWhat animal is this?')
  })

  it('reads an image given by path (JSON export), resolved, and leaves absent meta out', () => {
    const s = ok(rlaifVToSample({ image: 'imgs/a.jpg', question: 'Q', chosen: 'a', rejected: 'b' }, 'r#2', (p) => `/data/${p}`))
    expect(s.images).toEqual([{ path: '/data/imgs/a.jpg' }])
    expect(s.meta).toEqual({ imagePaths: ['imgs/a.jpg'] })
  })

  it('rejects rows it cannot read, with stable codes', () => {
    expect(rej(rlaifVToSample({ ...row, image: null }, 'r#3'))).toMatchObject({ id: 'r#3', reason: 'image_missing' })
    expect(rej(rlaifVToSample({ ...row, image: { bytes: null, path: null } }, 'r#3')).reason).toBe('image_missing')
    expect(rej(rlaifVToSample({ ...row, image: [{ bytes }] }, 'r#3')).reason).toBe('row_shape')
    expect(rej(rlaifVToSample({ ...row, chosen: 3 }, 'r#3'))).toMatchObject({ reason: 'row_shape', detail: { path: 'chosen' } })
    const { question: _q, ...noQuestion } = row
    expect(rej(rlaifVToSample(noQuestion, 'r#3')).message).toMatch(/question is missing/)
    expect(rej(rlaifVToSample('text', 'r#3')).reason).toBe('row_shape')
  })

  it('passes empty answers through for validateRanking', () => {
    expect(ok(rlaifVToSample({ ...row, rejected: '' }, 'r#4')).rejected.content).toBe('')
  })

  it('as a mapper, declares what a parquet source reads', () => {
    const m = rlaifVMapper()
    expect(m.columns).toEqual(['image', 'question', 'chosen', 'rejected'])
    expect(m.optionalColumns).toEqual([...RLAIF_V_COLUMNS.meta])
    expect(m.imageColumns).toEqual(['image'])
    expect(ok(m(row, 'x#0', (p) => p)).id).toBe('x#0')
  })
})

describe('alpacaToSample (LLaMA-Factory AlpacaDatasetConverter)', () => {
  it('joins instruction and input with "\\n", each only when non-empty', () => {
    const user = (instruction: unknown, input: unknown) => ok(alpacaToSample({ instruction, input, chosen: 'a', rejected: 'b' }, 'a#0')).messages
    expect(user('Translate', 'cat')).toEqual([{ role: 'user', content: 'Translate\ncat' }])
    expect(user('Translate', '')).toEqual([{ role: 'user', content: 'Translate' }])
    expect(user('', 'cat')).toEqual([{ role: 'user', content: 'cat' }])
    expect(user(null, null)).toEqual([{ role: 'user', content: '' }])
    expect(ok(alpacaToSample({ instruction: 'Only this', chosen: 'a', rejected: 'b' }, 'a#0')).messages[0]!.content).toBe('Only this')
  })

  it('puts history pairs first, as user/assistant turns; ignores a history that is not a list', () => {
    const s = ok(alpacaToSample({ instruction: 'And 3+3?', history: [['1+1?', '2'], ['2+2?', '4']], chosen: '6', rejected: '7' }, 'a#1'))
    expect(s.messages).toEqual([
      { role: 'user', content: '1+1?' },
      { role: 'assistant', content: '2' },
      { role: 'user', content: '2+2?' },
      { role: 'assistant', content: '4' },
      { role: 'user', content: 'And 3+3?' },
    ])
    expect(ok(alpacaToSample({ instruction: 'Q', history: null, chosen: 'a', rejected: 'b' }, 'a#1')).messages).toHaveLength(1)
    expect(ok(alpacaToSample({ instruction: 'Q', history: 'nope', chosen: 'a', rejected: 'b' }, 'a#1')).messages).toHaveLength(1)
  })

  it('reads system, answers, images; other column names', () => {
    const s = ok(alpacaToSample({ instruction: 'Q', system: 'Be brief.', chosen: 'good', rejected: 'bad', images: ['x.png'] }, 'a#2', {}, (p) => `/m/${p}`))
    expect(s).toMatchObject({ system: 'Be brief.', chosen: { role: 'assistant', content: 'good' }, rejected: { role: 'assistant', content: 'bad' } })
    expect(s.images).toEqual([{ path: '/m/x.png' }])
    expect(s.meta).toEqual({ imagePaths: ['x.png'] })
    expect(ok(alpacaToSample({ instruction: 'Q', system: '', chosen: 'a', rejected: 'b' }, 'a#2')).system).toBeUndefined()
    // Intel/orca_dpo_pairs: question / chosen / rejected / system
    const orca = ok(alpacaToSample({ question: 'Why?', system: 'S', chosen: 'a', rejected: 'b' }, 'o#0', { columns: { prompt: 'question' } }))
    expect(orca.messages).toEqual([{ role: 'user', content: 'Why?' }])
    expect(orca.system).toBe('S')
  })

  it('rejects rows LLaMA-Factory would drop or crash on', () => {
    expect(rej(alpacaToSample({ instruction: 'Q', chosen: { from: 'gpt', value: 'a' }, rejected: 'b' }, 'a#3')).message).toMatch(/chosen is object, not a string \(an object answer is the sharegpt shape/)
    expect(rej(alpacaToSample({ instruction: 'Q', rejected: 'b' }, 'a#3')).message).toMatch(/chosen is missing/)
    expect(rej(alpacaToSample({ instruction: 1, chosen: 'a', rejected: 'b' }, 'a#3'))).toMatchObject({ reason: 'row_shape', detail: { path: 'instruction' } })
    expect(rej(alpacaToSample({ instruction: 'Q', history: [['only one']], chosen: 'a', rejected: 'b' }, 'a#3'))).toMatchObject({ reason: 'row_shape', detail: { path: 'history.0' } })
    expect(rej(alpacaToSample({ instruction: 'Q', chosen: 'a', rejected: 'b', images: [{}] }, 'a#3')).reason).toBe('image_missing')
    expect(rej(alpacaToSample([1, 2], 'a#3')).reason).toBe('row_shape')
  })

  it('as a mapper, needs the instruction, chosen and rejected columns and reads the rest when present', () => {
    const m = alpacaMapper()
    expect(m.columns).toEqual([DEFAULT_ALPACA_COLUMNS.prompt, 'chosen', 'rejected'])
    expect(m.optionalColumns).toEqual(['input', 'system', 'history', 'images'])
    expect(alpacaMapper({ columns: { prompt: 'question' } }).columns).toEqual(['question', 'chosen', 'rejected'])
  })
})

describe('format detection and mappers', () => {
  it('tells the shape from column names', () => {
    expect(detectFormat(['conversations', 'chosen', 'rejected', 'images'])).toBe('sharegpt')
    expect(detectFormat(['ds_name', 'image', 'question', 'chosen', 'rejected'])).toBe('rlaif-v')
    expect(detectFormat(['instruction', 'input', 'chosen', 'rejected'])).toBe('alpaca')
    expect(detectFormat(['prompt', 'chosen', 'rejected'])).toBeUndefined()
    expect(detectFormat(['question', 'image'], ['sharegpt', 'alpaca'])).toBeUndefined()
  })

  it('autoMapper decides on the first row and rejects rows of another shape', () => {
    const m = autoMapper(['sharegpt', 'alpaca'])
    expect(m.format).toBeUndefined()
    expect(m.columns).toBeUndefined()
    const a = ok(m({ instruction: 'Q', input: '', chosen: 'a', rejected: 'b' }, 'x#0', (p) => p))
    expect(a.messages).toEqual([{ role: 'user', content: 'Q' }])
    expect(m.format).toBe('alpaca')
    const sg = { conversations: [{ from: 'human', value: 'Q' }], chosen: { from: 'gpt', value: 'a' }, rejected: { from: 'gpt', value: 'b' } }
    expect(rej(m(sg, 'x#1', (p) => p)).reason).toBe('row_shape')
    const m2 = autoMapper(['sharegpt', 'alpaca'])
    expect(ok(m2(sg, 'y#0', (p) => p)).chosen.content).toBe('a')
    expect(m2.format).toBe('sharegpt')
  })

  it('sharegptMapper and mapperFor give mappers with their columns', () => {
    const m = sharegptMapper()
    expect(m.columns).toEqual(['conversations', 'chosen', 'rejected'])
    expect(m.optionalColumns).toEqual(['images'])
    expect(mapperFor('rlaif-v').columns).toEqual(rlaifVMapper().columns)
    expect(mapperFor('alpaca').columns).toEqual(alpacaMapper().columns)
  })

  it('rowMapper attaches frozen column lists to a function; toImageRefs reads every image shape', () => {
    const m = rowMapper(() => ({ ok: false, reject: { id: 'x', reason: 'r', message: 'm' } }), { columns: ['a'] })
    expect(m.columns).toEqual(['a'])
    expect(Object.isFrozen(m.columns)).toBe(true)
    expect(m.imageColumns).toBeUndefined()
    const r = toImageRefs([{ bytes, path: null }, 'p.jpg', { bytes: null, path: 'q.jpg' }], 'images', 'x', (p) => `/r/${p}`)
    expect(r).toEqual({ ok: true, images: [{ bytes }, { path: '/r/p.jpg' }, { path: '/r/q.jpg' }], paths: [null, 'p.jpg', 'q.jpg'] })
    expect(toImageRefs(null, 'images', 'x', (p) => p)).toEqual({ ok: true, images: [], paths: [] })
    expect(toImageRefs([5], 'images', 'x', (p) => p)).toMatchObject({ ok: false, reject: { reason: 'image_missing' } })
  })
})
