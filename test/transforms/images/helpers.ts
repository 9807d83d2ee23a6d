import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import sharp, { type Sharp } from 'sharp'
import { named, pipeline, type Sink, type Source } from '../../../src/pipeline/index.js'
import type { ImageRef, PreferenceSample } from '../../../src/record.js'
import { processImages, type ImagesTransform, type ProcessImagesOptions } from '../../../src/transforms/images/index.js'

export const PHOTOS = '/work/shared/photos'

/** A valid one-image row; `patch` overrides any field. */
export function row(id: string, images: ImageRef[], patch: Partial<PreferenceSample> = {}): PreferenceSample {
  return {
    id,
    messages: [{ role: 'user', content: `${'<image>'.repeat(images.length)}What is shown?` }],
    chosen: { role: 'assistant', content: `A picture (${id}).` },
    rejected: { role: 'assistant', content: 'Nothing at all.' },
    images,
    meta: {},
    ...patch,
  }
}

export function rows(samples: PreferenceSample[]): Source<PreferenceSample> {
  return named('rows', async function* () {
    yield* samples
  })
}

export const collect: Sink<PreferenceSample, PreferenceSample[]> = named('collect', async (input: AsyncIterable<PreferenceSample>) => {
  const out: PreferenceSample[] = []
  for await (const s of input) out.push(s)
  return out
})

/** Run the images stage over `samples`; returns the rows, the rejects, the stage report and the stage. */
export async function runImages(samples: PreferenceSample[], options?: ProcessImagesOptions) {
  const stage: ImagesTransform = processImages(options)
  const { result, rejects, report } = await pipeline(rows(samples), stage, collect)
  const stats = report.stages.find((s) => s.name === 'images')!
  return { out: result, rejects, stats, stage }
}

/** Run one image through the stage; returns its output ref (or the reject). */
export async function one(bytes: Uint8Array, options?: ProcessImagesOptions) {
  const r = await runImages([row('r0', [{ bytes }])], options)
  return { ref: r.out[0]?.images[0], reject: r.rejects[0], stats: r.stats, out: r.out }
}

/** Every photo of the shared pool, sorted by name. */
export async function photos(): Promise<{ name: string; bytes: Buffer }[]> {
  const names = (await readdir(PHOTOS)).filter((n) => /\.(jpe?g|png)$/i.test(n)).sort()
  return Promise.all(names.map(async (name) => ({ name, bytes: await readFile(join(PHOTOS, name)) })))
}

/** The RGB(A) value of one pixel of an encoded image. */
export async function pixel(bytes: Uint8Array, x: number, y: number): Promise<number[]> {
  const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true })
  const at = (y * info.width + x) * info.channels
  return [...data.subarray(at, at + info.channels)]
}

/** A solid-colour image built with sharp. */
export function solid(width: number, height: number, background: { r: number; g: number; b: number; alpha?: number }, channels: 3 | 4 = 3) {
  return sharp({ create: { width, height, channels, background } })
}

/** Deterministic noise (a hard-to-compress image), `channels` bytes per pixel. */
export function noise(width: number, height: number, seed = 1): Sharp {
  const data = Buffer.alloc(width * height * 3)
  let x = seed >>> 0 || 1
  for (let i = 0; i < data.length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    data[i] = x & 0xff
  }
  return sharp(data, { raw: { width, height, channels: 3 } })
}
