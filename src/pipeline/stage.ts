import { AFTER, STAGE_NAME, type After, type StageContext } from './types.js'

/**
 * Give a stage the name it has in errors, logs and the run report. Returns the same function.
 * @example
 * const dropEmpty = named('drop-empty', async function* (input) { for await (const s of input) if (s.chosen.content) yield s })
 */
export function named<F extends (...args: never[]) => unknown>(name: string, stage: F): F {
  Object.defineProperty(stage, STAGE_NAME, { value: name, enumerable: false })
  return stage
}

/**
 * Make a final step that runs once the sink has resolved, with the sink's result.
 * @example
 * const printManifest = after('print', async (manifest) => { console.log(manifest); return manifest })
 */
export function after<R, R2>(name: string, fn: (result: R, ctx: StageContext) => Promise<R2>): After<R, R2> {
  const step = named(name, (result: R, ctx: StageContext) => fn(result, ctx)) as unknown as After<R, R2>
  Object.defineProperty(step, AFTER, { value: true, enumerable: false })
  return step
}

/** The name of a stage: the one given by {@link named}, else the function's own name, else `fallback`. */
export function stageName(stage: unknown, fallback: string): string {
  const f = stage as { [STAGE_NAME]?: string; name?: string }
  return f[STAGE_NAME] ?? (f.name && f.name !== 'anonymous' ? f.name : fallback)
}

export function isAfter(x: unknown): x is After<unknown, unknown> {
  return typeof x === 'function' && (x as { [AFTER]?: boolean })[AFTER] === true
}
