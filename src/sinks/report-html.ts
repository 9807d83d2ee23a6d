/**
 * `report.html`: one self-contained page (inline CSS and SVG, no script) rendered from a {@link ReportJson}.
 * Every piece of data text goes through {@link escapeHtml}; the page's Content-Security-Policy allows no script
 * at all, as a second line of defence. Numbers a test reads carry `data-testid`s.
 */
import type { ReportJson } from './report.js'
import type { Distribution } from './report-stats.js'
import { escapeHtml, formatInt, histogramSvg } from './svg-charts.js'

/** A row of the sample gallery. `src` is the relative image path, or `null` when it may not be used in the page. */
export interface GalleryRow {
  split: 'train' | 'eval'
  /** 1-based line of the row in its JSONL file. */
  line: number
  conversations: { from: string; value: string }[]
  chosen: string
  rejected: string
  images: { path: string; src: string | null; width?: number; height?: number; tokens?: number }[]
}

/** A rejected row as listed in the page (from `rejects.jsonl`; `detail` already JSON text). */
export interface GalleryReject {
  id: string
  stage: string
  reason: string
  message: string
  detail?: string
}

/** The parts of the page that are not in `report.json`. */
export interface GalleryData {
  rows: GalleryRow[]
  rejects: GalleryReject[]
}

const MAX_TEXT = 1500
const MAX_IMAGES_SHOWN = 4

/**
 * The HTML of `report.html`: the same bytes for the same input (no dates, no timings, no absolute paths).
 * @example
 * const html = renderReportHtml(report, { rows, rejects }, REJECT_REASON_DESCRIPTIONS)
 */
export function renderReportHtml(report: ReportJson, gallery: GalleryData, descriptions: Readonly<Record<string, string>>): string {
  const s = report.summary
  const title = `prefpipe report: ${report.name}`
  const body = [
    header(report),
    '<main>',
    summary(report),
    stagesSection(report),
    rejectsSection(report),
    distributionsSection(report),
    samplesSection(report, gallery.rows),
    rejectedRowsSection(report, gallery.rejects, descriptions),
    '</main>',
    `<footer>Written by prefpipe ${esc(report.prefpipe.version)} from the files in this folder. Numbers are also in <code>report.json</code>, with the run's timings under <code>timings</code>. ${formatInt(s.kept)} rows kept of ${formatInt(s.rowsIn)} read.</footer>`,
  ]
  return [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'">`,
    `<title>${esc(title)}</title>`,
    `<style>${CSS}</style>`,
    '</head>',
    '<body>',
    ...body,
    '</body>',
    '</html>',
    '',
  ].join('\n')
}

function esc(text: string): string {
  return escapeHtml(text)
}

function header(report: ReportJson): string {
  const inputs = Array.isArray(report.inputs) ? report.inputs : report.inputs === null ? [] : [report.inputs]
  const inputText = inputs
    .map((i) => {
      if (i && typeof i === 'object' && !Array.isArray(i)) {
        const file = typeof i['file'] === 'string' ? i['file'] : typeof i['repo'] === 'string' ? i['repo'] : JSON.stringify(i)
        const sha = typeof i['sha256'] === 'string' ? ` <span class="muted mono" title="sha256 ${esc(i['sha256'])}">${esc(i['sha256'].slice(0, 12))}</span>` : ''
        return `<span class="mono">${esc(String(file))}</span>${sha}`
      }
      return `<span class="mono">${esc(JSON.stringify(i))}</span>`
    })
    .join(', ')
  const preset = typeof report.options['preset'] === 'string' ? ` · preset <span class="mono">${esc(report.options['preset'])}</span>` : ''
  return [
    '<header>',
    '<div class="wrap">',
    '<div class="eyebrow">prefpipe report</div>',
    `<h1 data-testid="dataset-name">${esc(report.name)}</h1>`,
    `<p class="sub">${inputText ? `from ${inputText}` : 'no inputs recorded'}${preset} · prefpipe ${esc(report.prefpipe.version)}</p>`,
    '<nav><a href="#summary">Summary</a><a href="#stages">Stages</a><a href="#rejects">Rejects</a><a href="#distributions">Distributions</a><a href="#samples">Samples</a><a href="#rejected-rows">Rejected rows</a></nav>',
    '</div>',
    '</header>',
  ].join('\n')
}

