/**
 * Training plots as small, self-contained SVG files (no script, no external resource, the same bytes for the
 * same data), and a `training.html` page that shows them with the summary table. Like LLaMA-Factory's
 * `plot_loss` PNGs, each plot draws the raw curve faintly and an EMA-smoothed curve over it, with
 * LLaMA-Factory's own smoothing weight.
 */
import { randomBytes } from 'node:crypto'
import { rename, unlink, writeFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import type { LogRecord, TrainingSummary } from './results.js'
import { formatNumber, orderedMetrics } from './results.js'

/**
 * LLaMA-Factory's `smooth()` (extras/ploting.py): an EMA whose weight grows with the number of points,
 * `1.8 * (sigmoid(0.05 * n) - 0.5)`, started at the first value.
 * @example
 * emaSmooth([1, 0, 0]) // [1, 0.9..., 0.8...]
 */
export function emaSmooth(values: readonly number[]): number[] {
  if (values.length === 0) return []
  const weight = 1.8 * (1 / (1 + Math.exp(-0.05 * values.length)) - 0.5)
  let last = values[0]!
  return values.map((v) => (last = last * weight + (1 - weight) * v))
}

/** One line of a plot. */
export interface PlotSeries {
  /** Legend label. */
  label: string
  points: readonly (readonly [number, number])[]
  color: string
  /** Draw the raw curve faintly plus its EMA (default true); false: one plain line with dots (eval). */
  smooth?: boolean
  /** A dashed line (eval curves). */
  dashed?: boolean
}

/** Options of {@link svgLinePlot}. */
export interface LinePlotOptions {
  title: string
  xLabel?: string
  yLabel?: string
  series: readonly PlotSeries[]
  width?: number
  height?: number
}

/**
 * Escape text for XML/HTML content and attribute values.
 * @example
 * escapeXml('a < b & "c"') // 'a &lt; b &amp; &quot;c&quot;'
 */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}

/** About `n` round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo]
  const raw = (hi - lo) / n
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag
  const ticks: number[] = []
  for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)))
  return ticks
}

function tickLabel(v: number): string {
  if (v === 0) return '0'
  const a = Math.abs(v)
  if (a >= 1e5 || a < 1e-3) return v.toExponential(1).replace('e+', 'e')
  return String(Number(v.toPrecision(4)))
}

const f2 = (v: number) => (Math.round(v * 100) / 100).toString()

/**
 * A line plot as a standalone SVG document. Each series' curves are `<path>` elements with `data-series`
 * (its label) and `data-kind` (`raw`, `ema` or `line`), one `M`/`L` command per point.
 * @example
 * const svg = svgLinePlot({ title: 'loss', xLabel: 'step', series: [{ label: 'train', color: '#1f77b4', points: [[10, 0.69], [20, 0.61]] }] })
 */
