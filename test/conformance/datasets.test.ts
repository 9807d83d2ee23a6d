import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROOT, SAMPLE, VENV_PYTHON, prefpipe, run } from '../helpers.js'

/**
 * Loads our output with Hugging Face `datasets` (`load_dataset("json", ...)`, LLaMA-Factory's loader) and replays
 * LLaMA-Factory's converter rules and media resolution in Python, opening every image with Pillow.
 * Not skippable: `npm test` sets up the venv first (scripts/python-venv.sh).
 */
describe('conformance: the output folder as LLaMA-Factory reads it', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prefpipe-conf-'))
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('has the Python side set up', () => {
    expect(existsSync(VENV_PYTHON), 'run `bash scripts/python-venv.sh` (npm test does)').toBe(true)
  })

  it('loads the sample output with datasets, every row in shape and every image opened by Pillow, with no warning', async () => {
    const out = join(dir, 'rlhf_v')
    const made = await prefpipe(['rlhf-v', '--input', SAMPLE, '--out', out])
    expect(made.code, made.stderr).toBe(0)
    const check = await run(VENV_PYTHON, [join(ROOT, 'scripts', 'check_lf_folder.py'), out, 'rlhf_v_train'])
    const report = JSON.parse(check.stdout) as {
      datasets: Record<string, { rows: number; images_opened: number; distinct_images: number }>
      errors: unknown[]
      warnings: unknown[]
    }
    expect(report.errors).toEqual([])
    expect(report.warnings).toEqual([])
    expect(check.code).toBe(0)
    expect(report.datasets.rlhf_v_train!.rows).toBe(39)
    expect(report.datasets.rlhf_v_train!.images_opened).toBeGreaterThanOrEqual(report.datasets.rlhf_v_train!.distinct_images)

    // Every stored image is one Qwen2-VL takes as is: RGB, within image_max_pixels, sides on the 28-px grid.
    const images = await run(VENV_PYTHON, [join(ROOT, 'scripts', 'check_images.py'), join(out, 'images'), '--max-pixels', '262144', '--factor', '28'])
    const checked = JSON.parse(images.stdout) as { ok: boolean; checked: number; failures: unknown[]; modes: Record<string, number> }
    expect(checked.failures).toEqual([])
    expect(checked.ok).toBe(true)
    expect(checked.checked).toBe(report.datasets.rlhf_v_train!.distinct_images)
    expect(Object.keys(checked.modes)).toEqual(['RGB'])
  })
})
