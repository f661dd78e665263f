// Prefill scaling (issue 17: "prefill at 8 threads at least 5x its one-thread speed at 4k tokens") on a
// shared, noisy machine: one model per thread count, loaded side by side in one process, their prefills
// interleaved round by round (1, 8, 1, 8, ...), so a slow spell of the host hits both alike. Each round's
// ratio is t threads' speed over the one-thread prefill of the same round; the report gives every
// round's ratio, their median, and best over best. Same prompt ids as bench/threads.ts, the logits of
// the last prompt token checked equal across thread counts (argmax) before anything is timed.
//   npm run build && node dist/bench/threads-scaling.js [--length 4096] [--threads 8] [--rounds 8] [--json FILE]
import { readFileSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import type { LlamaModel } from '../src/model/model.js'
import { loadModel } from '../src/node/load.js'
import { kernelBuild } from '../src/backend/index.js'

const MODEL = 'models/fixture-14m'
const IDS = 'bench/data/prompt-ids.json'

/** ms of one prefill of ids[0 .. n-1) into a fresh cache (as bench/threads.ts), and the greedy token after ids[n-1] (untimed) */
function prefill(model: LlamaModel, ids: number[], n: number): { ms: number; next: number } {
  const cache = model.newCache()
  try {
    const t0 = performance.now()
    model.prefill(ids.slice(0, n - 1), cache)
    const ms = performance.now() - t0
    const logits = new Float32Array(model.config.vocab)
    model.forward.step([ids[n - 1]], Int32Array.of(n - 1), cache, { decode: true, logits: 'last', out: logits })
    let next = 0
    for (let j = 1; j < logits.length; j++) if (logits[j] > logits[next]) next = j
    return { ms, next }
  } finally {
    cache.dispose()
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

export async function main(argv = process.argv.slice(2)): Promise<void> {
  const { values: v } = parseArgs({ args: argv, options: { length: { type: 'string' }, threads: { type: 'string' }, rounds: { type: 'string' }, json: { type: 'string' } } })
  const ids = (JSON.parse(readFileSync(IDS, 'utf8')) as { ids: number[] }).ids
  const n = Number(v.length ?? 4096)
  const threads = Number(v.threads ?? 8)
  const rounds = Number(v.rounds ?? 8)
  if (!(Number.isInteger(n) && n >= 2 && n <= ids.length)) throw new Error(`--length: ${v.length} is not an integer in [2, ${ids.length}]`)
  if (!(Number.isInteger(threads) && threads >= 2)) throw new Error(`--threads: ${v.threads} is not an integer >= 2`)
  if (!(Number.isInteger(rounds) && rounds >= 1)) throw new Error(`--rounds: ${v.rounds} is not a positive integer`)
  // backend 'wasm': at one thread 'auto' would take a GPU where the host has one
  const one = await loadModel(MODEL, { threads: 1, backend: 'wasm' })
  const many = await loadModel(MODEL, { threads, backend: 'wasm' })
  try {
    if (many.backend.threads !== threads) throw new Error(`asked for ${threads} threads, the backend runs ${many.backend.threads}`)
    const a = prefill(one, ids, n)
    const b = prefill(many, ids, n)
    if (a.next !== b.next) throw new Error(`the greedy token after the prompt differs: ${a.next} on one thread, ${b.next} on ${threads}`)
    const rows: { round: number; oneMs: number; manyMs: number; ratio: number }[] = []
    for (let r = 0; r < rounds; r++) {
      const x = prefill(one, ids, n).ms
      const y = prefill(many, ids, n).ms
      rows.push({ round: r, oneMs: x, manyMs: y, ratio: x / y })
      console.log(`round ${r}: 1 thread ${x.toFixed(0)} ms (${(((n - 1) / x) * 1000).toFixed(0)} tok/s), ${threads} threads ${y.toFixed(0)} ms (${(((n - 1) / y) * 1000).toFixed(0)} tok/s): ${(x / y).toFixed(2)}x`)
    }
    const bestOne = Math.min(...rows.map((r) => r.oneMs))
    const bestMany = Math.min(...rows.map((r) => r.manyMs))
    const summary = { length: n, threads, rounds, kernels: kernelBuild(many.backend), medianRatio: median(rows.map((r) => r.ratio)), bestOverBest: bestOne / bestMany, bestOneTokS: ((n - 1) / bestOne) * 1000, bestManyTokS: ((n - 1) / bestMany) * 1000 }
    console.log(`${threads} threads / 1 thread, prefill ${n} tokens: median of rounds ${summary.medianRatio.toFixed(2)}x, best over best ${summary.bestOverBest.toFixed(2)}x (${summary.bestManyTokS.toFixed(0)} / ${summary.bestOneTokS.toFixed(0)} tok/s)`)
    if (v.json) writeFileSync(v.json, JSON.stringify({ summary, rows }, null, 1) + '\n')
  } finally {
    one.dispose()
    many.dispose()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main()
