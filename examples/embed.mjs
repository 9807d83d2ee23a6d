// Embedding prefpipe stages in a flow of your own.
//
//   npm run build && node examples/embed.mjs [out dir]     (default out/examples/embed)
//
// 1. Your records, read your own way (here: hyparquet over the bundled sample, mapped by hand; in your code a
//    database, a queue, an API), through prefpipe's validation, images stage and LLaMA-Factory folder.
// 2. A JSONL a colleague wrote: validate it as LLaMA-Factory will read it, and get the rows it would refuse.
import { fileURLToPath } from 'node:url'
import { asyncBufferFromFile, parquetReadObjects } from 'hyparquet'
import { jsonSource, llamaFactory, named, pipeline, processImages, validateRanking } from 'prefpipe'

const root = fileURLToPath(new URL('..', import.meta.url))
const out = process.argv[2] ?? `${root}out/examples/embed`

// --- 1. Your own source of PreferenceSample records ------------------------------------------------------
const ROLES = { human: 'user', gpt: 'assistant', system: 'system' }
const turn = (t) => ({ role: ROLES[t.from] ?? t.from, content: t.value })

/** Any async generator (function of the stage context) is a source; `ctx.signal` says when to stop. */
const myRecords = named('my-records', async function* (ctx) {
  const file = await asyncBufferFromFile(`${root}fixtures/rlhf-v-sample.parquet`)
  const rows = await parquetReadObjects({ file, utf8: false })
  for (const [i, row] of rows.entries()) {
    if (ctx.signal.aborted) return
    const turns = row.conversations.map(turn)
    // The record keeps a leading system turn apart, in `system`.
    const system = turns[0]?.role === 'system' ? turns.shift().content : undefined
    yield {
      id: `my-db#${i}`,
      ...(system !== undefined ? { system } : {}),
      messages: turns,
      chosen: turn(row.chosen),
      rejected: turn(row.rejected),
      images: row.images.map((img) => ({ bytes: img.bytes })),
      meta: { source: 'my-db' },
    }
  }
})

const mine = await pipeline(myRecords, validateRanking(), processImages({ maxPixels: 262144 }), llamaFactory({ out: `${out}/mine`, name: 'mine' }))
console.log(`1. my records: ${mine.result.counts.kept} kept in ${mine.result.out}, rejected ${JSON.stringify(mine.report.rejected)}`)

// --- 2. Validate a colleague's JSONL and get the rejects --------------------------------------------------
// A sink of your own: collect what passes (a sink is an async function of the samples and the context).
const collect = async (samples) => {
  const kept = []
  for await (const s of samples) kept.push(s)
  return kept
}
const checked = await pipeline(jsonSource({ path: `${root}examples/data/colleague.jsonl` }), validateRanking(), collect)
// Without the LLaMA-Factory sink nobody writes rejects.jsonl: the pipeline hands them back.
console.log(`2. colleague.jsonl: ${checked.result.length} rows pass, ${checked.rejects.length} would be refused:`)
for (const r of checked.rejects) console.log(`   ${r.id}  ${r.reason}  (${r.stage})`)
