import { createHash } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { named, pipeline, type Logger, type Sink, type Source } from '../../src/pipeline/index.js'
import type { ImageRef, PreferenceSample } from '../../src/record.js'
import { llamaFactory } from '../../src/sinks/llamafactory.js'
import { chooseGroups, planSplit, seededUnit, split, splitPlanner, SplitPlan } from '../../src/transforms/split.js'
import { RLHF_V } from '../../src/presets/rlhf-v.js'
import { parquetSource } from '../../src/sources/parquet.js'
import { SAMPLE, treeDigest } from '../helpers.js'
import { mulberry32 as prng } from '../helpers.js'

// ---------------------------------------------------------------------------------------------------------------
// A dataset shaped like RLHF-V: images reused by many rows, near-duplicates, multi-image rows, text-only rows
// ---------------------------------------------------------------------------------------------------------------

const PNG_SIG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]

/** Distinct fake PNG bytes for image `n` (the split and the sink only hash them and read the signature). */
function png(n: number, variant = 0): Uint8Array {
  return new Uint8Array([...PNG_SIG, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, variant])
}

function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex')
}

function row(id: string, images: ImageRef[], question: string, type = 'describe'): PreferenceSample {
  return {
    id,
    messages: [{ role: 'user', content: `${'<image>'.repeat(images.length)}${question}` }],
    chosen: { role: 'assistant', content: `good answer to ${id}` },
    rejected: { role: 'assistant', content: `bad answer to ${id}` },
    images,
    meta: { type },
  }
}

const TYPES = ['describe', 'count', 'color'] as const

interface Dataset {
  rows: PreferenceSample[]
  /** The largest number of rows one group has. */
  maxGroup: number
}

/**
 * ~850 rows:
 * - image HUB used by 40 rows; a near-duplicate HUB' (other bytes, `group` = sha256 of HUB) by 15 more;
 * - images B and B' both labelled group `grp-b` (12 rows);
 * - 350 ordinary images with 1-4 rows each (question type fixed per image, for stratification);
 * - 30 two-image rows joining two ordinary images (linking their groups);
 * - 60 text-only rows, 20 of them asking a question another text row asks too.
 * Rows are shuffled (seeded) unless `contiguous`.
 */
function dataset(opts: { contiguous?: boolean } = {}): Dataset {
  const rnd = prng(7)
  const rows: PreferenceSample[] = []
  let id = 0
  const next = () => `ds#${id++}`
  const hub = png(1_000_000)
  for (let i = 0; i < 40; i++) rows.push(row(next(), [{ bytes: hub }], `hub question ${i}`, TYPES[i % 3]))
  const hubDup = png(1_000_000, 1)
  for (let i = 0; i < 15; i++) rows.push(row(next(), [{ bytes: hubDup, group: sha(hub) }], `hub dup question ${i}`, TYPES[i % 3]))
  for (let i = 0; i < 12; i++) rows.push(row(next(), [{ bytes: png(2_000_000, i % 2), group: 'grp-b' }], `b question ${i}`, 'count'))
  const ordinary: number[] = []
  for (let img = 0; img < 350; img++) {
    const n = 1 + Math.floor(rnd() * rnd() * 4.99) // mostly 1-2 rows, some up to 4
    const type = TYPES[img % 3]!
    for (let k = 0; k < n; k++) rows.push(row(next(), [{ bytes: png(img) }], `q${k} about ${img}`, type))
    ordinary.push(img)
  }
  for (let j = 0; j < 30; j++) {
    const a = ordinary[Math.floor(rnd() * ordinary.length)]!
    const b = ordinary[Math.floor(rnd() * ordinary.length)]!
    rows.push(row(next(), [{ bytes: png(a) }, { bytes: png(b) }], `compare ${a} and ${b}`, TYPES[a % 3]))
  }
  for (let t = 0; t < 60; t++) {
    const q = t < 20 ? `shared text question ${t % 10}` : `text question ${t}`
    rows.push({ ...row(next(), [], q, 'describe'), messages: [{ role: 'user', content: q }] })
  }
  if (!opts.contiguous) {
    for (let i = rows.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1))
      ;[rows[i], rows[j]] = [rows[j]!, rows[i]!]
    }
  }
  const comps = components(rows)
  const maxGroup = Math.max(...[...comps.values()].map((c) => c.length))
  return { rows, maxGroup }
}

