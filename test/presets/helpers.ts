import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ROOT, VENV_PYTHON, run } from '../helpers.js'

export const PRESET_FIXTURES = join(ROOT, 'test', 'fixtures', 'presets')

/** A row of `test/fixtures/presets/expected.json`. */
export interface ExpectedRow {
  row: number
  valid: boolean
  reason: string | null
  image_sha256?: string | null
}

export async function expectedRows(file: string): Promise<ExpectedRow[]> {
  const all = JSON.parse(await readFile(join(PRESET_FIXTURES, 'expected.json'), 'utf8')) as Record<string, ExpectedRow[]>
  return all[file]!
}

export async function readJsonl<T = Record<string, unknown>>(path: string): Promise<T[]> {
  const text = await readFile(path, 'utf8')
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as T)
}

/** Run the LLaMA-Factory conformance checker (datasets + the converter rules, in Python) on an output folder. */
export async function checkFolder(out: string, dataset: string) {
  const check = await run(VENV_PYTHON, [join(ROOT, 'scripts', 'check_lf_folder.py'), out, dataset])
  const report = JSON.parse(check.stdout) as {
    datasets: Record<string, { rows: number; images_opened: number; distinct_images: number }>
    errors: unknown[]
    warnings: unknown[]
  }
  return { code: check.code, stderr: check.stderr, report }
}
