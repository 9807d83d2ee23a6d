/**
 * The token budget of a row, estimated without a tokenizer: image tokens exactly (from the final size),
 * text tokens conservatively (a character heuristic that errs on the side of more tokens).
 */
import type { PreferenceSample } from '../../record.js'
import type { Size } from './resize.js'

/**
 * The tokens one image takes in the sequence: `(h/factor)·(w/factor)` `<|image_pad|>` tokens (Qwen2-VL's
 * `image_grid_thw` product divided by `merge_size²`) plus `<|vision_start|>` and `<|vision_end|>`. Exact for
 * an image already on the grid, as the stage writes them.
 *
 * @example
 * visualTokens(504, 504, 28) // 326 (18·18 + 2)
 */
export function visualTokens(width: number, height: number, factor: number): number {
  return Math.ceil(height / factor) * Math.ceil(width / factor) + 2
}

/**
 * A conservative token count of `text` for the Qwen2 tokenizer (151k BPE vocabulary, digits split one per
 * token), per UTF-16 code unit:
 * - ASCII digits: 1 token each (Qwen2 splits numbers into single digits);
 * - other ASCII (letters, spaces, punctuation): `charsPerToken` characters per token (default 3; English
 *   prose averages about 4 characters per token, code about 3.5, so this over-counts by roughly 15-35%);
 * - U+0080-U+07FF (Latin accents, Greek, Cyrillic, Hebrew, Arabic): half a token each (about 2 per token);
 * - U+0800-U+FFFF (CJK, kana, Hangul, Thai, Indic, ...): 1 token each (common CJK words are single tokens
 *   covering 2+ characters, so this over-counts);
 * - astral characters (emoji, rare CJK): 2 tokens each (byte fallback can take up to 4: the one case that can
 *   under-count, for emoji-heavy text).
 *
 * @example
 * estimateTextTokens('What is in the image?') // 7
 * estimateTextTokens('图片里有什么？')          // 7
 */
export function estimateTextTokens(text: string, charsPerToken = 3): number {
  let ascii = 0
  let digits = 0
  let halves = 0
  let wide = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 0x80) {
      if (c >= 0x30 && c <= 0x39) digits++
      else ascii++
    } else if (c < 0x800) {
      halves++
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) i++
      wide += 2
    } else {
      wide++
    }
  }
  return Math.ceil(ascii / charsPerToken) + digits + Math.ceil(halves / 2) + wide
}

/** Settings of {@link estimateRowTokens}. */
export interface TokenBudgetOptions {
  /** Grid factor of the model (28 or 32). */
  factor: number
  /** ASCII characters per token (see {@link estimateTextTokens}). */
  charsPerToken: number
  /** Template tokens per turn: `<|im_start|>`, the role, `\n`, `<|im_end|>`, `\n` for Qwen's ChatML. */
  turnOverhead: number
  /** The system prompt the template adds when a row has none (qwen2_vl: "You are a helpful assistant."). */
  defaultSystem: string
  /** The image placeholder; each is replaced by the image's tokens, so its own text is not counted. */
  placeholder: string
}

/** A row's estimated tokens, by part. `total` is what is compared with `cutoffLen`. */
export interface RowTokenEstimate {
  template: number
  system: number
  prompt: number
  images: number
  chosen: number
  rejected: number
  /** `template + system + prompt + images + max(chosen, rejected)`: LLaMA-Factory's `cutoff_len` bounds the longer branch. */
  total: number
}

/**
 * Estimate the tokens of a row as LLaMA-Factory encodes it for DPO with a Qwen-VL template: the template's
 * per-turn tokens (system, every prompt turn, the answer), the system prompt (or the template's default),
 * the prompt text without placeholders, every image's {@link visualTokens} at its final size, and the longer
 * of chosen and rejected (`cutoff_len` bounds `max(prompt+chosen, prompt+rejected)`).
 *
 * @example
 * estimateRowTokens(sample, [{ width: 504, height: 504 }], { factor: 28, charsPerToken: 3, turnOverhead: 5, defaultSystem: 'You are a helpful assistant.', placeholder: '<image>' }).total
 */
export function estimateRowTokens(sample: PreferenceSample, imageSizes: readonly Size[], o: TokenBudgetOptions): RowTokenEstimate {
  const text = (s: string) => estimateTextTokens(o.placeholder ? s.split(o.placeholder).join('') : s, o.charsPerToken)
  const template = o.turnOverhead * (sample.messages.length + 2)
  const system = text(sample.system ?? o.defaultSystem)
  const prompt = sample.messages.reduce((n, t) => n + text(t.content), 0)
  const images = imageSizes.reduce((n, s) => n + visualTokens(s.width, s.height, o.factor), 0)
  const chosen = text(sample.chosen.content)
  const rejected = text(sample.rejected.content)
  return { template, system, prompt, images, chosen, rejected, total: template + system + prompt + images + Math.max(chosen, rejected) }
}
