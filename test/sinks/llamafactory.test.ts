import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { crc32, deflateSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PipelineError, named, pipeline, type Source, type Transform } from '../../src/pipeline/index.js'
import type { ImageRef, PreferenceSample } from '../../src/record.js'
import { detectImageFormat, llamaFactory, mergeDatasetInfo, type LlamaFactoryManifest } from '../../src/sinks/llamafactory.js'

// skimage-rocket.jpg: SpaceX photo released into the public domain, via python3-skimage (BSD-3-Clause);
// see /work/shared/photos/SOURCES.md.
const PHOTO = '/work/shared/photos/skimage-rocket.jpg'

/** A minimal valid PNG (8-bit RGB, one colour), built by hand. Different `seed`s give different bytes. */
function makePng(seed: number, w = 2, h = 2): Uint8Array {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data])
    const len = Buffer.alloc(4)
    len.writeUInt32BE(data.length)
    const crc = Buffer.alloc(4)
    crc.writeUInt32BE(crc32(body))
    return Buffer.concat([len, body, crc])
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(w, 0)
  ihdr.writeUInt32BE(h, 4)
  ihdr.set([8, 2, 0, 0, 0], 8) // bit depth 8, colour type RGB
  const raw = Buffer.alloc(h * (1 + w * 3))
  for (let y = 0; y < h; y++) {
    const row = y * (1 + w * 3)
    for (let x = 0; x < w; x++) raw.set([seed & 255, (seed >> 8) & 255, 77], row + 1 + x * 3)
  }
  const png = Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ])
  return new Uint8Array(png)
}

function sample(i: number, images: ImageRef[] = [], extra: Partial<PreferenceSample> = {}): PreferenceSample {
  return {
    id: `mem#${i}`,
    messages: [{ role: 'user', content: `${'<image>'.repeat(images.length)}question ${i}` }],
    chosen: { role: 'assistant', content: `good ${i}` },
    rejected: { role: 'assistant', content: `bad ${i}` },
    images,
    meta: {},
    ...extra,
  }
}

function source(samples: () => PreferenceSample[]): Source<PreferenceSample> {
  return named('mem', async function* () {
    for (const s of samples()) yield s
  })
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

async function walk(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...(await walk(p)))
    else out.push(p)
  }
  return out.sort()
}

/** Every file under `dir`, relative path -> bytes. */
async function snapshot(dir: string): Promise<Map<string, Buffer>> {
  const m = new Map<string, Buffer>()
  for (const f of await walk(dir)) m.set(relative(dir, f), await readFile(f))
  return m
}

async function readJsonl(path: string): Promise<unknown[]> {
  const text = await readFile(path, 'utf8')
  return text === '' ? [] : text.trimEnd().split('\n').map((l) => JSON.parse(l) as unknown)
}

const TAGS = {
  role_tag: 'from',
  content_tag: 'value',
  user_tag: 'human',
  assistant_tag: 'gpt',
  observation_tag: 'observation',
  function_tag: 'function_call',
  system_tag: 'system',
}
const entryFor = (file: string) => ({
  file_name: file,
  formatting: 'sharegpt',
  ranking: true,
  columns: { messages: 'conversations', chosen: 'chosen', rejected: 'rejected', images: 'images' },
  tags: TAGS,
})

let root: string
let photo: Uint8Array
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'prefpipe-lf-'))
  photo = new Uint8Array(await readFile(PHOTO))
})
afterAll(() => rm(root, { recursive: true, force: true }))
let n = 0
const freshDir = async () => {
  const d = join(root, `run${++n}`)
  await mkdir(d, { recursive: true })
  return d
}

/** Three rows share the photo, one has two PNGs, one has none, one has a system prompt and an image from disk. */
async function basicSamples(dir: string): Promise<() => PreferenceSample[]> {
  const onDisk = join(dir, 'disk.png')
  await writeFile(onDisk, makePng(9))
  return () => [
    sample(0, [{ bytes: photo.slice() }]),
    sample(1, [{ bytes: photo.slice() }]),
    sample(2, [{ bytes: makePng(1) }, { bytes: makePng(2) }]),
    sample(3, []),
    sample(4, [{ bytes: photo.slice() }]),
    sample(5, [{ path: onDisk }], { system: 'Be brief.' }),
  ]
}

