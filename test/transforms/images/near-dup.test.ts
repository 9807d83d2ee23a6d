import { describe, expect, it } from 'vitest'
import { hammingDistance, hashHex, ImageGroups, NearDuplicateIndex, phashFromGrey } from '../../../src/transforms/images/index.js'

/** A seeded 64-bit random source (two mulberry32 words). */
function rng(seed: number) {
  let a = seed >>> 0
  const word = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }
  return (): bigint => (BigInt(word()) << 32n) | BigInt(word())
}

/** `h` with `bits` random distinct bits flipped. */
function flip(h: bigint, bits: number, next: () => bigint): bigint {
  const positions = new Set<number>()
  while (positions.size < bits) positions.add(Number(next() % 64n))
  for (const p of positions) h ^= 1n << BigInt(p)
  return h
}

describe('hammingDistance and phashFromGrey', () => {
  it('counts differing bits over 64', () => {
    expect(hammingDistance(0n, 0n)).toBe(0)
    expect(hammingDistance(0n, 0xffffffffffffffffn)).toBe(64)
    expect(hammingDistance(0b1011n, 0b0001n)).toBe(2)
    expect(hammingDistance(1n << 63n, 1n)).toBe(2)
    expect(hashHex(255n)).toBe('00000000000000ff')
  })
  it('hashes a flat image deterministically and a gradient differently', () => {
    expect(phashFromGrey(new Uint8Array(1024).fill(128))).toBe(0xffffffffffffffffn)
    const next = rng(3)
    const a = Uint8Array.from({ length: 1024 }, () => Number(next() & 255n))
    const b = Uint8Array.from({ length: 1024 }, () => Number(next() & 255n))
    expect(hammingDistance(phashFromGrey(a), phashFromGrey(b))).toBeGreaterThan(16)
    const brighter = a.map((v) => Math.min(255, v + 3))
    expect(hammingDistance(phashFromGrey(a), phashFromGrey(brighter))).toBeLessThanOrEqual(2)
    expect(() => phashFromGrey(new Uint8Array(10))).toThrow(RangeError)
  })
})

describe('NearDuplicateIndex', () => {
  it('finds exactly what brute force finds, for distances 0 to 10', () => {
    const next = rng(7)
    for (const d of [0, 4, 6, 10]) {
      const index = new NearDuplicateIndex(d)
      const hashes: bigint[] = []
      for (let i = 0; i < 1200; i++) {
        // a third are planted near copies of an earlier hash
        const h = i > 10 && i % 3 === 0 ? flip(hashes[Number(next() % BigInt(hashes.length))]!, Number(next() % 14n), next) : next()
        const expected = hashes.map((x, id) => ({ id, distance: hammingDistance(x, h) })).filter((m) => m.distance <= d)
        expect(index.search(h)).toEqual(expected)
        hashes.push(h)
        index.add(h)
      }
    }
  })

  it('compares a small fraction of the stored hashes per query (multi-index hashing, not all pairs)', () => {
    const next = rng(11)
    const index = new NearDuplicateIndex(6)
    const n = 100_000
    let found = 0
    let prev = 0n
    for (let i = 0; i < n; i++) {
      const planted = i % 1000 === 999
      const h = planted ? flip(prev, 3, next) : next()
      const hits = index.search(h)
      if (planted) expect(hits.map((m) => m.id)).toContain(i - 1)
      found += hits.length
      index.add(h)
      prev = h
    }
    expect(found).toBe(n / 1000) // the planted pairs and nothing else (random 64-bit hashes are ~32 bits apart)
    // All pairs would be n/2 = 100000 comparisons per query on average; the pigeonhole search reads
    // 4 tables x 17 buckets of ~(i/65536) hashes: about 52 on average here, about 1000 per query at one million.
    expect(index.candidatesChecked / n).toBeLessThan(80)
  }, 60_000)
})

describe('ImageGroups', () => {
  it('fixes each image\'s group when it arrives: its own sha256, or its closest match\'s group', () => {
    const g = new ImageGroups(2)
    expect(g.add('a', 0b0000n).group).toBe('a')
    expect(g.add('b', 0b1111_0000n).group).toBe('b') // far from a: its own group
    expect(g.add('c', 0b1111_0001n)).toMatchObject({ group: 'b', nearest: { sha256: 'b', distance: 1 }, merged: 0 })
    expect(g.add('e', 0b0001n).group).toBe('a')
    expect(g.multiGroups).toBe(2)
    expect(g.groupSize(0)).toBe(2)
  })

  it('a bridge between two groups links their components but changes no group id handed out', () => {
    // x and y are 4 bits apart (two groups at distance 3); z is 2 bits from each.
    const g = new ImageGroups(3)
    expect(g.add('x', 0b0000_0000n).group).toBe('x')
    expect(g.add('y', 0b1111_0000n).group).toBe('y')
    expect(g.add('z', 0b0011_0000n)).toMatchObject({ group: 'x', nearest: { sha256: 'x', distance: 2 }, merged: 2 }) // tie: the earliest
    expect(g.groupOf(1)).toBe('y') // y keeps its id, for every later row that uses y too
    expect(g.add('w', 0b1111_0001n).group).toBe('y') // closest to y
    expect([g.canonical('y'), g.canonical('x'), g.componentOf(3)]).toEqual(['x', 'x', 'x']) // one component, rooted at x
    expect([g.merges, g.multiGroups, g.groupSize(1)]).toEqual([1, 1, 4])
  })

  it('refuses a sha256 added twice', () => {
    const g = new ImageGroups(6)
    g.add('a', 1n)
    expect(() => g.add('a', 1n)).toThrow(/already added/)
    expect(g.idOf('a')).toBe(0)
    expect(g.idOf('b')).toBeUndefined()
  })
})