function card(label: string, value: number, testid: string, note = ''): string {
  return `<div class="card"><div class="label">${esc(label)}</div><div class="value" data-testid="${testid}">${formatInt(value)}</div>${note ? `<div class="note">${note}</div>` : ''}</div>`
}

function pct(part: number, whole: number): string {
  if (whole === 0) return '–'
  const p = (part / whole) * 100
  return `${p >= 10 || p === 0 ? p.toFixed(0) : p.toFixed(1)}%`
}

function summary(report: ReportJson): string {
  const s = report.summary
  const keptShare = s.rowsIn > 0 ? (s.kept / s.rowsIn) * 100 : 0
  const rejShare = s.rowsIn > 0 ? (s.rejected / s.rowsIn) * 100 : 0
  const splitText = report.splits.map((x) => `<span class="mono">${esc(x.file)}</span> ${formatInt(x.rows)}`).join(' · ')
  return [
    '<section id="summary">',
    '<h2>Summary</h2>',
    '<div class="cards">',
    card('Rows in', s.rowsIn, 'summary-rows-in', 'read by the source'),
    card('Kept', s.kept, 'summary-kept', `${pct(s.kept, s.rowsIn)} of rows in`),
    card('Rejected', s.rejected, 'summary-rejected', `${pct(s.rejected, s.rowsIn)} · see rejects.jsonl`),
    card('Train rows', s.train, 'summary-train', esc(report.splits.find((x) => x.split === 'train')?.dataset ?? '')),
    card('Eval rows', s.eval, 'summary-eval', esc(report.splits.find((x) => x.split === 'eval')?.dataset ?? 'no eval split')),
    card('Distinct images', s.distinctImages, 'summary-images', `${(s.imageBytes / 1e6).toFixed(1)} MB on disk`),
    card('Image uses', s.imageRefs, 'summary-image-refs', `${formatInt(report.images.reused)} images reused`),
    card('Visual tokens', s.visualTokens, 'summary-visual-tokens', 'Qwen2-VL, all image uses'),
    '</div>',
    `<div class="meter" role="img" aria-label="${esc(`${formatInt(s.kept)} kept, ${formatInt(s.rejected)} rejected`)}"><span class="kept" style="width:${keptShare.toFixed(2)}%"></span><span class="rej" style="width:${rejShare.toFixed(2)}%"></span></div>`,
    `<p class="muted small">Files: ${splitText || 'none'}</p>`,
    '</section>',
  ].join('\n')
}

function record(o: Record<string, number>): string {
  const entries = Object.entries(o)
  if (entries.length === 0) return '<span class="muted">–</span>'
  return entries.map(([k, v]) => `<span class="kv"><span class="mono">${esc(k)}</span> ${formatInt(v)}</span>`).join(' ')
}

function stagesSection(report: ReportJson): string {
  if (report.stages.length === 0) {
    return '<section id="stages"><h2>Stages</h2><p class="muted">No run report was given, so there are no stage counters.</p></section>'
  }
  const rows = report.stages.map((st, i) => {
    const dropped = Object.values(st.dropped).reduce((a, b) => a + b, 0)
    return [
      `<tr data-stage="${esc(st.name)}">`,
      `<td><span class="mono strong">${esc(st.name)}</span></td>`,
      `<td><span class="pill kind-${esc(st.kind)}">${esc(st.kind)}</span></td>`,
      `<td class="num" data-testid="stage-${i}-in">${formatInt(st.in)}</td>`,
      `<td class="num" data-testid="stage-${i}-out">${formatInt(st.out)}</td>`,
      `<td class="num" data-testid="stage-${i}-dropped">${formatInt(dropped)}</td>`,
      `<td class="small">${dropped > 0 ? record(st.dropped) : ''}${Object.keys(st.counters).length > 0 ? `${dropped > 0 ? '<br>' : ''}${record(st.counters)}` : dropped > 0 ? '' : '<span class="muted">–</span>'}</td>`,
      '</tr>',
    ].join('')
  })
  return [
    '<section id="stages">',
    '<h2>Stages</h2>',
    '<p class="muted small">In the order the rows flow. <em>in</em> and <em>out</em> are items; a sink writes rows and yields none. Drops are by reason code; counters are the stage\'s own.</p>',
    '<div class="table-wrap"><table>',
    '<thead><tr><th>Stage</th><th>Kind</th><th class="num">In</th><th class="num">Out</th><th class="num">Dropped</th><th>Drops and counters</th></tr></thead>',
    `<tbody>${rows.join('\n')}</tbody>`,
    '</table></div>',
    '</section>',
  ].join('\n')
}

