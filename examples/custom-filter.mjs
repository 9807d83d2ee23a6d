// A custom filter stage in the pipeline: leave out pairs whose chosen answer is too short to teach anything.
//
//   npm run build && node examples/custom-filter.mjs [out dir]     (default out/examples/custom-filter)
//
// A stage is an async generator function: it gets the samples of the stage before it and the stage context,
// and yields the samples it keeps. `named()` gives it the name shown in the report and in errors;
// `ctx.reject()` leaves a row out with a reason code, so it lands in rejects.jsonl and the report like the
// built-in reasons.
import { fileURLToPath } from 'node:url'
import { llamaFactory, named, parquetSource, pipeline, processImages, split, validateRanking } from 'prefpipe'

const root = fileURLToPath(new URL('..', import.meta.url))
const out = process.argv[2] ?? `${root}out/examples/custom-filter`

/** Keep pairs whose chosen answer has at least `min` words. */
function minChosenWords(min) {
  return named('min-chosen-words', async function* (samples, ctx) {
    for await (const s of samples) {
      const words = s.chosen.content.trim().split(/\s+/).length
      if (words >= min) yield s
      else ctx.reject({ id: s.id, reason: 'chosen_too_short', message: `the chosen answer has ${words} words, fewer than ${min}`, detail: { words } })
    }
  })
}

const { result, report } = await pipeline(
  parquetSource({ path: `${root}fixtures/rlhf-v-sample.parquet` }),
  validateRanking(),
  minChosenWords(15), // after validation, before the (costlier) image work
  processImages({ maxPixels: 262144 }),
  split({ eval: 0.1, seed: 42 }),
  llamaFactory({ out, name: 'rlhf_v' }),
)

console.log(`${result.counts.kept} rows written to ${result.out}`)
console.log(`left out by min-chosen-words: ${report.rejected.chosen_too_short ?? 0}`)
console.log(`stage counters: ${report.stages.map((s) => `${s.name} ${s.in}->${s.out}`).join(', ')}`)
