/**
 * Following a run that something else started (`prefpipe monitor`): a log that appears late, lines in pieces,
 * the end of training, the results written after it; and the terminal display.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDisplay } from '../../src/launch/display.js'
import { monitorTraining } from '../../src/launch/monitor.js'
import type { TrainerLogEntry } from '../../src/launch/trainer-log.js'
import type { LogRecord } from '../../src/launch/results.js'
import { collector, makeFakes, makeRun, readRecord, waitFor, type Fakes, type RunSetup } from './fakes.js'
import { checkSvg, pathPoints } from './svg.js'

/** Start the stand-in training directly (not through a launch), as another user's run. */
function startTraining(fakes: Fakes, setup: RunSetup, extra: Record<string, string>) {
  const child = spawn(join(fakes.bin, 'llamafactory-cli'), ['train', setup.config], { env: fakes.env(extra), stdio: 'ignore', detached: true })
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)))
  return { child, exited }
}

describe('monitor a run that is already going', () => {
  let fakes: Fakes
  let setup: RunSetup
  beforeAll(async () => {
    fakes = await makeFakes()
    setup = await makeRun(fakes.dir)
  })
  afterAll(() => rm(fakes.dir, { recursive: true, force: true }))

  it('waits for the log to appear, follows it to the end, then summarises and plots', async () => {
    const stdout = collector()
    const stderr = collector()
    // Started before the training: output_dir does not exist yet.
    expect(existsSync(setup.outputDir)).toBe(false)
    const monitoring = monitorTraining({ target: setup.outputDir, pollMs: 20, waitResultsMs: 10_000, stdout, stderr })
    await new Promise((r) => setTimeout(r, 100))
    const training = startTraining(fakes, setup, { FAKE_DELAY_MS: '25' })
    const r = await monitoring
    expect(await training.exited).toBe(0)
    const written = (await readRecord<{ entries: TrainerLogEntry[]; history: LogRecord[] }>(fakes, 'written.json'))!
    expect(r.finished).toBe(true)
    expect(r.entries).toEqual(written.entries)
    expect(stderr.text()).toContain(`prefpipe: waiting for ${join(setup.outputDir, 'trainer_log.jsonl')}`)
    expect(stderr.text().split('\n').filter((l) => /^(step|done) \d+/.test(l))).toHaveLength(written.entries.length)
    // The results come from trainer_state.json, written after the end-of-training line.
    expect(r.summary.source).toBe('trainer_state.json')
    const lastTrain = written.history.filter((h) => h.loss !== undefined).at(-1)!
    expect(r.summary.last['rewards/chosen']).toBe(lastTrain['rewards/chosen'])
    expect(stdout.text()).toMatch(/^training summary \(trainer_state\.json\): step 40\/40, epoch 3, 8 train logs\n/)
    expect(r.plots).toHaveLength(4)
    const svg = await readFile(join(setup.outputDir, 'training_rewards_accuracies.svg'), 'utf8')
    checkSvg(svg)
    expect(pathPoints(svg, 'accuracy', 'ema')).toHaveLength(8)
  })

  it('stops following when told (Ctrl-C) and summarises what the log holds', async () => {
    await rm(join(fakes.record, 'leader.pid'), { force: true })
    await rm(setup.outputDir, { recursive: true, force: true })
    const training = startTraining(fakes, setup, { FAKE_LF_MODE: 'sigint' })
    try {
      const ac = new AbortController()
      const stdout = collector()
      const monitoring = monitorTraining({ target: setup.config, pollMs: 20, signal: ac.signal, plots: false, stdout, stderr: collector() })
      await waitFor(() => existsSync(join(fakes.record, 'leader.pid')), 10_000, 'the stand-in training')
      await new Promise((r) => setTimeout(r, 100))
      ac.abort()
      const r = await monitoring
      expect(r.finished).toBe(false)
      expect(r.entries.map((e) => e.current_steps)).toEqual([5])
      expect(r.summary).toMatchObject({ source: 'trainer_log.jsonl', step: 5, last: { loss: 0.69, 'rewards/accuracies': 0.5 } })
      expect(stdout.text()).toContain('training summary (trainer_log.jsonl): step 5/40')
    } finally {
      process.kill(-training.child.pid!, 'SIGKILL')
      await training.exited
    }
  })
})

describe('the terminal display', () => {
  it('draws a bar with steps, loss, accuracy, lr and ETA, and scrolls whole output lines above it', () => {
    let text = ''
    const tty = { isTTY: true, columns: 160, write: (s: string) => ((text += s), true) } as unknown as NodeJS.WriteStream
    const stdout = collector()
    const d = createDisplay({ bar: true, progressStream: tty, stdout, stderr: tty })
    d.output(Buffer.from('[INFO] loading model\n'), 'stdout') // before the first entry: passed through as is
    d.entry({ current_steps: 10, total_steps: 40, loss: 0.6931, accuracy: 0.55, lr: 4e-6, remaining_time: '0:01:30' })
    d.output(Buffer.from('\r 25%|##  | 10/40\r 30%|###  | 12/40'), 'stderr') // tqdm redraws: not shown while the bar is
    d.output(Buffer.from('\r 40%|####  | 16/40\n[INFO] saving checkpoint\n'), 'stderr')
    d.entry({ current_steps: 20, total_steps: 40, eval_loss: 0.61, remaining_time: '0:01:00' })
    d.stop()
    expect(stdout.text()).toBe('[INFO] loading model\n')
    expect(text).toMatch(/training \[[^\]]+\] 20\/40 steps 50% \| loss 0\.6931 \| acc 0\.55 \| lr 4\.00e-6 \| ETA 0:01:00/)
    expect(text).toContain('[INFO] saving checkpoint\n')
    expect(text).toContain(' 40%|####  | 16/40\n')
    expect(text).not.toContain('12/40')
    expect(text).toContain('step 20/40 (50%)  eval_loss 0.61')
  })
})
