/**
 * `npm start`'s evaluation (the main job: MAIN_POLICIES x MAIN_TASKS at MAIN_LENGTHS, MAIN_SAMPLES a cell)
 * run both ways in one process: each sample prefilled once and shared by the policies (what `npm start`
 * does), and prefilled once per policy (the path it replaced). Prints both wall times, their ratio, and
 * whether the two result tables are identical.
 *   node dist/bench/main-job.js [--samples N] [--workers N] [--order shared-first|per-policy-first]
 */
import { evaluate, type EvalOptions } from '../src/eval/runner.js'
import { formatTable } from '../src/eval/format.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { MAIN_LENGTHS, MAIN_POLICIES, MAIN_SAMPLES, MAIN_SEED, MAIN_TASKS } from '../src/eval/main-job.js'

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : def
}

const opts: EvalOptions = {
  model: defaultModelDir(), policies: MAIN_POLICIES, tasks: MAIN_TASKS, lengths: MAIN_LENGTHS,
  samples: Number(arg('samples', String(MAIN_SAMPLES))), seed: MAIN_SEED, backend: 'wasm',
  workers: process.argv.includes('--workers') ? Number(arg('workers', '2')) : undefined,
}
const order = arg('order', 'shared-first') === 'shared-first' ? [true, false] : [false, true]
const runs = new Map<boolean, { ms: number; table: string }>()
for (const sharePrefill of order) {
  const t0 = performance.now()
  const results = await evaluate({ ...opts, sharePrefill })
  // the timing columns differ by nature; the comparison is on everything else
  const table = formatTable(results.map((r) => ({ ...r, prefillMs: 0, decodeMsPerToken: 0 })))
  runs.set(sharePrefill, { ms: performance.now() - t0, table })
  process.stderr.write(`${sharePrefill ? 'shared prefill' : 'prefill per policy'}: ${((performance.now() - t0) / 1000).toFixed(1)} s\n`)
}
const shared = runs.get(true)!
const own = runs.get(false)!
console.log(`main job, ${MAIN_POLICIES.length} policies x ${MAIN_TASKS.join(',')} at ${MAIN_LENGTHS.join(',')} tokens, ${opts.samples} samples a cell`)
console.log(`| path | wall s |\n| --- | --- |\n| prefill per policy | ${(own.ms / 1000).toFixed(1)} |\n| shared prefill (npm start) | ${(shared.ms / 1000).toFixed(1)} |`)
console.log(`speed-up: ${(own.ms / shared.ms).toFixed(2)}x; tables identical (accuracy, interval, score, KV bytes): ${shared.table === own.table}`)
console.log(shared.table)
