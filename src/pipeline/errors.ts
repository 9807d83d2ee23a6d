import type { RunReport } from './types.js'

/** A stage failed. `stage` names it; `cause` is what it threw. */
export class PipelineError extends Error {
  override name = 'PipelineError'
  readonly stage: string
  /** The run report up to the failure (set by `pipeline()`). */
  report?: RunReport
  constructor(stage: string, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause)
    super(`[prefpipe] stage "${stage}" failed: ${why}`, { cause })
    this.stage = stage
  }
}

/** The error a pipeline rejects with when its signal is aborted (name `AbortError`, like `fetch`). */
export function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason
  if (reason instanceof Error && reason.name === 'AbortError') return reason
  const err = new Error('[prefpipe] the run was aborted', { cause: reason })
  err.name = 'AbortError'
  return err
}

export function isAbortError(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError'
}
