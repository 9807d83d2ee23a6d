/**
 * Interrupting a launch: the signal reaches the whole process group of the training (the stand-in leader and
 * the "worker" it spawned in its group, as torchrun's workers are), the escalation to SIGTERM/SIGKILL, no
 * process left behind, and the exit code.
 */
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { launchTraining } from '../../src/launch/launch.js'
import { alive, collector, makeFakes, makeRun, waitFor, type Fakes, type RunSetup } from './fakes.js'

async function pids(fakes: Fakes): Promise<{ leader: number; worker: number }> {
  return waitFor(
    async () => {
      const [l, w] = await Promise.all(['leader.pid', 'worker.pid'].map((f) => readFile(join(fakes.record, f), 'utf8').catch(() => '')))
      return l && w ? { leader: Number(l), worker: Number(w) } : undefined
    },
    10_000,
    'the stand-in training and its worker to start',
  )
}

describe('interrupting a launch', () => {
  let fakes: Fakes
  let run: RunSetup
  beforeAll(async () => {
    fakes = await makeFakes()
    run = await makeRun(fakes.dir)
  })
  afterAll(() => rm(fakes.dir, { recursive: true, force: true }))

  it('forwards SIGINT to the whole process group; the exit code is the training’s', async () => {
    const ac = new AbortController()
    const stderr = collector()
    const launching = launchTraining({ config: run.config, gpus: '0-7', env: fakes.env({ FAKE_LF_MODE: 'sigint' }), signal: ac.signal, forwardSignals: false, pollMs: 20, stdout: collector(), stderr })
    const { leader, worker } = await pids(fakes)
    expect(alive(leader) && alive(worker)).toBe(true)
    ac.abort()
    const r = await launching
    expect(r.exitCode).toBe(130)
    expect(r.interrupted).toBe('SIGINT')
    const got = (await readFile(join(fakes.record, 'signals.log'), 'utf8')).trim().split('\n').sort()
    expect(got).toEqual(['leader SIGINT', 'worker SIGINT'])
    expect(alive(leader)).toBe(false)
    expect(alive(worker)).toBe(false)
    expect(stderr.text()).toContain(`SIGINT sent to the training (process group ${leader}); it has 30 s to stop before SIGTERM`)
    // What the monitor saw before the interrupt still makes a summary.
    expect(r.summary).toMatchObject({ source: 'trainer_log.jsonl', step: 5, trainRecords: 1 })
  })

  it('escalates to SIGTERM, then SIGKILL, and leaves no orphan behind', async () => {
    await rm(join(fakes.record, 'signals.log'), { force: true })
    await rm(join(fakes.record, 'worker.pid'), { force: true })
    await rm(join(fakes.record, 'leader.pid'), { force: true })
    const ac = new AbortController()
    const stderr = collector()
    const launching = launchTraining({
      config: run.config,
      gpus: '0-7',
      env: fakes.env({ FAKE_LF_MODE: 'stubborn' }),
      signal: ac.signal,
      forwardSignals: false,
      graceMs: 200,
      killMs: 300,
      pollMs: 20,
      stdout: collector(),
      stderr,
    })
    const { leader, worker } = await pids(fakes)
    ac.abort()
    const r = await launching
    // The leader stops at once (130); its worker ignores SIGINT and SIGTERM and is killed.
    expect(r.exitCode).toBe(130)
    const got = (await readFile(join(fakes.record, 'signals.log'), 'utf8')).trim().split('\n')
    expect(got).toContain('leader SIGINT')
    expect(got).toContain('worker SIGINT')
    expect(got).toContain('worker SIGTERM')
    expect(alive(leader)).toBe(false)
    expect(alive(worker)).toBe(false)
    expect(stderr.text()).toMatch(/SIGINT sent to the training/)
  })
})
