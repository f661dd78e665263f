// Why CacheBlend misses variable tracking: per layer, does KV deviation rank the chain's tokens high?
// For each vt prompt (cut into chunks as bench/cacheblend.ts cuts it), the chain's links that depend on
// an earlier chunk are the needle tokens in the chunks after the one holding the chain's first
// assignment. Deviation at layer l is the squared L2 between the full prefill's keys and values and the
// placed chunk KV (CacheBlend measures it there when l is the check layer: the layers up to it are a
// full prefill). Printed per layer: how many of those tokens fall in the top 15% / 30% of all context
// slots by that deviation, and how much of the top 15% lies in the first 16 tokens of the chunks after
// the first (the chunk starts, whose KV lost their whole context).
//   npm run build && node dist/bench/cacheblend-diagnose.js [--samples 4] [--length 2048] [--chunks 6]
//     [--prefix none|bos] [--deviation kv|key]
import type { PagedKVCache } from '../src/cache/paged-cache.js'
import { promptSample } from '../src/eval/prompts-file.js'
import { CacheBlend } from '../src/reuse/cacheblend.js'
import { arg, fixture, needleSlots, split } from './reuse-common.js'

const SAMPLES = Number(arg('samples', '4'))
const LENGTH = Number(arg('length', '2048'))
const CHUNKS = Number(arg('chunks', '6'))
const PREFIX = arg('prefix', 'none') as 'none' | 'bos'
const VALUES = arg('deviation', 'kv') === 'kv'

/** per slot, squared L2 over the KV heads between two caches at layer l (keys, and values with VALUES) */
function deviation(a: PagedKVCache, b: PagedKVCache, l: number, heads: number, d: number, N: number): Float64Array {
  const dev = new Float64Array(N)
  for (let h = 0; h < heads; h++) {
    const pairs = [[a.readKeys(l, h), b.readKeys(l, h)]]
    if (VALUES) pairs.push([a.readValues(l, h), b.readValues(l, h)])
    for (const [x, y] of pairs) for (let i = 0; i < N * d; i++) dev[Math.floor(i / d)] += (x[i] - y[i]) ** 2
  }
  return dev
}

const { model, builder } = await fixture()
const { layers, kvHeads, headDim } = model.config
console.log(`vt, ${LENGTH} tokens, ${CHUNKS} chunks (${PREFIX === 'bos' ? 'each after the BOS' : 'each alone'}), ${VALUES ? 'KV' : 'key'} deviation against the full prefill`)
console.log('sample  chain tokens  layer  in top 15%  in top 30%  top 15% at chunk starts')
for (let index = 0; index < SAMPLES; index++) {
  const t = builder.build('vt', LENGTH, 0, index)
  const s = promptSample(t)
  const { chunks } = split(s, CHUNKS)
  const starts = chunks.map((_, i) => chunks.slice(0, i).reduce((n, c) => n + c.length, 0))
  const chunkOf = (slot: number) => starts.filter((b) => b <= slot).length - 1
  const needles = needleSlots(t, 0)
  const chain = needles.filter((slot) => chunkOf(slot) > chunkOf(needles[0]))
  const ids = chunks.flat()
  const N = ids.length
  const full = model.newCache('post-rope', 64, 'float32')
  model.prefill(ids, full, 0)
  // ratio 0 at check layer 0: layer 0 recomputed (it equals the full prefill's anyway), the rest placed
  const placed = await new CacheBlend(model, { ratio: 0, checkLayer: 0, chunkPrefix: PREFIX }).prepare(chunks)
  const nearStart = new Set(starts.slice(1).flatMap((b) => Array.from({ length: 16 }, (_, j) => b + j)))
  for (let l = 1; l < layers; l++) {
    const dev = deviation(full, placed.cache, l, kvHeads, headDim, N)
    const order = Array.from({ length: N }, (_, i) => i).sort((x, y) => dev[y] - dev[x] || x - y)
    const top = (share: number) => new Set(order.slice(0, Math.round(share * N)))
    const t15 = top(0.15)
    const t30 = top(0.3)
    const atStarts = [...t15].filter((x) => nearStart.has(x)).length
    console.log([`#${index}`.padEnd(7), String(chain.length).padStart(12), String(l).padStart(6), String(chain.filter((x) => t15.has(x)).length).padStart(11), String(chain.filter((x) => t30.has(x)).length).padStart(11), `${atStarts}/${t15.size}`.padStart(24)].join(' '))
  }
  full.dispose()
  placed.dispose()
}
model.dispose()
