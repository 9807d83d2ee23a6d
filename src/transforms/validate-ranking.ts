import { stat } from 'node:fs/promises'
import { z } from 'zod'
import { named } from '../pipeline/stage.js'
import type { StageContext, Transform } from '../pipeline/types.js'
import type { ImageRef, PreferenceSample, Reject, Turn } from '../record.js'

/**
 * Every reason code {@link validateRanking} can reject a row with, in the order the rules are checked
 * (a row is reported under the first rule it breaks), with a one-line description. Codes are stable:
 * they appear in `rejects.jsonl` and in the run report, so docs, dashboards and tests can rely on them.
 *
 * @example
 * for (const [code, what] of Object.entries(RANKING_REJECT_REASONS)) console.log(`${code}: ${what}`)
 */
export const RANKING_REJECT_REASONS = {
  prompt_empty: 'the prompt has no turns',
  system_turn_in_prompt: 'a system turn appears inside the prompt (only a leading one is allowed, and it becomes the system prompt)',
  role_order: 'prompt turns do not alternate user|observation (even indices) and assistant|function (odd indices)',
  prompt_count_even: 'the prompt has an even number of turns, so it does not end on a user or observation turn',
  prompt_turn_empty: 'a prompt turn is empty or whitespace only (a turn that is just an image placeholder is fine)',
  response_role: 'chosen or rejected is not an assistant (or function) turn',
  response_empty: 'chosen or rejected is empty (whitespace only)',
  responses_identical: 'chosen and rejected are the same text, so the pair teaches nothing',
  placeholder_in_system: 'the system prompt contains an image, video or audio placeholder',
  placeholder_in_response: 'chosen or rejected contains an image, video or audio placeholder',
  media_placeholder_unsupported: 'the prompt contains a video or audio placeholder, and the record carries no videos or audios',
  image_count_mismatch: 'the number of image placeholders in the prompt differs from the number of images',
  special_token: 'the text contains a raw model special token (e.g. <|image_pad|>, <|im_end|>)',
  image_missing: 'an image has neither bytes nor a path',
  image_url: 'an image path is a URL or data URI, which LLaMA-Factory cannot open',
  image_empty: 'an image has zero-length bytes, or its file is empty',
  image_not_found: 'an image path does not exist',
  image_not_file: 'an image path exists but is not a regular file (a directory, a device, ...)',
  image_unreadable: 'an image path could not be checked (permission denied, path too long, a NUL byte in it, ...)',
} as const

/** A reason code of {@link validateRanking}: a key of {@link RANKING_REJECT_REASONS}. */
export type RankingRejectReason = keyof typeof RANKING_REJECT_REASONS

/**
 * Raw special tokens that must never appear as text in a row, with where each comes from. Text holding one
 * of these is tokenised as the special token itself: it corrupts the image-token count LLaMA-Factory's
 * Qwen2-VL plugin computes (`<|image_pad|>`, `<|vision_start|>`, ...) or ends/starts turns mid-text
 * (`<|im_end|>`, `<|endoftext|>`). The list is the `<|...|>` added tokens of the Qwen2-VL / Qwen2.5-VL
 * tokenizers (ids 151643-151664, `tokenizer_config.json` `added_tokens_decoder`), which Qwen3-VL keeps.
 * Add others (e.g. for another model family) with the `extraForbiddenTokens` option.
 *
 * @example
 * const tokens = FORBIDDEN_SPECIAL_TOKENS.map((t) => t.token) // ['<|endoftext|>', '<|im_start|>', ...]
 */
