import { describe, expect, it } from 'vitest'
import { fitProblem, roundHalfEven, smartResize, targetSize, VISION_MODELS } from '../../../src/transforms/images/index.js'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { ROOT, VENV_PYTHON } from '../../helpers.js'

const QWEN2 = { factor: 28, minPixels: 3136, maxPixels: 262144 }
const POLICY = { ...QWEN2, maxAspectRatio: 180 }
const QWEN3 = { factor: 32, minPixels: 65536, maxPixels: 262144, maxAspectRatio: 180 }

describe('roundHalfEven', () => {
  it('rounds like Python round(): ties to even', () => {
    expect([0.5, 1.5, 2.5, 3.5, 14.5, 15.5, 13.5, 0.49999999999999994, 2.5000000000000004].map(roundHalfEven)).toEqual([0, 2, 2, 4, 14, 16, 14, 0, 3])
    expect([0, 1, 17.9, 18.2857].map(roundHalfEven)).toEqual([0, 1, 18, 18])
  })
})

describe('smartResize', () => {
  // Expected values computed with the Python reimplementation of transformers' smart_resize in
  // scripts/check_images.py (`--smart-resize`), i.e. Python's own round/floor/ceil/sqrt:
  //   echo '[[512,512,28,3136,262144], ...]' | .venv/bin/python scripts/check_images.py --smart-resize
  const cases: [number, number, typeof QWEN2, [number, number]][] = [
    [512, 512, QWEN2, [504, 504]],
    [20, 20, QWEN2, [56, 56]], // ceil branch
    [600, 512, QWEN2, [532, 448]], // floor branch
    [554, 472, QWEN2, [532, 448]], // rounds up past the budget (560x476), so floors
    [524, 500, QWEN2, [504, 476]],
    [1411, 1411, QWEN2, [504, 504]],
    [12000, 12000, QWEN2, [504, 504]],
    [427, 640, QWEN2, [392, 616]],
    [14, 14, QWEN2, [56, 56]],
    [42, 42, QWEN2, [56, 56]], // 1.5 -> 2
    [70, 70, QWEN2, [56, 56]], // 2.5 -> 2 (half to even)
    [98, 126, QWEN2, [112, 112]], // 3.5 -> 4, 4.5 -> 4
    [406, 406, QWEN2, [392, 392]], // 14.5 -> 14
    [434, 434, QWEN2, [448, 448]], // 15.5 -> 16
    [378, 378, QWEN2, [392, 392]], // 13.5 -> 14
    [13, 13, QWEN2, [56, 56]],
    [1, 150, QWEN2, [28, 700]],
    [28, 5600, QWEN2, [28, 5600]], // aspect exactly 200 is allowed
    [7000, 5000, QWEN2, [588, 420]],
    [1080, 1920, { factor: 28, minPixels: 3136, maxPixels: 12845056 }, [1092, 1932]],
    [1080, 1920, { factor: 32, minPixels: 65536, maxPixels: 262144 }, [384, 672]],
    [100, 100, { factor: 32, minPixels: 65536, maxPixels: 262144 }, [256, 256]],
    [512, 512, { factor: 32, minPixels: 65536, maxPixels: 262144 }, [512, 512]],
  ]
  it.each(cases)('%i x %i -> python value', (h, w, o, [eh, ew]) => {
    expect(smartResize(h, w, o)).toEqual({ height: eh, width: ew })
  })

  it('raises where Python raises: aspect above 200, non-positive sides', () => {
    expect(() => smartResize(28, 5601, QWEN2)).toThrow(/aspect ratio must be smaller than 200, got 200.035/)
    expect(() => smartResize(3, 4000, QWEN2)).toThrow(RangeError)
    expect(() => smartResize(0, 10, QWEN2)).toThrow(/positive integers/)
    expect(() => smartResize(10.5, 10, QWEN2)).toThrow(/positive integers/)
  })

  it('agrees with the Python reimplementation on 3000 random sizes and bounds', async () => {
    let seed = 42
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n
    }
    const inputs: [number, number, number, number, number][] = []
    while (inputs.length < 3000) {
      const factor = rand(2) ? 28 : 32
      const scale = [64, 700, 5000, 20000][rand(4)]!
      const h = 1 + rand(scale)
      const w = 1 + rand(scale)
      if (Math.max(h, w) / Math.min(h, w) > 200) continue
      const minPixels = [3136, 65536, 1024][rand(3)]!
      const maxPixels = [262144, 589824, 12845056, 200704][rand(4)]!
      inputs.push([h, w, factor, minPixels, maxPixels])
    }
    const py = await pythonSmartResize(inputs)
    const mismatches = inputs.filter((x, i) => {
      const got = smartResize(x[0], x[1], { factor: x[2], minPixels: x[3], maxPixels: x[4] })
      return got.height !== py[i]![0] || got.width !== py[i]![1]
    })
    expect(mismatches).toEqual([])
  })
})

