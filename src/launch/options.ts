/** Option checking shared by the launch entry points (zod, at construction or call). */
import { z } from 'zod'

/** A zod schema for a writable stream (anything with `write()`), kept as is. */
export const writableStream = z.custom<NodeJS.WritableStream>((v) => v !== null && typeof v === 'object' && typeof (v as { write?: unknown }).write === 'function', 'must be a writable stream')

/**
 * Check options with a schema; throw a `TypeError` naming every bad field. Streams, the signal and `env` are
 * kept as the caller gave them (zod would copy them).
 * @example
 * const opts = checkOptions(schema, options, 'launch')
 */
export function checkOptions<T>(schema: z.ZodType<T>, options: unknown, what: string): T {
  const parsed = schema.safeParse(options)
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => `${i.path.length ? i.path.map(String).join('.') : 'options'}: ${i.message}`).join('; ')
    throw new TypeError(`[prefpipe] ${what}: invalid options: ${why}`)
  }
  if (options && typeof options === 'object') {
    // zod copies objects; keep the caller's streams, signal and env as they are.
    for (const k of ['signal', 'stdout', 'stderr', 'env'] as const) {
      const v = (options as Record<string, unknown>)[k]
      if (v !== undefined) (parsed.data as Record<string, unknown>)[k] = v
    }
  }
  return parsed.data
}
