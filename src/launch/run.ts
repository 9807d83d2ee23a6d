/**
 * Run a {@link LaunchPlan}: spawn it without a shell in its own process group, tee its output to the terminal
 * and a log file, forward Ctrl-C (and SIGTERM/SIGHUP) to the whole group with an escalation to SIGTERM and
 * SIGKILL, leave no process behind, and resolve to its exit code.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createWriteStream, type WriteStream } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { constants } from 'node:os'
import { dirname } from 'node:path'
import { formatCommand, type LaunchPlan } from './command.js'
import { groupAlive, killGroup } from './proc.js'

/** Options of {@link runLaunch}. */
export interface RunOptions {
  plan: LaunchPlan
  /** The environment the plan's variables are added to (default `process.env`). */
  env?: NodeJS.ProcessEnv
  /** Append everything the training prints to this file (created with its folder). */
  logFile?: string
  /** Where the training's output goes besides the log (default: our stdout / stderr). */
  onOutput?: (chunk: Buffer, stream: 'stdout' | 'stderr') => void
  /** Status lines of the launch itself (default: our stderr). */
  notify?: (message: string) => void
  /** After forwarding Ctrl-C, how long the training gets to stop before SIGTERM (ms, default 30 000). */
  graceMs?: number
  /** After SIGTERM, how long before SIGKILL (ms, default 10 000). */
  killMs?: number
  /** Aborting it interrupts the training as Ctrl-C does. */
  signal?: AbortSignal
  /** Catch SIGINT, SIGTERM and SIGHUP of this process while the training runs and forward them (default true). */
  forwardSignals?: boolean
  /** Called once the training has started. */
  onSpawn?: (pid: number) => void
}

/** How the training ended. */
export interface RunResult {
  /** The child's exit code; `128 + n` when a signal `n` killed it. */
  exitCode: number
  /** The signal that killed it, if one did. */
  signal?: NodeJS.Signals
  /** The signal we forwarded first (Ctrl-C: `SIGINT`), if the run was interrupted. */
  interrupted?: NodeJS.Signals
  pid: number
  durationMs: number
}

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/** Wait until no live process is left in group `pgid`, up to `ms`; true when it is empty. */
async function groupGone(pgid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (groupAlive(pgid)) {
    if (Date.now() >= end) return false
    await sleep(50)
  }
  return true
}

/**
 * Spawn the plan and wait for it (and every process of its group) to end.
 *
 * - No shell: `plan.file` is looked up on the PATH and gets `plan.args` as they are, so paths and overrides
 *   cannot inject anything. `detached: true` puts it in its own process group (and session), so a terminal's
 *   Ctrl-C reaches only us, and we decide what the training gets.
 * - Ctrl-C (or SIGTERM/SIGHUP, or `signal` aborting): the signal goes to the whole group
 *   (`process.kill(-pid, sig)`: torchrun and every worker); after `graceMs` SIGTERM, after `killMs` more
 *   SIGKILL. A second Ctrl-C skips to the next step.
 * - No orphans: when the child exits and processes of its group are still alive, they get SIGTERM, then
 *   SIGKILL. If this process exits first, the group gets SIGTERM.
 * - Output: both streams go to `onOutput` (default: our own stdout/stderr) and, byte for byte, to `logFile`
 *   between a header line (time, command) and a footer line (exit code).
 * @example
 * const { exitCode } = await runLaunch({ plan, logFile: '/abs/saves/run/prefpipe-launch.log' })
 * process.exitCode = exitCode
 */
