import type { z } from 'zod'

/** The error a stage factory throws for a bad option: names the factory and the option. */
export function optionsError(fn: string, error: z.ZodError): TypeError {
  const issue = error.issues[0]!
  if (issue.code === 'unrecognized_keys') return new TypeError(`[prefpipe] ${fn}: unknown option "${issue.keys.join('", "')}"`)
  const path = issue.path.map(String).join('.')
  return new TypeError(`[prefpipe] ${fn}: option "${path || 'options'}" is invalid: ${issue.message}`)
}

/**
 * Validate a stage factory's options when the stage is made, so a wrong option fails before any work.
 * @example
 * checkOptions('parquetSource()', schema, options) // throws TypeError: [prefpipe] parquetSource(): option "path" is invalid: ...
 */
export function checkOptions<T>(fn: string, schema: z.ZodType<T>, options: unknown): T {
  const r = schema.safeParse(options)
  if (!r.success) throw optionsError(fn, r.error)
  return r.data
}
