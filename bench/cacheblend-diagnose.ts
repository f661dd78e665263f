// Why CacheBlend misses variable tracking: per layer, which score ranks the chain's tokens high?
// For each vt prompt (cut into chunks as bench/cacheblend.ts cuts it), the chain's links that depend on
// an earlier chunk are the needle tokens in the chunks after the one holding the chain's first
// assignment. Deviation at layer l is the squared L2 between the full prefill's keys and values and the
// placed chunk KV (CacheBlend measures it there when l is the check layer: the layers up to it are a
// full prefill). Question attention at layer l is the softmax attention of the question's tokens over
// the context at that layer, summed over query heads and question tokens (also exact when l is the
// check layer: the question's rows see a full prefill below it). Printed per layer: how many chain
// tokens fall in the top 15% of all context slots by
//   dev      deviation (CacheBlend today)
//   dev-16   deviation, the first 16 tokens of the chunks after the first left out
//   qatt     question attention
//   half     half of the 15% by deviation, the rest by question attention
//   dev*qatt the product of the two
//   xatt     cross-chunk attention: the token's own attention at layer l over the chunks before its
//            own (slot 0, the BOS sink, left out), summed over query heads
//   xfar     the same, the 64 slots just before the token also left out
//   cross    xfar, each token then scored by the largest of itself and the 8 tokens before it in its
//            chunk: what CacheBlend's selection 'cross-chunk' ranks by (crossChunkScores)
// and (dev 30%) by deviation at 30%, and how much of dev's top 15% lies in the first 16 tokens of the
// chunks after the first (the chunk starts, whose KV lost their whole context).
//   npm run build && node dist/bench/cacheblend-diagnose.js [--samples 4] [--length 2048] [--chunks 6]
//     [--prefix none|bos] [--deviation kv|key] [--layers 1,2,3] [--out rows.jsonl]
import { appendFileSync } from 'node:fs'
import type { PagedKVCache } from '../src/cache/paged-cache.js'
import { promptSample } from '../src/eval/prompts-file.js'
import { HookCapture } from '../src/model/hooks.js'
import { CacheBlend } from '../src/reuse/cacheblend.js'
import { CROSS_CHUNK_NEAR, CROSS_CHUNK_SPREAD } from '../src/reuse/cross-chunk.js'
import { arg, fixture, needleSlots, split } from './reuse-common.js'

const SAMPLES = Number(arg('samples', '4'))
const LENGTH = Number(arg('length', '2048'))
const CHUNKS = Number(arg('chunks', '6'))
const PREFIX = arg('prefix', 'none') as 'none' | 'bos'
const VALUES = arg('deviation', 'kv') === 'kv'
const OUT = arg('out', '')

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

/**
 * per context slot (< N), the causal softmax attention of Q question queries [qHeads][Q][d] (post-RoPE,
 * at positions N..N+Q-1) over the cache's keys at layer l, summed over heads and queries
 */
function questionAttention(cache: PagedKVCache, l: number, queries: Float32Array, Q: number, N: number, cfg: { qHeads: number; kvHeads: number; headDim: number }): Float64Array {
  const { qHeads, kvHeads, headDim: d } = cfg
  const group = qHeads / kvHeads
  const out = new Float64Array(N)
  const scale = 1 / Math.sqrt(d)
  for (let g = 0; g < kvHeads; g++) {
    const keys = cache.readKeys(l, g)
    for (let h = g * group; h < (g + 1) * group; h++) {
      for (let i = 0; i < Q; i++) {
        const q = queries.subarray((h * Q + i) * d, (h * Q + i + 1) * d)
        const n = N + i + 1
        const s = new Float64Array(n)
        let max = -Infinity
        for (let j = 0; j < n; j++) {
          let dot = 0
          for (let c = 0; c < d; c++) dot += q[c] * keys[j * d + c]
          s[j] = dot * scale
          if (s[j] > max) max = s[j]
        }
        let sum = 0
        for (let j = 0; j < n; j++) sum += (s[j] = Math.exp(s[j] - max))
        for (let j = 0; j < N; j++) out[j] += s[j] / sum
      }
    }
  }
  return out
}

/**
 * per context slot t, the causal softmax attention of its own queries (all N context queries [qHeads][N][d]
 * captured) over the keys of the chunks before its own at layer l, slot 0 (the BOS sink) and the `near`
 * slots just before t left out, summed over query heads: how much the token reads across chunks
 */
function crossChunkAttention(cache: PagedKVCache, l: number, queries: Float32Array, N: number, chunkStart: Int32Array, near: number, cfg: { qHeads: number; kvHeads: number; headDim: number }): Float64Array {
  const { qHeads, kvHeads, headDim: d } = cfg
  const group = qHeads / kvHeads
  const out = new Float64Array(N)
  const scale = 1 / Math.sqrt(d)
  const s = new Float64Array(N)
  for (let g = 0; g < kvHeads; g++) {
    const keys = cache.readKeys(l, g)
    for (let h = g * group; h < (g + 1) * group; h++) {
      for (let t = 0; t < N; t++) {
        if (chunkStart[t] === 0) continue
        const q = queries.subarray((h * N + t) * d, (h * N + t + 1) * d)
        let max = -Infinity
        for (let j = 0; j <= t; j++) {
          let dot = 0
          for (let c = 0; c < d; c++) dot += q[c] * keys[j * d + c]
          s[j] = dot * scale
          if (s[j] > max) max = s[j]
        }
        let sum = 0
        let cross = 0
        for (let j = 0; j <= t; j++) {
          const e = Math.exp(s[j] - max)
          sum += e
          if (j > 0 && j < chunkStart[t] && j < t - near) cross += e
        }
        out[t] += cross / sum
      }
    }
  }
  return out
}

