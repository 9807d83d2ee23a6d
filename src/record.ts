/**
 * The record that flows through the middle of every pipeline: one preference pair.
 *
 * Sources map foreign shapes (sharegpt `from`/`value`, other column names) into it;
 * sinks map it back out. See DESIGN.md, "The record".
 */

/** A role of a turn, as LLaMA-Factory names them internally. */
export type Role = 'system' | 'user' | 'assistant' | 'observation' | 'function'

/** One message of a conversation. */
export interface Turn {
  role: Role
  content: string
}

/** One image of a sample, in order of the `<image>` placeholders. */
export interface ImageRef {
  /** The encoded image bytes (parquet sources carry them inline). */
  bytes?: Uint8Array
  /** A local file path (JSON sources resolve it against their media folder). */
  path?: string
  /** Hex sha256 of the bytes, filled by whichever stage hashes them first. */
  sha256?: string
  width?: number
  height?: number
  format?: string
  perceptual?: bigint
  group?: string
  /** What the image was before the images stage (`processImages`) wrote `bytes`; absent if it never ran. */
  original?: ImageSource
  /** Set by the images stage: `true` if `bytes` were re-encoded, `false` if the source was kept (metadata stripped losslessly at most). */
  reencoded?: boolean
}

/** The source of an image as the images stage found it (see `ImageRef.original`). */
export interface ImageSource {
  /** Hex sha256 of the source bytes. */
  sha256: string
  /** Size of the source bytes. */
  bytes: number
  /** The decoder's format name (sharp's: `jpeg`, `png`, `webp`, `gif`, `tiff`, `heif`, ...). */
  format: string
  /** As stored, before EXIF orientation. */
  width: number
  height: number
  /** EXIF orientation (1-8); 1 when the file has none. */
  orientation: number
}

/** One preference pair: prompt turns, the chosen and the rejected answer, and its images. */
export interface PreferenceSample {
  /** Stable id: source name + row index (`rlhf-v.parquet#17`); survives every stage. */
  id: string
  /** The prompt turns; ends with a user (or observation) turn. No system turn here: see `system`. */
  messages: Turn[]
  chosen: Turn
  rejected: Turn
  images: ImageRef[]
  /** A leading system prompt, if the source had one. */
  system?: string
  /** Anything else the source wants to carry (row index, original path fields, ...). */
  meta: Record<string, unknown>
}

/**
 * A row left out of the output, with the reason. Written to `rejects.jsonl` by the
 * LLaMA-Factory sink and counted in the run report.
 */
export interface Reject {
  /** The sample id (or `<source>#<row>` when the row could not become a sample). */
  id: string
  /** The stage that rejected it. Filled by the pipeline if left empty. */
  stage?: string
  /** A stable reason code, e.g. `image_count_mismatch`. */
  reason: string
  /** A readable explanation for a person. */
  message: string
  /** Optional extra detail (the offending turn index, the counts, ...). Must be JSON-serialisable. */
  detail?: Record<string, unknown>
}
