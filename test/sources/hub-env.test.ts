import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { repoFolderName } from '../../src/sources/hub/cache.js'
import { pickDataFiles } from '../../src/sources/hub/data-files.js'
import { envFlag, hubCacheDir, hubSettings, resolveEndpoint, resolveToken, tokenPath } from '../../src/sources/hub/env.js'
import { redact } from '../../src/sources/hub/errors.js'
import { backoffMs, parseRetryAfter, retryPolicy } from '../../src/sources/hub/http.js'
import { acquireLock } from '../../src/sources/hub/lock.js'
import { normalizeRepo } from '../../src/sources/hub/metadata.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prefpipe-hub-env-'))
})
afterAll(() => rm(dir, { recursive: true, force: true }))

describe('token, in huggingface_hub order', () => {
  it('option > HF_TOKEN > HUGGING_FACE_HUB_TOKEN > $HF_TOKEN_PATH > $HF_HOME/token', async () => {
    const home = join(dir, 'home')
    await mkdir(home, { recursive: true })
    await writeFile(join(home, 'token'), '  hf_from_file \r\n')
    await writeFile(join(dir, 'other-token'), 'hf_from_token_path\n')
    const env = { HF_HOME: home }
    expect(resolveToken(undefined, env)).toEqual({ token: 'hf_from_file', source: 'token file' })
    expect(resolveToken(undefined, { ...env, HF_TOKEN_PATH: join(dir, 'other-token') })).toEqual({ token: 'hf_from_token_path', source: 'token file' })
    expect(resolveToken(undefined, { ...env, HUGGING_FACE_HUB_TOKEN: 'hf_legacy' })).toEqual({ token: 'hf_legacy', source: 'HUGGING_FACE_HUB_TOKEN' })
    expect(resolveToken(undefined, { ...env, HUGGING_FACE_HUB_TOKEN: 'hf_legacy', HF_TOKEN: 'hf_env' })).toEqual({ token: 'hf_env', source: 'HF_TOKEN' })
    expect(resolveToken('hf_opt', { ...env, HF_TOKEN: 'hf_env' })).toEqual({ token: 'hf_opt', source: 'option' })
    // empty values mean none
    expect(resolveToken('  ', { ...env, HF_TOKEN: '' })).toEqual({ token: 'hf_from_file', source: 'token file' })
    // implicit tokens off: only an explicit one
    expect(resolveToken(undefined, { ...env, HF_TOKEN: 'hf_env', HF_HUB_DISABLE_IMPLICIT_TOKEN: '1' })).toEqual({})
    expect(resolveToken(undefined, { HF_HOME: join(dir, 'nowhere') })).toEqual({})
  })

  it('never appears in messages: redact replaces it', () => {
    expect(redact('Bearer hf_secret_value and hf_secret_value', 'hf_secret_value')).toBe('Bearer hf_*** and hf_***')
  })
})

describe('endpoint, cache folder, offline', () => {
  it('HF_ENDPOINT without trailing slashes; a bad one is refused', () => {
    expect(resolveEndpoint(undefined, {})).toBe('https://huggingface.co')
    expect(resolveEndpoint(undefined, { HF_ENDPOINT: 'https://hf-mirror.com//' })).toBe('https://hf-mirror.com')
    expect(resolveEndpoint('http://127.0.0.1:8080/', { HF_ENDPOINT: 'https://hf-mirror.com' })).toBe('http://127.0.0.1:8080')
    expect(() => resolveEndpoint(undefined, { HF_ENDPOINT: 'hf-mirror.com' })).toThrow(/is not a URL .*HF_ENDPOINT/)
    expect(() => resolveEndpoint('ftp://x', {})).toThrow(/must be an http\(s\) URL/)
  })

  it('HF_HUB_CACHE > HUGGINGFACE_HUB_CACHE > $HF_HOME/hub > $XDG_CACHE_HOME/huggingface/hub > ~/.cache/huggingface/hub', () => {
    const HOME = '/home/u'
    expect(hubCacheDir({ HOME })).toBe('/home/u/.cache/huggingface/hub')
    expect(hubCacheDir({ HOME, XDG_CACHE_HOME: '/xdg' })).toBe('/xdg/huggingface/hub')
    expect(hubCacheDir({ HOME, HF_HOME: '~/hf' })).toBe('/home/u/hf/hub')
    expect(hubCacheDir({ HOME, HF_HOME: '/hf', HUGGINGFACE_HUB_CACHE: '/legacy' })).toBe('/legacy')
    expect(hubCacheDir({ HOME, HUGGINGFACE_HUB_CACHE: '/legacy', HF_HUB_CACHE: '$HOME/cache' })).toBe('/home/u/cache')
    expect(tokenPath({ HOME })).toBe('/home/u/.cache/huggingface/token')
  })

  it('offline with HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE set to 1/ON/YES/TRUE', () => {
    for (const v of ['1', 'ON', 'yes', 'True']) expect(envFlag(v)).toBe(true)
    for (const v of [undefined, '', '0', 'false', 'no']) expect(envFlag(v)).toBe(false)
    const env = { HF_HOME: join(dir, 'h') }
    expect(hubSettings({ env: { ...env, HF_HUB_OFFLINE: '1' } }).offline).toBe(true)
    expect(hubSettings({ env: { ...env, TRANSFORMERS_OFFLINE: 'yes' } }).offline).toBe(true)
    expect(hubSettings({ env: { ...env, HF_HUB_OFFLINE: '1' }, offline: false }).offline).toBe(false)
    expect(hubSettings({ env: { ...env, HF_HUB_ETAG_TIMEOUT: '2.5', HF_HUB_DOWNLOAD_TIMEOUT: 'x' } })).toMatchObject({ metadataTimeoutMs: 2500, downloadTimeoutMs: 10_000 })
  })
})