export async function runLaunch(opts: RunOptions): Promise<RunResult> {
  const { plan } = opts
  const graceMs = opts.graceMs ?? 30_000
  const killMs = opts.killMs ?? 10_000
  const notify = opts.notify ?? ((m: string) => process.stderr.write(`prefpipe: ${m}\n`))
  const onOutput = opts.onOutput ?? ((chunk: Buffer, s: 'stdout' | 'stderr') => (s === 'stdout' ? process.stdout : process.stderr).write(chunk))
  if (opts.signal?.aborted) throw Object.assign(new Error('[prefpipe] the launch was aborted before it started'), { name: 'AbortError' })

  let log: WriteStream | undefined
  if (opts.logFile) {
    await mkdir(dirname(opts.logFile), { recursive: true })
    log = createWriteStream(opts.logFile, { flags: 'a' })
    log.write(`==> prefpipe launch ${new Date().toISOString()} in ${plan.cwd}\n$ ${formatCommand(plan)}\n`)
  }
  const t0 = Date.now()
  const child = spawn(plan.file, plan.args, {
    cwd: plan.cwd,
    env: { ...(opts.env ?? process.env), ...plan.env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const spawned = await new Promise<number>((resolve, reject) => {
    child.once('spawn', () => resolve(child.pid!))
    child.once('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'ENOENT' ? `${plan.file} not found on PATH` : err.code === 'EACCES' ? `${plan.file} is not executable` : err.message
      reject(new Error(`[prefpipe] cannot start the training: ${why}`, { cause: err }))
    })
  }).catch(async (err: unknown) => {
    if (log) {
      log.end(`==> could not start: ${(err as Error).message}\n`)
      await once(log, 'finish').catch(() => {})
    }
    throw err
  })
  const pid = spawned
  opts.onSpawn?.(pid)

  const streamsDone = Promise.all(
    (['stdout', 'stderr'] as const).map(async (name) => {
      const stream = child[name]!
      stream.on('data', (chunk: Buffer) => {
        log?.write(chunk)
        onOutput(chunk, name)
      })
      await once(stream, 'close').catch(() => {})
    }),
  )

  // Interrupt: forward the signal to the group, then SIGTERM, then SIGKILL.
  let step = 0
  let interrupted: NodeJS.Signals | undefined
  let timer: NodeJS.Timeout | undefined
  let exited = false
  const escalate = (first: NodeJS.Signals = 'SIGINT'): void => {
    if (exited && !groupAlive(pid)) return
    step++
    const sig: NodeJS.Signals = step === 1 ? first : step === 2 ? 'SIGTERM' : 'SIGKILL'
    if (step === 1) {
      interrupted = first
      notify(`${first} sent to the training (process group ${pid}); it has ${Math.round(graceMs / 1000)} s to stop before SIGTERM (press Ctrl-C again to hurry it)`)
    } else notify(`${sig} sent to the training (process group ${pid})`)
    killGroup(pid, sig)
    if (timer) clearTimeout(timer)
    if (step < 3) timer = setTimeout(() => escalate(), step === 1 ? graceMs : killMs)
  }
  const onSignal = (sig: NodeJS.Signals) => escalate(sig)
  const onAbort = () => escalate('SIGINT')
  const onProcessExit = () => {
    if (!exited) killGroup(pid, 'SIGTERM')
  }
  if (opts.forwardSignals ?? true) for (const s of FORWARDED) process.on(s, onSignal)
  opts.signal?.addEventListener('abort', onAbort, { once: true })
  process.on('exit', onProcessExit)

  try {
    const [code, sig] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null]
    exited = true
    // Whatever is left of the group is an orphan now: stop it.
    if (groupAlive(pid)) {
      if (!interrupted) notify(`the training exited but left processes in its group ${pid}; stopping them`)
      killGroup(pid, 'SIGTERM')
      if (!(await groupGone(pid, killMs))) {
        killGroup(pid, 'SIGKILL')
        await groupGone(pid, 5_000)
      }
    }
    if (timer) clearTimeout(timer)
    // The pipes close once every process holding them is gone; do not hang on a stray holder.
    await Promise.race([streamsDone, sleep(2_000)])
    child.stdout?.destroy()
    child.stderr?.destroy()
    const exitCode = code ?? 128 + (sig ? (constants.signals[sig] ?? 0) : 0)
    if (log) {
      log.end(`==> exit code ${exitCode}${sig ? ` (${sig})` : ''} after ${((Date.now() - t0) / 1000).toFixed(1)} s\n`)
      await once(log, 'finish').catch(() => {})
    }
    const result: RunResult = { exitCode, pid, durationMs: Date.now() - t0 }
    if (sig) result.signal = sig
    if (interrupted) result.interrupted = interrupted
    return result
  } finally {
    if (timer) clearTimeout(timer)
    for (const s of FORWARDED) process.off(s, onSignal)
    opts.signal?.removeEventListener('abort', onAbort)
    process.off('exit', onProcessExit)
  }
}
