import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { MockHub } from './server.js'

export const REPO = 'llamafactory/RLHF-V'
export const FILE = 'rlhf-v.parquet'
/** 5 MiB of noise: big enough for mid-body cuts, small enough to keep the suite fast. */
export const DATA = randomBytes(5 << 20)
export const DATA_SHA = createHash('sha256').update(DATA).digest('hex')
export const README = '# RLHF-V (mock)\n'

/** Backoff in ms, not seconds, so retry tests stay fast. */
export const FAST_RETRY = { retries: 3, minDelayMs: 5, maxDelayMs: 20 }

/** A scratch folder per test; `cleanup()` removes it. */
export async function scratch(): Promise<{ dir: string; cacheDir: string; home: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'prefpipe-hub-'))
  return { dir, cacheDir: join(dir, 'hub'), home: join(dir, 'hf-home'), cleanup: () => rm(dir, { recursive: true, force: true }) }
}

/** A warn/debug logger that keeps the lines. */
export function recordingLog(): { warn: (m: string) => void; debug: (m: string) => void; lines: string[] } {
  const lines: string[] = []
  return { lines, warn: (m) => lines.push(`warn: ${m}`), debug: (m) => lines.push(`debug: ${m}`) }
}

/**
 * Options for a Hub call against the mock, isolated from the user's machine: the cache in `cacheDir`, and an
 * `env` whose `HF_HOME` is a scratch folder (so no token file, no `~/.cache/huggingface`, no `HF_TOKEN`).
 */
export function against(hub: MockHub, s: { cacheDir: string; home: string }, env: NodeJS.ProcessEnv = {}) {
  return { endpoint: hub.url, cacheDir: s.cacheDir, env: { HF_HOME: s.home, ...env }, retry: FAST_RETRY }
}

/** Paths of the requests the mock saw, `"<METHOD> <path>"`. */
export function seen(hub: MockHub): string[] {
  return hub.requests.map((r) => `${r.method} ${r.path}`)
}