export const FORBIDDEN_SPECIAL_TOKENS: readonly { readonly token: string; readonly source: string }[] = [
  { token: '<|endoftext|>', source: 'Qwen2 tokenizer, id 151643 (eos/pad); LLaMA-Factory qwen templates' },
  { token: '<|im_start|>', source: 'Qwen2 tokenizer, id 151644; LLaMA-Factory template qwen2_vl format_user/format_assistant' },
  { token: '<|im_end|>', source: 'Qwen2 tokenizer, id 151645; LLaMA-Factory template qwen2_vl stop word' },
  { token: '<|object_ref_start|>', source: 'Qwen2-VL tokenizer, id 151646 (grounding)' },
  { token: '<|object_ref_end|>', source: 'Qwen2-VL tokenizer, id 151647 (grounding)' },
  { token: '<|box_start|>', source: 'Qwen2-VL tokenizer, id 151648 (grounding)' },
  { token: '<|box_end|>', source: 'Qwen2-VL tokenizer, id 151649 (grounding)' },
  { token: '<|quad_start|>', source: 'Qwen2-VL tokenizer, id 151650 (grounding)' },
  { token: '<|quad_end|>', source: 'Qwen2-VL tokenizer, id 151651 (grounding)' },
  { token: '<|vision_start|>', source: 'Qwen2-VL tokenizer, id 151652; LLaMA-Factory mm_plugin Qwen2VLPlugin vision_bos_token' },
  { token: '<|vision_end|>', source: 'Qwen2-VL tokenizer, id 151653; LLaMA-Factory mm_plugin Qwen2VLPlugin vision_eos_token' },
  { token: '<|vision_pad|>', source: 'Qwen2-VL tokenizer, id 151654' },
  { token: '<|image_pad|>', source: 'Qwen2-VL tokenizer, id 151655; LLaMA-Factory template qwen2_vl image_token' },
  { token: '<|video_pad|>', source: 'Qwen2-VL tokenizer, id 151656; LLaMA-Factory template qwen2_vl video_token' },
  { token: '<|fim_prefix|>', source: 'Qwen2.5-VL tokenizer, id 151659' },
  { token: '<|fim_middle|>', source: 'Qwen2.5-VL tokenizer, id 151660' },
  { token: '<|fim_suffix|>', source: 'Qwen2.5-VL tokenizer, id 151661' },
  { token: '<|fim_pad|>', source: 'Qwen2.5-VL tokenizer, id 151662' },
  { token: '<|repo_name|>', source: 'Qwen2.5-VL tokenizer, id 151663' },
  { token: '<|file_sep|>', source: 'Qwen2.5-VL tokenizer, id 151664' },
]

/** The media placeholders LLaMA-Factory counts and expands. */
export interface Placeholders {
  image: string
  video: string
  audio: string
}

/**
 * LLaMA-Factory's defaults (`extras/constants.py`: `IMAGE_PLACEHOLDER`, `VIDEO_PLACEHOLDER`,
 * `AUDIO_PLACEHOLDER`). LLaMA-Factory lets environment variables of those names override them; if you
 * train with them set, pass the same values (see {@link placeholdersFromEnv}).
 *
 * @example
 * validateRanking({ placeholders: { ...DEFAULT_PLACEHOLDERS, image: '<img>' } })
 */
export const DEFAULT_PLACEHOLDERS: Readonly<Placeholders> = Object.freeze({ image: '<image>', video: '<video>', audio: '<audio>' })

/**
 * The placeholders LLaMA-Factory would use under the given environment (its `IMAGE_PLACEHOLDER`,
 * `VIDEO_PLACEHOLDER` and `AUDIO_PLACEHOLDER` variables, else the defaults). Not read implicitly by
 * {@link validateRanking}: the environment that prepares data is often not the one that trains.
 *
 * @example
 * validateRanking({ placeholders: placeholdersFromEnv(process.env) })
 */
export function placeholdersFromEnv(env: Record<string, string | undefined> = process.env): Placeholders {
  return {
    image: env['IMAGE_PLACEHOLDER'] || DEFAULT_PLACEHOLDERS.image,
    video: env['VIDEO_PLACEHOLDER'] || DEFAULT_PLACEHOLDERS.video,
    audio: env['AUDIO_PLACEHOLDER'] || DEFAULT_PLACEHOLDERS.audio,
  }
}

const nonEmpty = z.string().min(1, 'must be a non-empty string')

const optionsSchema = z.strictObject({
  checkImageFiles: z.boolean().optional(),
  extraForbiddenTokens: z.array(nonEmpty).optional(),
  placeholders: z.strictObject({ image: nonEmpty.optional(), video: nonEmpty.optional(), audio: nonEmpty.optional() }).optional(),
  allowEmptyTurns: z.boolean().optional(),
  compareTrimmed: z.boolean().optional(),
  concurrency: z.number().int().min(1).max(1024).optional(),
})

