/**
 * Process helpers for the launch: find an executable on a PATH, run a short command without a shell, and tell
 * whether a process (or a whole process group) is still alive. Linux-first (GPU boxes are Linux); the
 * `/proc` parts fall back to `kill(pid, 0)` elsewhere.
 */
import { execFile } from 'node:child_process'
import { accessSync, constants, readdirSync, readFileSync, statSync } from 'node:fs'
import { delimiter, isAbsolute, join, resolve } from 'node:path'

/**
 * The absolute path `cmd` runs as, looked up on `env.PATH` the way `spawn()` without a shell does;
 * `undefined` when there is no such executable. A `cmd` with a `/` is resolved against `cwd`.
 * @example
 * which('llamafactory-cli') // '/opt/conda/bin/llamafactory-cli' or undefined
 */
export function which(cmd: string, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string | undefined {
  const candidates = cmd.includes('/') ? [isAbsolute(cmd) ? cmd : resolve(cwd, cmd)] : (env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(resolve(cwd, d), cmd))
  for (const c of candidates) {
    try {
      if (!statSync(c).isFile()) continue
      accessSync(c, constants.X_OK)
      return c
    } catch {
      // not here
    }
  }
  return undefined
}

/** What {@link execCapture} resolves to. `code` is `null` when the command could not be started or timed out. */
export interface Captured {
  code: number | null
  stdout: string
  stderr: string
  /** Why it did not run to completion (`ENOENT`, `timeout`, ...), when it did not. */
  error?: string
}

/**
 * Run a short command to completion without a shell and capture its output (never rejects).
 * @example
 * const { code, stdout } = await execCapture('llamafactory-cli', ['version'], { env: process.env })
 */
export function execCapture(file: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<Captured> {
  return new Promise((done) => {
    execFile(
      file,
      args,
      { env: opts.env ?? process.env, cwd: opts.cwd, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 16 << 20, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        if (!err) return done({ code: 0, stdout, stderr })
        const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean }
        if (typeof e.code === 'number') return done({ code: e.code, stdout, stderr })
        done({ code: null, stdout, stderr, error: e.killed ? 'timeout' : String(e.code ?? e.message) })
      },
    )
  })
}

/** `/proc/<pid>/stat` fields we need: state letter and process group; `undefined` when there is no such process. */
function procStat(pid: number): { state: string; pgrp: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // "pid (comm) state ppid pgrp ..." where comm may hold spaces and parentheses: split after the last ')'.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ')
    return { state: rest[0] ?? '?', pgrp: Number(rest[2]) }
  } catch {
    return undefined
  }
}

const HAS_PROC = (() => {
  try {
    return statSync('/proc/self/stat').isFile()
  } catch {
    return false
  }
})()

/**
 * Whether `pid` is a live process. A zombie (exited, not yet reaped, e.g. an orphan whose new parent does not
 * reap) counts as gone: it holds no resources and cannot receive signals.
 * @example
 * pidAlive(process.pid) // true
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
  if (!HAS_PROC) return true
  const st = procStat(pid)
  return st !== undefined && st.state !== 'Z' && st.state !== 'X'
}

/**
 * Whether any live (non-zombie) process is left in process group `pgid`.
 * @example
 * groupAlive(child.pid) // after spawn(..., { detached: true }) the child leads its own group
 */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0)
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
  if (!HAS_PROC) return true
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const st = procStat(Number(name))
    if (st && st.pgrp === pgid && st.state !== 'Z' && st.state !== 'X') return true
  }
  return false
}

/** Send `signal` to every process of group `pgid`; false when the group is already gone. */
export function killGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal)
    return true
  } catch {
    return false
  }
}
