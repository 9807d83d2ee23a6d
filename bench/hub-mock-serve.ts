/**
 * The loopback mock Hub as a process of its own, for the download benchmark (so the server does not share an
 * event loop with the client being measured). Serves one file as `bench/hub-download` `data.bin` (LFS, via a
 * 302 to the mock CDN) and prints `{"url": ..., "commit": ...}` on stdout; stops on SIGTERM.
 *
 * Usage: node bench/data/build/bench/hub-mock-serve.js <file> <sha256>
 */
import { startMockHub } from '../test/mock-hub/server.js'

const [path, sha256] = process.argv.slice(2)
if (!path || !sha256) throw new Error('usage: hub-mock-serve.js <file> <sha256>')
const repo = 'bench/hub-download'
const hub = await startMockHub({ repos: { [repo]: { files: { 'data.bin': { path, sha256, lfs: true } } } } })
process.stdout.write(JSON.stringify({ url: hub.url, repo, file: 'data.bin', commit: hub.commit(repo) }) + '\n')
process.once('SIGTERM', () => {
  void hub.close().then(() => process.exit(0))
})
