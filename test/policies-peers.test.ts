/**
 * kvpress's strongest presses as kvkit policies, end to end on the fixture through `generate`: the
 * budget grid (policies x prompt lengths x budgets) holds what each promises in bytes really held, and
 * LagKV's scorer matches a hand-worked case. Token-level agreement with kvpress itself is pinned by
 * policies-parity-peers.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { createPolicy } from '../src/policies/registry.js'
import { lagkvScore } from '../src/policies/lagkv.js'
import type { Policy } from '../src/policies/types.js'

describe('LagKV scorer', () => {
  it('ranks each partition against the next one\'s channel ranges; sinks, last partition and tail always kept', () => {
    // d = 2, sinks 1, lag 2, n = 1 + 2 + 2 + 1: one scored partition (slots 1, 2), reference slots 3, 4
    const keys = Float32Array.from([9, 9, /* p0 */ 0, 1, 0.5, 0.5, /* ref */ 0, 0, 1, 1, /* tail */ 7, 7])
    const values = Float32Array.from([9, 9, 0, 0.2, 0.5, 0.5, 0, 0, 1, 1, 7, 7])
    const s = lagkvScore(keys, values, 6, 1, 2, false)
    // normalized rows: slot 1 (0, 1) std 0.707, slot 2 (0.5, 0.5) std 0: slot 1 ranks above slot 2
    expect(Array.from(s)).toEqual([Infinity, 0.5, 0, Infinity, Infinity, Infinity])
    const cross = lagkvScore(keys, values, 6, 1, 2, true)
    // softmax of the stds over the partition, keys and values averaged
    const sm = (a: number, b: number) => Math.exp(a) / (Math.exp(a) + Math.exp(b))
    expect(cross[1]).toBeCloseTo((sm(Math.SQRT1_2, 0) + sm(Math.hypot(0, 0.2) / Math.SQRT2 * 1, 0)) / 2, 6)
    expect(cross[1] + cross[2]).toBeCloseTo(1, 6)
  })

  it('keeps the sinks and the most recent tokens when the prompt is shorter than sinks + 2 x lag', () => {
    const s = lagkvScore(new Float32Array(20), new Float32Array(20), 10, 2, 8, false)
    expect(s[0]).toBe(Infinity)
    expect(Array.from(s.slice(2))).toEqual([2, 3, 4, 5, 6, 7, 8, 9])
  })
})

describe('peer policies end to end: bytes really held (policies x lengths x budgets)', () => {
  let model: LlamaModel
  beforeAll(async () => {
    model = await loadModel('models/fixture-14m', { backend: 'wasm' })
  }, 120_000)
  afterAll(() => model?.dispose())
  // uniform: each (layer, KV head) keeps floor(budget x n); layer: a layer's heads share that many (ragged);
  // model: one pool over every head of every layer, the same total
  type Kind = 'uniform' | 'layer' | 'model'
  const SPECS: [string, Kind][] = [ // the kind documents how the heads share the budget
    ['lagkv', 'uniform'], ['criticalkv', 'uniform'], ['compactor', 'uniform'],
    ['criticaladakv', 'layer'], ['kvzip', 'model'], ['kvzip:plus=true,chunk=128', 'model'], ['kvzip:layerwise=true', 'layer'],
  ]
  const ids = (n: number) => Array.from({ length: n }, (_, i) => 1 + ((i * 7919) % 3000))
  for (const n of [150, 300]) {
    for (const budget of [0.5, 0.125]) {
      it(`n=${n} budget=${budget}: ${SPECS.map((s) => s[0]).join(', ')} hold the budget and free the rest`, async () => {
        const { layers, kvHeads } = model.config
        for (const [spec] of SPECS) {
          const full = `${spec}${spec.includes(':') ? ',' : ':'}budget=${budget}`
          const policy = createPolicy(full, model.config) as Policy
          const r = await model.generate(ids(n), { policy, maxNewTokens: 1 }).result
          const per = r.stats.kvBytesFull / n // bytes of one token over all layers and heads
          const heldTokens = r.stats.kvBytesAfterPrefill.hot / (per / (layers * kvHeads))
          // ragged or not, the cache holds floor(budget x n) tokens per head on average
          const want = layers * kvHeads * Math.floor(budget * (n - 1))
          expect(heldTokens, full).toBe(want)
          expect(r.stats.compressMs, full).toBeGreaterThan(0)
        }
      }, 300_000)
    }
  }

  it('the policies that need the runtime say so in a context without one', async () => {
    for (const spec of ['criticalkv', 'kvzip']) {
      const p = createPolicy(spec, model.config) as Policy
      const cache = model.newCache()
      const { layers, kvHeads, headDim: d } = model.config
      for (let l = 0; l < layers; l++) cache.append(l, new Float32Array(300 * kvHeads * d).fill(0.1), new Float32Array(300 * kvHeads * d).fill(0.2), Int32Array.from({ length: 300 }, (_, i) => i))
      const hooks = Array.from({ length: layers }, (_, layer) => ({ layer, observationQueries: new Float32Array(model.config.qHeads * 64 * d), observationPositions: Int32Array.from({ length: 64 }, (_, i) => 236 + i) }))
      const ctx = { cache, ops: model.ops, model: model.config, hooks, promptLength: 301, step: 0 }
      const s = p.start()
      // KVzip's prefill end is asynchronous (its reconstruction yields): it rejects with the same error
      if (s.onPrefillEndAsync) await expect(s.onPrefillEndAsync(ctx), spec).rejects.toThrow(/prepare\(model\) was not awaited/)
      else expect(() => s.onPrefillEnd!(ctx), spec).toThrow(/needs the runtime's output projection/)
      expect(spec === 'kvzip').toBe(!!s.onPrefillEndAsync)
      cache.dispose()
    }
  })
})