describe('repo names and data files', () => {
  it('normalizes repo ids; the cache folder is datasets--owner--name', () => {
    expect(normalizeRepo('llamafactory/RLHF-V')).toBe('llamafactory/RLHF-V')
    expect(normalizeRepo('datasets/llamafactory/RLHF-V')).toBe('llamafactory/RLHF-V')
    expect(normalizeRepo('https://huggingface.co/datasets/llamafactory/RLHF-V/')).toBe('llamafactory/RLHF-V')
    expect(() => normalizeRepo('a/b/c')).toThrow(/owner\/name/)
    expect(repoFolderName('llamafactory/RLHF-V')).toBe('datasets--llamafactory--RLHF-V')
  })

  it('picks the parquet data files: the train split, shards in natural order, one config of a conversion', () => {
    expect(pickDataFiles(['README.md', '.gitattributes', 'rlhf-v.parquet'])).toEqual(['rlhf-v.parquet'])
    const sharded = ['data/train-00010-of-00011.parquet', 'data/train-00002-of-00011.parquet', 'data/validation-00000-of-00001.parquet', 'data/test-00000-of-00001.parquet']
    expect(pickDataFiles(sharded)).toEqual(['data/train-00002-of-00011.parquet', 'data/train-00010-of-00011.parquet'])
    expect(pickDataFiles(sharded, { split: 'validation' })).toEqual(['data/validation-00000-of-00001.parquet'])
    expect(pickDataFiles(['train/10.parquet', 'train/2.parquet', 'test/1.parquet'])).toEqual(['train/2.parquet', 'train/10.parquet'])
    expect(pickDataFiles(['a.parquet', '.cache/x.parquet', 'b.PARQUET'])).toEqual(['a.parquet', 'b.PARQUET'])
    const converted = ['default/train/0001.parquet', 'default/train/0000.parquet', 'default/test/0000.parquet', 'extra/train/0000.parquet']
    expect(pickDataFiles(converted, { converted: true })).toEqual(['default/train/0000.parquet', 'default/train/0001.parquet'])
    expect(pickDataFiles(converted, { converted: true, config: 'extra' })).toEqual(['extra/train/0000.parquet'])
    expect(pickDataFiles(['pairs/0000.parquet'], { split: 'pairs' })).toEqual(['pairs/0000.parquet'])
    expect(pickDataFiles(['rlhf-v.parquet'], { split: 'test' })).toEqual([])
  })
})

describe('retries and the lock', () => {
  it('backoff doubles up to the cap; Retry-After (seconds or a date) wins when longer', () => {
    const p = retryPolicy({ minDelayMs: 100, maxDelayMs: 400 })
    expect(backoffMs(1, p)).toBeGreaterThanOrEqual(80)
    expect(backoffMs(1, p)).toBeLessThanOrEqual(120)
    expect(backoffMs(5, p)).toBeLessThanOrEqual(480)
    expect(backoffMs(1, p, 3000)).toBe(3000)
    expect(parseRetryAfter('2')).toBe(2000)
    expect(parseRetryAfter(new Date(Date.now() + 5000).toUTCString())).toBeGreaterThan(3000)
    expect(parseRetryAfter('soon')).toBeUndefined()
  })

  it('a lock is exclusive, released by its owner only, and can be waited for with an abort', async () => {
    const path = join(dir, 'locks', 'x.lock')
    const a = await acquireLock(path)
    const holder = JSON.parse(await readFile(path, 'utf8')) as { pid: number }
    expect(holder.pid).toBe(process.pid)
    const controller = new AbortController()
    setTimeout(() => controller.abort(), 100)
    await expect(acquireLock(path, { signal: controller.signal, pollMs: 20 })).rejects.toMatchObject({ name: 'AbortError' })
    const waiting = acquireLock(path, { pollMs: 20 })
    await a.release()
    const b = await waiting
    await a.release() // idempotent, and does not remove b's lock
    expect(JSON.parse(await readFile(path, 'utf8'))).not.toEqual(holder)
    await b.release()
  })
})
