// The output size of an image, as the images stage computes it (src/transforms/images/resize.ts `targetSize`):
// LLaMA-Factory step A with image_max_pixels = maxPixels (truncating), then Qwen2-VL's smart_resize with the same
// bound. Kept here so the floor does not depend on dist/ being built; `checkAgainstDist()` compares the two.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ROOT } from './common.mjs'

export const POLICY = { factor: 28, minPixels: 3136, maxPixels: 262_144, maxAspectRatio: 180 }

function roundHalfEven(x) {
  const f = Math.floor(x)
  const d = x - f
  if (d > 0.5) return f + 1
  if (d < 0.5) return f
  return f % 2 === 0 ? f : f + 1
}

export function smartResize(height, width, { factor, minPixels, maxPixels }) {
  let hBar = roundHalfEven(height / factor) * factor
  let wBar = roundHalfEven(width / factor) * factor
  if (hBar * wBar > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels)
    hBar = Math.max(factor, Math.floor(height / beta / factor) * factor)
    wBar = Math.max(factor, Math.floor(width / beta / factor) * factor)
  } else if (hBar * wBar < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width))
    hBar = Math.ceil((height * beta) / factor) * factor
    wBar = Math.ceil((width * beta) / factor) * factor
  }
  return { height: hBar, width: wBar }
}

/** { width, height } the image is written at. */
export function targetSize(height, width, policy = POLICY) {
  const { factor, minPixels, maxPixels } = policy
  let w = width
  let h = height
  if (w * h > maxPixels) {
    const f = Math.sqrt(maxPixels / (w * h))
    w = Math.trunc(w * f)
    h = Math.trunc(h * f)
  } else if (w * h < minPixels) {
    const f = Math.sqrt(minPixels / (w * h))
    w = Math.trunc(w * f)
    h = Math.trunc(h * f)
  }
  w = Math.max(w, 28)
  h = Math.max(h, 28)
  return smartResize(h, w, { factor, minPixels, maxPixels })
}

/** Compare with the stage's own `targetSize` on `sizes` ([w, h] pairs); null when dist has no images stage. */
export async function checkAgainstDist(sizes) {
  const p = join(ROOT, 'dist', 'transforms', 'images', 'resize.js')
  if (!existsSync(p)) return null
  const mod = await import(pathToFileURL(p).href)
  let bad = 0
  for (const [w, h] of sizes) {
    const a = targetSize(h, w)
    const b = mod.targetSize(h, w, POLICY)
    if (!b.ok || a.width !== b.width || a.height !== b.height) bad++
  }
  return { checked: sizes.length, differ: bad }
}
