import { EventEmitter } from 'node:events'
import { writeFileSync } from 'node:fs'
import { fdsOn } from '../helpers.js'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Rejects, Stats, makeContext } from '../../src/pipeline/context.js'
import { pipeline } from '../../src/pipeline/index.js'
import type { Logger, ProgressUpdate, Shard, Sink } from '../../src/pipeline/types.js'
import type { PreferenceSample } from '../../src/record.js'
import { jsonSource, type JsonSourceOptions } from '../../src/sources/json.js'

const DIR = join(import.meta.dirname, '..', 'fixtures', 'json')
const at = (name: string) => join(DIR, name)

function context(opts: { signal?: AbortSignal; shard?: Shard } = {}) {
  const rejects = new Rejects()
  const progress: ProgressUpdate[] = []
  const warnings: string[] = []
  const log: Logger = { debug() {}, info() {}, warn: (m) => warnings.push(m) }
  const ctx = makeContext(
    {
      signal: opts.signal ?? new AbortController().signal,
      log,
      events: new EventEmitter(),
      shard: opts.shard ?? { index: 0, count: 1 },
      rejects,
      emit(e) {
        if (e.type === 'progress') progress.push(e)
      },
    },
    new Stats('json'),
  )
  return { ctx, rejects, progress, warnings }
}

async function collect(options: JsonSourceOptions, ctxOpts: { signal?: AbortSignal; shard?: Shard } = {}) {
  const c = context(ctxOpts)
  const samples: PreferenceSample[] = []
  for await (const s of jsonSource(options)(c.ctx)) samples.push(s)
  return { samples, rejected: c.rejects.drain(), progress: c.progress, warnings: c.warnings }
}


const GOOD = [0, 1, 2, 3].map((i) => ({
  messages: [{ role: 'user', content: `${'<image>'.repeat(i === 2 ? 2 : i === 3 ? 0 : 1)}What is in picture ${i}? 这是什么 🐱` }],
  chosen: { role: 'assistant', content: `Chosen ${i} ✅` },
  rejected: { role: 'assistant', content: `Rejected ${i} ❌` },
}))
/** The image paths of the 4 good rows, resolved against `mediaDir`. */
const imagesOf = (mediaDir: string) => [
  [{ path: resolve(mediaDir, 'imgs/0.jpg') }],
  [{ path: '/abs/pics/1.jpg' }],
  [{ path: resolve(mediaDir, 'imgs/2a.jpg') }, { path: resolve(mediaDir, '../shared/2b.jpg') }],
  [],
]

function expectGood(samples: PreferenceSample[], name: string, rows: number[], mediaDir = DIR) {
  expect(samples.map((s) => s.id)).toEqual(rows.map((r) => `${name}#${r}`))
  samples.forEach((s, i) => {
    expect({ messages: s.messages, chosen: s.chosen, rejected: s.rejected }).toEqual(GOOD[i])
    expect(s.images).toEqual(imagesOf(mediaDir)[i])
    expect(s.system).toBe(i === 2 ? 'Be brief.' : undefined)
  })
}

