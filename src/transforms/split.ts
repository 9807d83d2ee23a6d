import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { z } from 'zod'
import { optionsError } from '../pipeline/options.js'
import { pipeline } from '../pipeline/pipeline.js'
import { named } from '../pipeline/stage.js'
import type { PipelineOptions, PipelineResult, Sink, Source, StageContext, Transform } from '../pipeline/types.js'
import type { ImageRef, PreferenceSample } from '../record.js'

/**
 * Train/eval split without leakage.
 *
 * The unit is the **group**: rows that share an image (by `ImageRef.group`, else by the image's sha256) are
 * one group and always land on the same side, so an eval image (or a near-duplicate the dedup stage put in
 * the same `group`) is never seen in training. RLHF-V asks several questions about one image: they stay
 * together. Groups are connected components: a row with two images joins their groups (union-find), because
 * "first image decides" would leave the second image on both sides when another row uses it alone. An image's
 * `group` and its sha256 are both identities of it, so an original without `group` and a near-duplicate whose
 * `group` is the original's sha256 are one group too. Rows without images are grouped by a hash of their
 * prompt (system + turns): the same question asked twice stays on one side, which is the text analogue of
 * sharing an image (grouping by row id would leak duplicates).
 *
 * Two modes:
 * - **fraction, one pass** (`split({ eval: 0.1, seed })`): streaming, no buffering. A new group goes to eval
 *   when a seeded hash of its key (the first image's `group ?? sha256`, or the prompt hash) is below the
 *   fraction, so a group's side does not depend on the input's order or on the other rows. Later rows follow
 *   their group (an online union-find over identities: memory O(distinct images), never O(data)). A row whose
 *   images already sit on both sides (it bridges a train and an eval group seen earlier) cannot be placed
 *   without leakage: it is rejected as `split_bridge` (counted, in `rejects.jsonl`). That only happens with
 *   multi-image rows; use the planned mode to keep them.
 * - **planned, two passes** (`planSplit(source, { eval, seed })`, then `split({ plan })`): the first pass keeps
 *   only image identities, the union-find and per-group row counts (O(groups) memory), and chooses whole groups
 *   in a seeded order until the eval size is met; the second pass assigns rows as they stream. A count
 *   (`eval: 500`) needs this mode (a single pass cannot know where to cut), and a fraction can use it to be
 *   exact and bridge-free. See {@link SplitPlan} for the exact size rule.
 *
 * Same input, same options: the same assignment, byte for byte.
 */

// ---------------------------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------------------------

/** Which side a row is on; the LLaMA-Factory sink routes `meta.split === 'eval'` to `<name>_eval.jsonl`. */
export type SplitSide = 'train' | 'eval'

/**
 * The eval size: a fraction in (0, 1) of the rows, or an integer count >= 1 of rows. A count needs a plan
 * ({@link planSplit}).
 */
export type EvalSize = number

/** Options of {@link split}. Give either `eval` (+ `seed`, `stratify`) or a `plan`. */
export interface SplitOptions {
  /** The eval size: a fraction in (0, 1) (one pass), or an integer count >= 1 (needs `plan`). */
  eval?: EvalSize
  /** Seed of the group order (default 0). Same seed, same split. */
  seed?: number | string
  /**
   * Stratify by a field (e.g. question type): the eval fraction is held per stratum. In one pass a deficit
   * controller keeps each stratum's eval rows within about one group of `fraction x rows` at every point of the
   * stream (the side then depends on the order of rows, not only on the group). A group belongs to the stratum
   * of the row that opens it.
   */
  stratify?: (sample: PreferenceSample) => string
  /** A plan from {@link planSplit}: the two-pass mode (exact sizes, no bridges). Carries eval, seed, stratify. */
  plan?: SplitPlan
}

