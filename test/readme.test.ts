import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT, run } from './helpers.js'

describe('README', () => {
  it('its library example runs as it is against the built package', async () => {
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8')
    const code = /## As a library[\s\S]*?```js\n([\s\S]*?)```/.exec(readme)?.[1]
    expect(code).toBeDefined()
    // Written inside the repository so that `import 'prefpipe'` resolves to this package (self-reference).
    await mkdir(join(ROOT, 'out'), { recursive: true })
    const dir = await mkdtemp(join(ROOT, 'out', 'readme-'))
    const file = join(dir, 'example.mjs')
    await writeFile(file, code!.replaceAll("'out/example'", JSON.stringify(join(dir, 'example'))))
    try {
      const r = await run(process.execPath, [file])
      expect(r.stderr).toBe('')
      expect(r.code).toBe(0)
      expect(r.stdout).toMatch(/^39 rows written to .*example\n/)
      expect(r.stdout).toMatch(/rejected by reason: \{/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
