import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { chromium, type Browser, type Page } from 'playwright-core'
import sharp from 'sharp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RunReport } from '../../src/pipeline/types.js'
import { prepareRlhfV } from '../../src/presets/rlhf-v.js'
import type { LlamaFactoryManifest, ManifestJson } from '../../src/sinks/llamafactory.js'
import { Tally, distribution, roundHalfEven } from '../../src/sinks/report-stats.js'
import { formatSummaryTable, qwen2VlVisualTokens, writeReport, type ReportJson } from '../../src/sinks/report.js'
import { escapeHtml, formatCompact, formatInt } from '../../src/sinks/svg-charts.js'
import { ROOT, SAMPLE } from '../helpers.js'

const CHROMIUM = '/usr/bin/chromium'
// Without the networking flags Chromium stalls on a closed network (component updates, sync, ...).
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
const ARTIFACTS = join(ROOT, 'test-artifacts')

const XSS_PROMPT = '<image><script>alert(1)</script> & <img src=x onerror="window.__pwned=1">'

describe('qwen2VlVisualTokens', () => {
  it('follows LLaMA-Factory shrink and the processor rounding', () => {
    // The example YAML's budget: 512x512 -> 504x504 -> 18*18 + 2.
    expect(qwen2VlVisualTokens(512, 512, { imageMaxPixels: 262144 })).toBe(326)
    expect(qwen2VlVisualTokens(640, 480)).toBe(17 * 23 + 2)
    // Over image_max_pixels (768^2): shrunk to 886x665 (int() truncation), then 896x672.
    expect(qwen2VlVisualTokens(4000, 3000)).toBe(32 * 24 + 2)
    expect(qwen2VlVisualTokens(1000, 1000)).toBe(27 * 27 + 2)
    // Python round() ties to even: 70/28 = 2.5 -> 2, so 56x56 (Math.round would give 84x84, 11 tokens).
    expect(qwen2VlVisualTokens(70, 70)).toBe(6)
    // Tiny: grown to 32x32 (image_min_pixels), then raised to min_pixels 3136 = 56x56.
    expect(qwen2VlVisualTokens(10, 10)).toBe(6)
    // A thin strip: short side raised to 28.
    expect(qwen2VlVisualTokens(5000, 10)).toBe(179 + 2)
    // Qwen3-VL's factor 32.
    expect(qwen2VlVisualTokens(512, 512, { factor: 32, imageMaxPixels: 262144 })).toBe(16 * 16 + 2)
  })

  it('rounds ties to even exactly', () => {
    expect([14, 42, 70, 98].map((n) => roundHalfEven(n, 28))).toEqual([0, 2, 2, 4])
    expect(roundHalfEven(29, 28)).toBe(1)
  })
})

describe('distribution', () => {
  it('gives nearest-rank percentiles, the mean and nice buckets', () => {
    const t = new Tally()
    for (const v of [1, 2, 3, 4, 100]) t.add(v)
    const d = distribution(t)
    expect(d.count).toBe(5)
    expect(d.sum).toBe(110)
    expect(d.stats).toEqual({ min: 1, p10: 1, p25: 2, p50: 3, p75: 4, p90: 100, p99: 100, max: 100, mean: 22 })
    expect(d.buckets).toHaveLength(11)
    expect(d.buckets[0]).toEqual({ from: 0, to: 10, count: 4 })
    expect(d.buckets[10]).toEqual({ from: 100, to: 110, count: 1 })
    expect(d.buckets.reduce((n, b) => n + b.count, 0)).toBe(5)
  })

  it('uses width-1 buckets for small ranges and handles no data', () => {
    const t = new Tally()
    t.add(1, 3)
    t.add(3)
    expect(distribution(t).buckets).toEqual([
      { from: 1, to: 2, count: 3 },
      { from: 2, to: 3, count: 0 },
      { from: 3, to: 4, count: 1 },
    ])
    expect(distribution(new Tally())).toEqual({ count: 0, sum: 0, stats: null, buckets: [] })
  })

  it('formats numbers the same in every locale', () => {
    expect(formatInt(1234567)).toBe('1,234,567')
    expect(formatCompact(180000)).toBe('180k')
    expect(formatCompact(1500)).toBe('1.5k')
    expect(formatCompact(2_000_000)).toBe('2M')
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;')
  })
})

// ---------------------------------------------------------------------------------------------------------------
// A small folder written by hand: known lengths, shared images, an eval split, hostile text
// ---------------------------------------------------------------------------------------------------------------