/** Options of {@link validateRanking}. Every one is optional. */
export interface ValidateRankingOptions {
  /**
   * Check that every image given by `path` exists as a non-empty regular file (`fs.stat`, run concurrently,
   * output order kept). Relative paths are checked against the process's working directory. Default `true`.
   */
  checkImageFiles?: boolean
  /** More tokens to forbid anywhere in the text, on top of {@link FORBIDDEN_SPECIAL_TOKENS}. */
  extraForbiddenTokens?: string[]
  /** The media placeholders; any subset, the rest from {@link DEFAULT_PLACEHOLDERS}. */
  placeholders?: Partial<Placeholders>
  /**
   * Accept prompt turns that are empty or whitespace only. LLaMA-Factory itself accepts them (neither its
   * converter nor its pairwise processor checks content), but an empty turn carries no signal and is almost
   * always a mapping or scraping error, so by default they are rejected (`prompt_turn_empty`). A turn that
   * holds only an image placeholder (`"<image>"`) is not empty: it is always fine. Default `false`.
   */
  allowEmptyTurns?: boolean
  /**
   * Also reject pairs whose chosen and rejected differ only in leading/trailing whitespace. Default `false`
   * (exact string comparison only).
   */
  compareTrimmed?: boolean
  /** How many rows may have their image files checked at once. Default 16. */
  concurrency?: number
}

interface Resolved {
  checkImageFiles: boolean
  forbidden: string[]
  placeholders: Placeholders
  allowEmptyTurns: boolean
  compareTrimmed: boolean
  concurrency: number
}

function resolveOptions(options: unknown): Resolved {
  const parsed = optionsSchema.safeParse(options ?? {})
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    const keys = issue.code === 'unrecognized_keys' ? issue.keys : []
    const path = [...issue.path.map(String), ...(keys.length === 1 ? keys : [])].join('.')
    const known = Object.keys(optionsSchema.shape).join(', ')
    if (issue.code === 'unrecognized_keys') {
      throw new TypeError(`[prefpipe] validateRanking(): unknown option "${path || keys.join('", "')}" (known options: ${known}, placeholders.{image,video,audio})`)
    }
    throw new TypeError(`[prefpipe] validateRanking(): option "${path || 'options'}" is invalid: ${issue.message}`)
  }
  const o = parsed.data
  const placeholders: Placeholders = { ...DEFAULT_PLACEHOLDERS, ...o.placeholders }
  const forbidden = [...new Set([...FORBIDDEN_SPECIAL_TOKENS.map((t) => t.token), ...(o.extraForbiddenTokens ?? [])])]
  const values = [placeholders.image, placeholders.video, placeholders.audio]
  if (new Set(values).size !== values.length) {
    throw new TypeError(`[prefpipe] validateRanking(): option "placeholders" must give three different strings (got ${JSON.stringify(placeholders)})`)
  }
  for (const [kind, p] of Object.entries(placeholders)) {
    const clash = forbidden.find((t) => t.includes(p) || p.includes(t))
    if (clash) throw new TypeError(`[prefpipe] validateRanking(): option "placeholders.${kind}" (${JSON.stringify(p)}) overlaps the forbidden token ${JSON.stringify(clash)}; every image row would be rejected`)
  }
  return {
    checkImageFiles: o.checkImageFiles ?? true,
    forbidden,
    placeholders,
    allowEmptyTurns: o.allowEmptyTurns ?? false,
    compareTrimmed: o.compareTrimmed ?? false,
    concurrency: o.concurrency ?? 16,
  }
}

