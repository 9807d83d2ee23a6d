/**
 * Small inline SVG charts for `report.html`: no script, no external resource, the same bytes for the same
 * data. Colours come from CSS classes (`.bar`, `.axis`, `.grid`, `.tick`), so the page's stylesheet styles them.
 */
import type { Distribution } from './report-stats.js'

/**
 * Escape text for HTML (element content and quoted attribute values alike).
 * @example
 * escapeHtml('<script>alert(1)</script>') // '&lt;script&gt;alert(1)&lt;/script&gt;'
 */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : '&#39;'))
}

/**
 * An integer with thousands separators, the same in every locale.
 * @example
 * formatInt(1234567) // '1,234,567'
 */
export function formatInt(n: number): string {
  const s = String(Math.abs(Math.round(n))).replace(/\B(?=(\d{3})+(?!\d))/g, ',')
  return n < 0 ? `-${s}` : s
}

/**
 * A short form of a number for axis labels: `950`, `1.2k`, `35k`, `1.5M`, `2G`.
 * @example
 * formatCompact(1500) // '1.5k'
 */
export function formatCompact(n: number): string {
  const abs = Math.abs(n)
  const units: [number, string][] = [
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'k'],
  ]
  for (const [size, unit] of units) {
    if (abs >= size) {
      const v = n / size
      const text = Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2)
      return `${text.includes('.') ? text.replace(/\.?0+$/, '') : text}${unit}`
    }
  }
  return String(Math.round(n * 100) / 100)
}

/** Options of {@link histogramSvg}. */
export interface HistogramSvgOptions {
  /** What is counted, plural (`rows`, `images`): bar tooltips say "12 rows". */
  counted: string
  /** Unit of the values (`chars`, `px`, `tokens`), shown in tooltips; empty for plain counts. */
  unit?: string
  /** Accessible name of the chart. */
  title: string
  width?: number
  height?: number
}

/**
 * An SVG bar chart of a {@link Distribution}'s histogram. Buckets of width 1 are labelled with their value
 * (when there are at most 12); wider ones get edge labels at the start, middle and end of the axis. Each bar
 * has a `<title>` tooltip (`100–199 chars: 12 rows`).
 * @example
 * histogramSvg(distribution(tally), { title: 'Prompt length', counted: 'rows', unit: 'chars' }) // '<svg ...>...</svg>'
 */
export function histogramSvg(dist: Distribution, opts: HistogramSvgOptions): string {
  const W = opts.width ?? 340
  const H = opts.height ?? 150
  const left = 40
  const right = 10
  const top = 10
  const bottom = 24
  const plotW = W - left - right
  const plotH = H - top - bottom
  const head = `<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeHtml(opts.title)}">`
  const buckets = dist.buckets
  if (buckets.length === 0) {
    return `${head}<text class="tick" x="${W / 2}" y="${H / 2}" text-anchor="middle">no data</text></svg>`
  }
  const maxCount = Math.max(...buckets.map((b) => b.count))
  const yMax = niceCeil(maxCount)
  const parts: string[] = [head]
  // Grid lines and y labels at 0, half and the top.
  for (const f of [0, 0.5, 1]) {
    const y = top + plotH - f * plotH
    const value = yMax * f
    parts.push(`<line class="${f === 0 ? 'axis' : 'grid'}" x1="${left}" x2="${W - right}" y1="${fx(y)}" y2="${fx(y)}"/>`)
    if (f === 0 || Number.isInteger(value)) {
      parts.push(`<text class="tick" x="${left - 5}" y="${fx(y + 3.5)}" text-anchor="end">${escapeHtml(formatCompact(value))}</text>`)
    }
  }
  const step = plotW / buckets.length
  const gap = buckets.length > 40 ? 0 : Math.min(2, step * 0.15)
  const unit = opts.unit ? ` ${opts.unit}` : ''
  const unitWidth = buckets[0]!.to - buckets[0]!.from === 1
  // Few wide categories (1, 2, 3 images per row) get slim bars centred on their label, not slabs.
  const barW = unitWidth ? Math.min(step - gap, 36) : step - gap
  buckets.forEach((b, i) => {
    const h = b.count === 0 ? 0 : Math.max(1, (b.count / yMax) * plotH)
    const x = left + i * step + (step - barW) / 2
    const range = unitWidth ? `${formatInt(b.from)}` : `${formatInt(b.from)}–${formatInt(b.to - 1)}`
    const tip = `${range}${unit}: ${formatInt(b.count)} ${opts.counted}`
    parts.push(
      `<rect class="bar" x="${fx(x)}" y="${fx(top + plotH - h)}" width="${fx(Math.max(0.5, barW))}" height="${fx(h)}"><title>${escapeHtml(tip)}</title></rect>`,
    )
  })
  const labelY = fx(top + plotH + 15)
  if (unitWidth && buckets.length <= 12) {
    buckets.forEach((b, i) => {
      parts.push(`<text class="tick" x="${fx(left + (i + 0.5) * step)}" y="${labelY}" text-anchor="middle">${escapeHtml(formatCompact(b.from))}</text>`)
    })
  } else {
    const edges = [0, Math.floor(buckets.length / 2), buckets.length]
    for (const e of edges) {
      const value = e === buckets.length ? buckets[e - 1]!.to : buckets[e]!.from
      const anchor = e === 0 ? 'start' : e === buckets.length ? 'end' : 'middle'
      parts.push(`<text class="tick" x="${fx(left + e * step)}" y="${labelY}" text-anchor="${anchor}">${escapeHtml(formatCompact(value))}</text>`)
    }
  }
  parts.push('</svg>')
  return parts.join('')
}

/** The smallest 1, 2 or 5 × 10^k at least `n` (at least 1). */
function niceCeil(n: number): number {
  if (n <= 1) return 1
  for (let pow = 1; ; pow *= 10) {
    for (const m of [1, 2, 5]) if (m * pow >= n) return m * pow
  }
}

/** A coordinate with at most 2 decimals, without trailing zeros (stable text). */
function fx(n: number): string {
  return String(Math.round(n * 100) / 100)
}
