import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { imageFileWriter } from '../../src/sinks/image-files.js'

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prefpipe-image-files-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('imageFileWriter', () => {
  it('writes through a temporary name, keeps a file that already holds the bytes, replaces one that does not', async () => {
    const files = imageFileWriter()
    try {
      const small = randomBytes(50_000)
      const big = randomBytes(700_000) // above a shared slot: sent by copy
      const at = (b: Uint8Array) => join(dir, 'a', sha(b).slice(0, 2), `${sha(b)}.jpg`)
      const tmpOf = (p: string) => `${p}.tmp-test`
      expect(await files.write(at(small), tmpOf(at(small)), sha(small), small)).toBe('written')
      expect(await files.write(at(big), tmpOf(at(big)), sha(big), big)).toBe('written')
      expect(await readFile(at(small))).toEqual(small)
      expect(await readFile(at(big))).toEqual(big)
      expect(await files.write(at(small), tmpOf(at(small)), sha(small), small)).toBe('existing')

      // A file of the right size whose bytes are wrong (a torn write after a power loss) is not trusted.
      await writeFile(at(small), Buffer.alloc(small.length))
      expect(await files.write(at(small), tmpOf(at(small)), sha(small), small)).toBe('written')
      expect(sha(await readFile(at(small)))).toBe(sha(small))

      // Many at once: all land, in any order of completion, and no temporary file is left.
      const many = Array.from({ length: 60 }, () => randomBytes(1000 + Math.floor(Math.random() * 300_000)))
      expect(await Promise.all(many.map((b) => files.write(at(b), tmpOf(at(b)), sha(b), b)))).toEqual(many.map(() => 'written'))
      for (const b of many) expect(sha(await readFile(at(b)))).toBe(sha(b))
      await files.durable([join(dir, 'a')])
      const left = (await readdir(join(dir, 'a'), { recursive: true })).filter((f) => f.includes('.tmp-test'))
      expect(left).toEqual([])
    } finally {
      await files.close()
    }
  })

  it('rejects with the system error of a failed write, and goes on', async () => {
    const files = imageFileWriter()
    try {
      const blocker = join(dir, 'blocker')
      await writeFile(blocker, 'a file where a folder should be')
      const bytes = randomBytes(1000)
      const err = (await files.write(join(blocker, 'x', 'y.jpg'), join(blocker, 'x', '.y.jpg.tmp'), sha(bytes), bytes).catch((e: unknown) => e)) as NodeJS.ErrnoException
      expect(err).toBeInstanceOf(Error)
      expect(err.code).toBe('ENOTDIR')
      expect(err.path).toContain('blocker')
      // The writer goes on after a failed write.
      const ok = join(dir, 'b', 'ok.jpg')
      expect(await files.write(ok, `${ok}.tmp`, sha(bytes), bytes)).toBe('written')
      expect((await stat(ok)).size).toBe(1000)
    } finally {
      await files.close()
    }
  })

  it('close() is idempotent; a write after it is refused', async () => {
    const files = imageFileWriter()
    await files.close()
    await files.close()
    const bytes = randomBytes(10)
    await expect(files.write(join(dir, 'c.jpg'), join(dir, '.c.jpg.tmp'), sha(bytes), bytes)).rejects.toThrow(/image-writing thread stopped/)
  })
})