export function svgLinePlot(opts: LinePlotOptions): string {
  const W = opts.width ?? 640
  const H = opts.height ?? 360
  // The legend sits top right, one row per series, above the plot area.
  const rows = opts.series.filter((s) => s.points.length).length
  const m = { l: 64, r: 16, t: Math.max(40, 14 * rows + 18), b: 44 }
  const all = opts.series.flatMap((s) => s.points)
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))]
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))]
  if (!all.length) [x0, x1, y0, y1] = [0, 1, 0, 1]
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1]
  if (y1 === y0) [y0, y1] = [y0 - (Math.abs(y0) * 0.1 || 1), y1 + (Math.abs(y1) * 0.1 || 1)]
  const pad = (y1 - y0) * 0.05
  ;[y0, y1] = [y0 - pad, y1 + pad]
  const px = (x: number) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r)
  const py = (y: number) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b)
  const path = (pts: readonly (readonly [number, number])[]) => pts.map((p, i) => `${i ? 'L' : 'M'}${f2(px(p[0]))},${f2(py(p[1]))}`).join('')
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeXml(opts.title)}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="11">`,
    `<title>${escapeXml(opts.title)}</title>`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${m.l}" y="22" font-size="14" font-weight="600" fill="#222">${escapeXml(opts.title)}</text>`,
  ]
  for (const t of niceTicks(y0, y1)) {
    const y = f2(py(t))
    out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`)
    out.push(`<text x="${m.l - 6}" y="${y}" text-anchor="end" dominant-baseline="middle" fill="#555">${tickLabel(t)}</text>`)
  }
  for (const t of niceTicks(x0, x1)) {
    const x = f2(px(t))
    out.push(`<line x1="${x}" x2="${x}" y1="${H - m.b}" y2="${H - m.b + 4}" stroke="#888"/>`)
    out.push(`<text x="${x}" y="${H - m.b + 16}" text-anchor="middle" fill="#555">${tickLabel(t)}</text>`)
  }
  out.push(`<path d="M${m.l},${m.t}V${H - m.b}H${W - m.r}" fill="none" stroke="#888"/>`)
  if (opts.xLabel) out.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 8}" text-anchor="middle" fill="#333">${escapeXml(opts.xLabel)}</text>`)
  if (opts.yLabel) out.push(`<text transform="translate(14 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle" fill="#333">${escapeXml(opts.yLabel)}</text>`)
  for (const s of opts.series) {
    if (!s.points.length) continue
    const label = escapeXml(s.label)
    const dash = s.dashed ? ' stroke-dasharray="5 3"' : ''
    if (s.smooth ?? true) {
      const ema = emaSmooth(s.points.map((p) => p[1]))
      out.push(`<path data-series="${label}" data-kind="raw" d="${path(s.points)}" fill="none" stroke="${s.color}" stroke-opacity="0.3" stroke-width="1.25"${dash}/>`)
      out.push(`<path data-series="${label}" data-kind="ema" d="${path(s.points.map((p, i) => [p[0], ema[i]!] as const))}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>`)
    } else {
      out.push(`<path data-series="${label}" data-kind="line" d="${path(s.points)}" fill="none" stroke="${s.color}" stroke-width="1.5"${dash}/>`)
      for (const p of s.points) out.push(`<circle cx="${f2(px(p[0]))}" cy="${f2(py(p[1]))}" r="2.5" fill="${s.color}"/>`)
    }
  }
  // Legend, top right: one entry per series.
  const shown = opts.series.filter((s) => s.points.length)
  shown.forEach((s, i) => {
    const y = 14 + i * 14
    const x = W - m.r - 150
    out.push(`<line x1="${x}" x2="${x + 18}" y1="${y}" y2="${y}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`)
    out.push(`<text x="${x + 24}" y="${y}" dominant-baseline="middle" fill="#333">${escapeXml(s.label)}${(s.smooth ?? true) ? ' (EMA)' : ''}</text>`)
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}

/** One plot of a run. */
export interface TrainingPlot {
  /** File name in the output folder (`training_loss.svg`, ...). */
  file: string
  title: string
  svg: string
}

const BLUE = '#1f77b4'
const ORANGE = '#ff7f0e'
const GREEN = '#2ca02c'
const RED = '#d62728'
const PURPLE = '#9467bd'

function seriesOf(history: readonly LogRecord[], key: string): [number, number][] {
  return history.filter((h) => typeof h[key] === 'number').map((h) => [h.step, h[key]!] as [number, number])
}

/**
 * The plots of a run's log history: `training_loss.svg` (train loss, eval loss), `training_rewards.svg`
 * (rewards/chosen and rewards/rejected), `training_rewards_margins.svg`, `training_rewards_accuracies.svg`;
 * train curves with their EMA, eval curves dashed. A plot with no train data is left out.
 * @example
 * for (const p of trainingPlots(results.history)) await writeFile(join(outputDir, p.file), p.svg)
 */
export function trainingPlots(history: readonly LogRecord[]): TrainingPlot[] {
  const defs: { file: string; title: string; yLabel: string; series: { key: string; label: string; color: string }[] }[] = [
    { file: 'training_loss.svg', title: 'loss', yLabel: 'loss', series: [{ key: 'loss', label: 'train loss', color: BLUE }] },
    {
      file: 'training_rewards.svg',
      title: 'rewards: chosen and rejected',
      yLabel: 'reward',
      series: [
        { key: 'rewards/chosen', label: 'chosen', color: GREEN },
        { key: 'rewards/rejected', label: 'rejected', color: RED },
      ],
    },
    { file: 'training_rewards_margins.svg', title: 'rewards/margins', yLabel: 'chosen - rejected', series: [{ key: 'rewards/margins', label: 'margin', color: PURPLE }] },
    { file: 'training_rewards_accuracies.svg', title: 'rewards/accuracies', yLabel: 'accuracy', series: [{ key: 'rewards/accuracies', label: 'accuracy', color: ORANGE }] },
  ]
  const out: TrainingPlot[] = []
  for (const d of defs) {
    const series: PlotSeries[] = []
    for (const s of d.series) series.push({ label: s.label, color: s.color, points: seriesOf(history, s.key) })
    if (!series.some((s) => s.points.length)) continue
    for (const s of d.series) {
      const points = seriesOf(history, `eval_${s.key}`)
      if (points.length) series.push({ label: `eval ${s.label.replace(/^train /, '')}`, color: s.color, points, smooth: false, dashed: true })
    }
    out.push({ file: d.file, title: d.title, svg: svgLinePlot({ title: d.title, xLabel: 'step', yLabel: d.yLabel, series }) })
  }
  return out
}

/**
 * `training.html`: the summary table and every plot inline, in one self-contained file.
 * @example
 * const html = trainingHtml(trainingPlots(results.history), summarizeTraining(results), { title: 'saves/qwen2_vl-7b/lora/dpo' })
 */
export function trainingHtml(plots: readonly TrainingPlot[], summary: TrainingSummary, info: { title: string; lines?: readonly string[] }): string {
  const names = orderedMetrics([...Object.keys(summary.last), ...Object.keys(summary.eval)])
  const hasEval = Object.keys(summary.eval).length > 0
  const row = (cells: string[], tag = 'td') => `<tr>${cells.map((c, i) => `<${tag}${i ? ' class="n"' : ''}>${c}</${tag}>`).join('')}</tr>`
  const table = [
    '<table>',
    row(['metric', 'first', 'last', ...(hasEval ? ['eval'] : [])], 'th'),
    ...names.map((n) => row([escapeXml(n), formatNumber(summary.first[n]), formatNumber(summary.last[n]), ...(hasEval ? [formatNumber(summary.eval[n])] : [])])),
    '</table>',
  ]
  const results = Object.keys(summary.results).sort()
  const final = results.length ? ['<h2>Final results <small>(all_results.json)</small></h2>', '<table>', ...results.map((k) => row([escapeXml(k), formatNumber(summary.results[k])])), '</table>'] : []
  const step = `step ${summary.step}${summary.maxSteps ? ` of ${summary.maxSteps}` : ''}${summary.epoch !== undefined ? `, epoch ${formatNumber(summary.epoch)}` : ''}`
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>${escapeXml(`training: ${info.title}`)}</title>`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<style>body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;margin:24px auto;max-width:1320px;padding:0 16px}',
    'h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}small,.meta{color:#666}',
    'table{border-collapse:collapse}td,th{padding:3px 12px 3px 0;text-align:left;border-bottom:1px solid #eee}.n{text-align:right;font-variant-numeric:tabular-nums}',
    '.plots{display:flex;flex-wrap:wrap;gap:16px}.plots svg{max-width:100%;height:auto;border:1px solid #eee}</style>',
    '</head><body>',
    `<h1>Training: ${escapeXml(info.title)}</h1>`,
    `<p class="meta">${escapeXml(step)}; metrics from ${escapeXml(summary.source)}</p>`,
    ...(info.lines ?? []).map((l) => `<p class="meta">${escapeXml(l)}</p>`),
    '<h2>Metrics</h2>',
    ...(names.length ? table : ['<p>No metrics were logged.</p>']),
    ...final,
    '<h2>Plots <small>(faint: raw; solid: EMA-smoothed; dashed: eval)</small></h2>',
    '<div class="plots">',
    ...plots.map((p) => p.svg.trim()),
    '</div>',
    '</body></html>',
    '',
  ].join('\n')
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.prefpipe-tmp-${process.pid}-${randomBytes(4).toString('hex')}`)
  try {
    await writeFile(tmp, text)
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
}

/**
 * Write the plots and `training.html` into `outputDir` (each file under a temporary name, then renamed).
 * Returns their absolute paths.
 * @example
 * const { plots, html } = await writeTrainingReport(outputDir, results.history, summarizeTraining(results))
 */
export async function writeTrainingReport(
  outputDir: string,
  history: readonly LogRecord[],
  summary: TrainingSummary,
  info: { title?: string; lines?: readonly string[] } = {},
): Promise<{ plots: string[]; html: string }> {
  const plots = trainingPlots(history)
  for (const p of plots) await writeAtomic(join(outputDir, p.file), p.svg)
  const html = join(outputDir, 'training.html')
  await writeAtomic(html, trainingHtml(plots, summary, { title: info.title ?? outputDir, ...(info.lines ? { lines: info.lines } : {}) }))
  return { plots: plots.map((p) => join(outputDir, p.file)), html }
}