describe('targetSize', () => {
  // Python: lf_preprocess_size (LLaMA-Factory step A with image_max_pixels=262144, image_min_pixels=minPixels)
  // then smart_resize(factor, minPixels, 262144), both from scripts/check_images.py.
  const cases: [number, number, [number, number], [number, number]][] = [
    [512, 512, [504, 504], [512, 512]],
    [600, 512, [532, 448], [544, 480]],
    [20, 20, [56, 56], [256, 256]],
    [12000, 12000, [504, 504], [512, 512]],
    [427, 640, [420, 616], [416, 608]], // LF pre-shrink first: 626x418, then rounding (smart_resize alone gives 392x616)
    [10, 1000, [28, 1008], [32, 2560]], // LF raises the short side to 28 (distorting, as LLaMA-Factory does)
    [504, 392, [504, 392], [512, 384]], // already on the grid: identity
    [28, 28, [56, 56], [256, 256]],
    [1, 1, [56, 56], [256, 256]],
    [960, 1280, [420, 588], [448, 576]],
    [599, 511, [532, 448], [544, 480]],
  ]
  it.each(cases)('%i x %i -> qwen2 %j, qwen3 %j', (h, w, [h2, w2], [h3, w3]) => {
    expect(targetSize(h, w, POLICY)).toEqual({ ok: true, height: h2, width: w2 })
    expect(targetSize(h, w, QWEN3)).toEqual({ ok: true, height: h3, width: w3 })
  })

  it('gives sizes both LLaMA-Factory and the processor take as is, for every size up to 1200 (sampled)', () => {
    for (let h = 1; h <= 1200; h += 7) {
      for (let w = 1; w <= 1200; w += 11) {
        const t = targetSize(h, w, POLICY)
        if (!t.ok) {
          expect(Math.max(h, w) / Math.min(h, w)).toBeGreaterThan(180)
          continue
        }
        expect(fitProblem(t.height, t.width, QWEN2)).toBeNull()
        // the processor's smart_resize (its own bounds) is the identity on it, and so is ours
        expect(smartResize(t.height, t.width, VISION_MODELS['qwen2-vl'])).toEqual({ height: t.height, width: t.width })
        expect(targetSize(t.height, t.width, POLICY)).toEqual(t)
      }
    }
  })

  it('refuses aspect ratios above maxAspectRatio, and sizes no grid fits', () => {
    expect(targetSize(10, 2000, POLICY)).toMatchObject({ ok: false, reason: 'aspect', message: expect.stringMatching(/200\.0:1, above the limit of 180:1/) })
    expect(targetSize(10, 1800, POLICY)).toMatchObject({ ok: true, height: 28, width: 1792 })
    // 28 x 5040 needs 141120 pixels: a 50176 budget cannot hold a 180:1 image on the grid
    expect(targetSize(28, 5040, { ...POLICY, maxPixels: 50176 })).toMatchObject({ ok: false, reason: 'unfit' })
  })
})

describe('fitProblem', () => {
  it('names the first broken rule', () => {
    expect(fitProblem(504, 504, QWEN2)).toBeNull()
    expect(fitProblem(500, 504, QWEN2)).toMatch(/multiple of 28/)
    expect(fitProblem(532, 532, QWEN2)).toMatch(/more than 262144/)
    expect(fitProblem(28, 56, QWEN2)).toMatch(/fewer than 3136/)
  })
})

/** Run scripts/check_images.py --smart-resize with the inputs on stdin. */
function pythonSmartResize(inputs: number[][]): Promise<[number, number][]> {
  return new Promise((resolve, reject) => {
    const child = spawn(VENV_PYTHON, [join(ROOT, 'scripts', 'check_images.py'), '--smart-resize'], { stdio: ['pipe', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out) as [number, number][]) : reject(new Error(`python exited ${code}`))))
    child.stdin.end(JSON.stringify(inputs))
  })
}
