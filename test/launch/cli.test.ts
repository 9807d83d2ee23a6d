/**
 * `prefpipe launch` and `prefpipe monitor` as separate processes, built (`npm test` builds first; set
 * PREFPIPE_DIST to use another build), with the stand-in executables first on PATH: the pinned `--dry-run`
 * output, the exit codes, and a real Ctrl-C (SIGINT to the prefpipe process only, as a terminal sends it).
 */
import { spawn } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROOT, run as runCmd, type Run } from '../helpers.js'
import { alive, makeFakes, makeRun, readRecord, waitFor, type Fakes, type RunSetup, type TrainRecord } from './fakes.js'

const DIST = process.env.PREFPIPE_DIST ?? join(ROOT, 'dist')

/** Fail clearly when the build is missing or older than the sources it comes from. */
async function checkBuild(): Promise<void> {
  const newest = async (dir: string): Promise<number> => {
    let t = 0
    for (const f of await readdir(dir, { withFileTypes: true, recursive: true })) if (f.isFile() && f.name.endsWith('.ts')) t = Math.max(t, statSync(join(f.parentPath, f.name)).mtimeMs)
    return t
  }
  const built = join(DIST, 'cli', 'commands', 'launch.js')
  if (!existsSync(built)) throw new Error(`${built} is missing: run npm run build first (npm test does)`)
  const commands = ['launch.ts', 'monitor.ts'].map((f) => statSync(join(ROOT, 'src', 'cli', 'commands', f)).mtimeMs)
  const srcTime = Math.max(await newest(join(ROOT, 'src', 'launch')), ...commands)
  if (statSync(built).mtimeMs < srcTime - 1000) throw new Error(`${DIST} is older than src/launch: run npm run build first (npm test does)`)
}

