import { existsSync } from 'node:fs'
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROOT, SAMPLE, run, type Run } from './helpers.js'

/**
 * The package as a user gets it: `npm pack` of the built repo (dist/ is built by `npm test` before vitest runs),
 * installed into an empty project from the npm cache, then used through `npx prefpipe`, `import 'prefpipe'` and
 * TypeScript (`moduleResolution: NodeNext`).
 */

/** The environment for npm in another project: none of the outer `npm test`'s `npm_*` variables but the cache/registry/config ones. */
function npmEnv(): NodeJS.ProcessEnv {
  const keep = new Set(['npm_config_cache', 'npm_config_registry', 'npm_config_userconfig', 'npm_config_globalconfig'])
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_') || keep.has(k.toLowerCase())))
}

/** Per step: generous, as the whole suite runs in parallel on small machines (each step takes seconds when idle). */
const SLOW = 120_000

const expectOk = (r: Run, what: string) => expect(r.code, `${what} failed:\n${r.stderr}\n${r.stdout}`).toBe(0)

describe('package: npm pack -> npm install (offline) -> npx prefpipe, import, types', () => {
  let dir: string
  let project: string
  let tarball: string
  let files: string[]
  let install: Run
  const env = npmEnv()

  beforeAll(async () => {
    expect(existsSync(join(ROOT, 'dist', 'index.js')), 'dist/ is missing: run `npm run build` (npm test does)').toBe(true)
    dir = await mkdtemp(join(tmpdir(), 'prefpipe-pack-'))
    // --ignore-scripts: `prepare` would rebuild dist/, which npm test has just built.
    const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { env })
    expectOk(pack, 'npm pack')
    const info = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[]
    tarball = join(dir, info[0]!.filename)
    files = info[0]!.files.map((f) => `package/${f.path}`)

    project = join(dir, 'project')
    await run('mkdir', ['-p', project])
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'uses-prefpipe', version: '1.0.0', private: true, type: 'module' }, null, 2))
    // The dependencies come from the npm cache (warm after `npm ci`); fall back to --prefer-offline if one is missing.
    install = await run('npm', ['install', tarball, '--offline', '--no-audit', '--no-fund'], { cwd: project, env })
    if (install.code !== 0) install = await run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund'], { cwd: project, env })
  }, 180_000)
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('the tarball holds only dist/, README.md, LICENSE and package.json', async () => {
    expect(existsSync(tarball)).toBe(true)
    const listing = (await run('tar', ['-tzf', tarball])).stdout.trim().split('\n')
    expect(listing.sort()).toEqual([...files].sort())
    for (const f of listing) expect(f).toMatch(/^package\/(dist\/.+|README\.md|LICENSE|package\.json)$/)
    for (const f of ['package/package.json', 'package/README.md', 'package/LICENSE', 'package/dist/index.js', 'package/dist/index.d.ts', 'package/dist/cli/main.js']) {
      expect(listing).toContain(f)
    }
    expect(listing.filter((f) => /\.test\.|\/test\/|fixtures|\.parquet$|\/src\//.test(f))).toEqual([])
  })

  it('installs into an empty project from the npm cache', () => {
    expectOk(install, 'npm install <tarball>')
    expect(existsSync(join(project, 'node_modules', 'prefpipe', 'dist', 'index.js'))).toBe(true)
    expect(existsSync(join(project, 'node_modules', '.bin', 'prefpipe'))).toBe(true)
  })

  it.concurrent('npx prefpipe --help', async () => {
    const help = await run('npx', ['--no', '--', 'prefpipe', '--help'], { cwd: project, env })
    expectOk(help, 'npx prefpipe --help')
    expect(help.stdout).toMatch(/^Usage: prefpipe \[options\] \[command\]/)
    expect(help.stdout).toContain('rlhf-v')
  }, SLOW)

  it.concurrent('npx prefpipe rlhf-v runs the sample job', async () => {
    const job = await run('npx', ['--no', '--', 'prefpipe', 'rlhf-v', '--input', SAMPLE, '--out', 'out', '--no-progress'], { cwd: project, env })
    expectOk(job, 'npx prefpipe rlhf-v')
    expect(job.stdout).toMatch(/kept\s+39\n/)
    expect((await readdir(join(project, 'out'))).sort()).toEqual(expect.arrayContaining(['dataset_info.json', 'images', 'manifest.json', 'rejects.jsonl', 'rlhf_v_train.jsonl']))
    const info = JSON.parse(await readFile(join(project, 'out', 'dataset_info.json'), 'utf8')) as Record<string, unknown>
    expect(info.rlhf_v_train).toMatchObject({ ranking: true, formatting: 'sharegpt' })
  }, SLOW)

  it.concurrent('imports the library from an .mjs file and runs a pipeline', async () => {
    const script = join(project, 'use.mjs')
    await writeFile(
      script,
      [
        "import { pipeline, parquetSource, validateRanking, llamaFactory, named } from 'prefpipe'",
        'const count = named("count", async (input) => { let n = 0; for await (const _ of input) n++; return n })',
        `const { result, report } = await pipeline(parquetSource({ path: ${JSON.stringify(SAMPLE)} }), validateRanking(), count)`,
        'console.log(JSON.stringify({ kept: result, rejected: Object.values(report.rejected).reduce((a, b) => a + b, 0), llamaFactory: typeof llamaFactory }))',
      ].join('\n'),
    )
    const r = await run(process.execPath, [script], { cwd: project, env })
    expectOk(r, 'node use.mjs')
    expect(JSON.parse(r.stdout)).toEqual({ kept: 39, rejected: 9, llamaFactory: 'function' })
  }, SLOW)

  it.concurrent("type-checks a .ts file importing it (NodeNext): the types resolve, and they are not `any`", async () => {
    await writeFile(
      join(project, 'use.ts'),
      [
        "import { pipeline, parquetSource, validateRanking, llamaFactory, type LlamaFactoryManifest, type PipelineResult, type PreferenceSample } from 'prefpipe'",
        "const job: Promise<PipelineResult<LlamaFactoryManifest>> = pipeline(parquetSource({ path: 'x.parquet' }), validateRanking(), llamaFactory({ out: 'o', name: 'n' }))",
        "const s: PreferenceSample = { id: 'x#0', messages: [], chosen: { role: 'assistant', content: '' }, rejected: { role: 'assistant', content: '' }, images: [], meta: {} }",
        '// @ts-expect-error -- a source is not a number (an unused directive fails if the types fell back to any)',
        'const n: number = parquetSource',
        'void job; void s; void n',
        '',
      ].join('\n'),
    )
    await writeFile(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          lib: ['ES2023'],
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          // check the package's own .d.ts too: an import in them that does not resolve is an error
          skipLibCheck: false,
          typeRoots: [join(ROOT, 'node_modules', '@types')],
          types: ['node'],
        },
        files: ['use.ts'],
      }),
    )
    const tsc = await run(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], { cwd: project, env })
    expectOk(tsc, 'tsc')
  }, SLOW)
})
