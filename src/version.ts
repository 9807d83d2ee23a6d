import { readFile } from 'node:fs/promises'

let versionPromise: Promise<string> | undefined

/**
 * prefpipe's version, from its package.json (`../package.json` both from `src/` and `dist/`); `unknown` if
 * it cannot be read.
 * @example
 * await prefpipeVersion() // '0.1.0'
 */
export function prefpipeVersion(): Promise<string> {
  versionPromise ??= readFile(new URL('../package.json', import.meta.url), 'utf8')
    .then((t) => {
      const pkg = JSON.parse(t) as { name?: unknown; version?: unknown }
      return pkg.name === 'prefpipe' && typeof pkg.version === 'string' ? pkg.version : 'unknown'
    })
    .catch(() => 'unknown')
  return versionPromise
}