async function png(width: number, height: number, rgb: [number, number, number]): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } })
    .png()
    .toBuffer()
}

const turn = (from: string, value: string) => ({ from, value })

async function syntheticFolder(dir: string): Promise<{ manifest: ManifestJson; run: RunReport }> {
  const imgs = {
    a: 'images/aa/a.png', // 100x50
    b: 'images/bb/b.png', // 640x480
    c: 'images/cc/c.jpg', // 1000x1000
  }
  for (const p of Object.values(imgs)) await mkdir(join(dir, p, '..'), { recursive: true })
  await writeFile(join(dir, imgs.a), await png(100, 50, [200, 40, 40]))
  await writeFile(join(dir, imgs.b), await png(640, 480, [40, 160, 60]))
  await writeFile(join(dir, imgs.c), await sharp({ create: { width: 1000, height: 1000, channels: 3, background: '#3050c0' } }).jpeg().toBuffer())
  const train = [
    // prompt 16 + 20 = 36 chars; the system turn is not a prompt turn
    { conversations: [turn('system', 'You are helpful.'), turn('human', '<image>What is this?')], chosen: turn('gpt', 'A cat.'), rejected: turn('gpt', 'A dog.'), images: [imgs.a] },
    // an emoji is one character: 7 + 7 + 8 + 1 = 23
    { conversations: [turn('human', '<image><image>Compare 😀')], chosen: turn('gpt', 'Same.'), rejected: turn('gpt', 'Different.'), images: [imgs.a, imgs.b] },
    // 2 + 5 + 16 = 23, three turns
    { conversations: [turn('human', 'Hi'), turn('gpt', 'Hello'), turn('human', '<image>And this?')], chosen: turn('gpt', 'x'), rejected: turn('gpt', 'yy'), images: [imgs.c] },
  ]
  const evalRows = [
    { conversations: [turn('human', XSS_PROMPT)], chosen: turn('gpt', '</div><b>bold?</b>'), rejected: turn('gpt', `'single' "double"`), images: [imgs.a] },
  ]
  const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n'
  await writeFile(join(dir, 'syn_train.jsonl'), jsonl(train))
  await writeFile(join(dir, 'syn_eval.jsonl'), jsonl(evalRows))
  await writeFile(
    join(dir, 'rejects.jsonl'),
    jsonl([
      { id: 'mem#1', stage: 'validate', reason: 'prompt_empty', message: 'the prompt has no turns' },
      { id: 'mem#4', stage: 'validate', reason: 'prompt_empty', message: 'again' },
      { id: 'mem#6<script>alert(3)</script>', stage: 'custom', reason: 'my_code', message: '<script>alert(2)</script>', detail: { html: '<b>x</b>' } },
    ]),
  )
  const manifest: ManifestJson = {
    manifestVersion: 1,
    prefpipe: { version: '9.9.9' },
    sink: 'llamafactory',
    name: 'syn',
    inputs: [{ file: 'mem<b>.jsonl', sha256: '0'.repeat(64) }],
    options: { preset: 'test' },
    datasets: {
      syn_eval: { file_name: 'syn_eval.jsonl', split: 'eval', rows: 1 },
      syn_train: { file_name: 'syn_train.jsonl', split: 'train', rows: 3 },
    },
    counts: { samplesIn: 4, kept: 4, train: 3, eval: 1, rejected: 3, rejectedByReason: { my_code: 1, prompt_empty: 2 }, distinctImages: 3, imageRefs: 5, imageBytes: 0, bytes: 0 },
    files: {},
  }
  const run: RunReport = {
    ok: true,
    startedAt: '2026-01-01T00:00:00.000Z',
    wallMs: 12.5,
    stages: [
      { name: 'mem', kind: 'source', in: 0, out: 7, dropped: {}, counters: {}, selfMs: 1, wallMs: 2 },
      { name: 'validate', kind: 'transform', in: 7, out: 4, dropped: { prompt_empty: 2, my_code: 1 }, counters: {}, selfMs: 1, wallMs: 2 },
      { name: 'llamafactory', kind: 'sink', in: 4, out: 0, dropped: {}, counters: { rowsTrain: 3, imagesWritten: 3, rowsEval: 1 }, selfMs: 3, wallMs: 4 },
    ],
    rejected: { prompt_empty: 2, my_code: 1 },
  }
  return { manifest, run }
}