/** Deep-copy samples (the stage writes meta and sha256 into them). */
function fresh(rows: PreferenceSample[]): PreferenceSample[] {
  return rows.map((r) => ({ ...r, images: r.images.map((i) => ({ ...i })), meta: { ...r.meta } }))
}

/** The groups as the test computes them, independently: union-find over group + sha256 / prompt. */
function components(rows: PreferenceSample[]): Map<string, string[]> {
  const parent = new Map<string, string>()
  const find = (k: string): string => {
    if (!parent.has(k)) parent.set(k, k)
    let r = k
    while (parent.get(r) !== r) r = parent.get(r)!
    return r
  }
  const keysOf = (r: PreferenceSample): string[] =>
    r.images.length === 0
      ? [`prompt:${JSON.stringify(r.messages)}`]
      : r.images.flatMap((i) => [...(i.group ? [i.group] : []), sha(i.bytes!)])
  for (const r of rows) {
    const [first, ...rest] = keysOf(r).map(find)
    for (const k of rest) parent.set(k, first!)
  }
  const out = new Map<string, string[]>()
  for (const r of rows) {
    const root = find(keysOf(r)[0]!)
    out.set(root, [...(out.get(root) ?? []), r.id])
  }
  return out
}

function source(rows: PreferenceSample[]): Source<PreferenceSample> {
  return named('rows', async function* () {
    yield* fresh(rows)
  })
}

const collect: Sink<PreferenceSample, PreferenceSample[]> = named('collect', async (input: AsyncIterable<PreferenceSample>) => {
  const out: PreferenceSample[] = []
  for await (const s of input) out.push(s)
  return out
})

/** Side by row id. */
function sides(rows: PreferenceSample[]): Map<string, string> {
  return new Map(rows.map((r) => [r.id, r.meta.split as string]))
}

/** Assert no group is on both sides (rows absent from `got`, e.g. rejected, are skipped). */
function expectNoLeak(all: PreferenceSample[], got: Map<string, string>): void {
  // Groups of the rows kept: a rejected bridge row does not join the groups it would have bridged.
  for (const [root, ids] of components(all.filter((r) => got.has(r.id)))) {
    const s = new Set(ids.filter((i) => got.has(i)).map((i) => got.get(i)))
    expect(s.size, `group ${root.slice(0, 16)} (${ids.length} rows) crosses the split`).toBeLessThanOrEqual(1)
  }
}

function countEval(got: Map<string, string>): number {
  return [...got.values()].filter((s) => s === 'eval').length
}

const quiet: Logger = { debug() {}, info() {}, warn() {} }

let data: Dataset

beforeAll(() => {
  data = dataset()
  // The shape the tests rely on.
  expect(data.rows.length).toBeGreaterThan(800)
  expect(data.maxGroup).toBeGreaterThanOrEqual(55) // the hub and its near-duplicate, at least
})

// ---------------------------------------------------------------------------------------------------------------

describe('split: options', () => {
  it('validates at construction', () => {
    expect(() => split({ eval: 0 })).toThrow(/fraction in \(0, 1\) or an integer count/)
    expect(() => split({ eval: 1.5 })).toThrow(/fraction in \(0, 1\) or an integer count/)
    expect(() => split({ eval: -0.1 })).toThrow(TypeError)
    expect(() => split({ eval: Number.NaN })).toThrow(TypeError)
    expect(() => split({})).toThrow(/"eval" is required/)
    expect(() => split({ eval: 0.1, seed: 1.5 })).toThrow(/seed/)
    expect(() => split({ eval: 0.1, bogus: 1 } as never)).toThrow(/unknown option "bogus"/)
    expect(() => split({ eval: 0.1, stratify: 'type' as never })).toThrow(/stratify/)
    expect(() => split({ plan: {} as never })).toThrow(/planSplit/)
  })

  it('refuses a count without a plan, and says how to make one', () => {
    expect(() => split({ eval: 100, seed: 3 })).toThrow(/two passes: const plan = await planSplit\(source, \{ eval: 100, seed \}\)/)
  })

  it('refuses a plan together with eval/seed', async () => {
    const plan = await planSplit(source(data.rows.slice(0, 50)), { eval: 5, seed: 1 })
    expect(() => split({ plan, eval: 0.1 })).toThrow(/either a plan or eval/)
    expect(() => splitPlanner({ eval: 0 })).toThrow(TypeError)
    expect(() => splitPlanner({ eval: 5, extra: 1 } as never)).toThrow(/unknown option "extra"/)
  })
})

