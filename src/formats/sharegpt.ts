import { z } from 'zod'
import type { ImageRef, PreferenceSample, Reject, Role, Turn } from '../record.js'

/**
 * Column names of a sharegpt ranking dataset, spelled as in LLaMA-Factory's `dataset_info.json` `columns`,
 * so an entry can be pasted in as is. Defaults: RLHF-V's.
 */
export interface SharegptColumns {
  messages: string
  chosen: string
  rejected: string
  /** Absent: the dataset has no images. */
  images?: string
  /** A separate system-prompt column (a leading system turn wins over it, as in LLaMA-Factory). */
  system?: string
}

/** Tag names, spelled as in LLaMA-Factory's `dataset_info.json` `tags`. Defaults are LLaMA-Factory's. */
export interface SharegptTags {
  role_tag: string
  content_tag: string
  user_tag: string
  assistant_tag: string
  observation_tag: string
  function_tag: string
  system_tag: string
}

export const DEFAULT_COLUMNS: SharegptColumns = { messages: 'conversations', chosen: 'chosen', rejected: 'rejected', images: 'images' }

export const DEFAULT_TAGS: SharegptTags = {
  role_tag: 'from',
  content_tag: 'value',
  user_tag: 'human',
  assistant_tag: 'gpt',
  observation_tag: 'observation',
  function_tag: 'function_call',
  system_tag: 'system',
}

/** `columns` and `tags` options as a user passes them: any subset, the rest from the defaults. */
export interface SharegptMapping {
  columns?: Partial<SharegptColumns>
  tags?: Partial<SharegptTags>
}

export function resolveMapping(m: SharegptMapping = {}): { columns: SharegptColumns; tags: SharegptTags } {
  return { columns: { ...DEFAULT_COLUMNS, ...m.columns }, tags: { ...DEFAULT_TAGS, ...m.tags } }
}

/** One image as a source holds it: inline bytes (parquet `{bytes, path}`) or a path string (JSON). */
export type RawImage = string | { bytes?: Uint8Array | null; path?: string | null }

/** Zod schema of one sharegpt ranking row under a given mapping. Unknown extra columns are allowed. */
export function sharegptRowSchema(columns: SharegptColumns, tags: SharegptTags) {
  const turn = z.object({ [tags.role_tag]: z.string(), [tags.content_tag]: z.string() })
  // A string response is a shape LLaMA-Factory reads (and then drops), so the mapper says so precisely;
  // anything else must be a turn. (A zod union here would hide which key is wrong.)
  const response = z.unknown().superRefine((v, ctx) => {
    if (typeof v === 'string') return
    const r = turn.safeParse(v)
    if (!r.success) for (const issue of r.error.issues) ctx.addIssue({ ...issue, path: issue.path } as never)
  })
  const image = z.union([
    z.string(),
    z.object({ bytes: z.instanceof(Uint8Array).nullish(), path: z.string().nullish() }),
  ])
  const shape: Record<string, z.ZodType> = {
    [columns.messages]: z.array(turn),
    [columns.chosen]: response,
    [columns.rejected]: response,
  }
  if (columns.images) shape[columns.images] = z.union([z.array(image), image]).nullish()
  if (columns.system) shape[columns.system] = z.string().nullish()
  return z.looseObject(shape)
}

// Building the schema costs far more than using it: keep one per mapping object.
const schemaCache = new WeakMap<object, ReturnType<typeof sharegptRowSchema>>()

export type MapResult = { ok: true; sample: PreferenceSample } | { ok: false; reject: Reject }

/**
 * Map one raw sharegpt ranking row into a {@link PreferenceSample}, as LLaMA-Factory's converter reads it.
 * Rows it cannot even read (missing column, a turn without its role or content key, non-string content,
 * chosen/rejected given as strings, a role tag outside the mapping) come back as a reject; the
 * semantic rules (turn order, placeholders, ...) are `validateRanking`'s job.
 *
 * `resolvePath` turns an image path of the dataset into a local path to read (JSON sources resolve it
 * against their media folder).
 */