function rejectsSection(report: ReportJson): string {
  const r = report.rejected
  if (r.total === 0) return '<section id="rejects"><h2>Rejects by reason</h2><p class="ok">No row was rejected.</p></section>'
  const max = Math.max(...r.reasons.map((x) => x.count))
  const rows = r.reasons.map(
    (x) =>
      `<tr data-reason="${esc(x.reason)}"><td><span class="mono strong">${esc(x.reason)}</span></td><td class="small mono">${esc(x.stages.join(', '))}</td>` +
      `<td class="num" data-testid="reject-count-${esc(x.reason)}">${formatInt(x.count)}</td>` +
      `<td class="barcell"><span class="hbar" style="width:${Math.max(2, Math.round((x.count / max) * 90))}px"></span><span class="small muted">${pct(x.count, r.total)}</span></td>` +
      `<td class="small">${x.description ? esc(x.description) : '<span class="muted">no description for this code</span>'}</td></tr>`,
  )
  return [
    '<section id="rejects">',
    `<h2>Rejects by reason <span class="count" data-testid="rejects-total">${formatInt(r.total)}</span></h2>`,
    '<div class="table-wrap"><table>',
    '<thead><tr><th>Reason</th><th>Stage</th><th class="num">Rows</th><th class="share">Share</th><th>What it means</th></tr></thead>',
    `<tbody>${rows.join('\n')}</tbody>`,
    '</table></div>',
    '</section>',
  ].join('\n')
}

function spread(d: Distribution, unit: string): string {
  if (!d.stats) return '<span class="muted">no data</span>'
  const u = unit ? ` ${unit}` : ''
  return `p50 <b>${formatInt(d.stats.p50)}</b> · p90 <b>${formatInt(d.stats.p90)}</b> · max <b>${formatInt(d.stats.max)}</b>${esc(u)}`
}

function chartCard(id: string, title: string, what: string, d: Distribution, counted: string, unit: string): string {
  return [
    `<figure class="chart-card" id="chart-${id}" data-testid="chart-${id}">`,
    `<figcaption><span class="strong">${esc(title)}</span><span class="muted small"> ${esc(what)}</span></figcaption>`,
    histogramSvg(d, { title: `${title}: ${what}`, counted, unit }),
    `<div class="small stats">${spread(d, unit)} <span class="muted">(n ${formatInt(d.count)})</span></div>`,
    '</figure>',
  ].join('')
}