describe('writeReport on a small folder', () => {
  let dir: string
  let report: ReportJson
  let html: string
  let input: { manifest: ManifestJson; run: RunReport }
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prefpipe-report-'))
    input = await syntheticFolder(dir)
    const written = await writeReport({ out: dir, ...input, reasonDescriptions: { my_code: 'a code of our own stage' } })
    report = written.report
    html = await readFile(written.html, 'utf8')
    expect(JSON.parse(await readFile(written.json, 'utf8'))).toEqual(report)
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('sums up the folder', () => {
    expect(report.summary).toEqual({
      rowsIn: 7,
      kept: 4,
      rejected: 3,
      train: 3,
      eval: 1,
      distinctImages: 3,
      imageRefs: 5,
      imageBytes: report.summary.imageBytes,
      visualTokens: 10 + (10 + 393) + 731 + 10,
    })
    expect(report.summary.imageBytes).toBeGreaterThan(0)
    expect(report.splits.map((s) => [s.split, s.dataset, s.rows])).toEqual([
      ['train', 'syn_train', 3],
      ['eval', 'syn_eval', 1],
    ])
  })

  it('computes the text distributions in code points', () => {
    const d = report.distributions
    const xssChars = [...XSS_PROMPT].length
    expect(d.promptChars.count).toBe(4)
    expect(d.promptChars.stats).toMatchObject({ min: 23, p50: 23, max: xssChars })
    expect(d.promptChars.sum).toBe(36 + 23 + 23 + xssChars)
    expect(d.chosenChars.sum).toBe(6 + 5 + 1 + 18)
    expect(d.turnsPerRow.buckets).toEqual([
      { from: 1, to: 2, count: 3 },
      { from: 2, to: 3, count: 0 },
      { from: 3, to: 4, count: 1 },
    ])
    expect(d.imagesPerRow.buckets).toEqual([
      { from: 1, to: 2, count: 3 },
      { from: 2, to: 3, count: 1 },
    ])
  })

  it('reads image sizes, visual tokens and reuse', () => {
    const d = report.distributions
    expect(d.imageWidth.stats).toMatchObject({ min: 100, p50: 640, max: 1000 })
    expect(d.imagePixels.sum).toBe(5000 + 307200 + 1000000)
    expect(d.visualTokensPerImage.stats).toMatchObject({ min: 10, p50: 393, max: 731 })
    expect(d.visualTokensPerRow.stats).toMatchObject({ min: 10, max: 731 })
    expect(d.visualTokensPerRow.sum).toBe(report.summary.visualTokens)
    // a.png is used by 3 rows, the others by 1.
    expect(d.rowsPerImage.stats).toMatchObject({ min: 1, max: 3 })
    expect(report.images).toMatchObject({ distinct: 3, reused: 1, formats: { jpeg: 1, png: 2 }, unreadable: 0 })
    expect(report.images.dimensions).toEqual([
      { width: 100, height: 50, images: 1 },
      { width: 640, height: 480, images: 1 },
      { width: 1000, height: 1000, images: 1 },
    ])
  })

  it('reports stages, rejects by reason and keeps run-dependent values under timings', () => {
    expect(report.stages[2]).toEqual({ name: 'llamafactory', kind: 'sink', in: 4, out: 0, dropped: {}, counters: { rowsEval: 1, rowsTrain: 3 } })
    expect(Object.keys(report.stages[1]!.dropped)).toEqual(['my_code', 'prompt_empty'])
    expect(report.rejected.byReason).toEqual({ my_code: 1, prompt_empty: 2 })
    expect(report.rejected.reasons).toEqual([
      { reason: 'my_code', count: 1, stages: ['custom'], description: 'a code of our own stage' },
      { reason: 'prompt_empty', count: 2, stages: ['validate'], description: 'the prompt has no turns' },
    ])
    expect(report.timings).toMatchObject({ startedAt: '2026-01-01T00:00:00.000Z', wallMs: 12.5 })
    expect(report.timings!.stages[2]).toEqual({ name: 'llamafactory', selfMs: 3, wallMs: 4, counters: { imagesWritten: 3 } })
  })

  it('escapes every piece of data text in the HTML', () => {
    expect(html).not.toMatch(/<script/i)
    expect(html).not.toContain('<img src=x')
    expect(html).not.toContain('</div><b>bold?</b>')
    expect(html).not.toContain('<b>x</b>')
    expect(html).not.toContain('mem<b>')
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;')
    expect(html).toContain('&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;')
    expect(html).toContain('&lt;script&gt;alert(2)&lt;/script&gt;')
    expect(html).toContain('mem#6&lt;script&gt;alert(3)&lt;/script&gt;')
    expect(html).toContain('&#39;single&#39; &quot;double&quot;')
    // No script may run at all, whatever slipped through.
    expect(html).toContain(`content="default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'"`)
  })

  it('shows every kept row when there are fewer than asked for, images by relative path', () => {
    expect(report.gallery.samples).toEqual([
      { split: 'train', line: 1 },
      { split: 'train', line: 2 },
      { split: 'train', line: 3 },
      { split: 'eval', line: 1 },
    ])
    expect(report.gallery.rejects.map((r) => r.reason)).toEqual(['my_code', 'prompt_empty', 'prompt_empty'])
    expect(html).toContain('<img src="images/aa/a.png"')
    expect(html).not.toContain(dir)
  })

  it('is byte-identical when written again (report.json except its timings)', async () => {
    const again = await writeReport({
      out: dir,
      manifest: input.manifest,
      run: { ...input.run, startedAt: '2026-02-02T00:00:00.000Z', wallMs: 99 },
      reasonDescriptions: { my_code: 'a code of our own stage' },
    })
    expect(await readFile(again.html, 'utf8')).toBe(html)
    expect({ ...again.report, timings: null }).toEqual({ ...report, timings: null })
    expect(again.report.timings!.wallMs).toBe(99)
  })

  it('reads manifest.json when no manifest is given, and works without a run report', async () => {
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(input.manifest))
    const { report: r } = await writeReport({ out: dir, samples: 2 })
    expect(r.stages).toEqual([])
    expect(r.timings).toBeNull()
    expect(r.summary.rowsIn).toBe(7) // kept + rejected
    expect(r.gallery.samples).toEqual([
      { split: 'train', line: 1 },
      { split: 'train', line: 3 },
    ])
    expect(r.rejected.reasons[0]!.description).toBeNull()
  })

  it('prints a compact summary table', () => {
    const text = formatSummaryTable(report, { html: 'out/syn/report.html' })
    expect(text).toMatch(/^prefpipe report: syn\n/)
    expect(text).toMatch(/\nrows in\s+7\n/)
    expect(text).toMatch(/\nkept\s+4\n {2}train\s+3\n {2}eval\s+1\n/)
    // timings.imagesWritten is null here (no sink result given): the distinct count instead
    expect(text).toMatch(/\nimages\s+3 distinct; 5 uses, /)
    expect(text).toMatch(/\n {2}prompt_empty\s+2\n/)
    expect(text).toMatch(/\nvisual tokens\/image\s+393\s+731\s+731\n/)
    expect(text).toMatch(/\ntook 0\.0 s\nreport: out\/syn\/report\.html\n$/)
    expect(formatSummaryTable(report, { timings: false })).not.toMatch(/took/)
  })
})

