/**
 * Small fixed-bucket histograms for the run report: JSON-serialisable, mergeable by adding counts.
 */

/**
 * Counts of values by bucket. Bucket `i` holds values `<= bounds[i]` (and above `bounds[i-1]`); the last
 * count (`counts[bounds.length]`) holds values above every bound. `n`, `sum`, `min`, `max` are exact.
 */
export interface Histogram {
  /** What is counted, e.g. `pixels` or `tokens`. */
  unit: string
  /** Inclusive upper bounds, ascending. */
  bounds: number[]
  /** `bounds.length + 1` counts; the last is the overflow bucket. */
  counts: number[]
  n: number
  sum: number
  /** `null` while empty. */
  min: number | null
  max: number | null
}

/**
 * An empty histogram.
 *
 * @example
 * const h = makeHistogram('tokens', [64, 256, 1024])
 */
export function makeHistogram(unit: string, bounds: number[]): Histogram {
  return { unit, bounds: [...bounds], counts: new Array<number>(bounds.length + 1).fill(0), n: 0, sum: 0, min: null, max: null }
}

/**
 * Count one value.
 *
 * @example
 * observe(h, 326) // h.counts[2] === 1
 */
export function observe(h: Histogram, value: number): void {
  let i = 0
  while (i < h.bounds.length && value > h.bounds[i]!) i++
  h.counts[i]!++
  h.n++
  h.sum += value
  h.min = h.min === null ? value : Math.min(h.min, value)
  h.max = h.max === null ? value : Math.max(h.max, value)
}

/**
 * Powers of two from `from` to `to` (both powers of two): bucket bounds for token counts.
 *
 * @example
 * powersOfTwo(16, 128) // [16, 32, 64, 128]
 */
export function powersOfTwo(from: number, to: number): number[] {
  const out: number[] = []
  for (let v = from; v <= to; v *= 2) out.push(v)
  return out
}
