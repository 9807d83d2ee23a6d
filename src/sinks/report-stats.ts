/**
 * Exact, deterministic distributions for the run report: a {@link Tally} counts integer values (memory grows
 * with the number of distinct values, not with the number of rows), and {@link distribution} turns it into
 * percentiles and a histogram with "nice" bucket edges.
 */

/** One histogram bucket: integers `from` (inclusive) to `to` (exclusive). */
export interface HistogramBucket {
  from: number
  to: number
  count: number
}

/** Summary statistics of a distribution (nearest-rank percentiles, so every value is one that occurred). */
export interface DistributionStats {
  min: number
  p10: number
  p25: number
  p50: number
  p75: number
  p90: number
  p99: number
  max: number
  /** Rounded to 2 decimals. */
  mean: number
}

/**
 * A distribution of integer values: how many, their sum, percentiles (`null` when there are none) and a
 * histogram of at most 20 equal-width buckets whose width is 1, 2 or 5 times a power of ten.
 */
export interface Distribution {
  count: number
  sum: number
  stats: DistributionStats | null
  buckets: HistogramBucket[]
}

/**
 * Counts of integer values.
 * @example
 * const t = new Tally()
 * t.add(3); t.add(3); t.add(10)
 * distribution(t).stats?.p50 // 3
 */
export class Tally {
  private readonly counts = new Map<number, number>()
  count = 0
  sum = 0

  /** Count `value` (an integer; others are rounded) `n` times. */
  add(value: number, n = 1): void {
    const v = Math.round(value)
    this.counts.set(v, (this.counts.get(v) ?? 0) + n)
    this.count += n
    this.sum += v * n
  }

  /** `[value, count]` pairs, smallest value first. */
  entries(): [number, number][] {
    return [...this.counts.entries()].sort((a, b) => a[0] - b[0])
  }
}

const MAX_BUCKETS = 20

/**
 * Percentiles and histogram of a {@link Tally}.
 * @example
 * const t = new Tally()
 * for (const v of [1, 2, 3, 4, 100]) t.add(v)
 * distribution(t) // { count: 5, sum: 110, stats: { min: 1, p50: 3, max: 100, mean: 22, ... }, buckets: [{ from: 0, to: 5, count: 4 }, ...] }
 */
export function distribution(tally: Tally): Distribution {
  const entries = tally.entries()
  if (entries.length === 0) return { count: 0, sum: 0, stats: null, buckets: [] }
  const n = tally.count
  const at = (p: number): number => {
    const rank = Math.max(1, Math.ceil((p / 100) * n))
    let seen = 0
    for (const [v, c] of entries) {
      seen += c
      if (seen >= rank) return v
    }
    return entries[entries.length - 1]![0]
  }
  const min = entries[0]![0]
  const max = entries[entries.length - 1]![0]
  const stats: DistributionStats = {
    min,
    p10: at(10),
    p25: at(25),
    p50: at(50),
    p75: at(75),
    p90: at(90),
    p99: at(99),
    max,
    mean: Math.round((tally.sum / n) * 100) / 100,
  }
  const width = bucketWidth(min, max)
  const start = Math.floor(min / width) * width
  const buckets: HistogramBucket[] = []
  for (let from = start; from <= max; from += width) buckets.push({ from, to: from + width, count: 0 })
  for (const [v, c] of entries) buckets[Math.floor((v - start) / width)]!.count += c
  return { count: n, sum: tally.sum, stats, buckets }
}

/** The smallest width of 1, 2 or 5 × 10^k that covers `min..max` in at most {@link MAX_BUCKETS} buckets. */
function bucketWidth(min: number, max: number): number {
  for (let pow = 1; ; pow *= 10) {
    for (const m of [1, 2, 5]) {
      const w = m * pow
      const start = Math.floor(min / w) * w
      if (Math.floor((max - start) / w) + 1 <= MAX_BUCKETS) return w
    }
  }
}

/**
 * Python's `round()` of `a / b` for integers (ties to even), exactly.
 * @example
 * roundHalfEven(70, 28) // 2 (70 / 28 = 2.5)
 */
export function roundHalfEven(a: number, b: number): number {
  const q = Math.floor(a / b)
  const r = a - q * b
  if (2 * r > b) return q + 1
  if (2 * r < b) return q
  return q % 2 === 0 ? q : q + 1
}
