import { describe, expect, it } from 'vitest'
import { estimateRowTokens, estimateTextTokens, visualTokens } from '../../../src/transforms/images/index.js'
import { row } from './helpers.js'

const BUDGET = { factor: 28, charsPerToken: 3, turnOverhead: 5, defaultSystem: 'You are a helpful assistant.', placeholder: '<image>' }

describe('visualTokens', () => {
  it('is (h/f)(w/f) + 2 (vision start and end)', () => {
    expect(visualTokens(504, 504, 28)).toBe(18 * 18 + 2)
    expect(visualTokens(616, 420, 28)).toBe(22 * 15 + 2)
    expect(visualTokens(512, 512, 32)).toBe(16 * 16 + 2)
    expect(visualTokens(56, 56, 28)).toBe(6)
  })
})

describe('estimateTextTokens', () => {
  it('counts ASCII at 3 characters a token, digits one each, CJK one per character', () => {
    expect(estimateTextTokens('')).toBe(0)
    expect(estimateTextTokens('What is in the image?')).toBe(7)
    expect(estimateTextTokens('2024')).toBe(4)
    expect(estimateTextTokens('图片里有什么？')).toBe(7)
    expect(estimateTextTokens('Привет')).toBe(3) // two Cyrillic letters a token
    expect(estimateTextTokens('😀😀')).toBe(4) // astral: 2 each
    expect(estimateTextTokens('abcdef', 2)).toBe(3)
  })
  it('over-counts ordinary English prose compared with ~4 characters a token', () => {
    const prose = 'The quick brown fox jumps over the lazy dog near the river bank, while the children watch from the bridge. '.repeat(20)
    expect(estimateTextTokens(prose)).toBeGreaterThan(prose.length / 4)
  })
})

describe('estimateRowTokens', () => {
  it('adds template, default system, prompt without placeholders, images and the longer answer', () => {
    const s = row('r', [{}, {}], { chosen: { role: 'assistant', content: 'x'.repeat(30) }, rejected: { role: 'assistant', content: 'y'.repeat(60) } })
    const e = estimateRowTokens(s, [{ width: 504, height: 504 }, { width: 56, height: 56 }], BUDGET)
    expect(e).toEqual({
      template: 5 * 3,
      system: 10, // 'You are a helpful assistant.' = 28 characters
      prompt: 5, // 'What is shown?' = 14 characters; the two <image> are not text
      images: 326 + 6,
      chosen: 10,
      rejected: 20,
      total: 15 + 10 + 5 + 332 + 20,
    })
    expect(estimateRowTokens({ ...s, system: '' }, [{ width: 504, height: 504 }, { width: 56, height: 56 }], BUDGET).system).toBe(0)
  })
})