/** Options of {@link planSplit} and {@link splitPlanner}. */
export interface PlanSplitOptions {
  /** A fraction in (0, 1), or an integer count >= 1 of eval rows. */
  eval: EvalSize
  /** Seed of the group order (default 0). */
  seed?: number | string
  /** Stratify by a field: the eval size is shared between strata in proportion to their rows. */
  stratify?: (sample: PreferenceSample) => string
}

const evalSchema = z
  .number()
  .refine((n) => Number.isFinite(n) && ((n > 0 && n < 1) || (Number.isInteger(n) && n >= 1)), {
    message: 'must be a fraction in (0, 1) or an integer count >= 1',
  })
const seedSchema = z.union([z.int(), z.string()])
const stratifySchema = z.custom<(s: PreferenceSample) => string>((v) => typeof v === 'function', 'must be a function (sample) => string')

const splitSchema = z.strictObject({
  eval: evalSchema.optional(),
  seed: seedSchema.optional(),
  stratify: stratifySchema.optional(),
  plan: z.custom<SplitPlan>((v) => v instanceof SplitPlan, 'must be a plan made by planSplit()/splitPlanner()').optional(),
})

const planSchema = z.strictObject({
  eval: evalSchema,
  seed: seedSchema.optional(),
  stratify: stratifySchema.optional(),
})

const invalid = optionsError

// ---------------------------------------------------------------------------------------------------------------
// Group keys
// ---------------------------------------------------------------------------------------------------------------

function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex')
}

/**
 * A number in [0, 1) from the seed and a key (sha256 of both): the seeded order of groups, and in one pass the
 * draw that sends a group to eval when below the fraction.
 *
 * @example
 * seededUnit(42, 'a3f1...') // 0.6180..., the same on every run and machine
 */
export function seededUnit(seed: number | string, key: string): number {
  const h = createHash('sha256').update(`prefpipe.split\0${String(seed)}\0${key}`).digest()
  return h.readUIntBE(0, 6) / 2 ** 48
}

/** The identities of a row, and its primary key (the first image's `group ?? sha256`, or the prompt hash). */
interface RowKeys {
  primary: string
  keys: string[]
}

/**
 * Computes a row's identities: for each image its `group` (if any) and its sha256 (`ImageRef.sha256`, else the
 * hash of `bytes`, which it stores into `ImageRef.sha256`, else the hash of the file at `path`, cached by path).
 * A row without images is keyed `prompt:<sha256 of system + turns>`.
 */
class KeyMaker {
  private readonly pathCache = new Map<string, string>()

  async keys(sample: PreferenceSample): Promise<RowKeys> {
    if (!sample.images || sample.images.length === 0) {
      const text = JSON.stringify([sample.system ?? null, sample.messages.map((t) => [t.role, t.content])])
      const k = `prompt:${sha256Hex(text)}`
      return { primary: k, keys: [k] }
    }
    const keys: string[] = []
    let primary: string | undefined
    for (let i = 0; i < sample.images.length; i++) {
      const ids = await this.imageIds(sample.images[i]!, sample.id, i)
      primary ??= ids[0]
      for (const id of ids) if (!keys.includes(id)) keys.push(id)
    }
    return { primary: primary!, keys }
  }

  private async imageIds(img: ImageRef, id: string, index: number): Promise<string[]> {
    const ids: string[] = []
    if (typeof img.group === 'string' && img.group !== '') ids.push(img.group)
    let sha = img.sha256
    if (!sha && img.bytes) {
      sha = sha256Hex(img.bytes)
      img.sha256 = sha
    }
    if (!sha && img.path) {
      sha = this.pathCache.get(img.path)
      if (!sha) {
        // Content identity: two paths to the same bytes are one image. An unreadable path keys by itself;
        // the validator or the sink rejects that row anyway.
        sha = await readFile(img.path).then(sha256Hex, () => `path:${img.path}`)
        this.pathCache.set(img.path, sha)
      }
    }
    if (sha && !ids.includes(sha)) ids.push(sha)
    if (ids.length === 0) ids.push(`missing:${id}#${index}`)
    return ids
  }
}

