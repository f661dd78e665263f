// The prefix cache's time to first token: a 4096-token prompt whose first 3800 tokens are cached
// (blocks of 8 tokens, so exactly 3800) against the same prompt with a full prefill, runs interleaved,
// medians and their ratio from one process. Each cached run gets a fresh 296-token tail, so it finds
// exactly the 3800 shared tokens (its own tail blocks never match the next run's). Also checked here at
// full size: the same greedy answer, and every prefilled position's logits against a full forward pass.
//   npm run build && node dist/bench/prefix-cache.js [--runs 5] [--tokens 4096] [--cached 3800]
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import type { GenerateOptions } from '../src/model/types.js'
import { PrefixCache } from '../src/reuse/prefix-cache.js'

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : fallback
}
const RUNS = arg('runs', 5)
const N = arg('tokens', 4096)
const CACHED = arg('cached', 3800)
const BLOCK = 8

const words = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 2 + ((i * 7919 + seed * 104729) % 4000))
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** ms from the call to the first streamed token */
async function ttft(model: LlamaModel, ids: number[], o: GenerateOptions): Promise<{ ms: number; cached: number; first: number }> {
  const t0 = performance.now()
  const g = model.generate(ids, { maxNewTokens: 1, ...o })
  let first = -1
  for await (const t of g) {
    first = t.id
    break
  }
  const ms = performance.now() - t0
  const r = await g.result
  return { ms, cached: r.stats.cachedTokens, first }
}

const model = (await loadModel('models/fixture-14m', { backend: 'wasm' })) as LlamaModel
const shared = [0, ...words(CACHED - 1, 1)]
const pc = new PrefixCache(model, { blockTokens: BLOCK, maxBlocks: 4 * Math.ceil(N / BLOCK) })
// fills the cache with the shared 3800 tokens (the prompt's last token is never prefilled: one extra)
await model.generate([...shared, 7], { reuse: pc, maxNewTokens: 1 }).result

const full: number[] = []
const hit: number[] = []
for (let r = 0; r < RUNS; r++) {
  const ids = [...shared, ...words(N - CACHED, 100 + r)]
  const a = await ttft(model, ids, {})
  const b = await ttft(model, ids, { reuse: pc })
  if (b.cached !== CACHED) throw new Error(`run ${r}: ${b.cached} tokens were found cached, not ${CACHED}`)
  if (a.first !== b.first) throw new Error(`run ${r}: greedy first token ${b.first} with the cache, ${a.first} without`)
  full.push(a.ms)
  hit.push(b.ms)
}

// logits at full size (the request is closed unfinished, so its tail blocks do not enter the cache),
// then greedy answers of 8 tokens with and without the cache
const ids = [...shared, ...words(N - CACHED, 999)]
const h = pc.open(ids, model)
const V = model.config.vocab
const out = new Float32Array((N - h.cachedTokens) * V)
model.prefill(ids.slice(h.cachedTokens), h.cache, h.cachedTokens, undefined, out)
const want = model.logits(ids).subarray(h.cachedTokens * V)
let worst = 0
for (let i = 0; i < out.length; i++) worst = Math.max(worst, Math.abs(out[i] - want[i]))
h.close([], false)
const plain = await model.generate(ids, { maxNewTokens: 8 }).result
const reused = await model.generate(ids, { reuse: pc, maxNewTokens: 8 }).result

console.log(`prefix cache, fixture-14m (${model.kernels}), ${N}-token prompt, first ${CACHED} cached (blocks of ${BLOCK}), ${RUNS} runs each`)
console.log(`time to first token, full prefill    median ${median(full).toFixed(1)} ms   runs ${full.map((x) => x.toFixed(0)).join(' ')}`)
console.log(`time to first token, prefix cache    median ${median(hit).toFixed(1)} ms   runs ${hit.map((x) => x.toFixed(0)).join(' ')}`)
console.log(`speedup (median / median)            ${(median(full) / median(hit)).toFixed(2)}x   (physical bound: ${(N / (N - CACHED)).toFixed(1)}x the linear layers' work)`)
console.log(`greedy answer (8 tokens) equal       ${JSON.stringify(plain.ids) === JSON.stringify(reused.ids)}   cachedTokens ${reused.stats.cachedTokens}`)
console.log(`max |logit difference| over the ${N - h.cachedTokens} prefilled positions   ${worst.toExponential(2)}`)
pc.dispose()
model.dispose()
