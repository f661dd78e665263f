/**
 * Each token-eviction method against a plain-loop reference written here, on random caches, plus the
 * hand-built cases that show what each paper describes.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createPolicy } from '../src/policies/registry.js'
import type { LayerHooks, ModelShape } from '../src/policies/types.js'
import { caches, disposeCaches, dot, gauss, keptAfterPrefill, model, newCache, ops, queryOf, rng, snapScores, softmax, topIdx, world } from './policies-reference.js'

afterEach(disposeCaches)
describe('SnapKV', () => {
  for (const [pooling, kernel, group] of [['max', 7, 'mean'], ['avg', 5, 'mean'], ['max', 7, 'max'], ['none', 1, 'mean']] as const) {
    it(`keeps the top (C - w) pooled window votes plus the window (${pooling} ${kernel}, group ${group})`, () => {
      const n = 90, W = 24, win = 16
      const w = world(n, W, 11 + kernel)
      const kept = keptAfterPrefill(createPolicy(`snapkv:budget=0.4,window=${win},pooling=${pooling},kernel=${kernel},group=${group}`, model)!, w)
      const C = Math.floor(0.4 * n)
      for (let l = 0; l < model.layers; l++)
        for (let h = 0; h < model.kvHeads; h++) expect(kept[l][h]).toEqual(topIdx(snapScores(w, l, h, W, win, pooling, kernel, group), C))
    })
  }
  it('keeps the tokens its observation window attends to', () => {
    const n = 64, W = 8
    const w = world(n, W, 3)
    // every window query points along channel 0; only tokens 10 and 37 have a large key there
    for (let l = 0; l < model.layers; l++) {
      w.queries[l].fill(0)
      for (let qh = 0; qh < model.qHeads; qh++) for (let i = 0; i < W; i++) w.queries[l][(qh * W + i) * model.headDim] = 4
    }
    const cache = newCache({ layers: 2, kvHeads: 2, headDim: 8 })
    caches.push(cache)
    for (let l = 0; l < model.layers; l++) {
      const k = new Float32Array(n * 2 * 8)
      for (const t of [10, 37]) for (let h = 0; h < 2; h++) k[(t * 2 + h) * 8] = 3
      cache.append(l, k, k, Int32Array.from({ length: n }, (_, i) => i))
    }
    const ctx = { ...w.ctx, cache }
    const d = createPolicy(`snapkv:tokens=${W + 2},window=${W},pooling=none`, model)!.start().onPrefillEnd!(ctx)!
    cache.apply(d)
    for (let l = 0; l < 2; l++) for (let h = 0; h < 2; h++) expect(Array.from(cache.positions(l, h))).toEqual([10, 37, 56, 57, 58, 59, 60, 61, 62, 63])
  })
  it('always keeps its sinks when asked', () => {
    const w = world(80, 16, 5)
    const kept = keptAfterPrefill(createPolicy('snapkv:tokens=24,window=16,sinks=4', model)!, w)
    for (const layer of kept) for (const k of layer) expect(k.slice(0, 4)).toEqual([0, 1, 2, 3])
  })
})

describe('StreamingLLM', () => {
  it('keeps the sinks and the most recent tokens', () => {
    const w = world(100, 8, 1)
    const kept = keptAfterPrefill(createPolicy('streamingllm:budget=0.2,sinks=4', model)!, w)
    const want = [0, 1, 2, 3, ...Array.from({ length: 16 }, (_, i) => 84 + i)]
    for (const layer of kept) for (const k of layer) expect(k).toEqual(want)
  })
})

describe('Knorm', () => {
  it('keeps the keys with the smallest L2 norms', () => {
    const w = world(70, 8, 2)
    const kept = keptAfterPrefill(createPolicy('knorm:tokens=20', model)!, w)
    for (let l = 0; l < 2; l++) for (let h = 0; h < 2; h++) expect(kept[l][h]).toEqual(topIdx(w.keys[l][h].map((k) => -Math.sqrt(dot(k, k))), 20))
  })
})

describe('TOVA', () => {
  it('keeps by the last query\'s attention averaged over all heads, the same slots in every head', () => {
    const n = 60, W = 4
    const w = world(n, W, 9)
    const kept = keptAfterPrefill(createPolicy('tova:tokens=15', model)!, w)
    for (let l = 0; l < 2; l++) {
      const mean = new Array(n).fill(0)
      for (let qh = 0; qh < model.qHeads; qh++) {
        const h = Math.floor(qh / model.group)
        softmax(w.keys[l][h].map((k) => dot(queryOf(w, l, qh, W - 1, W), k) / Math.sqrt(model.headDim))).forEach((p, j) => (mean[j] += p / model.qHeads))
      }
      mean[n - 1] = Infinity
      for (let h = 0; h < 2; h++) expect(kept[l][h]).toEqual(topIdx(mean, 15))
    }
  })
})

describe('H2O', () => {
  it('keeps the heavy hitters of the accumulated attention plus the recent window', () => {
    const n = 80
    const w = world(n, 4, 4)
    const kept = keptAfterPrefill(createPolicy('h2o:tokens=20,recent=0.5', model)!, w)
    for (let l = 0; l < 2; l++)
      for (let h = 0; h < 2; h++) {
        const s = Array.from(w.mass[l].subarray(h * n, (h + 1) * n)).map((x, i) => (i >= n - 10 ? Infinity : x))
        expect(kept[l][h]).toEqual(topIdx(s, 20))
      }
  })
  it('normalizes by the number of queries that saw a token (ObservedAttention)', () => {
    const n = 50
    const w = world(n, 4, 8)
    const kept = keptAfterPrefill(createPolicy('h2o:tokens=10,recent=0,normalize=true', model)!, w)
    for (let l = 0; l < 2; l++)
      for (let h = 0; h < 2; h++) expect(kept[l][h]).toEqual(topIdx(Array.from(w.mass[l].subarray(h * n, (h + 1) * n)).map((x, i) => x / (n - i)), 10))
  })
  it('adds each decode query\'s attention and evicts back to the budget every N steps', () => {
    const n = 40
    const w = world(n, 4, 6)
    const policy = createPolicy('h2o:tokens=12,recent=0.5,every=2', model)!
    const p = policy.start()
    expect(policy.needs.decodeQueries).toBe(true)
    keptAfterPrefill(p, w)
    const r = rng(77)
    const acc = Array.from({ length: 2 }, (_, l) => Array.from({ length: 2 }, (_, h) => {
      const pos = Array.from(w.cache.positions(l, h))
      return new Map(pos.map((t) => [t, w.mass[l][h * n + t]]))
    }))
    for (let step = 1; step <= 2; step++) {
      const hooks: LayerHooks[] = []
      for (let l = 0; l < 2; l++) {
        const k = Float32Array.from({ length: 2 * 8 }, () => 2 * gauss(r))
        w.cache.append(l, k, k, Int32Array.of(n - 1 + step))
        const q = Float32Array.from({ length: 6 * 8 }, () => 2 * gauss(r))
        hooks.push({ layer: l, decodeQuery: q })
        for (let h = 0; h < 2; h++) {
          const ks = w.cache.readKeys(l, h)
          const pos = w.cache.positions(l, h)
          const m = acc[l][h]
          m.set(n - 1 + step, 0)
          for (let g = 0; g < 3; g++) {
            const qv = q.subarray((h * 3 + g) * 8, (h * 3 + g + 1) * 8)
            softmax(Array.from(pos, (_, j) => dot(qv, ks.subarray(j * 8, j * 8 + 8)) / Math.sqrt(8))).forEach((pr, j) => m.set(pos[j], m.get(pos[j])! + pr))
          }
        }
      }
      const d = p.onDecodeStep!({ ...w.ctx, hooks, step })
      if (step === 1) expect(d).toBeNull()
      else {
        w.cache.apply(d!)
        for (let l = 0; l < 2; l++)
          for (let h = 0; h < 2; h++) {
            const entries = [...acc[l][h].entries()].sort((a, b) => a[0] - b[0])
            const score = entries.map(([, v], i) => (i >= entries.length - 6 ? Infinity : v))
            expect(Array.from(w.cache.positions(l, h))).toEqual(topIdx(score, 12).map((i) => entries[i][0]))
          }
      }
    }
  })
})

describe('PyramidKV', () => {
  it('gives lower layers more budget, the total unchanged, each layer SnapKV\'s top', () => {
    const pm: ModelShape = { ...model, layers: 4 }
    const n = 100, W = 8
    const r = rng(21)
    const cache = newCache({ layers: 4, kvHeads: 2, headDim: 8 })
    caches.push(cache)
    const hooks: LayerHooks[] = []
    for (let l = 0; l < 4; l++) {
      const k = Float32Array.from({ length: n * 16 }, () => gauss(r))
      cache.append(l, k, k, Int32Array.from({ length: n }, (_, i) => i))
      hooks.push({ layer: l, observationQueries: Float32Array.from({ length: 6 * W * 8 }, () => gauss(r)), observationPositions: Int32Array.from({ length: W }, (_, i) => n - W + i) })
    }
    const d = createPolicy(`pyramidkv:budget=0.3,window=${W},beta=4`, pm)!.start().onPrefillEnd!({ cache, ops, model: pm, hooks, promptLength: n, step: 0 })!
    cache.apply(d)
    const lens = [0, 1, 2, 3].map((l) => cache.length(l, 0))
    // extra = 30 - 8 = 22; low = 5.5, high = 38.5, step 11: 46.5, 35.5, 24.5, 13.5 before rounding the running sum
    expect(lens).toEqual([47, 35, 25, 13])
    expect(lens.reduce((a, b) => a + b, 0)).toBe(4 * 30)
    for (let l = 0; l < 4; l++) expect(cache.length(l, 1)).toBe(lens[l])
  })
})

describe('AdaKV', () => {
  it('matches the reference: floor per head, then the layer\'s top across heads', () => {
    const n = 80, W = 16
    const w = world(n, W, 31)
    const before = [0, 1].map((l) => [0, 1].map((h) => snapScores(w, l, h, W, 16, 'max', 7, 'mean')))
    const kept = keptAfterPrefill(createPolicy('adakv:budget=0.25,window=16,alpha=0.2', model)!, w)
    const C = 20, floor = Math.floor(0.2 * C)
    for (let l = 0; l < 2; l++) {
      const flat: [number, number, number][] = []
      before[l].forEach((s, h) => {
        const fl = new Set(topIdx(s, floor))
        s.forEach((x, i) => flat.push([fl.has(i) ? Infinity : x, h, i]))
      })
      const chosen = flat.map((f, j) => [f[0], j] as [number, number]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, 2 * C).map((x) => flat[x[1]])
      for (let h = 0; h < 2; h++) expect(kept[l][h]).toEqual(chosen.filter((c) => c[1] === h).map((c) => c[2]).sort((a, b) => a - b))
      expect(kept[l][0].length + kept[l][1].length).toBe(2 * C)
    }
  })
  it('with scope=model shares one budget across every layer and head', () => {
    const n = 80, W = 16
    const w = world(n, W, 37)
    const before = [0, 1].flatMap((l) => [0, 1].map((h) => snapScores(w, l, h, W, 16, 'max', 7, 'mean')))
    const kept = keptAfterPrefill(createPolicy('adakv:budget=0.25,window=16,alpha=0.2,scope=model', model)!, w)
    const C = 20, floor = Math.floor(0.2 * C)
    const flat: [number, number, number][] = []
    before.forEach((s, lh) => {
      const fl = new Set(topIdx(s, floor))
      s.forEach((x, i) => flat.push([fl.has(i) ? Infinity : x, lh, i]))
    })
    const chosen = flat.map((f, j) => [f[0], j] as [number, number]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, 4 * C).map((x) => flat[x[1]])
    for (let lh = 0; lh < 4; lh++) expect(kept[lh >> 1][lh & 1]).toEqual(chosen.filter((c) => c[1] === lh).map((c) => c[2]).sort((a, b) => a - b))
    expect(kept.flat().reduce((a, k) => a + k.length, 0)).toBe(4 * C)
  })
  it('gives more budget to the head whose attention is spread, the concentrated head keeping its floor', () => {
    const n = 100, W = 4
    const w = world(n, W, 2)
    const cache = newCache({ layers: 2, kvHeads: 2, headDim: 8 })
    caches.push(cache)
    for (let l = 0; l < 2; l++) {
      const k = new Float32Array(n * 16)
      // head 0: one token (7) holds all attention; head 1: flat attention over everything
      k[(7 * 2 + 0) * 8] = 30
      w.queries[l].fill(0)
      for (let qh = 0; qh < 6; qh++) for (let i = 0; i < W; i++) w.queries[l][(qh * W + i) * 8] = 1
      cache.append(l, k, k, Int32Array.from({ length: n }, (_, i) => i))
    }
    const d = createPolicy(`adakv:tokens=20,window=${W},alpha=0.2,pooling=none`, model)!.start().onPrefillEnd!({ ...w.ctx, cache })!
    cache.apply(d)
    for (let l = 0; l < 2; l++) {
      const concentrated = cache.length(l, 0), spread = cache.length(l, 1)
      expect(concentrated + spread).toBe(40)
      expect(spread).toBeGreaterThan(concentrated)
      expect(concentrated).toBeGreaterThanOrEqual(W + 4 - 4) // floor = 0.2 x 20 = 4 slots of its own top
      expect(concentrated).toBeGreaterThanOrEqual(4)
      expect(Array.from(cache.positions(l, 0))).toContain(7)
    }
  })
})

describe('periodic compression (every=N)', () => {
  it('SnapKV votes with the last decode queries and returns to the budget every N steps', () => {
    const n = 50
    const w = world(n, 8, 12)
    const policy = createPolicy('snapkv:tokens=20,window=4,every=3,pooling=none', model)!
    const p = policy.start()
    expect(policy.needs.decodeQueries).toBe(true)
    keptAfterPrefill(p, w)
    const r = rng(5)
    for (let step = 1; step <= 3; step++) {
      const hooks: LayerHooks[] = []
      for (let l = 0; l < 2; l++) {
        const k = Float32Array.from({ length: 16 }, () => gauss(r))
        w.cache.append(l, k, k, Int32Array.of(n - 1 + step))
        hooks.push({ layer: l, decodeQuery: Float32Array.from({ length: 48 }, () => gauss(r)) })
      }
      const d = p.onDecodeStep!({ ...w.ctx, hooks, step })
      if (step < 3) expect(d).toBeNull()
      else {
        w.cache.apply(d!)
        for (let l = 0; l < 2; l++)
          for (let h = 0; h < 2; h++) {
            expect(w.cache.length(l, h)).toBe(20)
            // the three decode tokens are the window: always kept
            expect(Array.from(w.cache.positions(l, h)).slice(-3)).toEqual([n, n + 1, n + 2])
          }
      }
    }
  })
})

describe('compensation (compensate=true)', () => {
  it('replaces the evicted tokens of each head by their mean key and value, within the budget', () => {
    const n = 60
    const w = world(n, 8, 14)
    const values = [0, 1].map((l) => [0, 1].map((h) => w.cache.readValues(l, h)))
    const kept = keptAfterPrefill(createPolicy('streamingllm:tokens=20,sinks=4,compensate=true', model)!, w)
    for (let l = 0; l < 2; l++)
      for (let h = 0; h < 2; h++) {
        expect(w.cache.length(l, h)).toBe(20)
        expect(kept[l][h].slice(0, 19)).toEqual([0, 1, 2, 3, ...Array.from({ length: 15 }, (_, i) => 45 + i)])
        const dropped = Array.from({ length: 41 }, (_, i) => 4 + i)
        const k = w.cache.readKeys(l, h).subarray(19 * 8, 20 * 8)
        const v = w.cache.readValues(l, h).subarray(19 * 8, 20 * 8)
        for (let c = 0; c < 8; c++) {
          expect(k[c]).toBeCloseTo(dropped.reduce((a, t) => a + w.keys[l][h][t][c], 0) / 41, 4)
          expect(v[c]).toBeCloseTo(dropped.reduce((a, t) => a + values[l][h][t * 8 + c], 0) / 41, 4)
        }
      }
  })
})

describe('composition', () => {
  it('runs the parts in order on the same cache', () => {
    const w = world(100, 8, 3)
    const kept = keptAfterPrefill(createPolicy('streamingllm:budget=0.5,sinks=4+knorm:tokens=10', model)!, w)
    for (let l = 0; l < 2; l++)
      for (let h = 0; h < 2; h++) {
        const survivors = [0, 1, 2, 3, ...Array.from({ length: 46 }, (_, i) => 54 + i)]
        const want = topIdx(survivors.map((t) => -Math.sqrt(dot(w.keys[l][h][t], w.keys[l][h][t]))), 10).map((i) => survivors[i])
        expect(kept[l][h]).toEqual(want)
      }
  })
})