/** A growable union-find over string keys. */
class UnionFind {
  readonly ids = new Map<string, number>()
  readonly parent: number[] = []

  id(key: string): number {
    let i = this.ids.get(key)
    if (i === undefined) {
      i = this.parent.length
      this.ids.set(key, i)
      this.parent.push(i)
    }
    return i
  }

  find(i: number): number {
    let r = i
    while (this.parent[r] !== r) r = this.parent[r]!
    while (this.parent[i] !== r) {
      const next = this.parent[i]!
      this.parent[i] = r
      i = next
    }
    return r
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The plan (two passes)
// ---------------------------------------------------------------------------------------------------------------

/** The plan of one stratum (`''` without stratification). */
export interface StratumPlan {
  /** Rows and groups of the stratum in the planning pass. */
  rows: number
  groups: number
  /** The eval rows asked for (a count, or `round(fraction x rows)` shared by largest remainder). */
  target: number
  /** The eval rows and groups chosen: `evalRows >= target`, and `evalRows - target` as small as the rule allows. */
  evalRows: number
  evalGroups: number
}

/**
 * The result of the planning pass: which groups go to eval. Holds, per distinct image identity, its group
 * and the side of that group (O(groups) memory), plus the figures below. Pass it to {@link split}.
 *
 * The size rule, per stratum, over the groups ordered by a seeded hash of their canonical key (the smallest
 * identity in the group, so the order does not depend on the order of rows):
 * 1. first fit: walk the order and take each group that still fits in the target;
 * 2. if some rows are still missing (every group left is bigger than the shortfall), take the smallest group
 *    left (the first in the order among equals), then give back groups taken in step 1, latest first, whose
 *    rows fit in the overshoot.
 * So `evalRows >= target`; it is exact whenever the first fit lands exactly, or the give-back can cancel the
 * overshoot (always when the stratum has at least `largest group - 1` single-row groups); otherwise the
 * overshoot is below the size of the smallest group that did not fit. A group is never split.
 */
export class SplitPlan {
  /** The eval size asked for (fraction or count) and the seed. */
  readonly eval: number
  readonly seed: number | string
  readonly stratify: ((sample: PreferenceSample) => string) | undefined
  /** Rows and groups seen in the planning pass. */
  readonly rows: number
  readonly groups: number
  /** Eval rows and groups chosen (see the size rule). */
  readonly evalRows: number
  readonly evalGroups: number
  /** Per stratum (one `''` entry without stratification), sorted by name. */
  readonly strata: Readonly<Record<string, StratumPlan>>

  /** @internal identity -> node of the planning union-find. */
  readonly #uf: UnionFind
  /** @internal root node -> 1 when its group is in eval. */
  readonly #evalRoot: Uint8Array

  /** @internal Made by {@link splitPlanner}. */
  constructor(init: {
    eval: number
    seed: number | string
    stratify: ((sample: PreferenceSample) => string) | undefined
    rows: number
    groups: number
    evalRows: number
    evalGroups: number
    strata: Record<string, StratumPlan>
    uf: UnionFind
    evalRoot: Uint8Array
  }) {
    this.eval = init.eval
    this.seed = init.seed
    this.stratify = init.stratify
    this.rows = init.rows
    this.groups = init.groups
    this.evalRows = init.evalRows
    this.evalGroups = init.evalGroups
    this.strata = init.strata
    this.#uf = init.uf
    this.#evalRoot = init.evalRoot
  }

  /**
   * The side of a row with these identities: `undefined` when none was seen in the planning pass, `'bridge'`
   * when they belong to planned groups on both sides (the input changed between the passes).
   */
  sideOf(keys: readonly string[]): SplitSide | 'bridge' | undefined {
    let side: SplitSide | undefined
    for (const k of keys) {
      const i = this.#uf.ids.get(k)
      if (i === undefined) continue
      const s: SplitSide = this.#evalRoot[this.#uf.find(i)] === 1 ? 'eval' : 'train'
      if (side !== undefined && side !== s) return 'bridge'
      side = s
    }
    return side
  }

  /** The figures of the plan, JSON-ready (for a run report or `--dry-run`). */
  toJSON(): Record<string, unknown> {
    return {
      eval: this.eval,
      seed: this.seed,
      rows: this.rows,
      groups: this.groups,
      evalRows: this.evalRows,
      evalGroups: this.evalGroups,
      strata: this.strata,
    }
  }
}

/** Split `total` into integer parts proportional to `weights` (largest remainder, ties by index). */
function apportion(total: number, weights: readonly number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0)
  if (sum === 0) return weights.map(() => 0)
  const exact = weights.map((w) => (total * w) / sum)
  const parts = exact.map(Math.floor)
  let left = total - parts.reduce((a, b) => a + b, 0)
  const order = exact.map((e, i) => ({ i, r: e - Math.floor(e) })).sort((a, b) => b.r - a.r || a.i - b.i)
  for (const { i } of order) {
    if (left <= 0) break
    parts[i]!++
    left--
  }
  return parts
}

interface PlanGroup {
  root: number
  rows: number
  u: number
  key: string
}

/**
 * The size rule of {@link SplitPlan} for one stratum: given group sizes in seeded order and the target row
 * count, the indexes of the groups taken for eval (in order).
 *
 * @example
 * chooseGroups([5, 1, 1, 4], 6) // [0, 1]: 5 + 1, exact
 * chooseGroups([3, 3, 3], 4) // [0, 1]: 6 rows, the least whole-group total >= 4
 */
export function chooseGroups(sizes: readonly number[], target: number): number[] {
  const taken: number[] = []
  const isTaken = new Uint8Array(sizes.length)
  let rows = 0
  for (let i = 0; i < sizes.length && rows < target; i++) {
    if (rows + sizes[i]! <= target) {
      taken.push(i)
      isTaken[i] = 1
      rows += sizes[i]!
    }
  }
  if (rows < target) {
    let best = -1
    for (let i = 0; i < sizes.length; i++) if (!isTaken[i] && (best < 0 || sizes[i]! < sizes[best]!)) best = i
    if (best >= 0) {
      rows += sizes[best]!
      let over = rows - target
      // Give back, latest taken first, groups that fit in the overshoot.
      const keep: number[] = []
      for (let j = taken.length - 1; j >= 0; j--) {
        const g = taken[j]!
        if (over > 0 && sizes[g]! <= over) {
          over -= sizes[g]!
          rows -= sizes[g]!
        } else keep.push(g)
      }
      keep.reverse()
      keep.push(best)
      return keep
    }
  }
  return taken
}

/**
 * The planning pass as a sink: reads every row once, keeping only image identities, their union-find and
 * per-group row counts, and resolves to a {@link SplitPlan}. Put the same stages before it as before
 * {@link split} in the second pass (a filter that drops rows changes the counts).
 *
 * @example
 * const { result: plan } = await pipeline(source, validateRanking(), splitPlanner({ eval: 500, seed: 1 }))
 * await pipeline(source, validateRanking(), split({ plan }), llamaFactory({ out, name }))
 */
export function splitPlanner(options: PlanSplitOptions): Sink<PreferenceSample, SplitPlan> {
  const parsed = planSchema.safeParse(options)
  if (!parsed.success) throw invalid('splitPlanner()', parsed.error)
  const { eval: evalSize, stratify } = parsed.data
  const seed = parsed.data.seed ?? 0
  return named('split-plan', async (input: AsyncIterable<PreferenceSample>, ctx: StageContext): Promise<SplitPlan> => {
    const maker = new KeyMaker()
    const uf = new UnionFind()
    // Per node (meaningful at roots): rows, the stratum of the first row, that row's index, the smallest key.
    const rows: number[] = []
    const stratumOf: (string | undefined)[] = []
    const firstRow: number[] = []
    const minKey: string[] = []
    let n = 0
    for await (const sample of input) {
      const { keys } = await maker.keys(sample)
      let root = -1
      for (const k of keys) {
        const fresh = !uf.ids.has(k)
        const i = uf.id(k)
        if (fresh) {
          rows[i] = 0
          stratumOf[i] = undefined
          firstRow[i] = Number.POSITIVE_INFINITY
          minKey[i] = k
        }
        const r = uf.find(i)
        if (root < 0) root = r
        else if (r !== root) {
          // Union: the root with the earlier first row stays root (keeps the group's stratum).
          const [a, b] = firstRow[r]! < firstRow[root]! ? [r, root] : [root, r]
          uf.parent[b] = a
          rows[a] = rows[a]! + rows[b]!
          if (minKey[b]! < minKey[a]!) minKey[a] = minKey[b]!
          if (stratumOf[a] === undefined) stratumOf[a] = stratumOf[b]
          root = a
        }
      }
      rows[root] = rows[root]! + 1
      if (firstRow[root] === Number.POSITIVE_INFINITY) {
        firstRow[root] = n
        stratumOf[root] = stratify ? String(stratify(sample)) : ''
      }
      n++
      if (n % 1000 === 0) ctx.progress({ done: n })
    }
    ctx.progress({ done: n })

    // Groups by stratum, each in the seeded order.
    const byStratum = new Map<string, PlanGroup[]>()
    for (let i = 0; i < uf.parent.length; i++) {
      if (uf.parent[i] !== i || rows[i] === 0) continue
      const s = stratumOf[i] ?? ''
      const list = byStratum.get(s) ?? []
      list.push({ root: i, rows: rows[i]!, u: seededUnit(seed, minKey[i]!), key: minKey[i]! })
      byStratum.set(s, list)
    }
    const names = [...byStratum.keys()].sort()
    const stratumRows = names.map((s) => byStratum.get(s)!.reduce((a, g) => a + g.rows, 0))
    const wanted = evalSize < 1 ? Math.round(evalSize * n) : evalSize
    if (evalSize >= 1 && wanted >= n) {
      throw new Error(`[prefpipe] split: eval count ${wanted} is not below the ${n} rows of the input; nothing would be left to train on`)
    }
    const targets = apportion(wanted, stratumRows)
    const evalRoot = new Uint8Array(uf.parent.length)
    const strata: Record<string, StratumPlan> = {}
    let evalRows = 0
    let evalGroups = 0
    let groups = 0
    names.forEach((s, si) => {
      const list = byStratum.get(s)!.sort((a, b) => a.u - b.u || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
      const target = targets[si]!
      const chosen = target > 0 ? chooseGroups(list.map((g) => g.rows), target) : []
      let r = 0
      for (const i of chosen) {
        evalRoot[list[i]!.root] = 1
        r += list[i]!.rows
      }
      strata[s] = { rows: stratumRows[si]!, groups: list.length, target, evalRows: r, evalGroups: chosen.length }
      evalRows += r
      evalGroups += chosen.length
      groups += list.length
    })
    if (n > 0 && evalRows >= n) {
      throw new Error(`[prefpipe] split: the eval size (${evalSize}) takes every group (${n} rows in ${groups} groups); nothing would be left to train on`)
    }
    if (wanted === 0 && n > 0) ctx.log.warn(`split: eval fraction ${evalSize} of ${n} rows rounds to 0 eval rows`)
    ctx.stats.count('rows', n)
    ctx.stats.count('groups', groups)
    ctx.stats.count('evalRows', evalRows)
    ctx.stats.count('evalGroups', evalGroups)
    return new SplitPlan({ eval: evalSize, seed, stratify, rows: n, groups, evalRows, evalGroups, strata, uf, evalRoot })
  })
}

/**
 * The first pass of the two-pass split: runs `source` (through `before`, the stages that run before
 * {@link split} in the second pass) into {@link splitPlanner} and returns the plan. Memory: O(groups).
 *
 * @param options.before stages to run before planning (e.g. `[validateRanking()]`), the same as in the
 *   second pass, made fresh for this run
 * @example
 * const plan = await planSplit(parquetSource({ path }), { eval: 500, seed: 42, before: [validateRanking()] })
 * console.log(plan.evalRows, plan.evalGroups) // 500, 173
 * await pipeline(parquetSource({ path }), validateRanking(), split({ plan }), llamaFactory({ out, name }))
 */
export async function planSplit(
  source: Source<PreferenceSample>,
  options: PlanSplitOptions & { before?: Transform<PreferenceSample, PreferenceSample>[] },
  pipelineOptions: PipelineOptions = {},
): Promise<SplitPlan> {
  const { before = [], ...planOptions } = options
  const run = pipeline as unknown as (...args: unknown[]) => Promise<PipelineResult<SplitPlan>>
  const { result } = await run(source, ...before, splitPlanner(planOptions), pipelineOptions)
  return result
}

// ---------------------------------------------------------------------------------------------------------------
// The transform
// ---------------------------------------------------------------------------------------------------------------

/**
 * The split stage: sets `sample.meta.split` to `'train'` or `'eval'` (overwriting any earlier value), never
 * putting one group on both sides (see the top of this module for what a group is).
 * - `split({ eval: 0.1, seed })`: one streaming pass, side of a group from a seeded hash of its key.
 * - `split({ eval: 0.1, seed, stratify })`: one pass, the fraction held per stratum.
 * - `split({ plan })`: the second pass of {@link planSplit} (a count, or an exact fraction).
 *
 * Counters: `train`, `eval` (rows), `groups`, `trainGroups`, `evalGroups`; in one pass also `bridges`
 * (rows rejected as `split_bridge`); with a plan `unplanned` (rows of groups the plan never saw: put in
 * train); with `stratify`, `<side>:<stratum>` row counts. Put it after every stage that drops rows.
 *
 * @example
 * await pipeline(source, validateRanking(), split({ eval: 0.05, seed: 42 }), llamaFactory({ out, name }))
 * @example
 * const plan = await planSplit(source, { eval: 300, seed: 42 })
 * await pipeline(source, split({ plan }), llamaFactory({ out, name })) // exactly 300 eval rows (see SplitPlan)
 */
export function split(options: SplitOptions): Transform<PreferenceSample, PreferenceSample> {
  const parsed = splitSchema.safeParse(options)
  if (!parsed.success) throw invalid('split()', parsed.error)
  const o = parsed.data
  if (o.plan) {
    if (o.eval !== undefined || o.seed !== undefined || o.stratify !== undefined) {
      throw new TypeError('[prefpipe] split(): give either a plan or eval/seed/stratify, not both (the plan carries them)')
    }
    return planned(o.plan)
  }
  if (o.eval === undefined) throw new TypeError('[prefpipe] split(): option "eval" is required (a fraction in (0, 1) or, with a plan, a count)')
  if (o.eval >= 1) {
    throw new TypeError(
      `[prefpipe] split(): an eval count (${o.eval}) needs two passes: const plan = await planSplit(source, { eval: ${o.eval}, seed }); then split({ plan })`,
    )
  }
  return streaming(o.eval, o.seed ?? 0, o.stratify)
}

function mark(sample: PreferenceSample, side: SplitSide, ctx: StageContext, stratum: string | undefined): PreferenceSample {
  sample.meta = { ...sample.meta, split: side }
  ctx.stats.count(side)
  if (stratum !== undefined) ctx.stats.count(`${side}:${stratum}`)
  return sample
}

function streaming(fraction: number, seed: number | string, stratify: ((s: PreferenceSample) => string) | undefined): Transform<PreferenceSample, PreferenceSample> {
  return named('split', async function* (input: AsyncIterable<PreferenceSample>, ctx: StageContext) {
    const maker = new KeyMaker()
    const uf = new UnionFind()
    /** root -> 1 eval, 0 train (meaningful at roots). */
    const side: number[] = []
    let groups = 0
    let evalGroups = 0
    // Per stratum: rows seen and eval rows, for the deficit controller.
    const seen = new Map<string, { rows: number; eval: number }>()
    for await (const sample of input) {
      const { primary, keys } = await maker.keys(sample)
      const roots = new Set<number>()
      const fresh: string[] = []
      for (const k of keys) {
        const i = uf.ids.get(k)
        if (i === undefined) fresh.push(k)
        else roots.add(uf.find(i))
      }
      const sides = new Set([...roots].map((r) => side[r]))
      if (sides.size > 1) {
        ctx.stats.count('bridges')
        ctx.reject({
          id: sample.id,
          reason: 'split_bridge',
          message:
            'the row has images in both a train and an eval group, so it would leak on either side; plan the split in two passes (planSplit) to keep such rows',
          detail: { images: sample.images.length },
        })
        continue
      }
      const stratum = stratify ? String(stratify(sample)) : undefined
      let root: number
      if (roots.size === 0) {
        // A new group: its side from the seeded hash of its primary key (with strata: plus the deficit).
        const u = seededUnit(seed, primary)
        let isEval: boolean
        if (stratum !== undefined) {
          const st = seen.get(stratum) ?? { rows: 0, eval: 0 }
          isEval = fraction * st.rows - st.eval + fraction > u
        } else isEval = u < fraction
        root = uf.id(fresh.shift()!)
        side[root] = isEval ? 1 : 0
        groups++
        if (isEval) evalGroups++
      } else {
        const [first, ...rest] = [...roots]
        root = first!
        for (const r of rest) {
          uf.parent[r] = root // same side: merge the groups
          groups--
          if (side[root] === 1) evalGroups--
        }
      }
      for (const k of fresh) uf.parent[uf.id(k)] = root
      const s: SplitSide = side[root] === 1 ? 'eval' : 'train'
      if (stratum !== undefined) {
        const st = seen.get(stratum) ?? { rows: 0, eval: 0 }
        st.rows++
        if (s === 'eval') st.eval++
        seen.set(stratum, st)
      }
      yield mark(sample, s, ctx, stratum)
    }
    ctx.stats.count('groups', groups)
    ctx.stats.count('evalGroups', evalGroups)
    ctx.stats.count('trainGroups', groups - evalGroups)
  })
}

function planned(plan: SplitPlan): Transform<PreferenceSample, PreferenceSample> {
  return named('split', async function* (input: AsyncIterable<PreferenceSample>, ctx: StageContext) {
    const maker = new KeyMaker()
    let rows = 0
    let unplanned = 0
    let bridges = 0
    for await (const sample of input) {
      rows++
      const { keys } = await maker.keys(sample)
      const found = plan.sideOf(keys)
      const stratum = plan.stratify ? String(plan.stratify(sample)) : undefined
      if (found === 'bridge') {
        bridges++
        ctx.stats.count('bridges')
        ctx.reject({
          id: sample.id,
          reason: 'split_bridge',
          message: 'the row links a planned train group and a planned eval group (the input changed since planSplit); it would leak on either side',
          detail: { images: sample.images.length },
        })
        continue
      }
      if (found === undefined) {
        unplanned++
        ctx.stats.count('unplanned')
      }
      yield mark(sample, found ?? 'train', ctx, stratum)
    }
    if (unplanned > 0 || bridges > 0 || rows !== plan.rows) {
      ctx.log.warn(
        `split: the input differs from the planned one (${rows} rows now, ${plan.rows} planned; ${unplanned} rows of unplanned groups put in train, ${bridges} bridging rows rejected); run the same stages before planSplit and split`,
      )
    }
    ctx.stats.count('groups', plan.groups)
    ctx.stats.count('evalGroups', plan.evalGroups)
    ctx.stats.count('trainGroups', plan.groups - plan.evalGroups)
  })
}
