// ShadowKV on one Llama-3-8B layer (32 query heads, 8 KV heads, head dim 128, RoPE theta 500000) at 4k
// and 32k cached tokens, all in the same run:
// - decode attention per layer step: dense over the arena, Quest (pages of 16) over the arena, and
//   ShadowKV with the prompt's pages in the host tier (chunk scores, the selected chunks' keys rebuilt from
//   rank-160 factors and re-rotated, their values fetched through attendCacheAsync), selection included;
// - the prefill-end cost of ShadowKV (inverse RoPE, the layer's SVD, landmarks, outliers), once;
// - arena bytes of the layer: the dense cache against ShadowKV's (the arena pages left + its factors,
//   landmarks, exact outlier/sink/local keys and RoPE tables), and the host tier's bytes;
// - dense attention over the same layer in the host tier (every row fetched each step), for scale.
//   npm run build && node dist/bench/shadowkv.js [--lengths 4096,32768] [--budget 2048] [--rank 160] [--reps 5]
import { parseArgs } from 'node:util'
import { createBackend } from '../src/backend/index.js'
import { Ops } from '../src/backend/ops.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { attendCache, attendCacheAsync } from '../src/cache/attention.js'
import { RopeTables } from '../src/model/rope.js'
import { createPolicy } from '../src/policies/registry.js'
import type { ModelShape, PolicyContext, PolicyRuntime } from '../src/policies/types.js'
import { cell, GROUP, HEAD_DIM, KV_HEADS } from './host-tier.js'
import { medianMs } from './median.js'

const { values: args } = parseArgs({
  options: {
    lengths: { type: 'string', default: '4096,32768' },
    budget: { type: 'string', default: '2048' },
    rank: { type: 'string', default: '160' },
    reps: { type: 'string', default: '5' },
  },
})
// the Llama-3-8B layer of the host-tier bench
const SHAPE: ModelShape = { layers: 1, qHeads: KV_HEADS * GROUP, kvHeads: KV_HEADS, headDim: HEAD_DIM, group: GROUP }
const D = HEAD_DIM
const [BUDGET, REPS] = [Number(args.budget), Number(args.reps)]
const time = (fn: () => unknown) => medianMs(fn, REPS)

const backend = await createBackend('auto')
const ops = new Ops(backend)
const heap = backend.heap
const rope = new RopeTables(backend, Float32Array.from({ length: D / 2 }, (_, i) => 1 / Math.fround(Math.pow(500000, Math.fround((2 * i) / D)))))
const runtime = { ropeTables: (p: ArrayLike<number>, cos: number, sin: number) => rope.fill(p, cos, sin) } as unknown as PolicyRuntime

/** one layer of n tokens: keys of rank 64 before RoPE (plus noise), rotated at 0..n-1, as a model's are low-rank */
function layerCache(n: number): PagedKVCache {
  const cache = new PagedKVCache(backend, { layers: 1, kvHeads: 8, headDim: D, pageTokens: 64 })
  const basis = Float32Array.from({ length: 64 * 8 * D }, (_, i) => cell(3, i, 0, 0))
  const chunk = 4096
  const k = heap.allocF32(chunk * 8 * D)
  const v = new Float32Array(chunk * 8 * D)
  for (let t0 = 0; t0 < n; t0 += chunk) {
    const T = Math.min(chunk, n - t0)
    const K = k.view
    for (let t = 0; t < T; t++) {
      const row = K.subarray(t * 8 * D, (t + 1) * 8 * D)
      for (let c = 0; c < 8 * D; c++) row[c] = 0.05 * cell(0, t0 + t, 0, c)
      for (let j = 0; j < 64; j++) {
        const w = cell(4, t0 + t, j, 0)
        for (let c = 0; c < 8 * D; c++) row[c] += w * basis[j * 8 * D + c]
      }
      for (let c = 0; c < 8 * D; c++) v[t * 8 * D + c] = cell(1, t0 + t, 0, c)
    }
    rope.rotate(k.ptr, T, 8, Int32Array.from({ length: T }, (_, i) => t0 + i))
    cache.append(0, k.view.slice(0, T * 8 * D), v.subarray(0, T * 8 * D), Int32Array.from({ length: T }, (_, i) => t0 + i))
  }
  k.free()
  return cache
}