function distributionsSection(report: ReportJson): string {
  const d = report.distributions
  const v = report.visualTokens
  const dims = report.images.dimensions
  const dimRows = dims
    .slice(0, 10)
    .map((x) => `<tr><td class="mono">${formatInt(x.width)} × ${formatInt(x.height)}</td><td class="num">${formatInt(x.images)}</td></tr>`)
    .join('')
  const formats = Object.entries(report.images.formats)
    .map(([k, n]) => `${esc(k)} ${formatInt(n)}`)
    .join(' · ')
  return [
    '<section id="distributions">',
    '<h2>Distributions</h2>',
    '<p class="muted small">Lengths are in characters (Unicode code points), per kept row; the prompt counts every turn of <code>conversations</code>. Image charts count each distinct image once.</p>',
    '<div class="charts">',
    chartCard('prompt-chars', 'Prompt length', 'characters per row', d.promptChars, 'rows', 'chars'),
    chartCard('chosen-chars', 'Chosen answer', 'characters per row', d.chosenChars, 'rows', 'chars'),
    chartCard('rejected-chars', 'Rejected answer', 'characters per row', d.rejectedChars, 'rows', 'chars'),
    chartCard('turns', 'Prompt turns', 'per row, without a system turn', d.turnsPerRow, 'rows', ''),
    chartCard('images-per-row', 'Images', 'per row', d.imagesPerRow, 'rows', ''),
    chartCard('image-pixels', 'Image size', 'pixels per image', d.imagePixels, 'images', 'px'),
    chartCard('tokens-per-image', 'Visual tokens', 'per image (Qwen2-VL)', d.visualTokensPerImage, 'images', 'tokens'),
    chartCard('tokens-per-row', 'Visual tokens', 'per row (Qwen2-VL)', d.visualTokensPerRow, 'rows', 'tokens'),
    chartCard('rows-per-image', 'Image reuse', 'rows using each image', d.rowsPerImage, 'images', 'rows'),
    '</div>',
    '<div class="two">',
    '<div>',
    '<h3>Most common image sizes</h3>',
    dims.length > 0
      ? `<div class="table-wrap"><table class="compact"><thead><tr><th>Width × height</th><th class="num">Images</th></tr></thead><tbody>${dimRows}</tbody></table></div>`
      : '<p class="muted">No images.</p>',
    `<p class="small muted">Formats: ${formats || '–'}${report.images.unreadable > 0 ? ` · <span class="warn">${formatInt(report.images.unreadable)} unreadable</span>` : ''}</p>`,
    '</div>',
    '<div>',
    '<h3>How visual tokens are counted</h3>',
    `<p class="small">Each image costs <code>(h′/${v.factor})·(w′/${v.factor}) + 2</code> tokens in a Qwen2-VL prompt, where <code>w′×h′</code> is its size after LLaMA-Factory shrinks it to <code>image_max_pixels</code> = ${formatInt(v.imageMaxPixels)} (and grows it to <code>image_min_pixels</code> = ${formatInt(v.imageMinPixels)}), then the processor rounds each side to a multiple of ${v.factor} within [${formatInt(v.minPixels)}, ${formatInt(v.maxPixels)}] pixels. A row's visual tokens plus its text must fit in <code>cutoff_len</code>. Total over all image uses: <b data-testid="visual-tokens-total">${formatInt(v.total)}</b>.</p>`,
    '</div>',
    '</div>',
    '</section>',
  ].join('\n')
}

/** Escaped text, cut at {@link MAX_TEXT} code points, with `<image>` placeholders marked. */
function textBlock(text: string): string {
  const cps = [...text]
  const cut = cps.length > MAX_TEXT
  const shown = cut ? cps.slice(0, MAX_TEXT).join('') : text
  let html = esc(shown).replace(/&lt;(image|video|audio)&gt;/g, '<span class="ph">&lt;$1&gt;</span>')
  if (cut) html += `<span class="more"> … ${formatInt(cps.length - MAX_TEXT)} more characters</span>`
  return html
}

const ROLE_NAMES: Record<string, string> = { human: 'User', gpt: 'Assistant', system: 'System', observation: 'Observation', function_call: 'Function call' }

function sampleCard(row: GalleryRow, index: number): string {
  const shown = row.images.slice(0, MAX_IMAGES_SHOWN)
  const figs = shown.map((img, k) => {
    const caption = img.width && img.height ? `${formatInt(img.width)}×${formatInt(img.height)} · ${formatInt(img.tokens ?? 0)} tokens` : 'size unknown'
    const pic = img.src
      ? `<img src="${esc(img.src)}" alt="${esc(`image ${k + 1} of ${row.split} row ${row.line}`)}"${img.width && img.height ? ` width="${img.width}" height="${img.height}"` : ''}>`
      : `<div class="noimg mono small">${esc(img.path)}</div>`
    return `<figure>${pic}<figcaption class="small muted">${caption}</figcaption></figure>`
  })
  if (row.images.length > shown.length) figs.push(`<p class="small muted">+ ${row.images.length - shown.length} more images</p>`)
  const turns = row.conversations.map(
    (t) => `<div class="turn role-${esc(t.from)}"><div class="role">${esc(ROLE_NAMES[t.from] ?? t.from)}</div><div class="text">${textBlock(t.value)}</div></div>`,
  )
  return [
    `<article class="sample" data-testid="sample" data-split="${row.split}" data-line="${row.line}">`,
    `<div class="sample-head"><span class="pill">${esc(row.split)}</span> <span class="mono small">line ${formatInt(row.line)}</span><span class="muted small"> · #${index + 1}</span></div>`,
    '<div class="sample-body">',
    `<div class="pics">${figs.length > 0 ? figs.join('') : '<div class="noimg small muted">no image</div>'}</div>`,
    '<div class="texts">',
    turns.join(''),
    '<div class="answers">',
    `<div class="answer chosen"><div class="role">Chosen</div><div class="text">${textBlock(row.chosen)}</div></div>`,
    `<div class="answer rejected"><div class="role">Rejected</div><div class="text">${textBlock(row.rejected)}</div></div>`,
    '</div>',
    '</div>',
    '</div>',
    '</article>',
  ].join('')
}