describe('llamaFactory sink', () => {
  it('writes rows, images, dataset_info.json, rejects.jsonl and manifest.json in the agreed shapes', async () => {
    const dir = await freshDir()
    const out = join(dir, 'out')
    const samples = (await basicSamples(dir))()
    const { result } = await pipeline(source(() => samples), llamaFactory({ out, name: 'demo', inputs: [{ file: 'x.parquet', sha256: 'ab' }], options: { preset: 'test' } }))

    const files = (await walk(out)).map((f) => relative(out, f))
    const imageFiles = files.filter((f) => f.startsWith('images/'))
    expect(files.filter((f) => !f.startsWith('images/'))).toEqual(['dataset_info.json', 'demo_train.jsonl', 'manifest.json', 'rejects.jsonl'])
    expect(imageFiles).toHaveLength(4) // photo, two PNGs, the PNG on disk

    const rows = (await readJsonl(join(out, 'demo_train.jsonl'))) as Record<string, unknown>[]
    expect(rows).toHaveLength(6)
    for (const r of rows) {
      expect(Object.keys(r)).toEqual(['conversations', 'chosen', 'rejected', 'images'])
      expect(Array.isArray(r.images)).toBe(true)
      for (const p of r.images as unknown[]) {
        expect(typeof p).toBe('string')
        expect(p).toMatch(/^images\/[0-9a-f]{2}\/[0-9a-f]{64}\.(jpg|png)$/)
        const bytes = await readFile(join(out, p as string))
        const [, prefix, hash] = /^images\/(..)\/([0-9a-f]{64})\./.exec(p as string)!
        expect(sha(bytes)).toBe(hash)
        expect(hash!.slice(0, 2)).toBe(prefix)
      }
    }
    expect(rows[0]).toEqual({
      conversations: [{ from: 'human', value: '<image>question 0' }],
      chosen: { from: 'gpt', value: 'good 0' },
      rejected: { from: 'gpt', value: 'bad 0' },
      images: [`images/${sha(photo).slice(0, 2)}/${sha(photo)}.jpg`],
    })
    expect(rows[3]!.images).toEqual([]) // always a list
    expect((rows[5]!.conversations as unknown[])[0]).toEqual({ from: 'system', value: 'Be brief.' })
    expect((rows[2]!.images as string[])[0]).toMatch(/\.png$/)

    // ImageRef.sha256 / format set on the way.
    expect(samples[0]!.images[0]).toMatchObject({ sha256: sha(photo), format: 'jpeg' })
    expect(samples[5]!.images[0]).toMatchObject({ format: 'png' })

    const info = JSON.parse(await readFile(join(out, 'dataset_info.json'), 'utf8')) as Record<string, Record<string, unknown>>
    expect(info).toEqual({ demo_train: entryFor('demo_train.jsonl') })
    expect(info.demo_train!.ranking).toBe(true) // the JSON boolean, not "true"

    expect(await readFile(join(out, 'rejects.jsonl'), 'utf8')).toBe('')

    const manifestText = await readFile(join(out, 'manifest.json'), 'utf8')
    const manifest = JSON.parse(manifestText) as Record<string, unknown>
    expect(Object.keys(manifest)).toEqual(['manifestVersion', 'prefpipe', 'sink', 'name', 'inputs', 'options', 'datasets', 'counts', 'files'])
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
    expect(manifest.prefpipe).toEqual({ version: pkg.version })
    expect(manifest.inputs).toEqual([{ file: 'x.parquet', sha256: 'ab' }])
    expect(manifest.options).toEqual({ preset: 'test' })
    expect(manifest.datasets).toEqual({ demo_train: { file_name: 'demo_train.jsonl', split: 'train', rows: 6 } })
    expect(manifest.counts).toMatchObject({ samplesIn: 6, kept: 6, train: 6, eval: 0, rejected: 0, rejectedByReason: {}, distinctImages: 4, imageRefs: 6 })
    const mf = manifest.files as Record<string, { sha256: string; size: number; count?: number }>
    expect(Object.keys(mf)).toEqual(['demo_train.jsonl', 'rejects.jsonl', 'dataset_info.json', 'images'])
    for (const f of ['demo_train.jsonl', 'rejects.jsonl', 'dataset_info.json']) {
      const bytes = await readFile(join(out, f))
      expect(mf[f]).toEqual({ sha256: sha(bytes), size: bytes.length })
    }
    expect(mf.images).toEqual({ sha256: sha(Buffer.from(imageFiles.map((f) => `${f}\n`).join(''))), size: expect.any(Number), count: 4 })
    // Deterministic: no timestamps, no absolute paths.
    expect(manifestText).not.toMatch(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/)
    expect(manifestText).not.toContain(root)
    expect(manifestText).not.toMatch(/"(startedAt|createdAt|time|date|timestamp)"/i)

    // The typed result, for the YAML writer and the launch.
    const r: LlamaFactoryManifest = result
    expect(r.out).toBe(out)
    expect(r.datasetDir).toBe(out)
    expect(r.mediaDir).toBe(out)
    expect(r.datasets.train).toMatchObject({ name: 'demo_train', fileName: 'demo_train.jsonl', file: join(out, 'demo_train.jsonl'), rows: 6, sha256: mf['demo_train.jsonl']!.sha256 })
    expect(r.datasets.eval).toBeUndefined()
    expect(r.files).toEqual({ datasetInfo: join(out, 'dataset_info.json'), rejects: join(out, 'rejects.jsonl'), manifest: join(out, 'manifest.json'), imagesDir: join(out, 'images') })
    expect(r.counts).toMatchObject({ imagesWritten: 4, imagesExisting: 0, distinctImages: 4 })
    expect(r.manifest).toEqual(manifest)
  })

  it('stores each distinct image once, however many rows use it, and skips it on a re-run', async () => {
    const out = join(await freshDir(), 'out')
    const shared = makePng(42)
    const samples = () => Array.from({ length: 40 }, (_, i) => sample(i, [{ bytes: shared.slice() }, { bytes: makePng(i % 4) }]))
    const first = await pipeline(source(samples), llamaFactory({ out, name: 'dup', concurrency: 6 }))
    const images = (await walk(join(out, 'images'))).map((f) => relative(out, f))
    expect(images).toHaveLength(5)
    expect(first.result.counts).toMatchObject({ imagesWritten: 5, imagesExisting: 0, distinctImages: 5, imageRefs: 80 })
    expect(first.report.stages.find((s) => s.name === 'llamafactory')!.counters.imagesWritten).toBe(5)
    const rows = (await readJsonl(join(out, 'dup_train.jsonl'))) as { images: string[] }[]
    expect(new Set(rows.map((r) => r.images[0])).size).toBe(1)

    const second = await pipeline(source(samples), llamaFactory({ out, name: 'dup', concurrency: 6 }))
    expect(second.result.counts).toMatchObject({ imagesWritten: 0, imagesExisting: 5, distinctImages: 5 })
  })

  it('rejects rows whose images it cannot store, and never takes a file name from a dataset path', async () => {
    const dir = await freshDir()
    const out = join(dir, 'out')
    // A real image whose (resolved) path is full of traversal, and a dataset path that says ../../etc/passwd.
    await mkdir(join(dir, 'media', 'sub'), { recursive: true })
    await writeFile(join(dir, 'media', 'passwd'), photo)
    const tricky = join(dir, 'media', 'sub', '..', 'passwd')
    // A text file reached by a relative path full of ../ from the CWD (not /etc/passwd: the CWD differs per machine).
    await writeFile(join(dir, 'media', 'notes.txt'), 'root:x:0:0:root:/root:/bin/bash\n')
    const relativeText = relative(process.cwd(), join(dir, 'media', 'notes.txt'))
    const samples = () => [
      sample(0, [{ path: tricky }], { meta: { imagePaths: ['../../etc/passwd'] } }),
      sample(1, [{ bytes: photo, path: '../../etc/passwd' }], { meta: { imagePaths: ['../../etc/passwd'] } }),
      sample(2, [{ path: relativeText }]), // read relative to the CWD: text, not an image
      sample(3, [{ bytes: new TextEncoder().encode('not an image at all') }]),
      sample(4, [{ path: join(dir, 'nope.jpg') }]),
      sample(5, [{ bytes: makePng(5) }, {}]), // the good first image must not be stored for a rejected row
    ]
    const { result } = await pipeline(source(samples), llamaFactory({ out, name: 'safe' }))
    const files = (await walk(out)).map((f) => relative(out, f))
    expect(files.filter((f) => /passwd|etc|notes/.test(f))).toEqual([])
    for (const f of files) expect(f).toMatch(/^(images\/[0-9a-f]{2}\/[0-9a-f]{64}\.jpg|dataset_info\.json|manifest\.json|rejects\.jsonl|safe_train\.jsonl)$/)
    const rows = (await readJsonl(join(out, 'safe_train.jsonl'))) as { images: string[] }[]
    expect(rows.map((r) => r.images)).toEqual([[`images/${sha(photo).slice(0, 2)}/${sha(photo)}.jpg`], [`images/${sha(photo).slice(0, 2)}/${sha(photo)}.jpg`]])
    const rejects = (await readJsonl(join(out, 'rejects.jsonl'))) as Record<string, unknown>[]
    expect(rejects.map((r) => [r.id, r.stage, r.reason])).toEqual([
      ['mem#2', 'llamafactory', 'image_format_unknown'],
      ['mem#3', 'llamafactory', 'image_format_unknown'],
      ['mem#4', 'llamafactory', 'image_unreadable'],
      ['mem#5', 'llamafactory', 'image_missing'],
    ])
    expect(rejects[0]!.detail).toMatchObject({ index: 0 })
    expect(result.counts).toMatchObject({ samplesIn: 6, kept: 2, rejected: 4, rejectedByReason: { image_format_unknown: 2, image_missing: 1, image_unreadable: 1 }, distinctImages: 1 })
  })

  it('writes the rejects of earlier stages and its own to rejects.jsonl in row order', async () => {
    const out = join(await freshDir(), 'out')
    const dropEveryThird: Transform<PreferenceSample, PreferenceSample> = named('drop-third', async function* (input, ctx) {
      let i = 0
      for await (const s of input) {
        if (i++ % 3 === 0) ctx.reject({ id: s.id, reason: 'third', message: 'every third row', detail: { i } })
        else yield s
      }
      ctx.reject({ id: 'summary', reason: 'late', message: 'a reject made after the last row' })
    })
    const samples = () =>
      Array.from({ length: 30 }, (_, i) => sample(i, i % 5 === 4 ? [{ bytes: new Uint8Array([1, 2, 3]) }] : [{ bytes: makePng(i) }]))
    const expected: string[] = []
    for (let i = 0; i < 30; i++) {
      if (i % 3 === 0) expected.push(`mem#${i}:drop-third:third`)
      else if (i % 5 === 4) expected.push(`mem#${i}:llamafactory:image_format_unknown`)
    }
    expected.push('summary:drop-third:late')
    for (const concurrency of [1, 5]) {
      const { result, report, rejects: left } = await pipeline(source(samples), dropEveryThird, llamaFactory({ out, name: 'rj', concurrency }))
      const lines = (await readFile(join(out, 'rejects.jsonl'), 'utf8')).trimEnd().split('\n')
      const rejects = lines.map((l) => JSON.parse(l) as Record<string, unknown>)
      expect(rejects.map((r) => `${r.id}:${r.stage}:${r.reason}`)).toEqual(expected)
      expect(Object.keys(rejects[0]!)).toEqual(['id', 'stage', 'reason', 'message', 'detail'])
      expect(Object.keys(rejects[rejects.length - 1]!)).toEqual(['id', 'stage', 'reason', 'message'])
      expect(left).toEqual([]) // the sink drained them all
      expect(result.counts.rejected).toBe(expected.length)
      expect(report.rejected).toEqual(result.counts.rejectedByReason)
      const rows = (await readJsonl(join(out, 'rj_train.jsonl'))) as { chosen: { value: string } }[]
      expect(rows.map((r) => r.chosen.value)).toEqual(
        Array.from({ length: 30 }, (_, i) => i)
          .filter((i) => i % 3 !== 0 && i % 5 !== 4)
          .map((i) => `good ${i}`),
      )
    }
  })

  it('writes rejects in row order whatever the timing: a source reject, a read-ahead stage, a slow stage, its own', async () => {
    const out = join(await freshDir(), 'out')
    // The source rejects rows 6, 13, ...: it never yields them (their place is between their neighbours).
    const withOwnRejects = (): Source<PreferenceSample> =>
      named('mem', async function* (ctx) {
        for (let i = 0; i < 48; i++) {
          if (i % 7 === 6) ctx.reject({ id: `mem#${i}`, reason: 'unreadable_row', message: 'the source could not map it' })
          else yield sample(i, i % 11 === 4 ? [{ bytes: new Uint8Array([1, 2, 3]) }] : [{ bytes: makePng(i % 3) }])
        }
      })
    // Rejects on pull, so it runs ahead of a stage that reads ahead.
    const dropFifth: Transform<PreferenceSample, PreferenceSample> = named('drop-fifth', async function* (input, ctx) {
      for await (const s of input) {
        if (Number(s.id.split('#')[1]) % 5 === 0) ctx.reject({ id: s.id, reason: 'fifth', message: 'every fifth row' })
        else yield s
      }
    })
    // Reads up to 6 rows ahead, finishes them after random delays, decides (and rejects) in order.
    const readAhead = (seed: number): Transform<PreferenceSample, PreferenceSample> =>
      named('read-ahead', async function* (input, ctx) {
        let x = seed
        const rand = () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648)
        const queue: { s: PreferenceSample; done: Promise<void> }[] = []
        const decide = function* (s: PreferenceSample) {
          if (Number(s.id.split('#')[1]) % 4 === 3) ctx.reject({ id: s.id, reason: 'fourth', message: 'rows 3, 7, ...' })
          else yield s
        }
        for await (const s of input) {
          queue.push({ s, done: sleep(Math.floor(rand() * 4)).then(() => {}) })
          if (queue.length >= 6) {
            const head = queue.shift()!
            await head.done
            yield* decide(head.s)
          }
        }
        for (const head of queue) {
          await head.done
          yield* decide(head.s)
        }
      })
    const texts: string[] = []
    for (const [seed, concurrency] of [[1, 1], [7, 4], [99, 8]] as const) {
      await pipeline(withOwnRejects(), dropFifth, readAhead(seed), llamaFactory({ out, name: 'ro', concurrency }))
      texts.push(await readFile(join(out, 'rejects.jsonl'), 'utf8'))
    }
    expect(texts[1]).toBe(texts[0])
    expect(texts[2]).toBe(texts[0])
    const rejects = texts[0]!.trimEnd().split('\n').map((l) => JSON.parse(l) as { id: string; stage: string; reason: string })
    const expected = Array.from({ length: 48 }, (_, i) => i).flatMap((i) =>
      i % 7 === 6 ? [`mem#${i}:mem:unreadable_row`] : i % 5 === 0 ? [`mem#${i}:drop-fifth:fifth`] : i % 4 === 3 ? [`mem#${i}:read-ahead:fourth`] : i % 11 === 4 ? [`mem#${i}:llamafactory:image_format_unknown`] : [],
    )
    expect(rejects.map((r) => `${r.id}:${r.stage}:${r.reason}`)).toEqual(expected)
  })

  it('gives byte-identical output on a re-run and in another folder', async () => {
    const dir = await freshDir()
    const samples = await basicSamples(dir)
    const outA = join(dir, 'a')
    const outB = join(dir, 'b')
    const opts = { name: 'same', inputs: { file: 'in.parquet' }, options: { k: 1 } }
    await pipeline(source(samples), llamaFactory({ out: outA, ...opts }))
    const first = await snapshot(outA)
    await pipeline(source(samples), llamaFactory({ out: outA, ...opts, concurrency: 3 }))
    expect(await snapshot(outA)).toEqual(first)
    await pipeline(source(samples), llamaFactory({ out: outB, ...opts, concurrency: 1 }))
    expect(await snapshot(outB)).toEqual(first)
  })

  it('writes <name>_eval for samples marked eval, and removes a stale one when a later run has none', async () => {
    const out = join(await freshDir(), 'out')
    const samples = () => Array.from({ length: 6 }, (_, i) => sample(i, [], i % 3 === 2 ? { meta: { split: 'eval' } } : {}))
    const { result } = await pipeline(source(samples), llamaFactory({ out, name: 'sp' }))
    expect(result.datasets.eval).toMatchObject({ name: 'sp_eval', fileName: 'sp_eval.jsonl', rows: 2 })
    expect(result.datasets.train.rows).toBe(4)
    expect(JSON.parse(await readFile(join(out, 'dataset_info.json'), 'utf8'))).toEqual({ sp_train: entryFor('sp_train.jsonl'), sp_eval: entryFor('sp_eval.jsonl') })
    expect(await readJsonl(join(out, 'sp_eval.jsonl'))).toHaveLength(2)

    await pipeline(source(() => [sample(0)]), llamaFactory({ out, name: 'sp' }))
    expect(JSON.parse(await readFile(join(out, 'dataset_info.json'), 'utf8'))).toEqual({ sp_train: entryFor('sp_train.jsonl') })
    expect((await readdir(out)).sort()).toEqual(['dataset_info.json', 'manifest.json', 'rejects.jsonl', 'sp_train.jsonl'])
  })

  describe('dataset_info.json merge', () => {
    // Others' entries with odd formatting: 4-space and tab indents, unicode escapes, escaped quotes,
    // braces inside strings, a non-ASCII literal, and a stale entry of ours in the middle.
    const foreignA = `"caf\\u00e9_data" :{ "file_name":"caf\\u00e9.json",  "columns" : {"prompt":"q\\"}{[" } }`
    const foreignB = `"other\\tone": {\n\t"hf_hub_url": "x/y",\n\t"ranking": "true",\n\t"note": "日本語 \\ud83d\\ude00 \\/ ,]}"\n    }`
    const stale = `"mix_train": {"file_name": "old.jsonl", "ranking": false}`
    const original = `{\n    ${foreignA},\n    ${stale} ,\n    ${foreignB}\n}\n\n`

    it('keeps other entries byte for byte, replaces ours in place, and is stable on a re-run', async () => {
      const out = join(await freshDir(), 'out')
      await mkdir(out, { recursive: true })
      await writeFile(join(out, 'dataset_info.json'), original)
      await pipeline(source(() => [sample(0)]), llamaFactory({ out, name: 'mix' }))
      const text = await readFile(join(out, 'dataset_info.json'), 'utf8')
      const ours = JSON.stringify(entryFor('mix_train.jsonl'), null, 2).split('\n').join('\n    ')
      expect(text).toBe(`{\n    ${foreignA},\n    "mix_train": ${ours} ,\n    ${foreignB}\n}\n\n`)
      const parsed = JSON.parse(text) as Record<string, unknown>
      expect(Object.keys(parsed)).toEqual(['café_data', 'mix_train', 'other\tone'])
      expect(parsed.mix_train).toEqual(entryFor('mix_train.jsonl'))

      await pipeline(source(() => [sample(0)]), llamaFactory({ out, name: 'mix' }))
      expect(await readFile(join(out, 'dataset_info.json'), 'utf8')).toBe(text)
    })

    it('appends new entries after the others, in the style of the file', () => {
      const entries = new Map<string, unknown>([['n_train', { a: 1 }], ['n_eval', { b: [2] }]])
      expect(mergeDatasetInfo('{"x": {"k": "}"}}', entries)).toBe('{"x": {"k": "}"}, "n_train": {"a":1}, "n_eval": {"b":[2]}}')
      expect(mergeDatasetInfo('{\r\n  "x": 1\r\n}\r\n', entries)).toBe('{\r\n  "x": 1,\r\n  "n_train": {\r\n    "a": 1\r\n  },\r\n  "n_eval": {\r\n    "b": [\r\n      2\r\n    ]\r\n  }\r\n}\r\n')
      expect(mergeDatasetInfo('{}', new Map([['n_train', 1]]))).toBe('{\n  "n_train": 1\n}')
      expect(mergeDatasetInfo(null, new Map([['n_train', { a: true }]]))).toBe('{\n  "n_train": {\n    "a": true\n  }\n}\n')
    })

    it('treats an escaped spelling of our name as ours, drops duplicates, and removes entries asked to', () => {
      const text = '{ "\\u006e_train": 0, "keep": [1, {"n_train": 2}], "n_eval": 3, "n_train": 4 }'
      const merged = mergeDatasetInfo(text, new Map([['n_train', 'X']]), ['n_eval'])
      expect(merged).toBe('{ "keep": [1, {"n_train": 2}], "n_train": "X" }')
      expect(JSON.parse(merged)).toEqual({ keep: [1, { n_train: 2 }], n_train: 'X' })
      // The first member dropped: the next one takes its separator.
      expect(mergeDatasetInfo('{\n  "n_eval": 1,\n  "z": 2\n}', new Map([['n_train', 0]]), ['n_eval'])).toBe('{\n  "z": 2,\n  "n_train": 0\n}')
    })

    for (const [what, bad] of [
      ['not JSON', '{ "a": 1, }'],
      ['an array', '[{"a": 1}]'],
      ['starting with a BOM', '\uFEFF{"a": 1}'],
    ] as const) {
      it(`fails clearly and leaves an existing file that is ${what} untouched`, async () => {
        const out = join(await freshDir(), 'out')
        await mkdir(out, { recursive: true })
        await writeFile(join(out, 'dataset_info.json'), bad)
        const err = await pipeline(source(() => [sample(0, [{ bytes: makePng(3) }])]), llamaFactory({ out, name: 'bad' })).catch((e: unknown) => e)
        expect(err).toBeInstanceOf(PipelineError)
        expect((err as Error).message).toContain(join(out, 'dataset_info.json'))
        expect((err as Error).message).toMatch(/not valid JSON|not an object/)
        expect((err as Error).message).toContain('will not overwrite it')
        expect(await readFile(join(out, 'dataset_info.json'), 'utf8')).toBe(bad)
        expect(await readdir(out)).toEqual(['dataset_info.json'])
      })
    }
  })

  describe('failures leave the previous output intact', () => {
    it('an upstream stage failing after some rows leaves no tmp files and no partial jsonl', async () => {
      const out = join(await freshDir(), 'out')
      const good = () => Array.from({ length: 20 }, (_, i) => sample(i, [{ bytes: makePng(i) }]))
      await pipeline(source(good), llamaFactory({ out, name: 'ff' }))
      const before = await snapshot(out)

      const boom: Transform<PreferenceSample, PreferenceSample> = named('boom', async function* (input, ctx) {
        let i = 0
        for await (const s of input) {
          if (i === 3) ctx.reject({ id: s.id, reason: 'r', message: 'm' })
          if (++i === 12) throw new Error('disk on fire')
          yield s
        }
      })
      // Different rows and new images this time, so a partial write would show.
      const other = () => Array.from({ length: 20 }, (_, i) => sample(100 + i, [{ bytes: makePng(1000 + i) }]))
      for (const concurrency of [1, 4]) {
        const err = await pipeline(source(other), boom, llamaFactory({ out, name: 'ff', concurrency })).catch((e: unknown) => e)
        expect(err).toBeInstanceOf(PipelineError)
        expect((err as PipelineError).stage).toBe('boom')
        const after = await snapshot(out)
        expect([...after.keys()].filter((f) => f.includes('prefpipe-tmp'))).toEqual([])
        for (const [f, bytes] of before) expect(after.get(f), f).toEqual(bytes)
        // Only whole, content-addressed images may have been added.
        for (const [f, bytes] of after) if (!before.has(f)) expect(f).toMatch(new RegExp(`^images/../${sha(bytes)}\\.png$`))
      }
    })

    it('an abort mid-run removes the tmp files and keeps the previous output', async () => {
      const out = join(await freshDir(), 'out')
      await pipeline(source(() => [sample(0, [{ bytes: makePng(0) }])]), llamaFactory({ out, name: 'ab' }))
      const before = await snapshot(out)
      const controller = new AbortController()
      const slow: Source<PreferenceSample> = named('slow', async function* (ctx) {
        for (let i = 0; i < 1000; i++) {
          if (i === 20) controller.abort()
          await sleep(1, undefined, { signal: ctx.signal })
          yield sample(i, [{ bytes: makePng(5000 + i) }])
        }
      })
      const err = await pipeline(slow, llamaFactory({ out, name: 'ab' }), { signal: controller.signal }).catch((e: unknown) => e)
      expect((err as Error).name).toBe('AbortError')
      // pipeline() rejects at once on abort; the sink's cleanup finishes right after.
      let after = await snapshot(out)
      for (let t = 0; t < 100 && [...after.keys()].some((f) => f.includes('prefpipe-tmp')); t++) {
        await sleep(20)
        after = await snapshot(out)
      }
      expect([...after.keys()].filter((f) => f.includes('prefpipe-tmp'))).toEqual([])
      for (const [f, bytes] of before) expect(after.get(f), f).toEqual(bytes)
    })
  })

  it('streams many rows in order', async () => {
    const out = join(await freshDir(), 'out')
    const N = 20_000
    const big = 'x'.repeat(200)
    const samples = function* () {
      for (let i = 0; i < N; i++) yield sample(i, [], { chosen: { role: 'assistant', content: `${i} ${big}` } })
    }
    const src: Source<PreferenceSample> = named('gen', async function* () {
      yield* samples()
    })
    const { result } = await pipeline(src, llamaFactory({ out, name: 'many', concurrency: 16 }))
    expect(result.counts.kept).toBe(N)
    const lines = (await readFile(join(out, 'many_train.jsonl'), 'utf8')).trimEnd().split('\n')
    expect(lines).toHaveLength(N)
    expect(lines.every((l, i) => (JSON.parse(l) as { chosen: { value: string } }).chosen.value.startsWith(`${i} `))).toBe(true)
  })

  it('validates its options when it is made', () => {
    expect(() => llamaFactory({ out: 'x', name: '../etc' })).toThrow(/name/)
    expect(() => llamaFactory({ out: 'x', name: 'a/b' })).toThrow(/name/)
    expect(() => llamaFactory({ out: 'x', name: '' })).toThrow(/name/)
    expect(() => llamaFactory({ out: '', name: 'ok' })).toThrow(/out/)
    expect(() => llamaFactory({ out: 'x', name: 'ok', concurrency: 0 })).toThrow(/concurrency/)
    expect(() => llamaFactory({ out: 'x', name: 'ok', extra: 1 } as never)).toThrow(/invalid options/)
    expect(() => llamaFactory({ out: 'x', name: 'rlhf_v.v2-b' })).not.toThrow()
  })

  it('tells image formats from their magic numbers', () => {
    const b = (...xs: (number | string)[]) => new Uint8Array(xs.flatMap((x) => (typeof x === 'string' ? [...x].map((c) => c.charCodeAt(0)) : [x])))
    expect(detectImageFormat(photo)?.ext).toBe('jpg')
    expect(detectImageFormat(makePng(1))?.ext).toBe('png')
    expect(detectImageFormat(b('RIFF', 0, 0, 0, 0, 'WEBPVP8 '))?.ext).toBe('webp')
    expect(detectImageFormat(b('GIF89a', 1, 0))?.ext).toBe('gif')
    expect(detectImageFormat(b('II', 42, 0, 8, 0))?.ext).toBe('tiff')
    expect(detectImageFormat(b('MM', 0, 42, 0, 0))?.ext).toBe('tiff')
    expect(detectImageFormat(b('BM', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 40, 0, 0, 0))?.ext).toBe('bmp')
    expect(detectImageFormat(b('BM is not enough'))).toBeUndefined()
    expect(detectImageFormat(b('RIFF', 0, 0, 0, 0, 'WAVE'))).toBeUndefined()
    expect(detectImageFormat(new Uint8Array())).toBeUndefined()
  })
})