// ---------------------------------------------------------------------------------------------------------------
// The real pipeline on the bundled sample, then the page in headless Chromium
// ---------------------------------------------------------------------------------------------------------------

describe('report of the bundled RLHF-V sample', () => {
  let dir: string
  let manifest: LlamaFactoryManifest
  let report: ReportJson
  let htmlPath: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prefpipe-report-sample-'))
    const { result, report: run } = await prepareRlhfV({ input: SAMPLE, out: join(dir, 'a') })
    manifest = result
    const written = await writeReport({ out: join(dir, 'a'), run, manifest: result })
    report = written.report
    htmlPath = written.html
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('agrees with the manifest and the run', () => {
    const c = manifest.counts
    expect(report.summary).toMatchObject({ rowsIn: 48, kept: c.kept, rejected: c.rejected, train: c.train, eval: 0 })
    expect(report.summary).toMatchObject({ distinctImages: c.distinctImages, imageRefs: c.imageRefs, imageBytes: c.imageBytes })
    expect(report.rejected.byReason).toEqual(c.rejectedByReason)
    expect(report.gallery.samples).toHaveLength(24)
    expect(report.gallery.rejects).toHaveLength(9)
    expect(report.stages.map((s) => s.name)).toEqual(['parquet', 'validate', 'images', 'llamafactory', 'training-config'])
    expect(report.stages[3]!.counters).not.toHaveProperty('imagesWritten')
    expect(report.timings!.imagesWritten).toBe(c.imagesWritten)
    // The same lines the CLI printed so far.
    const text = formatSummaryTable(report)
    expect(text).toMatch(/\nrows in\s+48\n/)
    expect(text).toMatch(/\nkept\s+39\n/)
    expect(text).toMatch(/\nrejected\s+9\n/)
    for (const reason of Object.keys(c.rejectedByReason)) expect(text).toMatch(new RegExp(`\\n {2}${reason}\\s+1\\n`))
    expect(text).toMatch(/\nimages written\s+14 new of 14 distinct; 39 uses, 0\.8 MB\n/)
  })

  it('gives a byte-identical report.html (and report.json but its timings) on a re-run, in place or elsewhere', async () => {
    const html = await readFile(htmlPath)
    for (const out of [join(dir, 'a'), join(dir, 'b')]) {
      const again = await prepareRlhfV({ input: SAMPLE, out })
      const w = await writeReport({ out, run: again.report, manifest: again.result })
      expect((await readFile(w.html)).equals(html)).toBe(true)
      expect({ ...w.report, timings: null }).toEqual({ ...report, timings: null })
    }
  })

  describe('in headless Chromium', () => {
    let browser: Browser
    beforeAll(async () => {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 15_000 })
    })
    afterAll(async () => {
      await browser?.close()
    })

    /** Open a page, recording console errors, page errors, failed requests and dialogs. */
    async function open(file: string, problems: string[]): Promise<Page> {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`)
      })
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
      page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`))
      page.on('dialog', (d) => {
        problems.push(`dialog: ${d.message()}`)
        void d.dismiss()
      })
      await page.goto(pathToFileURL(file).href, { waitUntil: 'load' })
      return page
    }

    it('shows the sample run: no errors, every image loaded, the numbers of report.json', async () => {
      const problems: string[] = []
      const page = await open(htmlPath, problems)
      // (the test tsconfig has no DOM types: the browser-side callbacks type their elements themselves)
      const images = await page
        .locator('img')
        .evaluateAll((els: { complete: boolean; naturalWidth: number; getAttribute(n: string): string | null }[]) =>
          els.map((i) => ({ src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0 })),
        )
      expect(images).toHaveLength(24)
      expect(images.filter((i) => !i.ok)).toEqual([])

      const num = async (testid: string) => {
        const text = await page.getByTestId(testid).textContent()
        return Number(text!.replace(/,/g, ''))
      }
      const s = report.summary
      expect(await num('summary-rows-in')).toBe(s.rowsIn)
      expect(await num('summary-kept')).toBe(s.kept)
      expect(await num('summary-rejected')).toBe(s.rejected)
      expect(await num('summary-train')).toBe(s.train)
      expect(await num('summary-eval')).toBe(s.eval)
      expect(await num('summary-images')).toBe(s.distinctImages)
      expect(await num('summary-image-refs')).toBe(s.imageRefs)
      expect(await num('summary-visual-tokens')).toBe(s.visualTokens)
      expect(await num('rejects-total')).toBe(report.rejected.total)
      for (const [i, st] of report.stages.entries()) {
        expect(await num(`stage-${i}-in`)).toBe(st.in)
        expect(await num(`stage-${i}-out`)).toBe(st.out)
      }
      for (const r of report.rejected.reasons) expect(await num(`reject-count-${r.reason}`)).toBe(r.count)
      expect(await page.getByTestId('sample').count()).toBe(report.gallery.samples.length)
      expect(await page.getByTestId('rejected-row').count()).toBe(report.gallery.rejects.length)
      expect(await page.locator('svg.chart').count()).toBe(9)
      expect(await page.locator('script').count()).toBe(0)

      await mkdir(ARTIFACTS, { recursive: true })
      await page.screenshot({ path: join(ARTIFACTS, 'report.png'), fullPage: true })
      await page.screenshot({ path: join(ARTIFACTS, 'report-top.png') })
      await page.close()
      expect(problems).toEqual([])
    })

    it('shows hostile text as text and runs none of it', async () => {
      const synDir = join(dir, 'syn')
      await mkdir(synDir)
      const input = await syntheticFolder(synDir)
      const { html } = await writeReport({ out: synDir, ...input })
      const problems: string[] = []
      const page = await open(html, problems)
      expect(await page.evaluate(() => (globalThis as { __pwned?: unknown }).__pwned)).toBeUndefined()
      expect(await page.locator('script').count()).toBe(0)
      const sample = page.getByTestId('sample').filter({ hasText: 'alert(1)' })
      expect(await sample.innerText()).toContain('<script>alert(1)</script> & <img src=x onerror="window.__pwned=1">')
      expect(await page.getByTestId('rejected-row').filter({ hasText: 'alert(2)' }).innerText()).toContain('<script>alert(2)</script>')
      expect(await page.locator('img').evaluateAll((els: { getAttribute(n: string): string | null }[]) => els.map((i) => i.getAttribute('src')))).not.toContain('x')
      await page.close()
      expect(problems).toEqual([])
    })
  })
})