function samplesSection(report: ReportJson, rows: GalleryRow[]): string {
  if (rows.length === 0) return '<section id="samples"><h2>Sample rows</h2><p class="muted">No rows were kept.</p></section>'
  return [
    '<section id="samples">',
    `<h2>Sample rows <span class="count" data-testid="samples-shown">${formatInt(rows.length)}</span></h2>`,
    `<p class="muted small">${formatInt(rows.length)} of ${formatInt(report.summary.kept)} kept rows, evenly spaced through the files, exactly as LLaMA-Factory will read them.</p>`,
    '<div class="samples">',
    rows.map((r, i) => sampleCard(r, i)).join('\n'),
    '</div>',
    '</section>',
  ].join('\n')
}

function rejectedRowsSection(report: ReportJson, rejects: GalleryReject[], descriptions: Readonly<Record<string, string>>): string {
  if (rejects.length === 0) return '<section id="rejected-rows"><h2>Rejected rows</h2><p class="ok">None.</p></section>'
  const items = rejects.map(
    (r) =>
      `<article class="reject" data-testid="rejected-row" data-reason="${esc(r.reason)}">` +
      `<div class="reject-head"><span class="pill warnpill" title="${esc(descriptions[r.reason] ?? '')}">${esc(r.reason)}</span><span class="muted small">${esc(r.stage)}</span></div>` +
      `<div class="mono strong small reject-id">${esc(r.id)}</div>` +
      `<div class="text">${textBlock(r.message)}</div>` +
      (r.detail ? `<div class="detail mono small">${esc(r.detail.length > 400 ? `${r.detail.slice(0, 400)}…` : r.detail)}</div>` : '') +
      '</article>',
  )
  return [
    '<section id="rejected-rows">',
    `<h2>Rejected rows <span class="count" data-testid="rejected-rows-shown">${formatInt(rejects.length)}</span></h2>`,
    `<p class="muted small">${formatInt(rejects.length)} of ${formatInt(report.rejected.total)} rejects, a few of each reason; all of them are in <code>rejects.jsonl</code>. Their images are not stored in the folder.</p>`,
    '<div class="rejects">',
    items.join('\n'),
    '</div>',
    '</section>',
  ].join('\n')
}