/**
 * Check every rule LLaMA-Factory applies to a sharegpt **ranking** (DPO) row with images, and leave out the
 * rows that break one: each goes to `ctx.reject` (counted, written to `rejects.jsonl`) with a stable reason
 * code from {@link RANKING_REJECT_REASONS} and a message saying what is wrong, where, and what to do. Valid
 * rows are yielded unchanged and in input order.
 *
 * The rules, checked in this order (the first one a row breaks is reported):
 * 1. the prompt has turns (`prompt_empty`); no system turn inside it (`system_turn_in_prompt`; sources move a
 *    leading one into `sample.system`); turns alternate user|observation at even and assistant|function at
 *    odd indices (`role_order`); the count is odd, so it ends on a user turn (`prompt_count_even`); no prompt
 *    turn is empty or whitespace only (`prompt_turn_empty`; a turn that is just `<image>` is fine). This one
 *    is stricter than LLaMA-Factory, which trains on empty turns; `allowEmptyTurns: true` turns it off;
 * 2. chosen and rejected are assistant (or function) turns (`response_role`: LLaMA-Factory only warns on a
 *    wrong tag and then trains on it, e.g. as a user turn, so we reject it); neither is empty after trimming
 *    (`response_empty`); they differ (`responses_identical`);
 * 3. no `<image>`/`<video>`/`<audio>` in the system prompt (`placeholder_in_system`) or in chosen/rejected
 *    (`placeholder_in_response`); no `<video>`/`<audio>` in the prompt, as the record carries none
 *    (`media_placeholder_unsupported`); the count of `<image>` in the prompt equals `images.length`
 *    (`image_count_mismatch`; in LLaMA-Factory a mismatch aborts the whole run);
 * 4. no raw special token ({@link FORBIDDEN_SPECIAL_TOKENS} plus `extraForbiddenTokens`) in any text
 *    (`special_token`);
 * 5. every image has bytes or a path (`image_missing`); a path is not a URL or data URI (`image_url`);
 *    bytes are non-empty (`image_empty`); a path holds no NUL byte (`image_unreadable`); with `checkImageFiles`, a path is an existing (`image_not_found`),
 *    regular (`image_not_file`), non-empty (`image_empty`) file that can be stat'ed (`image_unreadable`).
 *    An image with `bytes` is judged by its bytes alone, as LLaMA-Factory reads `bytes` first. Paths are only
 *    ever read, never written to: `../` and absolute paths, and symlinks, are followed as LLaMA-Factory follows
 *    them (its `media_dir` join does not confine them); what is read must then decode as an image to be kept.
 *
 * File checks run concurrently (at most `concurrency` rows at a time) but rows come out in input order, so
 * output and rejects are deterministic. Bad options throw a `TypeError` at construction.
 *
 * @example
 * const { report } = await pipeline(
 *   parquetSource({ path: 'fixtures/rlhf-v-sample.parquet' }),
 *   validateRanking({ extraForbiddenTokens: ['<|eot_id|>'] }),
 *   llamaFactory({ out: 'out/rlhf_v', name: 'rlhf_v' }),
 * )
 * console.log(report.stages.find((s) => s.name === 'validate')?.dropped) // { image_count_mismatch: 3, ... }
 */
export function validateRanking(options?: ValidateRankingOptions): Transform<PreferenceSample, PreferenceSample> {
  const opts = resolveOptions(options)
  return named('validate', async function* (input: AsyncIterable<PreferenceSample>, ctx: StageContext) {
    // Rows in flight, oldest first. `verdict` is null for a valid row; `settled` once it is known.
    const queue: { sample: PreferenceSample; verdict: Reject | null; settled: boolean; wait?: Promise<void> }[] = []
    for await (const sample of input) {
      if (ctx.signal.aborted) return
      const problem = checkText(sample, opts) ?? checkImagesSync(sample)
      const entry: (typeof queue)[number] = { sample, verdict: problem, settled: true }
      if (!problem && opts.checkImageFiles && sample.images.length > 0) {
        entry.settled = false
        entry.wait = checkImageFiles(sample, ctx).then((v) => {
          entry.verdict = v
          entry.settled = true
        })
      }
      queue.push(entry)
      // Emit every decided row at the head; wait on the head only when the window is full.
      while (queue.length > 0 && (queue[0]!.settled || queue.length >= opts.concurrency)) {
        const head = queue.shift()!
        await head.wait
        if (ctx.signal.aborted) return
        if (head.verdict) ctx.reject(head.verdict)
        else yield head.sample
      }
    }
    for (const head of queue.splice(0)) {
      await head.wait
      if (ctx.signal.aborted) return
      if (head.verdict) ctx.reject(head.verdict)
      else yield head.sample
    }
  })
}

function reject(id: string, reason: RankingRejectReason, message: string, detail?: Record<string, unknown>): Reject {
  return detail ? { id, reason, message, detail } : { id, reason, message }
}

function count(text: string, needle: string): number {
  let n = 0
  for (let i = text.indexOf(needle); i !== -1; i = text.indexOf(needle, i + needle.length)) n++
  return n
}

/** A short, single-line excerpt of a text for a message. */
function excerpt(text: string, max = 60): string {
  const flat = text.replace(/\s+/g, ' ').trim()
  return JSON.stringify(flat.length > max ? `${flat.slice(0, max)}…` : flat)
}

const USER_SIDE = new Set(['user', 'observation'])
const ASSISTANT_SIDE = new Set(['assistant', 'function'])

