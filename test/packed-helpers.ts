import { expect } from 'vitest'
import type { CreatedBackend } from '../src/backend/index.js'
import type { Heap } from '../src/backend/heap.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { attendCache } from '../src/cache/attention.js'
import { normals, rng } from './kernels-helpers.js'

/**
 * Decode attention (6 query heads over 2 KV heads of 64) over `cache` (layer 0, n tokens a head) equals
 * it over a float cache of its read-back rows, to `digits` decimals.
 */
export function expectAttentionOverReadBack(wasm: CreatedBackend, heap: Heap, cache: PagedKVCache, n: number, seed: number, digits = 5): void {
  const plain = new PagedKVCache(wasm, { layers: 1, kvHeads: 2, headDim: 64, pageTokens: 64 })
  const k = new Float32Array(n * 128)
  const v = new Float32Array(n * 128)
  for (let h = 0; h < 2; h++) {
    const kh = cache.readKeys(0, h)
    const vh = cache.readValues(0, h)
    for (let t = 0; t < n; t++) {
      k.set(kh.subarray(t * 64, t * 64 + 64), (t * 2 + h) * 64)
      v.set(vh.subarray(t * 64, t * 64 + 64), (t * 2 + h) * 64)
    }
  }
  plain.append(0, k, v, Int32Array.from({ length: n }, (_, i) => i))
  const q = heap.f32From(normals(rng(seed), 6 * 64))
  const outs = [heap.allocF32(6 * 64), heap.allocF32(6 * 64)]
  ;[cache, plain].forEach((c, i) => attendCache(wasm, c, { layer: 0, q: q.ptr, T: 1, qHeads: 6, out: outs[i].ptr, scale: 0.125 }))
  for (let i = 0; i < 6 * 64; i++) expect(outs[0].view[i]).toBeCloseTo(outs[1].view[i], digits)
  for (const b of [q, ...outs]) b.free()
  plain.dispose()
}