const CSS = `
:root{--bg:#f5f6f8;--card:#fff;--line:#e2e5ea;--text:#1d2330;--muted:#667085;--accent:#3563e9;--accent-soft:#e8eefc;--ok:#1e8e5a;--ok-soft:#e7f6ee;--bad:#c8372d;--bad-soft:#fcecea;--warn:#b7600b}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--text);font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
.wrap,main,footer{max-width:1180px;margin:0 auto;padding:0 24px}
header{background:#141a29;color:#fff;padding:22px 0 0}
header .eyebrow{text-transform:uppercase;letter-spacing:.08em;font-size:11px;color:#9aa7c7}
header h1{margin:2px 0 4px;font-size:26px;font-weight:650}
header .sub{margin:0 0 14px;color:#c5cde0}
header .muted{color:#8d99b8}
nav{display:flex;gap:4px;flex-wrap:wrap}
nav a{color:#c5cde0;text-decoration:none;padding:8px 12px;border-radius:8px 8px 0 0;font-size:13px}
nav a:hover{background:#1f2740;color:#fff}
main{padding-top:8px;padding-bottom:24px}
section{margin:26px 0}
h2{font-size:18px;margin:0 0 12px;font-weight:650;display:flex;align-items:center;gap:8px}
h3{font-size:14px;margin:16px 0 8px}
.count{font-size:12px;font-weight:600;background:var(--accent-soft);color:var(--accent);border-radius:999px;padding:1px 9px}
.muted{color:var(--muted)}
.small{font-size:12px}
.strong{font-weight:600}
.mono,code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:.92em}
code{background:#eef0f4;border-radius:4px;padding:0 4px}
.ok{color:var(--ok)}
.warn{color:var(--warn)}
.cards{display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px}
.card .label{font-size:12px;color:var(--muted)}
.card .value{font-size:26px;font-weight:650;font-variant-numeric:tabular-nums;line-height:1.25}
.card .note{font-size:11.5px;color:var(--muted);white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.meter{display:flex;height:8px;border-radius:999px;overflow:hidden;background:var(--line);margin:14px 0 6px}
.meter .kept{background:var(--ok)}
.meter .rej{background:var(--bad)}
.table-wrap{overflow-x:auto;background:var(--card);border:1px solid var(--line);border-radius:10px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:8px 12px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:600;background:#fafbfc}
tbody tr:last-child td{border-bottom:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.compact td,table.compact th{padding:5px 12px}
th.share{width:150px}
td.barcell{white-space:nowrap}
.hbar{display:inline-block;height:8px;background:var(--bad);opacity:.75;border-radius:4px;margin-right:6px;vertical-align:middle}
.kv{display:inline-block;margin:0 10px 2px 0;white-space:nowrap}
.pill{display:inline-block;font-size:11px;font-weight:600;border-radius:999px;padding:1px 8px;background:#eef0f4;color:#3b4254}
.kind-source{background:#e6f4ff;color:#0b5cad}
.kind-transform{background:#f1ecfe;color:#5b3cc4}
.kind-sink{background:var(--ok-soft);color:var(--ok)}
.kind-after{background:#fff4e0;color:var(--warn)}
.warnpill{background:var(--bad-soft);color:var(--bad)}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:12px}
.chart-card{margin:0;background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px 10px}
.chart-card figcaption{margin-bottom:4px}
.chart{display:block;width:100%;height:auto;max-width:340px}
.chart .bar{fill:var(--accent);opacity:.85}
.chart .bar:hover{opacity:1}
.chart .axis{stroke:#9aa3b2;stroke-width:1}
.chart .grid{stroke:#e7e9ee;stroke-width:1}
.chart .tick{fill:var(--muted);font-size:10px;font-family:inherit}
.stats{margin-top:2px}
.two{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1.4fr);gap:24px;align-items:start}
.samples{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:14px}
.sample{background:var(--card);border:1px solid var(--line);border-radius:10px;overflow:hidden}
.sample-head{padding:8px 14px;border-bottom:1px solid var(--line);background:#fafbfc}
.sample-body{display:grid;grid-template-columns:200px minmax(0,1fr);gap:14px;padding:12px 14px}
.pics figure{margin:0 0 10px}
.pics img{display:block;max-width:100%;height:auto;max-height:220px;object-fit:contain;border-radius:6px;border:1px solid var(--line);background:#f0f2f5}
.pics figcaption{margin-top:3px}
.noimg{display:flex;align-items:center;justify-content:center;min-height:80px;border:1px dashed var(--line);border-radius:6px;padding:8px;overflow-wrap:anywhere;color:var(--muted)}
.turn{margin-bottom:10px}
.role{font-size:11px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);font-weight:600;margin-bottom:2px}
.text{white-space:pre-wrap;overflow-wrap:anywhere}
.turn.role-gpt .text{color:#3b4254}
.answers{display:grid;gap:8px}
.answer{border-radius:8px;padding:8px 10px;border-left:3px solid}
.answer.chosen{background:var(--ok-soft);border-color:var(--ok)}
.answer.chosen .role{color:var(--ok)}
.answer.rejected{background:var(--bad-soft);border-color:var(--bad)}
.answer.rejected .role{color:var(--bad)}
.ph{background:var(--accent-soft);color:var(--accent);border-radius:4px;padding:0 3px;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.88em}
.more{color:var(--muted);font-style:italic}
.rejects{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:10px}
.reject{background:var(--card);border:1px solid var(--line);border-left:3px solid var(--bad);border-radius:8px;padding:10px 12px}
.reject-head{display:flex;justify-content:space-between;align-items:center;gap:8px;margin-bottom:4px}
.reject-id{margin-bottom:4px;overflow-wrap:anywhere}
.reject .text{font-size:13px}
.reject .detail{margin-top:6px;color:var(--muted);overflow-wrap:anywhere}
footer{color:var(--muted);font-size:12px;padding-top:8px;padding-bottom:32px;border-top:1px solid var(--line)}
@media (max-width:760px){.cards{grid-template-columns:repeat(2,minmax(0,1fr))}.samples,.rejects,.charts{grid-template-columns:minmax(0,1fr)}.sample-body{grid-template-columns:1fr}.two{grid-template-columns:1fr}}
`
  .trim()
  .replace(/\n/g, '')