describe('split: one pass, a fraction', () => {
  for (const seed of [1, 2, 'abc']) {
    for (const f of [0.05, 0.1, 0.25, 0.5]) {
      it(`seed ${seed}, eval ${f}: no group crosses, size within 4 sigma`, async () => {
        const { result, rejects, report } = await pipeline(source(data.rows), split({ eval: f, seed }), collect)
        const got = sides(result)
        expectNoLeak(data.rows, got)
        // Rows: kept + rejected (bridges only) = input.
        expect(result.length + rejects.length).toBe(data.rows.length)
        expect(rejects.every((r) => r.reason === 'split_bridge' && r.stage === 'split')).toBe(true)
        expect(rejects.length).toBeLessThanOrEqual(30) // only two-image rows can bridge
        // Each group goes to eval with probability f, so eval rows have variance f(1-f) * sum(group size^2);
        // the split is deterministic, so a 4-sigma band (fails with odds ~1e-4) either always holds or never.
        const comps = [...components(data.rows).values()].map((c) => c.length)
        const sigma = Math.sqrt(f * (1 - f) * comps.reduce((a, n) => a + n * n, 0))
        const n = result.length
        expect(Math.abs(countEval(got) - f * n)).toBeLessThanOrEqual(4 * sigma)
        // Counters.
        const st = report.stages.find((s) => s.name === 'split')!
        expect(st.counters.eval).toBe(countEval(got))
        expect(st.counters.train).toBe(n - countEval(got))
        expect(st.counters.groups).toBe(st.counters.evalGroups! + st.counters.trainGroups!)
        expect(st.counters.bridges ?? 0).toBe(rejects.length)
      })
    }
  }

  it('keeps the image, its near-duplicate (group = its sha256) and a group label together', async () => {
    const { result } = await pipeline(source(data.rows), split({ eval: 0.5, seed: 9 }), collect)
    const hub = result.filter((r) => r.messages[0]!.content.includes('hub'))
    expect(hub).toHaveLength(55)
    expect(new Set(hub.map((r) => r.meta.split)).size).toBe(1)
    const b = result.filter((r) => r.messages[0]!.content.startsWith('<image>b question'))
    expect(b).toHaveLength(12)
    expect(new Set(b.map((r) => r.meta.split)).size).toBe(1)
    const shared = result.filter((r) => r.messages[0]!.content.startsWith('shared text question 3'))
    expect(shared).toHaveLength(2)
    expect(new Set(shared.map((r) => r.meta.split)).size).toBe(1)
  })

  it('is deterministic, and the seed matters', async () => {
    const a = sides((await pipeline(source(data.rows), split({ eval: 0.2, seed: 5 }), collect)).result)
    const b = sides((await pipeline(source(data.rows), split({ eval: 0.2, seed: 5 }), collect)).result)
    const c = sides((await pipeline(source(data.rows), split({ eval: 0.2, seed: 6 }), collect)).result)
    expect([...a]).toEqual([...b])
    expect([...a]).not.toEqual([...c])
  })

  it("decides a group's side from its key, not from the order of rows", async () => {
    // Single-image data: no bridges possible, so the assignment is a function of the group only.
    const single = data.rows.filter((r) => r.images.length <= 1)
    const a = sides((await pipeline(source(single), split({ eval: 0.3, seed: 2 }), collect)).result)
    const b = sides((await pipeline(source([...single].reverse()), split({ eval: 0.3, seed: 2 }), collect)).result)
    expect(new Map([...b].sort())).toEqual(new Map([...a].sort()))
  })

  it('rejects a row bridging a train group and an eval group seen earlier (split_bridge)', async () => {
    // Find two images the seed sends to different sides.
    let trainImg = -1
    let evalImg = -1
    for (let i = 0; (trainImg < 0 || evalImg < 0) && i < 1000; i++) {
      const u = seededUnit(4, sha(png(i)))
      if (u < 0.5 && evalImg < 0) evalImg = i
      if (u >= 0.5 && trainImg < 0) trainImg = i
    }
    const rows = [
      row('t', [{ bytes: png(trainImg) }], 'q'),
      row('e', [{ bytes: png(evalImg) }], 'q'),
      row('both', [{ bytes: png(trainImg) }, { bytes: png(evalImg) }], 'compare'),
      row('new-pair', [{ bytes: png(5000) }, { bytes: png(trainImg) }], 'compare'),
      row('new-alone', [{ bytes: png(5000) }], 'q'),
    ]
    const other = row('other', [{ bytes: png(6000) }], 'q')
    const { result, rejects } = await pipeline(source(rows), split({ eval: 0.5, seed: 4 }), collect)
    expect(sides(result)).toEqual(
      new Map([
        ['t', 'train'],
        ['e', 'eval'],
        ['new-pair', 'train'], // joins the train group
        ['new-alone', 'train'], // and so does the new image, for good
      ]),
    )
    expect(rejects).toHaveLength(1)
    expect(rejects[0]).toMatchObject({ id: 'both', reason: 'split_bridge', stage: 'split' })
    expect(rejects[0]!.message).toMatch(/planSplit/)
    // Planned: the same rows, no reject, all one group.
    const plan = await planSplit(source([...rows, other]), { eval: 1, seed: 4 })
    expect(plan.groups).toBe(2)
    const planned = await pipeline(source([...rows, other]), split({ plan }), collect)
    expect(planned.rejects).toEqual([])
    expect(new Set(planned.result.slice(0, 5).map((r) => r.meta.split))).toEqual(new Set(['train']))
    expect(planned.result[5]!.meta.split).toBe('eval')
  })

  it('groups path images by content, and fills ImageRef.sha256 from bytes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prefpipe-split-'))
    try {
      await writeFile(join(dir, 'a.png'), png(42))
      await writeFile(join(dir, 'copy-of-a.png'), png(42))
      await writeFile(join(dir, 'b.png'), png(43))
      const rows = [
        row('a', [{ path: join(dir, 'a.png') }], 'q'),
        row('a2', [{ path: join(dir, 'copy-of-a.png') }], 'q'),
        row('b', [{ path: join(dir, 'b.png') }], 'q'),
        row('bytes', [{ bytes: png(44) }], 'q'),
      ]
      const plan = await planSplit(source(rows), { eval: 1, seed: 0 })
      expect(plan.groups).toBe(3)
      const { result } = await pipeline(source(rows), split({ plan }), collect)
      expect(result[0]!.meta.split).toBe(result[1]!.meta.split)
      expect(result[3]!.images[0]!.sha256).toBe(sha(png(44)))
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('overwrites a split the source set, and keeps other meta', async () => {
    const rows = [{ ...row('x', [{ bytes: png(1) }], 'q'), meta: { split: 'eval', keep: 1 } }]
    const seedTrain = [0, 1, 2, 3, 4, 5].find((s) => seededUnit(s, sha(png(1))) >= 0.5)!
    const { result } = await pipeline(source(rows), split({ eval: 0.5, seed: seedTrain }), collect)
    expect(result[0]!.meta).toEqual({ split: 'train', keep: 1 })
  })
})

