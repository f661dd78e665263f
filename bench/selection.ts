// Decode attention time of one Llama-3-8B layer (32 query heads, 8 KV heads, head dim 128) at 4k, 32k
// and 128k cached tokens: dense attention against each selection method at a 2048-token budget, the
// selection's own cost included (scoring, top-k, the gathered attention), all measured in the same run.
// TokenSelect's Selection Cache is priced at the hit rate measured first on the fixture model (a niah
// prompt, the selection at every decode step): hit-step and miss-step times weighted by that rate.
// At 128k the layer is also moved to the host tier: dense attention then fetches every row, a selection
// only its rows (through attendCacheAsync), which is what moving pages costs.
//   npm run build && node dist/bench/selection.js [--lengths 4096,32768,131072] [--budget 2048] [--reps 5]
import { parseArgs } from 'node:util'
import { createBackend } from '../src/backend/index.js'
import type { Backend } from '../src/backend/backend.js'
import { Ops } from '../src/backend/ops.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { attendCache, attendCacheAsync } from '../src/cache/attention.js'
import { createPolicy } from '../src/policies/registry.js'
import type { ModelShape, PolicyContext, PolicySession } from '../src/policies/types.js'
import { loadModel } from '../src/node/load.js'
import { defaultBooksDir, defaultWordsFile } from '../src/eval/paths.js'
import { PromptBuilder } from '../src/eval/prompt.js'
import { loadBooks } from '../src/eval/text.js'
import { loadWordList } from '../src/eval/words.js'
import { cell } from './host-tier.js'
import { medianMs } from './median.js'

const { values: args } = parseArgs({
  options: {
    lengths: { type: 'string', default: '4096,32768,131072' },
    budget: { type: 'string', default: '2048' },
    reps: { type: 'string', default: '5' },
    'hit-prompt': { type: 'string', default: '2048' },
    'hit-steps': { type: 'string', default: '48' },
  },
})
const LENGTHS = args.lengths!.split(',').map(Number)
const BUDGET = Number(args.budget)
const REPS = Number(args.reps)
const SHAPE: ModelShape = { layers: 1, qHeads: 32, kvHeads: 8, headDim: 128, group: 4 }
const D = SHAPE.headDim

/** median wall time of fn over REPS runs after one warm-up, in ms */
const time = (fn: () => unknown) => medianMs(fn, REPS)

/** TokenSelect's Selection Cache hit rate on the fixture model: a niah prompt, `hit-steps` decode steps */
async function fixtureHitRate(spec: string): Promise<number> {
  const model = await loadModel('models/fixture-14m')
  try {
    const builder = new PromptBuilder({
      tokenizer: model.tokenizer, bosId: model.config.bosTokenId ?? model.config.eosTokenIds[0],
      books: loadBooks(defaultBooksDir()), words: loadWordList(defaultWordsFile()),
    })
    const sample = builder.build('niah_single', Number(args['hit-prompt']), 1, 0)
    const r = await model.generate(sample.promptIds, { maxNewTokens: Number(args['hit-steps']), policy: spec }).result
    return r.stats.policy!.cacheHitRate
  } finally {
    model.dispose()
  }
}

/** one layer of n generated tokens (the host-tier bench's cells: cheap, reproducible) in the arena */
function layerCache(backend: Backend, n: number): PagedKVCache {
  const cache = new PagedKVCache(backend, { layers: 1, kvHeads: 8, headDim: D, pageTokens: 64 })
  const chunk = 4096
  const k = new Float32Array(chunk * 8 * D)
  const v = new Float32Array(chunk * 8 * D)
  for (let t0 = 0; t0 < n; t0 += chunk) {
    const T = Math.min(chunk, n - t0)
    for (let t = 0; t < T; t++) for (let h = 0; h < 8; h++) for (let c = 0; c < D; c++) {
      k[(t * 8 + h) * D + c] = cell(0, t0 + t, h, c)
      v[(t * 8 + h) * D + c] = cell(1, t0 + t, h, c)
    }
    cache.append(0, k.subarray(0, T * 8 * D), v.subarray(0, T * 8 * D), Int32Array.from({ length: T }, (_, i) => t0 + i))
  }
  return cache
}

