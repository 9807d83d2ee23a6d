/**
 * Near-duplicate search over 64-bit perceptual hashes (multi-index hashing) and the grouping of images into
 * near-duplicate groups: a fixed group id per image, plus union-find components for the final picture.
 */

/** An earlier image within the distance, by id (insertion order). */
export interface NearMatch {
  id: number
  distance: number
}

const CHUNKS = 4
const CHUNK_BITS = 16
const BUCKETS = 1 << CHUNK_BITS

/**
 * Every hash within `maxDistance` bits of a query, without comparing all pairs: multi-index hashing
 * (Norouzi et al.). The 64 bits are cut into four 16-bit chunks, each with its own table of 65536 buckets.
 * Two hashes within distance `d` agree on at least one chunk up to `floor(d/4)` bits (pigeonhole), so a search
 * only reads the buckets of each chunk's value flipped in at most that many bits: for `d = 6`, 17 buckets per
 * table. With `n` evenly spread hashes a query compares about `4·17·n/65536` candidates (≈1000 at one
 * million); each bucket stores its hashes inline (`hi, lo, id` triples), so a comparison is a sequential read
 * and two popcounts, not a cache miss. Memory: 48 bytes per hash (plus up to as much again of bucket slack).
 *
 * @example
 * const index = new NearDuplicateIndex(6)
 * index.add(0x0123456789abcdefn)              // 0
 * index.search(0x0123456789abcdeen)          // [{ id: 0, distance: 1 }]
 */
export class NearDuplicateIndex {
  readonly maxDistance: number
  /** How many stored hashes the searches so far compared (for benchmarks and tests). */
  candidatesChecked = 0
  private count = 0
  /** `[table][bucket]`: `hi, lo, id` triples (as int32), `used[table][bucket]` of them filled. */
  private readonly buckets: (Int32Array | undefined)[][] = []
  private readonly used: Uint32Array[] = []
  private readonly masks: Uint32Array

  constructor(maxDistance: number) {
    if (!Number.isInteger(maxDistance) || maxDistance < 0 || maxDistance > 64) throw new RangeError(`NearDuplicateIndex: maxDistance must be an integer 0..64 (got ${maxDistance})`)
    this.maxDistance = maxDistance
    for (let t = 0; t < CHUNKS; t++) {
      this.buckets.push(new Array<Int32Array | undefined>(BUCKETS).fill(undefined))
      this.used.push(new Uint32Array(BUCKETS))
    }
    const radius = Math.floor(maxDistance / CHUNKS)
    const masks: number[] = []
    for (let m = 0; m < BUCKETS; m++) if (popcount32(m) <= radius) masks.push(m)
    masks.sort((a, b) => popcount32(a) - popcount32(b) || a - b)
    this.masks = Uint32Array.from(masks)
  }

  /** How many hashes are stored. */
  get size(): number {
    return this.count
  }

  /** Store a hash; returns its id (0, 1, 2, ... in insertion order). */
  add(hash: bigint): number {
    if (this.count >= 0xffffffff) throw new RangeError('NearDuplicateIndex: full (2^32 - 1 hashes)')
    const id = this.count++
    // Int32 everywhere: Uint32 values above 2^31 would leave V8's small-integer fast path.
    const hi = Number(BigInt.asIntN(32, hash >> 32n))
    const lo = Number(BigInt.asIntN(32, hash))
    for (let t = 0; t < CHUNKS; t++) {
      const key = chunk(hi, lo, t)
      const table = this.buckets[t]!
      const n = this.used[t]![key]!
      let bucket = table[key]
      if (!bucket || n + 3 > bucket.length) {
        const bigger = new Int32Array(bucket ? bucket.length * 2 : 12)
        if (bucket) bigger.set(bucket)
        table[key] = bucket = bigger
      }
      bucket[n] = hi
      bucket[n + 1] = lo
      bucket[n + 2] = id
      this.used[t]![key] = n + 3
    }
    return id
  }

  /** Every stored hash within `maxDistance` of `hash`, by id ascending. */
  search(hash: bigint): NearMatch[] {
    const hi = Number(BigInt.asIntN(32, hash >> 32n))
    const lo = Number(BigInt.asIntN(32, hash))
    const masks = this.masks
    const max = this.maxDistance
    const found: NearMatch[] = []
    let checked = 0
    for (let t = 0; t < CHUNKS; t++) {
      const key = chunk(hi, lo, t)
      const table = this.buckets[t]!
      const used = this.used[t]!
      for (let m = 0; m < masks.length; m++) {
        const k = key ^ masks[m]!
        const bucket = table[k]
        if (bucket === undefined) continue
        const n = used[k]!
        checked += n / 3
        for (let i = 0; i < n; i += 3) {
          const d = popcount32(bucket[i]! ^ hi) + popcount32(bucket[i + 1]! ^ lo)
          if (d <= max) found.push({ id: bucket[i + 2]!, distance: d })
        }
      }
    }
    this.candidatesChecked += checked
    // A hash close in several chunks is found in several tables: keep one of each.
    found.sort((a, b) => a.id - b.id)
    return found.filter((f, i) => i === 0 || found[i - 1]!.id !== f.id)
  }
}

/** Set bits of a 32-bit integer (a local copy: the hot loop should not call across modules). */
function popcount32(v: number): number {
  v = v - ((v >>> 1) & 0x55555555)
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333)
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24
}

function chunk(hi: number, lo: number, t: number): number {
  const word = t < 2 ? lo : hi
  return (t % 2 === 0 ? word : word >>> CHUNK_BITS) & (BUCKETS - 1)
}

