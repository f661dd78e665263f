import { describe, expect, it } from 'vitest'
import { createBackend } from '../src/backend/index.js'
import { Ops } from '../src/backend/ops.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { loadModel } from '../src/node/load.js'
import { createPolicy } from '../src/policies/registry.js'
import { scoreHeadKeys } from '../src/policies/segment-scores.js'
import type { PolicyContext } from '../src/policies/types.js'

// Selection over KIVI-packed keys (tokenselect+kivi, delta+kivi) copied every packed key of every head
// into float32 (keyView: dequantized through getPackedKeyRows) each decode step, so the integer key
// scoring kernel (scorePackedKeysInt, and the relaxed accumulating dot Deno and Bun take) never ran in
// model.generate; now each segment is scored in place.
function values(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), ((s / 2 ** 32) * 2 - 1) * scale))
}

describe('selection scores KIVI-packed keys in place', () => {
  it('TokenSelect and DELTA over KIVI keys run the integer kernel in generate, not a dequantized copy of every key', async () => {
    const model = await loadModel('models/fixture-14m', { backend: 'wasm', threads: 1 })
    try {
      const b = model.backend
      const calls = { int: 0, rows: 0 }
      const int = b.scorePackedKeysInt!
      const rows = b.getPackedKeyRows!
      b.scorePackedKeysInt = (...a) => (calls.int++, int(...a))
      b.getPackedKeyRows = (...a) => (calls.rows++, rows(...a))
      const ids = [0, ...model.tokenizer.encode('The grass is green and the sky is blue. '.repeat(30))]
      for (const spec of ['tokenselect:tokens=96,first=2,last=8,cache=false+kivi:bits=2', 'delta:tokens=96+kivi:bits=4']) {
        calls.int = calls.rows = 0
        const r = await model.generate(ids, { maxNewTokens: 3, temperature: 0, policy: createPolicy(spec, model.config)! }).result
        expect(r.ids, spec).toHaveLength(3)
        // every selecting layer's heads are scored on their codes (8 layers x 2 KV heads x 3 steps at most)
        expect(calls.int, spec).toBeGreaterThan(0)
        // before: every packed key of every head went through getPackedKeyRows into a float32 copy each step
        if (spec.startsWith('delta')) expect(calls.rows, `${spec}: rows dequantized`).toBe(0)
      }
    } finally {
      model.dispose()
    }
  }, 60_000)

  it('scoreHeadKeys over a packed head and its float window: every slot the dot product of its dequantized key, each segment at its own slots', async () => {
    const b = await createBackend('wasm', { relaxed: false })
    const ops = new Ops(b)
    const d = 64, n = 200, group = 3, scale = 0.125
    for (const [kvDtype, keys] of [['float32', 'int4'], ['float16', 'int2']] as const) {
      const cache = new PagedKVCache(b, { layers: 1, kvHeads: 1, headDim: d, pageTokens: 32, kvDtype })
      cache.append(0, values(n * d, 11, 2), values(n * d, 12), Int32Array.from({ length: n }, (_, i) => i))
      cache.apply({ heads: [], quantize: [{ layer: 0, head: 0, upto: 160, keys, values: 'int8' }] })
      expect(cache.segments(0, 0).map((s) => [s.format, s.start, s.n])).toEqual([[keys, 0, 160], [kvDtype, 160, 40]])
      // reference: the keys as the cache reads them back (dequantized), dotted in float64
      const k = b.heap.allocF32(n * d)
      cache.readKeysInto(0, 0, 0, n, k.ptr)
      const K = k.view.slice()
      const qv = values(group * d, 13, 1.5)
      const q = b.heap.f32From(qv), out = b.heap.allocF32(group * n)
      const ctx = { cache, ops, model: { headDim: d } } as unknown as PolicyContext
      scoreHeadKeys(ctx, 0, 0, q, group, scale, out, { float16: true })
      const got = out.view.slice()
      for (let r = 0; r < group; r++) {
        const want = Array.from({ length: n }, (_, j) => {
          let s = 0
          for (let c = 0; c < d; c++) s += qv[r * d + c] * K[j * d + c]
          return s * scale
        })
        const top = Math.max(...want.map(Math.abs))
        for (let j = 0; j < n; j++) {
          // packed slots: integer dot products on a rounded query (for ranking, README "Integer key
          // scoring"); window slots: float32 scoring of the float rows
          const tol = j < 160 ? 0.02 * top : 1e-5 * top
          expect(Math.abs(got[r * n + j] - want[j]), `${keys} row ${r} slot ${j}`).toBeLessThanOrEqual(tol)
        }
      }
      cache.dispose()
    }
  })
})