describe('jsonSource', () => {
  it('streams a .jsonl: skips blank lines, rejects a line that is not JSON (json_invalid) and goes on', async () => {
    const { samples, rejected, progress } = await collect({ path: at('demo.jsonl') })
    // rows: 0, 1, 2, 3 = the invalid line, 4 = row 3, 5 = bad role; blank lines are not rows
    expectGood(samples, 'demo.jsonl', [0, 1, 2, 4])
    expect(samples.map((s) => s.meta.row)).toEqual([0, 1, 2, 4])
    expect(rejected).toHaveLength(2)
    expect(rejected[0]).toMatchObject({ id: 'demo.jsonl#3', stage: 'json', reason: 'json_invalid', detail: { line: 5, text: '{"conversations": [ oops not json' } })
    expect(rejected[0]!.message).toMatch(/^line 5 is not valid JSON/)
    expect(rejected[1]).toMatchObject({ id: 'demo.jsonl#5', reason: 'role_unknown' })
    expect(progress.at(-1)).toMatchObject({ done: 6, total: 6 })
    expect(progress.at(-1)!.bytes).toBe(progress.at(-1)!.totalBytes)
  })

  it('reads a .json array', async () => {
    const { samples, rejected } = await collect({ path: at('demo.json') })
    expect(rejected).toEqual([])
    expectGood(samples, 'demo.json', [0, 1, 2, 3])
  })

  it('reads JSON Lines in a .json file, as HF does', async () => {
    const { samples, rejected } = await collect({ path: at('lines.json'), name: 'l' })
    expect(rejected).toEqual([])
    expectGood(samples, 'l', [0, 1, 2, 3])
  })

  it('copes with a BOM and CRLF line ends', async () => {
    const { samples, rejected } = await collect({ path: at('bom-crlf.jsonl') })
    expect(rejected).toEqual([])
    expectGood(samples, 'bom-crlf.jsonl', [0, 1, 2, 3])
  })

  it('resolves relative image paths against the data file folder by default, or mediaDir', async () => {
    const nested = at('sub/nested.jsonl')
    const byDefault = await collect({ path: nested })
    expect(byDefault.samples[0]!.images).toEqual([{ path: join(DIR, 'sub', 'imgs', 'n0.jpg') }])
    expect(byDefault.samples[0]!.meta.imagePaths).toEqual(['imgs/n0.jpg'])
    // LLaMA-Factory's default would be dataset_dir: pass it as mediaDir (relative mediaDir resolves against cwd)
    const withMediaDir = await collect({ path: nested, mediaDir: DIR })
    expect(withMediaDir.samples[0]!.images).toEqual([{ path: join(DIR, 'imgs', 'n0.jpg') }])
    const demo = await collect({ path: at('demo.jsonl'), mediaDir: '/data/media' })
    expectGood(demo.samples, 'demo.jsonl', [0, 1, 2, 4], '/data/media')
    // absolute paths are kept whatever mediaDir is
    expect(demo.samples[1]!.images).toEqual([{ path: '/abs/pics/1.jpg' }])
  })

  it('maps other column and tag names, and a bare image string', async () => {
    const { samples, rejected } = await collect({
      path: at('custom.jsonl'),
      columns: { messages: 'messages', chosen: 'good', rejected: 'bad', images: 'pics' },
      tags: { role_tag: 'role', content_tag: 'content', user_tag: 'user', assistant_tag: 'assistant' },
    })
    expect(rejected).toEqual([])
    expect(samples.map((s) => [s.messages[0]!.content, s.chosen.content, s.images])).toEqual([
      ['<image>q0', 'g0', [{ path: join(DIR, 'p0.png') }]],
      ['<image>q1', 'g1', [{ path: join(DIR, 'p1.png') }]],
      ['<image>q2', 'g2', [{ path: join(DIR, 'p2.png') }]],
    ])
  })

  it('warns once when the first row lacks the mapped columns (and rejects the rows)', async () => {
    const { samples, rejected, warnings } = await collect({ path: at('custom.jsonl') })
    expect(samples).toEqual([])
    expect(rejected.map((r) => r.reason)).toEqual(['row_shape', 'row_shape', 'row_shape'])
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/no "conversations", "chosen", "rejected" \(it has "messages", "good", "bad", "pics"\).*`columns` option/)
  })

  it('shard i/n takes the rows with rowIndex % n === i; together the shards cover every row once', async () => {
    for (const path of [at('demo.jsonl'), at('demo.json')]) {
      const seen: string[] = []
      let rejects = 0
      for (let index = 0; index < 3; index++) {
        const { samples, rejected } = await collect({ path, name: 'x' }, { shard: { index, count: 3 } })
        for (const s of samples) expect((s.meta.row as number) % 3).toBe(index)
        for (const r of rejected) expect(Number(r.id.split('#')[1]) % 3).toBe(index)
        seen.push(...samples.map((s) => s.id))
        rejects += rejected.length
      }
      const whole = await collect({ path, name: 'x' })
      expect(seen.sort()).toEqual(whole.samples.map((s) => s.id).sort())
      expect(rejects).toBe(whole.rejected.length)
    }
  })

  it('fails clearly on a missing file, a directory, and a .json array that is not JSON', async () => {
    await expect(collect({ path: at('nope.jsonl') })).rejects.toThrow(/nope\.jsonl does not exist/)
    await expect(collect({ path: DIR })).rejects.toThrow(/is not a regular file/)
    await expect(collect({ path: at('broken.json') })).rejects.toThrow(/broken\.json is not valid JSON/)
    const empty = await collect({ path: at('empty-array.json') })
    expect([empty.samples, empty.rejected]).toEqual([[], []])
  })
})

describe('jsonSource cleanup', () => {
  let dir: string
  let big: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prefpipe-json-'))
    big = join(dir, 'big.jsonl')
    const line = JSON.stringify({ conversations: [{ from: 'human', value: `<image>${'x'.repeat(1000)}` }], chosen: { from: 'gpt', value: 'a' }, rejected: { from: 'gpt', value: 'b' }, images: ['i.jpg'] })
    writeFileSync(big, `${line}\n`.repeat(4000)) // ~4 MB: many stream buffers
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('reads a big file with the stream open, and closes it at the end', async () => {
    const c = context()
    let n = 0
    let open = 0
    for await (const _ of jsonSource({ path: big })(c.ctx)) if (++n === 10) open = fdsOn(big)
    expect(n).toBe(4000)
    expect(open).toBe(1)
    expect(fdsOn(big)).toBe(0)
  })

  it('closes the stream when the consumer stops early', async () => {
    const c = context()
    let n = 0
    for await (const _ of jsonSource({ path: big })(c.ctx)) if (++n === 100) break
    expect(fdsOn(big)).toBe(0)
  })

  it('stops on abort in a pipeline and closes the stream', async () => {
    const ac = new AbortController()
    let got = 0
    let openWhileRunning = 0
    const sink: Sink<PreferenceSample, number> = async (input) => {
      for await (const _ of input) {
        if (++got === 1000) {
          openWhileRunning = fdsOn(big)
          ac.abort()
        }
      }
      return got
    }
    await expect(pipeline(jsonSource({ path: big }), sink, { signal: ac.signal })).rejects.toMatchObject({ name: 'AbortError' })
    expect(got).toBe(1000)
    expect(openWhileRunning).toBe(1)
    expect(fdsOn(big)).toBe(0)
  })

  it('throws AbortError when iterated directly with an aborted signal', async () => {
    const ac = new AbortController()
    const c = context({ signal: ac.signal })
    const it = jsonSource({ path: big })(c.ctx)[Symbol.asyncIterator]()
    expect((await it.next()).done).toBe(false)
    ac.abort()
    await expect(it.next()).rejects.toMatchObject({ name: 'AbortError' })
    expect(fdsOn(big)).toBe(0)
  })
})
