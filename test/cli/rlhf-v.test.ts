import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROOT, SAMPLE, prefpipe, treeDigest, type Run, SAMPLE_REASON_OF } from '../helpers.js'

const REASON_OF = SAMPLE_REASON_OF

interface Expected {
  row: number
  valid: boolean
  breaks: string | null
  image_sha256: string[]
}

describe('npx prefpipe rlhf-v on the bundled sample', () => {
  let dir: string
  let first: Run
  let expected: Expected[]
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prefpipe-cli-'))
    expected = JSON.parse(await readFile(join(ROOT, 'fixtures', 'rlhf-v-sample.expected.json'), 'utf8')) as Expected[]
    first = await prefpipe(['rlhf-v', '--input', SAMPLE, '--out', join(dir, 'a')])
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('exits 0 and prints the summary', () => {
    expect(first.stderr).toBe('')
    expect(first.code).toBe(0)
    const valid = expected.filter((e) => e.valid).length
    expect(first.stdout).toMatch(new RegExp(`rows in\\s+${expected.length}\\n`))
    expect(first.stdout).toMatch(new RegExp(`kept\\s+${valid}\\n`))
    expect(first.stdout).toMatch(new RegExp(`rejected\\s+${expected.length - valid}\\n`))
    for (const reason of Object.values(REASON_OF)) expect(first.stdout).toMatch(new RegExp(`${reason}\\s+1\\n`))
    expect(first.stdout).toMatch(/images written\s+\d+ new of \d+ distinct/)
  })

  it('rejects exactly the broken rows, each with the rule it breaks', async () => {
    const rejects = (await readFile(join(dir, 'a', 'rejects.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string; stage: string; reason: string; message: string })
    const want = expected.filter((e) => !e.valid).map((e) => ({ id: `rlhf-v-sample.parquet#${e.row}`, reason: REASON_OF[e.breaks!] }))
    expect(rejects.map((r) => ({ id: r.id, reason: r.reason }))).toEqual(want)
    for (const r of rejects) {
      expect(r.stage).toBe('validate')
      expect(r.message.length).toBeGreaterThan(20)
    }
  })

  it('writes every valid row, in order, with one stored file per distinct source image', async () => {
    const rows = (await readFile(join(dir, 'a', 'rlhf_v_train.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { conversations: unknown[]; images: string[] })
    const valid = expected.filter((e) => e.valid)
    expect(rows).toHaveLength(valid.length)
    // Images are resized for Qwen2-VL, so files are named by the hash of the bytes written; rows that share a
    // source image share the stored file, and distinct sources get distinct files.
    const pathOf = new Map<string, string>()
    rows.forEach((r, i) => {
      expect(r.images).toHaveLength(valid[i]!.image_sha256.length)
      r.images.forEach((p, k) => {
        expect(p).toMatch(/^images\/([0-9a-f]{2})\/\1[0-9a-f]{62}\.(jpg|png)$/)
        const src = valid[i]!.image_sha256[k]!
        expect(pathOf.get(src) ?? p).toBe(p)
        pathOf.set(src, p)
      })
    })
    expect(new Set(pathOf.values()).size).toBe(pathOf.size)
    const digests = await treeDigest(join(dir, 'a'))
    const stored = Object.keys(digests).filter((p) => p.startsWith('images/'))
    expect(stored.sort()).toEqual([...new Set(pathOf.values())].sort())
    const info = JSON.parse(await readFile(join(dir, 'a', 'dataset_info.json'), 'utf8')) as Record<string, { ranking: unknown; file_name: string }>
    expect(info.rlhf_v_train).toMatchObject({ file_name: 'rlhf_v_train.jsonl', ranking: true, formatting: 'sharegpt' })
    expect(Object.keys(digests)).toEqual(expect.arrayContaining(['train_dpo.yaml', 'report.html', 'report.json', 'manifest.json', 'rejects.jsonl']))
  })

  it('gives byte-identical output when run again, in place or elsewhere', async () => {
    // report.json may differ only under `timings`; train_dpo.yaml holds the folder's absolute path by design.
    const stable = async (d: string) => {
      const t = await treeDigest(d)
      const report = JSON.parse(await readFile(join(d, 'report.json'), 'utf8')) as Record<string, unknown>
      delete report.timings
      t['report.json'] = JSON.stringify(report)
      t['train_dpo.yaml'] = (await readFile(join(d, 'train_dpo.yaml'), 'utf8')).replaceAll(dir, '<tmp>')
      return t
    }
    const a = await stable(join(dir, 'a'))
    const yamlBefore = (await treeDigest(join(dir, 'a')))['train_dpo.yaml']
    const again = await prefpipe(['rlhf-v', '--input', SAMPLE, '--out', join(dir, 'a')])
    expect(again.code).toBe(0)
    expect(await stable(join(dir, 'a'))).toEqual(a)
    expect((await treeDigest(join(dir, 'a')))['train_dpo.yaml']).toBe(yamlBefore)
    const other = await prefpipe(['rlhf-v', '--input', SAMPLE, '--out', join(dir, 'b')])
    expect(other.code).toBe(0)
    const b = await stable(join(dir, 'b'))
    expect({ ...b, 'train_dpo.yaml': '' }).toEqual({ ...a, 'train_dpo.yaml': '' })
    expect(b['train_dpo.yaml']!.replaceAll('<tmp>/b', '<tmp>/a').replaceAll('saves/b/', 'saves/a/')).toBe(a['train_dpo.yaml'])
  })

  it('splits train/eval by image with --eval and --seed, and refuses a misspelt YAML key', async () => {
    const out = join(dir, 'split')
    const r = await prefpipe(['rlhf-v', '--input', SAMPLE, '--out', out, '--eval', '0.3', '--seed', '7'])
    expect(r.code, r.stderr).toBe(0)
    const read = async (f: string) => (await readFile(join(out, f), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { images: string[] })
    const train = await read('rlhf_v_train.jsonl')
    const evalRows = await read('rlhf_v_eval.jsonl')
    expect(train.length + evalRows.length).toBe(39)
    expect(evalRows.length).toBeGreaterThan(0)
    const trainImages = new Set(train.flatMap((x) => x.images))
    for (const row of evalRows) for (const img of row.images) expect(trainImages.has(img)).toBe(false)
    const yaml = await readFile(join(out, 'train_dpo.yaml'), 'utf8')
    expect(yaml).toMatch(/^eval_dataset: rlhf_v_eval$/m)
    expect(yaml).toMatch(/^image_max_pixels: 262144$/m)
    expect(yaml).not.toMatch(/val_size|max_samples/)
    const typo = await prefpipe(['rlhf-v', '--input', SAMPLE, '--out', join(dir, 'typo'), '--set', 'lora_rnak=16'])
    expect(typo.code).toBe(1)
    expect(typo.stderr).toMatch(/lora_rnak[\s\S]*lora_rank/)
  })

  it('fails clearly on a missing file, a file that is not parquet, and a schema without the columns', async () => {
    const missing = await prefpipe(['rlhf-v', '--input', join(dir, 'nope.parquet'), '--out', join(dir, 'x')])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/nope\.parquet/)
    const notParquet = await prefpipe(['rlhf-v', '--input', join(ROOT, 'test/fixtures/parquet/not-parquet.parquet'), '--out', join(dir, 'x')])
    expect(notParquet.code).toBe(1)
    expect(notParquet.stderr).toMatch(/not-parquet\.parquet.*not a parquet file/i)
    const wrong = await prefpipe(['rlhf-v', '--input', join(ROOT, 'test/fixtures/parquet/wrong-schema.parquet'), '--out', join(dir, 'x')])
    expect(wrong.code).toBe(1)
    expect(wrong.stderr).toMatch(/wrong-schema\.parquet/)
    expect(wrong.stderr).toMatch(/conversations/)
    const usage = await prefpipe(['rlhf-v', '--input', SAMPLE])
    expect(usage.code).toBe(2)
    expect(usage.stderr).toMatch(/--out/)
  })
})
