/**
 * One measured download with prefpipe's `downloadDatasetFile` into a fresh cache: prints
 * `{"ms", "size", "sha256", "fromCache", "maxRssMB"}`. `ms` runs from the call to the verified file in the
 * cache (metadata requests, body, sha256, rename, symlink), not Node's start-up.
 *
 * Usage: node bench/data/build/bench/hub-download-client.js <endpoint> <cacheDir> <repo> <file>
 */
import { downloadDatasetFile } from '../src/sources/hub/download.js'

const [endpoint, cacheDir, repo, file] = process.argv.slice(2)
if (!endpoint || !cacheDir || !repo || !file) throw new Error('usage: hub-download-client.js <endpoint> <cacheDir> <repo> <file>')
const t0 = performance.now()
const f = await downloadDatasetFile({ repo, file, endpoint, cacheDir, env: { HF_HOME: `${cacheDir}-home` } })
const ms = performance.now() - t0
const maxRssMB = process.resourceUsage().maxRSS / 1024
process.stdout.write(JSON.stringify({ ms, size: f.size, sha256: f.sha256, fromCache: f.fromCache, maxRssMB }) + '\n')