describe('split: one pass, stratified', () => {
  it('holds the fraction per stratum within the largest group (groups contiguous)', async () => {
    const contiguous = dataset({ contiguous: true })
    for (const seed of [1, 2, 3]) {
      for (const f of [0.1, 0.3]) {
        const { result, report } = await pipeline(
          source(contiguous.rows),
          split({ eval: f, seed, stratify: (s) => String(s.meta.type) }),
          collect,
        )
        const got = sides(result)
        expectNoLeak(contiguous.rows, got)
        const st = report.stages.find((s) => s.name === 'split')!
        for (const t of TYPES) {
          const rows = result.filter((r) => r.meta.type === t)
          const ev = rows.filter((r) => r.meta.split === 'eval').length
          expect(st.counters[`eval:${t}`] ?? 0).toBe(ev)
          // The deficit controller keeps |eval - f*rows| below the largest group of the stratum; the hub
          // group mixes types, so allow the largest group of the whole set.
          expect(Math.abs(ev - f * rows.length), `seed ${seed} f ${f} type ${t}`).toBeLessThanOrEqual(contiguous.maxGroup)
        }
      }
    }
  })

  it('balances singleton strata to within one row', async () => {
    const rows: PreferenceSample[] = []
    for (let i = 0; i < 600; i++) rows.push(row(`s#${i}`, [{ bytes: png(i) }], 'q', i % 5 === 0 ? 'rare' : 'common'))
    for (const seed of [1, 2, 3, 4]) {
      const { result } = await pipeline(source(rows), split({ eval: 0.1, seed, stratify: (s) => String(s.meta.type) }), collect)
      for (const t of ['rare', 'common']) {
        const r = result.filter((x) => x.meta.type === t)
        const ev = r.filter((x) => x.meta.split === 'eval').length
        expect(Math.abs(ev - 0.1 * r.length)).toBeLessThan(1 + 1e-9)
      }
    }
  })
})