/** The text rules (1-4), synchronously. */
function checkText(s: PreferenceSample, o: Resolved): Reject | null {
  const { id, messages } = s
  const ph = o.placeholders
  // Turn indices in messages are of the record: a leading system turn of the source is already removed.
  const where = (i: number) => `prompt turn ${i} (0-based, not counting a leading system turn)`

  // 1. prompt structure
  if (messages.length === 0) {
    return reject(id, 'prompt_empty', 'the prompt has no turns; a ranking row needs at least one user turn before chosen/rejected. Check the messages column mapping, or drop the row', {})
  }
  const sys = messages.findIndex((t) => t.role === 'system')
  if (sys !== -1) {
    return reject(id, 'system_turn_in_prompt', `${where(sys)} is a system turn; a system turn is only allowed as the very first turn (it becomes the system prompt). Move its text into the system prompt or drop the turn`, { turn: sys })
  }
  for (let i = 0; i < messages.length; i++) {
    const role = messages[i]!.role
    const want = i % 2 === 0 ? USER_SIDE : ASSISTANT_SIDE
    if (!want.has(role)) {
      const expected = i % 2 === 0 ? 'user or observation' : 'assistant or function'
      return reject(id, 'role_order', `${where(i)} is a "${role}" turn where a ${expected} turn must be; turns must alternate user, assistant, user, ... (LLaMA-Factory skips such rows). Merge or drop the out-of-order turn`, { turn: i, role, expected })
    }
  }
  if (messages.length % 2 === 0) {
    return reject(id, 'prompt_count_even', `the prompt has ${messages.length} turns and ends on an "${messages[messages.length - 1]!.role}" turn; a ranking prompt must have an odd count and end on a user turn (the answer belongs in chosen/rejected). Drop the last turn or move it into chosen/rejected`, { turns: messages.length })
  }
  if (!o.allowEmptyTurns) {
    const empty = messages.findIndex((t) => t.content.trim() === '')
    if (empty !== -1) {
      return reject(id, 'prompt_turn_empty', `${where(empty)} (${messages[empty]!.role}) is empty; fill in its text or drop the row (pass allowEmptyTurns: true to keep such rows)`, { turn: empty, role: messages[empty]!.role })
    }
  }

  // 2. responses
  for (const [name, t] of [['chosen', s.chosen], ['rejected', s.rejected]] as const) {
    if (!ASSISTANT_SIDE.has(t.role)) {
      return reject(id, 'response_role', `${name} is a "${t.role}" turn; chosen and rejected must be assistant turns (LLaMA-Factory only warns and then trains on it with the wrong role). Fix the role tag of ${name} (e.g. "gpt") or the tags mapping`, { field: name, role: t.role })
    }
  }
  for (const [name, t] of [['chosen', s.chosen], ['rejected', s.rejected]] as const) {
    if (t.content.trim() === '') {
      return reject(id, 'response_empty', `${name} is empty${t.content === '' ? '' : ' (whitespace only)'}; both answers need text for a preference pair. Fill it in or drop the row`, { field: name })
    }
  }
  if (s.chosen.content === s.rejected.content || (o.compareTrimmed && s.chosen.content.trim() === s.rejected.content.trim())) {
    const exact = s.chosen.content === s.rejected.content
    return reject(id, 'responses_identical', `chosen and rejected are ${exact ? 'identical' : 'identical apart from leading/trailing whitespace'} (${excerpt(s.chosen.content)}); the pair carries no preference. Drop the row or fix the source`, { exact })
  }

  // 3. placeholders
  const kinds = [['image', ph.image], ['video', ph.video], ['audio', ph.audio]] as const
  if (s.system !== undefined) {
    for (const [kind, p] of kinds) {
      const n = count(s.system, p)
      if (n > 0) {
        return reject(id, 'placeholder_in_system', `the system prompt contains ${n}× ${p}; LLaMA-Factory neither counts nor expands placeholders there, so it stays literal text. Remove it (put ${p} in a user turn), or escape it`, { placeholder: p, kind, count: n })
      }
    }
  }
  for (const [name, t] of [['chosen', s.chosen], ['rejected', s.rejected]] as const) {
    for (const [kind, p] of kinds) {
      const n = count(t.content, p)
      if (n > 0) {
        return reject(id, 'placeholder_in_response', `${name} contains ${n}× ${p}; LLaMA-Factory counts placeholders in the answer against the row's ${kind}s, so the row breaks training. Remove or escape it (placeholders belong in user turns only)`, { field: name, placeholder: p, kind, count: n })
      }
    }
  }
  for (const [kind, p] of kinds.slice(1)) {
    const i = messages.findIndex((t) => t.content.includes(p))
    if (i !== -1) {
      return reject(id, 'media_placeholder_unsupported', `${where(i)} contains ${p}, but the row carries no ${kind}s (only images are supported), so LLaMA-Factory would abort on the count mismatch. Remove or escape the ${p} text`, { turn: i, placeholder: p, kind })
    }
  }
  const placeholders = messages.reduce((n, t) => n + count(t.content, ph.image), 0)
  if (placeholders !== s.images.length) {
    const perTurn = messages.map((t) => count(t.content, ph.image))
    return reject(id, 'image_count_mismatch', `the prompt has ${placeholders}× ${ph.image} but the row has ${s.images.length} image${s.images.length === 1 ? '' : 's'}; each image needs exactly one ${ph.image} in a user turn, in order (LLaMA-Factory aborts the whole run on this). Add or remove placeholders, or fix the images column`, { placeholders, images: s.images.length, perTurn })
  }

  // 4. special tokens
  // [field in detail, turn index or -1, where for the message, text]
  const texts: [string, number, string, string][] = []
  if (s.system !== undefined) texts.push(['system', -1, 'the system prompt', s.system])
  messages.forEach((t: Turn, i) => texts.push(['messages', i, where(i), t.content]))
  texts.push(['chosen', -1, 'chosen', s.chosen.content], ['rejected', -1, 'rejected', s.rejected.content])
  for (const [field, turn, label, text] of texts) {
    const token = o.forbidden.find((t) => text.includes(t))
    if (token) {
      return reject(id, 'special_token', `${label} contains the raw special token ${token}; the tokenizer would read it as the token itself and corrupt the turn or image-token layout. Remove or escape it`, turn === -1 ? { field, token } : { field, turn, token })
    }
  }
  return null
}