const q = heap.allocF32(SHAPE.qHeads * D)
const out = heap.allocF32(SHAPE.qHeads * D)
const qRand = Float32Array.from({ length: SHAPE.qHeads * D }, (_, i) => cell(2, i, 0, 0) * 4)
q.view.set(qRand)
const base = { layer: 0, q: q.ptr, T: 1, qHeads: SHAPE.qHeads, out: out.ptr, scale: 1 / Math.sqrt(D) }
const mib = (b: number) => (b / 2 ** 20).toFixed(1)

console.log(`backend ${backend.name}; one layer, 32 query heads / 8 KV heads / d 128; budget ${BUDGET} tokens; ShadowKV rank ${args.rank}, 48 outliers, sink 8, local 32; median of ${REPS}`)
console.log('| tokens | method | ms per layer step | dense / method | arena MiB | host MiB |')
console.log('| --- | --- | --- | --- | --- | --- |')
for (const n of args.lengths!.split(',').map(Number)) {
  const cache = layerCache(n)
  const ctx: PolicyContext = { cache, ops, model: SHAPE, hooks: [{ layer: 0 }], promptLength: n, step: 0, runtime }
  const full = cache.bytes()
  const dense = await time(() => attendCache(backend, cache, base))
  const quest = createPolicy(`quest:tokens=${BUDGET},dense=0`, SHAPE)!.start()
  quest.onPrefillEnd?.(ctx)
  const questMs = await time(() => attendCache(backend, cache, { ...base, select: quest.selectTokens!(ctx, 0, qRand) ?? undefined }))
  quest.dispose?.()
  const skv = createPolicy(`shadowkv:tokens=${BUDGET},rank=${args.rank}`, SHAPE)!.start()
  const t0 = performance.now()
  skv.onPrefillEnd?.(ctx)
  const prefillEnd = performance.now() - t0
  const shadowMs = await time(() => {
    const sel = skv.selectTokens!(ctx, 0, qRand) ?? undefined
    return attendCacheAsync(backend, cache, { ...base, select: sel, rebuiltKeys: sel?.rebuiltKeys })
  })
  // the step's two halves: selection (chunk scores, top-k, keys rebuilt and rotated), then attention (values fetched)
  const selectMs = await time(() => skv.selectTokens!(ctx, 0, qRand))
  const fixed = skv.selectTokens!(ctx, 0, qRand)!
  const attendMs = await time(() => attendCacheAsync(backend, cache, { ...base, select: fixed, rebuiltKeys: fixed.rebuiltKeys }))
  // the same layer read densely from the host tier (where a cache past the arena has to live): every row fetched
  const denseHost = await time(() => attendCacheAsync(backend, cache, base))
  const report = skv.report!()
  const after = cache.bytes()
  const attended = 8 + 48 * 8 + BUDGET + 32
  console.log(`| ${n} | dense (arena) | ${dense.toFixed(2)} | 1.00x | ${mib(full.hot)} | 0 |`)
  console.log(`| ${n} | Quest, pages of 16 (arena) | ${questMs.toFixed(2)} | ${(dense / questMs).toFixed(2)}x | ${mib(full.hot)} | 0 |`)
  console.log(`| ${n} | ShadowKV (values in the host tier, ~${attended} tokens attended) | ${shadowMs.toFixed(2)} | ${(dense / shadowMs).toFixed(2)}x | ${mib(after.hot + report.shadowBytes)} (${((after.hot + report.shadowBytes) / full.hot).toFixed(3)} of dense) | ${mib(after.offloaded)} |`)
  console.log(`| ${n} | dense, the layer in the host tier (every row fetched) | ${denseHost.toFixed(2)} | ${(dense / denseHost).toFixed(2)}x | ${mib(after.hot)} | ${mib(after.offloaded)} |`)
  console.log(`| ${n} | ShadowKV: of which selection (chunk scores, top-k, keys rebuilt + RoPE) | ${selectMs.toFixed(2)} | | | |`)
  console.log(`| ${n} | ShadowKV: of which attention (values fetched from the host tier + attend) | ${attendMs.toFixed(2)} | | | |`)
  console.log(`| ${n} | ShadowKV prefill end, once (inverse RoPE, SVD of [${n} x 1024], landmarks, outliers; key energy kept ${report.keyEnergy.toFixed(4)}) | ${prefillEnd.toFixed(0)} | | | |`)
  skv.dispose?.()
  cache.dispose()
}
