#!/usr/bin/env node
// What an fsync per image costs the sink: N files of 48 KB written as the sink writes them (tmp file, then
// rename), 8 at a time, with `flush: true` (fsync each) and without. Into bench/data/ (removed after).
//   node bench/fsync-cost.mjs [--files 1000]
import { mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DATA, args, load } from './lib/common.mjs'

const n = args().files ?? 1000
const buf = Buffer.alloc(48_000, 7)
for (const flush of [true, false]) {
  const dir = join(DATA, `fsync-cost-${process.pid}-${flush}`)
  await mkdir(dir, { recursive: true })
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  let i = 0
  const worker = async () => {
    while (i < n) {
      const k = i++
      await writeFile(join(dir, `${k}.tmp`), buf, { flush })
      await rename(join(dir, `${k}.tmp`), join(dir, `${k}.jpg`))
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker))
  const c = process.cpuUsage(c0)
  console.log(`flush ${String(flush).padEnd(5)}: ${n} files in ${(performance.now() - t0).toFixed(0)} ms wall, cpu ${((c.user + c.system) / 1000).toFixed(0)} ms (sys ${(c.system / 1000).toFixed(0)})`)
  await rm(dir, { recursive: true, force: true })
}
console.log(load().uptime)