/** slots by score, highest first (ties to the earlier slot) */
const all0 = (N: number) => Array.from({ length: N }, (_, i) => i)
const ranked = (score: ArrayLike<number>, slots: readonly number[]) => [...slots].sort((x, y) => score[y] - score[x] || x - y)

const { model, builder } = await fixture()
const { layers, kvHeads, headDim } = model.config
const LAYERS = arg('layers', Array.from({ length: layers - 1 }, (_, i) => i + 1).join(',')).split(',').map(Number)
console.log(`vt, ${LENGTH} tokens, ${CHUNKS} chunks (${PREFIX === 'bos' ? 'each after the BOS' : 'each alone'}), ${VALUES ? 'KV' : 'key'} deviation against the full prefill`)
console.log('chain tokens in the top 15% of context slots by each score (dev 30%: by deviation at 30%); starts: dev top 15% at chunk starts')
const COLS = ['dev', 'dev-16', 'qatt', 'half', 'dev*qatt', 'xatt', 'xfar', 'cross', 'dev 30%']
console.log(['sample', 'chain', 'layer', ...COLS, 'starts'].map((c, i) => (i === 0 ? c.padEnd(7) : c.padStart(9))).join(''))
for (let index = 0; index < SAMPLES; index++) {
  const t = builder.build('vt', LENGTH, 0, index)
  const s = promptSample(t)
  const { chunks, question } = split(s, CHUNKS)
  const starts = chunks.map((_, i) => chunks.slice(0, i).reduce((n, c) => n + c.length, 0))
  const chunkOf = (slot: number) => starts.filter((b) => b <= slot).length - 1
  const needles = needleSlots(t, 0)
  const chain = needles.filter((slot) => chunkOf(slot) > chunkOf(needles[0]))
  const ids = chunks.flat()
  const N = ids.length
  const Q = question.length
  const full = model.newCache('post-rope', 64, 'float32')
  model.prefill(ids, full, 0)
  // the question after the context, its queries captured per layer
  const capture = new HookCapture({ observationWindow: Q }, model.config, model.backend.heap, Q)
  model.prefill(question, full, N, capture)
  capture.finishPrefill()
  // the context's own queries per layer: a second full prefill, captured
  const own = new HookCapture({ observationWindow: N }, model.config, model.backend.heap, N)
  const scratch = model.newCache('post-rope', 64, 'float32')
  model.prefill(ids, scratch, 0, own)
  own.finishPrefill()
  scratch.dispose()
  const chunkStart = Int32Array.from(all0(N), (x) => starts[chunkOf(x)])
  // ratio 0 at check layer 0: layer 0 recomputed (it equals the full prefill's anyway), the rest placed
  const placed = await new CacheBlend(model, { ratio: 0, checkLayer: 0, chunkPrefix: PREFIX }).prepare(chunks)
  const nearStart = new Set(starts.slice(1).flatMap((b) => Array.from({ length: 16 }, (_, j) => b + j)))
  const all = Array.from({ length: N }, (_, i) => i)
  const k15 = Math.round(0.15 * N)
  for (const l of LAYERS) {
    const dev = deviation(full, placed.cache, l, kvHeads, headDim, N)
    const qatt = questionAttention(full, l, capture.hooks[l].observationQueries!, Q, N, model.config)
    const xatt = crossChunkAttention(full, l, own.hooks[l].observationQueries!, N, chunkStart, 0, model.config)
    const xfar = crossChunkAttention(full, l, own.hooks[l].observationQueries!, N, chunkStart, CROSS_CHUNK_NEAR, model.config)
    const cross = Float64Array.from(xfar, (_, t) => Math.max(...Array.from(xfar.subarray(Math.max(chunkStart[t], t - CROSS_CHUNK_SPREAD), t + 1))))
    const byDev = ranked(dev, all)
    const byAtt = ranked(qatt, all)
    const half = new Set(byDev.slice(0, Math.round(k15 / 2)))
    for (const x of byAtt) if (half.size < k15) half.add(x)
    const sets: Record<string, Set<number>> = {
      dev: new Set(byDev.slice(0, k15)),
      'dev-16': new Set(byDev.filter((x) => !nearStart.has(x)).slice(0, k15)),
      qatt: new Set(byAtt.slice(0, k15)),
      half,
      'dev*qatt': new Set(ranked(Float64Array.from(all, (i) => dev[i] * qatt[i]), all).slice(0, k15)),
      xatt: new Set(ranked(xatt, all).slice(0, k15)),
      xfar: new Set(ranked(xfar, all).slice(0, k15)),
      cross: new Set(ranked(cross, all).slice(0, k15)),
      'dev 30%': new Set(byDev.slice(0, Math.round(0.3 * N))),
    }
    const hits = Object.fromEntries(COLS.map((c) => [c, chain.filter((x) => sets[c].has(x)).length]))
    const atStarts = [...sets.dev].filter((x) => nearStart.has(x)).length
    console.log([`#${index}`.padEnd(7), ...[chain.length, l, ...COLS.map((c) => hits[c])].map((v) => String(v).padStart(9)), `${atStarts}/${k15}`.padStart(9)].join(''))
    if (OUT) appendFileSync(OUT, JSON.stringify({ task: 'vt', length: LENGTH, prefix: PREFIX, deviation: VALUES ? 'kv' : 'key', index, layer: l, chain: chain.length, k15, ...hits, startsInDevTop15: atStarts }) + '\n')
  }
  capture.dispose()
  own.dispose()
  full.dispose()
  placed.dispose()
}
model.dispose()