describe('prefpipe launch / monitor (built CLI, stand-in executables)', () => {
  let fakes: Fakes
  let setup: RunSetup
  let entry: string

  /** Run the CLI with the stand-ins first on PATH. */
  const cli = (args: string[], extra: Record<string, string> = {}): Promise<Run> => runCmd(process.execPath, [entry, ...args], { env: fakes.env(extra) })

  beforeAll(async () => {
    await checkBuild()
    fakes = await makeFakes()
    setup = await makeRun(fakes.dir)
    // The commands as src/cli/main.ts registers them, with its error handling.
    entry = join(fakes.dir, 'prefpipe.mjs')
    const url = (p: string) => JSON.stringify(pathToFileURL(p).href)
    await writeFile(
      entry,
      [
        `import { Command } from ${url(join(ROOT, 'node_modules', 'commander', 'esm.mjs'))}`,
        `import { registerLaunch } from ${url(join(DIST, 'cli', 'commands', 'launch.js'))}`,
        `import { registerMonitor } from ${url(join(DIST, 'cli', 'commands', 'monitor.js'))}`,
        `const program = new Command().name('prefpipe').showHelpAfterError()`,
        'registerLaunch(program)',
        'registerMonitor(program)',
        'try {',
        '  await program.parseAsync(process.argv)',
        '} catch (err) {',
        "  process.stderr.write(`prefpipe: ${(err instanceof Error ? err.message : String(err)).replace(/^\\[prefpipe\\] /, '')}\\n`)",
        '  process.exitCode = 1',
        '}',
        '',
      ].join('\n'),
    )
  })
  afterAll(() => rm(fakes.dir, { recursive: true, force: true }))

  it('--dry-run prints exactly the command and environment, and runs nothing', async () => {
    const r = await cli(['launch', setup.config, '--gpus', '0-7', '--dry-run'])
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(`CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 PYTHONUNBUFFERED=1 llamafactory-cli train ${setup.config}\n`)
    expect(r.stderr).toMatch(/^prefpipe preflight: ready to launch\n/)
    expect(existsSync(join(fakes.record, 'train.json'))).toBe(false)
    expect(existsSync(setup.outputDir)).toBe(false)
  })

  it('--dry-run, multi-node with overrides', async () => {
    const r = await cli(['launch', setup.config, 'num_train_epochs=1', '--gpus', '8', '--nnodes', '2', '--node-rank', '0', '--master-addr', '10.0.0.1', '--master-port', '29500', '--dry-run'])
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(
      `CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 FORCE_TORCHRUN=1 NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 MASTER_PORT=29500 PYTHONUNBUFFERED=1 llamafactory-cli train ${setup.config} num_train_epochs=1\n`,
    )
  })

  it('refuses with exit 1 when the preflight fails (too few GPUs), launching nothing', async () => {
    const r = await cli(['launch', setup.config, '--gpus', '8'], { FAKE_GPUS: '2' })
    expect(r.code).toBe(1)
    expect(r.stdout).toBe('')
    expect(r.stderr).toContain('  FAIL  gpus     8 GPUs asked for, but this machine has 2 GPUs (0,1)\n')
    expect(r.stderr).toMatch(/prefpipe: preflight failed; nothing was launched\n$/)
    expect(existsSync(join(fakes.record, 'train.json'))).toBe(false)
  })

  it('bad flags and bad overrides are errors, not launches', async () => {
    const a = await cli(['launch', setup.config, '--gpus', '7-0', '--dry-run'])
    expect(a.code).toBe(1)
    expect(a.stderr).toContain('--gpus "7-0": the range 7-0 runs backwards')
    const b = await cli(['launch', setup.config, '--learning_rate', '1e-5'])
    expect(b.code).toBe(1)
    expect(b.stderr).toMatch(/unknown option '--learning_rate'/)
  })

  it("trains, and exits with the training's exit code", async () => {
    const ok = await cli(['launch', setup.config, '--gpus', '0-7', '--poll-ms', '20'], { FAKE_STEPS: '10' })
    expect(ok.code).toBe(0)
    expect(ok.stdout).toContain('training summary (trainer_state.json): step 10/10, epoch 3, 2 train logs')
    expect(ok.stdout).toContain(`page: ${join(setup.outputDir, 'training.html')}`)
    expect(ok.stderr).toContain(`prefpipe: training finished: exit code 0; log: ${join(setup.outputDir, 'prefpipe-launch.log')}`)
    const rec = (await readRecord<TrainRecord>(fakes, 'train.json'))!
    expect(rec.argv).toEqual(['train', setup.config])
    expect(rec.env.CUDA_VISIBLE_DEVICES).toBe('0,1,2,3,4,5,6,7')
    const other = await cli(['launch', setup.config, '--gpus', '0-7', '--no-plots'], { FAKE_EXIT: '7', FAKE_STEPS: '5' })
    expect(other.code).toBe(7)
    expect(other.stderr).toContain('prefpipe: training failed: exit code 7')
  })

  it('Ctrl-C: SIGINT to prefpipe reaches the training and its worker; both are gone; exit code 130', async () => {
    await rm(join(fakes.record, 'signals.log'), { force: true })
    for (const f of ['leader.pid', 'worker.pid']) await rm(join(fakes.record, f), { force: true })
    const child = spawn(process.execPath, [entry, 'launch', setup.config, '--gpus', '0-7', '--poll-ms', '20'], { env: fakes.env({ FAKE_LF_MODE: 'sigint' }), stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.stdout.resume()
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
    const [leader, worker] = await waitFor(
      async () => {
        const ps = await Promise.all(['leader.pid', 'worker.pid'].map((f) => readFile(join(fakes.record, f), 'utf8').catch(() => '')))
        return ps[0] && ps[1] ? ps.map(Number) : undefined
      },
      15_000,
      'the stand-in training and its worker',
    )
    child.kill('SIGINT') // only prefpipe: the training runs in its own process group
    expect(await exited).toBe(130)
    expect((await readFile(join(fakes.record, 'signals.log'), 'utf8')).trim().split('\n').sort()).toEqual(['leader SIGINT', 'worker SIGINT'])
    expect(alive(leader!)).toBe(false)
    expect(alive(worker!)).toBe(false)
    expect(stderr).toContain(`prefpipe: SIGINT sent to the training (process group ${leader})`)
    expect(stderr).toContain('prefpipe: training failed: interrupted (SIGINT); exit code 130')
  })

  it('monitor: summarises a finished run and writes its plots; exit 1 when there is nothing', async () => {
    const r = await cli(['monitor', setup.outputDir, '--no-follow'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^training summary \(trainer_state\.json\): step 5\/5/)
    expect(existsSync(join(setup.outputDir, 'training_rewards_margins.svg'))).toBe(true)
    const viaYaml = await cli(['monitor', setup.config, '--no-follow', '--no-plots'])
    expect(viaYaml.stdout).toBe(r.stdout.replace(/plots: .*\n$/, ''))
    const none = await cli(['monitor', join(fakes.dir, 'nothing-here'), '--no-follow'])
    expect(none.code).toBe(1)
    expect(none.stdout).toBe('training summary: no metrics were logged\n')
  })
})
