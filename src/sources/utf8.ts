import type { Reject } from '../record.js'

/**
 * Strict UTF-8 for the sources: text that is not valid UTF-8 (a Latin-1 or cp1252 export) rejects its row with
 * `text_not_utf8` instead of reaching the output as U+FFFD replacement characters (mojibake written silently).
 */

/** The reason code of a row whose text is not valid UTF-8. */
export const TEXT_NOT_UTF8 = 'text_not_utf8'

/**
 * The reject of a row whose value at `path` (`chosen.value`, `line 3`) is not UTF-8: names the first bad byte.
 * @example
 * ctx.reject(notUtf8Reject('data.jsonl#3', { path: 'line 4', bytes }))
 */
export function notUtf8Reject(id: string, bad: { path: string; bytes: Uint8Array }): Reject {
  const offset = firstInvalidUtf8(bad.bytes)
  const head = Buffer.from(bad.bytes.subarray(offset, offset + 8)).toString('hex')
  return {
    id,
    reason: TEXT_NOT_UTF8,
    message: `${bad.path} is not valid UTF-8 (bad bytes ${head} at byte ${offset}); the file was written in another encoding (Latin-1, cp1252?). Re-export it as UTF-8, or drop the row`,
    detail: { path: bad.path, offset, head },
  }
}

/**
 * Index of the first byte that breaks UTF-8 (a bad lead byte, a missing continuation, an overlong or surrogate
 * form), or the length when all of it is valid.
 * @example
 * firstInvalidUtf8(Buffer.from([0x63, 0x61, 0x66, 0xe9])) // 3
 */
export function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0
  while (i < b.length) {
    const c = b[i]!
    if (c < 0x80) {
      i++
      continue
    }
    const n = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1
    if (n < 0 || i + n >= b.length) return i
    const c1 = b[i + 1]!
    const lo = c === 0xe0 ? 0xa0 : c === 0xf0 ? 0x90 : 0x80
    const hi = c === 0xed ? 0x9f : c === 0xf4 ? 0x8f : 0xbf
    if (c1 < lo || c1 > hi) return i
    for (let k = 2; k <= n; k++) if ((b[i + k]! & 0xc0) !== 0x80) return i
    i += n + 1
  }
  return b.length
}