describe('split: two passes (planSplit)', () => {
  for (const seed of [1, 2, 'xyz']) {
    for (const count of [1, 10, 57, 100, 250]) {
      it(`seed ${seed}, eval ${count} rows: exact, no group crosses`, async () => {
        const plan = await planSplit(source(data.rows), { eval: count, seed })
        expect(plan).toBeInstanceOf(SplitPlan)
        expect(plan.rows).toBe(data.rows.length)
        expect(plan.evalRows).toBe(count)
        const { result, rejects, report } = await pipeline(source(data.rows), split({ plan }), collect)
        expect(rejects).toEqual([])
        expect(result).toHaveLength(data.rows.length)
        const got = sides(result)
        expectNoLeak(data.rows, got)
        // Exact: the data has far more single-row groups than its largest group, so the size rule lands exactly.
        expect(countEval(got)).toBe(count)
        const st = report.stages.find((s) => s.name === 'split')!
        expect(st.counters.eval).toBe(count)
        expect(st.counters.evalGroups).toBe(plan.evalGroups)
        expect(st.counters.unplanned).toBeUndefined()
      })
    }
  }

  it('plans a fraction exactly: round(f x rows)', async () => {
    for (const f of [0.05, 0.1, 0.33]) {
      const plan = await planSplit(source(data.rows), { eval: f, seed: 8 })
      expect(plan.evalRows).toBe(Math.round(f * data.rows.length))
      const { result, rejects } = await pipeline(source(data.rows), split({ plan }), collect)
      expect(rejects).toEqual([]) // no bridges with a plan
      expectNoLeak(data.rows, sides(result))
      expect(countEval(sides(result))).toBe(plan.evalRows)
    }
  })

  it('is deterministic across runs and independent of row order; the seed matters', async () => {
    const a = await planSplit(source(data.rows), { eval: 100, seed: 3 })
    const b = await planSplit(source([...data.rows].reverse()), { eval: 100, seed: 3 })
    const c = await planSplit(source(data.rows), { eval: 100, seed: 4 })
    const run = async (plan: SplitPlan) => new Map([...sides((await pipeline(source(data.rows), split({ plan }), collect)).result)].sort())
    const sa = await run(a)
    expect(await run(b)).toEqual(sa)
    expect(await run(await planSplit(source(data.rows), { eval: 100, seed: 3 }))).toEqual(sa)
    expect(await run(c)).not.toEqual(sa)
    expect(a.toJSON()).toEqual(b.toJSON())
  })

  it('stratified: each stratum gets its share of the count, exactly', async () => {
    const plan = await planSplit(source(data.rows), { eval: 120, seed: 5, stratify: (s) => String(s.meta.type) })
    expect(plan.evalRows).toBe(120)
    const names = Object.keys(plan.strata)
    expect(names).toEqual([...names].sort())
    let targets = 0
    for (const s of Object.values(plan.strata)) {
      // Shares proportional to rows (largest remainder): within one row of 120 * rows / total.
      expect(Math.abs(s.target - (120 * s.rows) / plan.rows)).toBeLessThan(1)
      expect(s.evalRows).toBe(s.target)
      targets += s.target
    }
    expect(targets).toBe(120)
    const { result, report } = await pipeline(source(data.rows), split({ plan }), collect)
    expectNoLeak(data.rows, sides(result))
    expect(countEval(sides(result))).toBe(120)
    const st = report.stages.find((s) => s.name === 'split')!
    const perStratum = Object.fromEntries(Object.keys(plan.strata).map((t) => [t, st.counters[`eval:${t}`] ?? 0]))
    expect(Object.values(perStratum).reduce((a, b) => a + b, 0)).toBe(120)
  })

  it('stratified fraction: round(f x rows) shared by stratum', async () => {
    const plan = await planSplit(source(data.rows), { eval: 0.1, seed: 5, stratify: (s) => String(s.meta.type) })
    expect(plan.evalRows).toBe(Math.round(0.1 * data.rows.length))
    for (const s of Object.values(plan.strata)) expect(Math.abs(s.evalRows - 0.1 * s.rows)).toBeLessThan(1)
  })

  it('runs the stages given in `before`, so counts match a filtered second pass', async () => {
    const dropText = named('drop-text', async function* (input: AsyncIterable<PreferenceSample>) {
      for await (const s of input) if (s.images.length > 0) yield s
    })
    const plan = await planSplit(source(data.rows), { eval: 80, seed: 1, before: [dropText] })
    expect(plan.rows).toBe(data.rows.filter((r) => r.images.length > 0).length)
    const { result } = await pipeline(source(data.rows), dropText, split({ plan }), collect)
    expect(countEval(sides(result))).toBe(80)
  })

  it('puts rows of unplanned groups in train, counts and warns', async () => {
    const plan = await planSplit(source(data.rows.slice(0, 300)), { eval: 30, seed: 1 })
    const warnings: string[] = []
    const log: Logger = { ...quiet, warn: (m) => warnings.push(m) }
    const extra = row('new', [{ bytes: png(9_999_999) }], 'q')
    const { result, report } = await pipeline(source([...data.rows.slice(0, 300), extra]), split({ plan }), collect, { log })
    expect(result.at(-1)!.meta.split).toBe('train')
    expect(report.stages.find((s) => s.name === 'split')!.counters.unplanned).toBe(1)
    expect(warnings.join('\n')).toMatch(/differs from the planned one \(301 rows now, 300 planned; 1 rows/)
  })

  it('never splits a group: with only 3-row groups, 4 asked gives 6 (the least whole-group total)', async () => {
    const rows: PreferenceSample[] = []
    for (let g = 0; g < 10; g++) for (let k = 0; k < 3; k++) rows.push(row(`t${g}-${k}`, [{ bytes: png(g) }], `q${k}`))
    const plan = await planSplit(source(rows), { eval: 4, seed: 1 })
    expect(plan.strata['']).toEqual({ rows: 30, groups: 10, target: 4, evalRows: 6, evalGroups: 2 })
    const { result } = await pipeline(source(rows), split({ plan }), collect)
    expect(countEval(sides(result))).toBe(6)
    expectNoLeak(rows, sides(result))
  })

  it('on the RLHF-V sample fixture: exact count, no shared image across the split', async () => {
    const src = () => parquetSource({ path: SAMPLE, columns: RLHF_V.columns })
    const plan = await planSplit(src(), { eval: 10, seed: 42 })
    const { result } = await pipeline(src(), split({ plan }), collect)
    expect(countEval(sides(result))).toBe(10)
    const sideOfImage = new Map<string, Set<unknown>>()
    for (const r of result) for (const i of r.images) sideOfImage.set(sha(i.bytes!), (sideOfImage.get(sha(i.bytes!)) ?? new Set()).add(r.meta.split))
    for (const [img, s] of sideOfImage) expect(s.size, img).toBe(1)
  })

  it('refuses a count that leaves nothing to train on', async () => {
    const rows = data.rows.slice(0, 20)
    await expect(planSplit(source(rows), { eval: 20, seed: 1 })).rejects.toThrow(/not below the 20 rows/)
    // One group holding every row: any eval takes it all.
    const one = [row('a', [{ bytes: png(1) }], 'q1'), row('b', [{ bytes: png(1) }], 'q2')]
    await expect(planSplit(source(one), { eval: 1, seed: 1 })).rejects.toThrow(/takes every group/)
  })
})

describe('chooseGroups (the size rule)', () => {
  it('first fit in order, exact when possible', () => {
    expect(chooseGroups([5, 1, 1, 4], 6)).toEqual([0, 1])
    expect(chooseGroups([4, 3, 2, 1], 5)).toEqual([0, 3])
  })

  it('overshoots with the smallest group left, then gives back what fits in the overshoot', () => {
    // [4, 1] reach 5 of 6; every other group (4) is bigger than 1: add it (9, 3 over); give back the 1 (8).
    expect(chooseGroups([4, 4, 1], 6)).toEqual([0, 1])
    // Only 3s: 6 is the least reachable total >= 4.
    expect(chooseGroups([3, 3, 3], 4)).toEqual([0, 1])
    // Singletons cancel the overshoot exactly: [1, 1, 1, 1, 1] reach 5 of 6; add the 5 (10); give back four 1s.
    expect(chooseGroups([1, 1, 1, 5, 1, 1], 6)).toEqual([0, 3])
    // Too few singletons to cancel it: 5 alone is the least total >= 4 (three 1s make only 3).
    expect(chooseGroups([1, 1, 5, 1], 4)).toEqual([2])
  })

  it('guarantees: total >= target; exact with enough singletons; overshoot below the smallest group that did not fit', () => {
    const rnd = prng(11)
    for (let trial = 0; trial < 500; trial++) {
      const sizes = Array.from({ length: 1 + Math.floor(rnd() * 30) }, () => 1 + Math.floor(rnd() * rnd() * 9))
      const total = sizes.reduce((a, b) => a + b, 0)
      const target = 1 + Math.floor(rnd() * (total - 1 || 1))
      const chosen = chooseGroups(sizes, target)
      expect(new Set(chosen).size).toBe(chosen.length)
      const got = chosen.reduce((a, i) => a + sizes[i]!, 0)
      expect(got).toBeGreaterThanOrEqual(Math.min(target, total))
      const singles = sizes.filter((s) => s === 1).length
      if (singles >= Math.max(...sizes) - 1) expect(got, JSON.stringify({ sizes, target })).toBe(target)
      const notTaken = sizes.filter((_, i) => !chosen.includes(i))
      if (got > target && notTaken.length) expect(got - target).toBeLessThan(Math.max(...sizes))
    }
  })
})

describe('split + LLaMA-Factory sink', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prefpipe-split-sink-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('same input and options: byte-identical folders; eval rows in <name>_eval.jsonl', async () => {
    const small = data.rows.slice(0, 200)
    const runOnce = async (out: string) => {
      const plan = await planSplit(source(small), { eval: 20, seed: 2 })
      return pipeline(source(small), split({ plan }), llamaFactory({ out, name: 'rlhf_v' }))
    }
    const a = await runOnce(join(dir, 'a'))
    const b = await runOnce(join(dir, 'b'))
    expect(a.result.counts.eval).toBe(20)
    expect(a.result.datasets.eval?.rows).toBe(20)
    expect(await treeDigest(join(dir, 'a'))).toEqual(await treeDigest(join(dir, 'b')))
    const c = await pipeline(source(small), split({ eval: 0.1, seed: 2 }), llamaFactory({ out: join(dir, 'c'), name: 'rlhf_v' }))
    const d = await pipeline(source(small), split({ eval: 0.1, seed: 2 }), llamaFactory({ out: join(dir, 'd'), name: 'rlhf_v' }))
    expect(c.result.counts.eval).toBeGreaterThan(0)
    expect(await treeDigest(join(dir, 'c'))).toEqual(await treeDigest(join(dir, 'd')))
  })
})
