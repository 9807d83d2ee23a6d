import { readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'

/** The public Hub, used when neither `endpoint` nor `HF_ENDPOINT` is given. */
export const DEFAULT_ENDPOINT = 'https://huggingface.co'

/** Where a token came from. Errors name the source (never the token) so a person knows which one to fix. */
export type TokenSource = 'option' | 'HF_TOKEN' | 'HUGGING_FACE_HUB_TOKEN' | 'token file'

/** The settings every Hub call runs with, resolved once from options and the environment. */
export interface HubSettings {
  /** Base URL of the Hub or mirror, without a trailing `/`. */
  endpoint: string
  token?: string
  tokenSource?: TokenSource
  /** The token file that was read (or would be), for messages. */
  tokenPath: string
  /** The hub cache (`HF_HUB_CACHE`): the folder holding `datasets--owner--name/`. */
  cacheDir: string
  /** No HTTP at all: answer from the cache or fail (`HF_HUB_OFFLINE`). */
  offline: boolean
  /** Timeout of a metadata request, in ms (`HF_HUB_ETAG_TIMEOUT`, seconds, default 10). */
  metadataTimeoutMs: number
  /** Longest silence while a body is streaming before the attempt is retried, in ms (`HF_HUB_DOWNLOAD_TIMEOUT`, default 10 s). */
  downloadTimeoutMs: number
}

/** What callers may set explicitly; everything else comes from `env` (default `process.env`). */
export interface HubSettingsInput {
  token?: string
  endpoint?: string
  cacheDir?: string
  offline?: boolean
  /** Read the environment from here instead of `process.env` (embedding, tests). */
  env?: NodeJS.ProcessEnv
}

const TRUE_VALUES = new Set(['1', 'ON', 'YES', 'TRUE'])

/** `1`/`ON`/`YES`/`TRUE` in any case, as huggingface_hub's `_is_true`. */
export function envFlag(value: string | undefined): boolean {
  return value !== undefined && TRUE_VALUES.has(value.trim().toUpperCase())
}

/** `~` and `$VAR`/`${VAR}` expanded, as Python's `expanduser(expandvars(...))` does for the cache paths. */
function expandPath(p: string, env: NodeJS.ProcessEnv): string {
  const vars = p.replace(/\$(\w+)|\$\{(\w+)\}/g, (m, a: string | undefined, b: string | undefined) => env[(a ?? b)!] ?? m)
  if (vars === '~') return homeOf(env)
  if (vars.startsWith('~/')) return join(homeOf(env), vars.slice(2))
  return vars
}

function homeOf(env: NodeJS.ProcessEnv): string {
  return env.HOME || homedir()
}

/** `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`. */
export function hfHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HOME) return expandPath(env.HF_HOME, env)
  const xdg = env.XDG_CACHE_HOME ? expandPath(env.XDG_CACHE_HOME, env) : join(homeOf(env), '.cache')
  return join(xdg, 'huggingface')
}

/**
 * The hub cache folder, in huggingface_hub's order: `HF_HUB_CACHE`, the legacy `HUGGINGFACE_HUB_CACHE`, then
 * `$HF_HOME/hub`.
 *
 * @example
 * hubCacheDir({ HF_HOME: '/data/hf' }) // '/data/hf/hub'
 */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE
  return explicit ? expandPath(explicit, env) : join(hfHome(env), 'hub')
}

/** `$HF_TOKEN_PATH`, else `$HF_HOME/token` (where `hf auth login` saves the token). */
export function tokenPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.HF_TOKEN_PATH ? expandPath(env.HF_TOKEN_PATH, env) : join(hfHome(env), 'token')
}

/** Strip CR/LF and spaces; empty means none (huggingface_hub's `_clean_token`). */
function cleanToken(t: string | undefined): string | undefined {
  const c = t?.replace(/[\r\n]/g, '').trim()
  return c ? c : undefined
}

/**
 * The token to send, in huggingface_hub's order: the explicit one, then `HF_TOKEN`, then the legacy
 * `HUGGING_FACE_HUB_TOKEN`, then the token file (`$HF_TOKEN_PATH`, default `$HF_HOME/token`). With
 * `HF_HUB_DISABLE_IMPLICIT_TOKEN` set only an explicit token is sent.
 *
 * @example
 * const { token, source } = resolveToken(undefined, process.env)
 * if (token) console.log(`logged in (token from ${source})`)
 */
export function resolveToken(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): { token?: string; source?: TokenSource } {
  const given = cleanToken(explicit)
  if (given) return { token: given, source: 'option' }
  if (envFlag(env.HF_HUB_DISABLE_IMPLICIT_TOKEN)) return {}
  const hfToken = cleanToken(env.HF_TOKEN)
  if (hfToken) return { token: hfToken, source: 'HF_TOKEN' }
  const legacy = cleanToken(env.HUGGING_FACE_HUB_TOKEN)
  if (legacy) return { token: legacy, source: 'HUGGING_FACE_HUB_TOKEN' }
  try {
    const fromFile = cleanToken(readFileSync(tokenPath(env), 'utf8'))
    if (fromFile) return { token: fromFile, source: 'token file' }
  } catch {
    // no token file: not logged in
  }
  return {}
}

/** `HF_ENDPOINT` (or the option) without trailing slashes, checked to be an http(s) URL. */
export function resolveEndpoint(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const raw = (explicit ?? env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).trim().replace(/\/+$/, '')
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new Error(`[prefpipe] the Hub endpoint "${raw}" is not a URL (set HF_ENDPOINT to e.g. https://huggingface.co or a mirror such as https://hf-mirror.com)`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`[prefpipe] the Hub endpoint "${raw}" must be an http(s) URL`)
  }
  return raw
}

function seconds(value: string | undefined, fallback: number): number {
  const n = value === undefined ? NaN : Number(value)
  return Number.isFinite(n) && n > 0 ? n * 1000 : fallback * 1000
}

/**
 * Resolve every setting of a Hub call: explicit options first, then the environment variables huggingface_hub
 * reads (`HF_ENDPOINT`, `HF_TOKEN`, `HUGGING_FACE_HUB_TOKEN`, `HF_TOKEN_PATH`, `HF_HOME`, `HF_HUB_CACHE`,
 * `HF_HUB_OFFLINE`/`TRANSFORMERS_OFFLINE`, `HF_HUB_ETAG_TIMEOUT`, `HF_HUB_DOWNLOAD_TIMEOUT`).
 *
 * @example
 * const s = hubSettings({ cacheDir: '/tmp/hf' })
 * console.log(s.endpoint, s.cacheDir, s.offline, s.tokenSource)
 */
export function hubSettings(input: HubSettingsInput = {}): HubSettings {
  const env = input.env ?? process.env
  const { token, source } = resolveToken(input.token, env)
  const settings: HubSettings = {
    endpoint: resolveEndpoint(input.endpoint, env),
    tokenPath: tokenPath(env),
    cacheDir: input.cacheDir ?? hubCacheDir(env),
    offline: input.offline ?? (envFlag(env.HF_HUB_OFFLINE) || envFlag(env.TRANSFORMERS_OFFLINE)),
    metadataTimeoutMs: seconds(env.HF_HUB_ETAG_TIMEOUT, 10),
    downloadTimeoutMs: seconds(env.HF_HUB_DOWNLOAD_TIMEOUT, 10),
  }
  if (token) {
    settings.token = token
    settings.tokenSource = source!
  }
  return settings
}