const backend = await createBackend('auto')
const ops = new Ops(backend)
const heap = backend.heap
const q = heap.allocF32(SHAPE.qHeads * D)
const out = heap.allocF32(SHAPE.qHeads * D)
const qRand = new Float32Array(SHAPE.qHeads * D)
for (let i = 0; i < qRand.length; i++) qRand[i] = cell(2, i, 0, 0) * 4
q.view.set(qRand)

const tsSpec = `tokenselect:tokens=${BUDGET},first=128,last=512`
const hitSpec = 'tokenselect:tokens=512,first=32,last=64'
const hitRate = await fixtureHitRate(hitSpec)
console.log(`Selection Cache hit rate on the fixture (${hitSpec}, threshold 0.9, niah_single ${args['hit-prompt']} tokens, ${args['hit-steps']} steps): ${hitRate.toFixed(3)}`)
console.log(`backend ${backend.name}; one layer, 32 query heads / 8 KV heads / d 128; budget ${BUDGET} tokens; median of ${REPS}`)
console.log('| tokens | tier | method | ms per layer step | dense / method |')
console.log('| --- | --- | --- | --- | --- |')

/** one decode step of one layer: the session's selection (if any), then attention over it */
function step(cache: PagedKVCache, session: PolicySession | null, ctx: PolicyContext, query: Float32Array): void {
  const select = session?.selectTokens!(ctx, 0, query) ?? undefined
  attendCache(backend, cache, { layer: 0, q: q.ptr, T: 1, qHeads: SHAPE.qHeads, out: out.ptr, scale: 1 / Math.sqrt(D), select })
}
async function stepAsync(cache: PagedKVCache, session: PolicySession | null, ctx: PolicyContext, query: Float32Array): Promise<void> {
  const select = session?.selectTokens!(ctx, 0, query) ?? undefined
  await attendCacheAsync(backend, cache, { layer: 0, q: q.ptr, T: 1, qHeads: SHAPE.qHeads, out: out.ptr, scale: 1 / Math.sqrt(D), select })
}

for (const n of LENGTHS) {
  const cache = layerCache(backend, n)
  for (const tier of n >= 131072 ? ['wasm', 'host'] : ['wasm']) {
    if (tier === 'host') cache.moveTo('host')
    const ctx: PolicyContext = { cache, ops, model: SHAPE, hooks: [{ layer: 0 }], promptLength: n, step: 0 }
    const run = tier === 'host' ? stepAsync : async (c: PagedKVCache, s: PolicySession | null, x: PolicyContext, qq: Float32Array) => step(c, s, x, qq)
    const dense = await time(() => run(cache, null, ctx, qRand))
    const rows: [string, number][] = [['dense', dense]]
    const session = (spec: string) => {
      const s = createPolicy(spec, SHAPE)!.start()
      s.onPrefillEnd?.(ctx)
      return s
    }
    // TokenSelect without the cache: every step scores all keys
    const miss = session(`${tsSpec},cache=false`)
    rows.push(['TokenSelect, every step selected (miss)', await time(() => run(cache, miss, ctx, qRand))])
    // a Selection Cache hit: the query is the cached one, the top-k is reused
    const hit = session(tsSpec)
    const hitMs = await time(() => run(cache, hit, ctx, qRand))
    rows.push(['TokenSelect, Selection Cache hit', hitMs])
    rows.push([`TokenSelect + Selection Cache at hit rate ${hitRate.toFixed(2)}`, hitRate * hitMs + (1 - hitRate) * rows[1][1]])
    const quest = session(`quest:tokens=${BUDGET},dense=0`)
    rows.push(['Quest (pages of 16)', await time(() => run(cache, quest, ctx, qRand))])
    const nosa = session(`nosa:tokens=${BUDGET}`)
    rows.push(['NOSA-style (blocks of 64, half query-agnostic)', await time(() => run(cache, nosa, ctx, qRand))])
    // DELTA's Δ layer: dense attention plus its page scoring (its sparse layers cost what Quest's gathered attention does)
    const delta = session(`delta:tokens=${BUDGET},full=0`)
    rows.push(['DELTA, a Δ layer (dense + page scores)', await time(() => run(cache, delta, ctx, qRand))])
    for (const s of [miss, hit, quest, nosa, delta]) s.dispose?.()
    for (const [name, ms] of rows) console.log(`| ${n} | ${tier} | ${name} | ${ms.toFixed(2)} | ${(dense / ms).toFixed(2)}x |`)
  }
  cache.dispose()
}