export function sharegptToSample(
  row: unknown,
  id: string,
  mapping: { columns: SharegptColumns; tags: SharegptTags },
  resolvePath: (p: string) => string = (p) => p,
): MapResult {
  const { columns, tags } = mapping
  let schema = schemaCache.get(mapping)
  if (!schema) schemaCache.set(mapping, (schema = sharegptRowSchema(columns, tags)))
  const parsed = schema.safeParse(row)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    const where = issue.path.map(String).join('.')
    return bad(id, 'row_shape', `row does not have the sharegpt ranking shape: ${where ? `${where}: ` : ''}${issue.message}`, { path: where })
  }
  const r = parsed.data as Record<string, unknown>
  const roleOf = new Map<string, Role>([
    [tags.user_tag, 'user'],
    [tags.assistant_tag, 'assistant'],
    [tags.observation_tag, 'observation'],
    [tags.function_tag, 'function'],
    [tags.system_tag, 'system'],
  ])
  const toTurn = (t: Record<string, string>, where: string): Turn | Reject => {
    const tag = t[tags.role_tag]!
    const role = roleOf.get(tag)
    if (!role) return rej(id, 'role_unknown', `${where} has role tag "${tag}", which is none of the tags (${[...roleOf.keys()].join(', ')})`, { where, tag })
    return { role, content: t[tags.content_tag]! }
  }

  const raw = r[columns.messages] as Record<string, string>[]
  let system: string | undefined
  let start = 0
  // As LLaMA-Factory: a system turn at position 0 is the system prompt, and wins over the system column.
  if (raw.length > 0 && raw[0]![tags.role_tag] === tags.system_tag) {
    system = raw[0]![tags.content_tag]
    start = 1
  } else if (columns.system && typeof r[columns.system] === 'string') {
    system = r[columns.system] as string
  }
  const messages: Turn[] = []
  for (let i = start; i < raw.length; i++) {
    const t = toTurn(raw[i]!, `${columns.messages}[${i}]`)
    if ('reason' in t) return { ok: false, reject: t }
    messages.push(t)
  }
  const responses: Turn[] = []
  for (const col of [columns.chosen, columns.rejected]) {
    const v = r[col]
    if (typeof v === 'string') {
      return bad(id, 'response_not_object', `${col} is a string; sharegpt ranking needs an object {"${tags.role_tag}": "${tags.assistant_tag}", "${tags.content_tag}": "..."} (LLaMA-Factory drops the row otherwise)`, { column: col })
    }
    const t = toTurn(v as Record<string, string>, col)
    if ('reason' in t) return { ok: false, reject: t }
    responses.push(t)
  }

  const images: ImageRef[] = []
  const rawImages = columns.images ? r[columns.images] : undefined
  const list = rawImages == null ? [] : Array.isArray(rawImages) ? rawImages : [rawImages]
  const sourcePaths: (string | null)[] = []
  for (const img of list as RawImage[]) {
    if (typeof img === 'string') {
      images.push({ path: resolvePath(img) })
      sourcePaths.push(img)
    } else if (img.bytes != null) {
      images.push({ bytes: img.bytes })
      sourcePaths.push(img.path ?? null)
    } else if (img.path != null) {
      images.push({ path: resolvePath(img.path) })
      sourcePaths.push(img.path)
    } else {
      return bad(id, 'image_missing', `${columns.images}[${images.length}] has neither bytes nor a path`, { index: images.length })
    }
  }

  const sample: PreferenceSample = {
    id,
    messages,
    chosen: responses[0]!,
    rejected: responses[1]!,
    images,
    meta: sourcePaths.some((p) => p !== null) ? { imagePaths: sourcePaths } : {},
  }
  if (system !== undefined) sample.system = system
  return { ok: true, sample }
}

/** The output row of the LLaMA-Factory sink (RLHF-V's shape, images as paths). */
export interface SharegptRankingRow {
  conversations: { from: string; value: string }[]
  chosen: { from: string; value: string }
  rejected: { from: string; value: string }
  images: string[]
}

const TAG_OF: Record<Role, keyof SharegptTags> = {
  user: 'user_tag',
  assistant: 'assistant_tag',
  observation: 'observation_tag',
  function: 'function_tag',
  system: 'system_tag',
}

/**
 * Map a sample back to a sharegpt ranking row with the default tags. A system prompt becomes a leading
 * `system` turn (LLaMA-Factory reads it back as the system prompt). `imagePaths` are the paths to write,
 * in the order of `sample.images`.
 */
export function sampleToSharegpt(sample: PreferenceSample, imagePaths: string[]): SharegptRankingRow {
  const turn = (t: Turn) => ({ from: DEFAULT_TAGS[TAG_OF[t.role]], value: t.content })
  const conversations = sample.messages.map(turn)
  if (sample.system !== undefined && sample.system !== '') conversations.unshift({ from: DEFAULT_TAGS.system_tag, value: sample.system })
  return { conversations, chosen: turn(sample.chosen), rejected: turn(sample.rejected), images: imagePaths }
}

function rej(id: string, reason: string, message: string, detail?: Record<string, unknown>): Reject {
  return detail ? { id, reason, message, detail } : { id, reason, message }
}

function bad(id: string, reason: string, message: string, detail?: Record<string, unknown>): MapResult {
  return { ok: false, reject: rej(id, reason, message, detail) }
}