const URL_LIKE = /^(?:[a-z][a-z0-9+.-]*:\/\/|data:)/i

/** The image rules that need no file system (5, first part). */
function checkImagesSync(s: PreferenceSample): Reject | null {
  for (let i = 0; i < s.images.length; i++) {
    const img: ImageRef = s.images[i]!
    if (img.bytes !== undefined && img.bytes !== null) {
      if (img.bytes.byteLength === 0) {
        return reject(s.id, 'image_empty', `image ${i} has zero-length bytes; re-export the image, or drop the row`, { image: i })
      }
      continue
    }
    if (typeof img.path !== 'string' || img.path === '') {
      return reject(s.id, 'image_missing', `image ${i} has neither bytes nor a path; fix the images column, or drop the row`, { image: i })
    }
    if (URL_LIKE.test(img.path)) {
      return reject(s.id, 'image_url', `image ${i} is ${excerpt(img.path, 80)}, a URL or data URI; LLaMA-Factory only opens local files. Download or decode it to a local file first`, { image: i, path: img.path })
    }
    if (img.path.includes('\0')) {
      // No file name can hold a NUL byte (the OS would cut the path there): never pass it to the file system.
      return reject(s.id, 'image_unreadable', `image ${i} path ${JSON.stringify(img.path)} contains a NUL byte, which no file path can hold; fix the images column, or drop the row`, { image: i, path: img.path, code: 'NUL_IN_PATH' })
    }
  }
  return null
}

/** The file-system image rules (5, second part): stat every path image of the row concurrently. */
async function checkImageFiles(s: PreferenceSample, ctx: StageContext): Promise<Reject | null> {
  const paths = s.images.map((img, i) => (img.bytes == null && img.path ? { i, path: img.path } : null)).filter((x) => x !== null)
  if (paths.length === 0) return null
  const results = await Promise.all(
    paths.map(async ({ i, path }): Promise<Reject | null> => {
      try {
        const st = await stat(path)
        ctx.stats.count('imageFilesChecked')
        if (!st.isFile()) return reject(s.id, 'image_not_file', `image ${i} path ${JSON.stringify(path)} is not a regular file (${st.isDirectory() ? 'a directory' : 'not a file'}); point it at the image file itself`, { image: i, path })
        if (st.size === 0) return reject(s.id, 'image_empty', `image ${i} file ${JSON.stringify(path)} is empty (0 bytes); re-download or re-export it, or drop the row`, { image: i, path })
        return null
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'UNKNOWN'
        if (code === 'ENOENT' || code === 'ENOTDIR') {
          return reject(s.id, 'image_not_found', `image ${i} file ${JSON.stringify(path)} does not exist (relative paths are checked against ${JSON.stringify(process.cwd())}); fix the path or the media folder, or drop the row`, { image: i, path })
        }
        return reject(s.id, 'image_unreadable', `image ${i} file ${JSON.stringify(path)} could not be checked (${code}); fix its permissions or path`, { image: i, path, code })
      }
    }),
  )
  return results.find((r) => r !== null) ?? null
}