function growTo<A extends Uint32Array | Int32Array>(a: A, n: number): A {
  const b = new (a.constructor as new (n: number) => A)(n)
  b.set(a)
  return b
}

/** What {@link ImageGroups.add} did with a new image. */
export interface GroupAssignment {
  /** The image's id (distinct images in the order they were added). */
  id: number
  /** The image's group id, fixed from now on: its own sha256, or the group id of its closest earlier match. */
  group: string
  /** The closest earlier image it matched (ties: the earliest), if any. */
  nearest?: { id: number; sha256: string; distance: number }
  /** How many separate components this image linked into one (0 when it matched at most one). */
  merged: number
}

/**
 * Distinct images (by sha256 of their bytes) and their near-duplicate groups, built in stream order.
 *
 * Semantics (made for a stream: a group id handed out is never changed):
 * - An image's group id is fixed when the image is first added, so every row that uses the same image
 *   carries the same group id, before and after anything that comes later.
 * - An image that matches no earlier image (within `maxDistance`, inclusive) starts a group: its id is the
 *   image's own sha256.
 * - An image that matches earlier images takes the group id of the closest one (ties: the earliest), so a
 *   near-duplicate pair always shares an id as soon as its second image arrives.
 * - If the matches carry different group ids, the image is a bridge: the groups stay as they were handed out,
 *   but the union-find components (rooted at their earliest member) are joined. {@link ImageGroups.canonical}
 *   maps any group id to its component's id (the sha256 of the component's earliest image) for whoever can
 *   wait for the end of the run; {@link ImageGroups.merges} counts bridges.
 * Exact duplicates (the same sha256) are one image.
 *
 * @example
 * const groups = new ImageGroups(6)
 * groups.add('aa…', 0x00ffn) // { id: 0, group: 'aa…', merged: 0 }
 * groups.add('bb…', 0x00fen) // { id: 1, group: 'aa…', nearest: { id: 0, … }, merged: 0 }
 */
export class ImageGroups {
  readonly index: NearDuplicateIndex
  /** Components with two or more distinct images, now. */
  multiGroups = 0
  /** Times an image linked two or more components into one. */
  merges = 0
  private readonly byHash = new Map<string, number>()
  private readonly shas: string[] = []
  /** The fixed group id of every image (shared string objects: one pointer each). */
  private readonly groups: string[] = []
  private parent = new Int32Array(1024)
  private sizes = new Int32Array(1024)

  constructor(maxDistance: number) {
    this.index = new NearDuplicateIndex(maxDistance)
  }

  /** Distinct images added so far. */
  get size(): number {
    return this.shas.length
  }

  /** The id of the image with this sha256, if it was added. */
  idOf(sha256: string): number | undefined {
    return this.byHash.get(sha256)
  }

  /** The sha256 of an image id. */
  shaOf(id: number): string {
    return this.shas[id]!
  }

  /** Earlier images within the distance of `hash` (none is added). */
  matches(hash: bigint): NearMatch[] {
    return this.index.search(hash)
  }

  /** The group id of an image id: fixed when it was added. */
  groupOf(id: number): string {
    return this.groups[id]!
  }

  /** The component id of an image id now: the sha256 of the earliest image connected to it. */
  componentOf(id: number): string {
    return this.shas[this.find(id)]!
  }

  /** The component id a group id handed out earlier belongs to now (after any later bridge). */
  canonical(group: string): string {
    const id = this.byHash.get(group)
    return id === undefined ? group : this.componentOf(id)
  }

  /** Distinct images in the component of an image id. */
  groupSize(id: number): number {
    return this.sizes[this.find(id)]!
  }

  /**
   * Add a distinct image (its sha256 must be new) with its perceptual hash and its `matches` (from
   * {@link ImageGroups.matches}; pass them to avoid a second search), and assign its group.
   */
  add(sha256: string, hash: bigint, matches: NearMatch[] = this.matches(hash)): GroupAssignment {
    if (this.byHash.has(sha256)) throw new Error(`ImageGroups.add: ${sha256} was already added`)
    const id = this.index.add(hash)
    if (id === this.parent.length) {
      this.parent = growTo(this.parent, id * 2)
      this.sizes = growTo(this.sizes, id * 2)
    }
    this.parent[id] = id
    this.sizes[id] = 1
    this.shas.push(sha256)
    this.byHash.set(sha256, id)
    const roots = new Set<number>()
    let nearest: NearMatch | undefined
    for (const m of matches) {
      roots.add(this.find(m.id))
      if (!nearest || m.distance < nearest.distance || (m.distance === nearest.distance && m.id < nearest.id)) nearest = m
    }
    for (const root of roots) this.union(id, root)
    const merged = roots.size > 1 ? roots.size : 0
    if (merged) this.merges++
    const group = nearest ? this.groups[nearest.id]! : sha256
    this.groups.push(group)
    return {
      id,
      group,
      ...(nearest ? { nearest: { id: nearest.id, sha256: this.shas[nearest.id]!, distance: nearest.distance } } : {}),
      merged,
    }
  }

  private find(id: number): number {
    const p = this.parent
    while (p[id] !== id) {
      p[id] = p[p[id]!]!
      id = p[id]!
    }
    return id
  }

  /** Join two components; the root with the smaller id (the earlier member) stays the root. */
  private union(a: number, b: number): void {
    const ra = this.find(a)
    const rb = this.find(b)
    if (ra === rb) return
    const [root, child] = ra < rb ? [ra, rb] : [rb, ra]
    const sr = this.sizes[root]!
    const sc = this.sizes[child]!
    this.parent[child] = root
    this.sizes[root] = sr + sc
    this.multiGroups += 1 - (sr >= 2 ? 1 : 0) - (sc >= 2 ? 1 : 0)
  }
}
