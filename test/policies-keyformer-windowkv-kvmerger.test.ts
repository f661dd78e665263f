/**
 * Keyformer, WindowKV and KVMerger against plain references written here (loops over the cache's keys,
 * no kernels), on random caches, plus the hand-built cases that show each paper's behaviour.
 */
import { describe, expect, it } from 'vitest'
import { createKeyformer } from '../src/policies/keyformer.js'
import { createWindowKV } from '../src/policies/windowkv.js'
import { createKVMerger } from '../src/policies/kvmerger.js'
import { createPolicy } from '../src/policies/registry.js'
import type { PolicyContext } from '../src/policies/types.js'
import { randArray, randomContext, refProbs, rng, shape } from './policy-context-helpers.js'

const topIdx = (s: ArrayLike<number>, k: number, from = 0, to = s.length) =>
  Array.from({ length: to - from }, (_, i) => from + i).sort((a, b) => s[b] - s[a] || a - b).slice(0, k).sort((a, b) => a - b)

function obsRow(ctx: PolicyContext, layer: number, qh: number, i: number): Float32Array {
  const W = ctx.hooks[layer].observationPositions!.length
  const d = ctx.model.headDim
  return ctx.hooks[layer].observationQueries!.subarray((qh * W + i) * d, (qh * W + i + 1) * d)
}

describe('Keyformer', () => {
  const m = shape(2, 4, 2, 8)
  const gumbel = (u: number) => -Math.log(-Math.log(Math.min(Math.max(u, 1e-12), 1 - 1e-12)))

  /** the paper's score for one head: sum over rows of softmax((x + g) / tau), noise drawn row by row */
  function noisyScore(rand: () => number, queries: Float32Array[], qPos: number[], keys: Float32Array, kPos: Int32Array, d: number, tau: number, prev: number[]): number[] {
    const total = prev.slice()
    queries.forEach((q, r) => {
      const f = Array.from(kPos, (p, j) => {
        if (p > qPos[r]) return -Infinity
        let x = 0
        for (let c = 0; c < d; c++) x += q[c] * keys[j * d + c]
        return (x / Math.sqrt(d) + gumbel(rand())) / tau
      })
      const mx = Math.max(...f)
      const e = f.map((x) => Math.exp(x - mx))
      const z = e.reduce((a, b) => a + b, 0)
      e.forEach((x, j) => (total[j] += x / z))
    })
    return total
  }
  const keepOf = (s: number[], k: number, recent: number) => {
    const n = s.length
    if (n <= k) return s.map((_, i) => i)
    const r = Math.round(recent * k)
    return [...topIdx(s, k - r, 0, n - r), ...Array.from({ length: r }, (_, i) => n - r + i)]
  }

  it('keeps the 30% most recent and the top Gumbel-noised accumulated scores, per head, prefill then decode', () => {
    const n = 40, w = 6
    const { ctx, cache } = randomContext(7, m, n, w)
    const p = createKeyformer({ budget: 0.5, window: w, seed: 42, steps: 4 }).start()
    const k = 20
    // reference prefill
    const rand = rng(42)
    const scores: number[][] = []
    const want: number[][] = []
    for (let l = 0; l < m.layers; l++) for (let h = 0; h < m.kvHeads; h++) {
      const qs: Float32Array[] = [], qp: number[] = []
      for (let g = 0; g < m.group; g++) for (let i = 0; i < w; i++) {
        qs.push(obsRow(ctx, l, h * m.group + g, i))
        qp.push(n - w + i)
      }
      const s = noisyScore(rand, qs, qp, cache.readKeys(l, h), cache.positions(l, h), m.headDim, 1, new Array(n).fill(0))
      const keep = keepOf(s, k, 0.3)
      want.push(keep)
      scores.push(keep.map((i) => s[i]))
    }
    const d0 = p.onPrefillEnd!(ctx)!
    expect(d0.heads.map((x) => Array.from(x.keep))).toEqual(want)
    cache.apply(d0)

    // one decode step: a new token in every head, tau = 1 + 1/4, evict back to k
    const r2 = rng(99)
    const dq: Float32Array[] = []
    for (let l = 0; l < m.layers; l++) {
      cache.append(l, randArray(r2, m.kvHeads * m.headDim), randArray(r2, m.kvHeads * m.headDim), Int32Array.of(n))
      dq.push(randArray(r2, m.qHeads * m.headDim, 2))
    }
    const want2: number[][] = []
    for (let l = 0; l < m.layers; l++) for (let h = 0; h < m.kvHeads; h++) {
      const qs = Array.from({ length: m.group }, (_, g) => dq[l].subarray((h * m.group + g) * m.headDim, (h * m.group + g + 1) * m.headDim))
      const s = noisyScore(rand, qs, qs.map(() => Infinity), cache.readKeys(l, h), cache.positions(l, h), m.headDim, 1.25, [...scores[l * m.kvHeads + h], 0])
      want2.push(keepOf(s, k, 0.3))
    }
    const d1 = p.onDecodeStep!({ ...ctx, hooks: dq.map((q, l) => ({ layer: l, decodeQuery: q })), step: 1 })!
    expect(d1.heads.map((x) => Array.from(x.keep))).toEqual(want2)
    cache.apply(d1)
    expect(cache.length(1, 1)).toBe(k)
  })

  it('is deterministic given a seed, and the noise changes with the seed', () => {
    const run = (seed: number) => {
      const { ctx } = randomContext(8, m, 60, 8)
      return createKeyformer({ budget: 0.3, window: 8, seed }).start().onPrefillEnd!(ctx)!.heads.map((h) => Array.from(h.keep))
    }
    expect(run(5)).toEqual(run(5))
    expect(run(5)).not.toEqual(run(6))
  })
})

describe('WindowKV', () => {
  /** s_i over every query head of the layer and the last w queries */
  function refScores(ctx: PolicyContext, layer: number, w: number): number[] {
    const { cache, model } = ctx
    const n = cache.length(layer, 0)
    const W = ctx.hooks[layer].observationPositions!.length
    const s = new Array(n).fill(0)
    for (let qh = 0; qh < model.qHeads; qh++) {
      const kv = Math.floor(qh / model.group)
      for (let i = W - w; i < W; i++) {
        refProbs(obsRow(ctx, layer, qh, i), ctx.hooks[layer].observationPositions![i], cache.readKeys(layer, kv), cache.positions(layer, kv), model.headDim).forEach((x, j) => (s[j] += x))
      }
    }
    return s
  }
  function refWindows(s: number[], w: number, budget: number, size: number, qa: boolean): number[] {
    const n = s.length
    const prefix = n - w
    const wins: { b: number; score: number; len: number }[] = []
    for (let b = 0; b * size < prefix; b++) {
      const vals = s.slice(b * size, Math.min(prefix, (b + 1) * size))
      const use = qa ? [...vals].sort((x, y) => y - x).slice(0, Math.ceil(vals.length / 2)) : vals
      wins.push({ b, score: use.reduce((x, y) => x + y, 0) / use.length, len: vals.length })
    }
    wins.sort((x, y) => y.score - x.score || x.b - y.b)
    const keep: number[] = []
    let used = 0
    for (const x of wins) {
      if (used + x.len > budget - w) continue
      used += x.len
      for (let i = 0; i < x.len; i++) keep.push(x.b * size + i)
    }
    for (let i = prefix; i < n; i++) keep.push(i)
    return keep.sort((a, b) => a - b)
  }

  it('keeps the suffix and the best whole 8-token windows, one selection for all heads (qa: top-half mean)', () => {
    const m = shape(2, 4, 2, 8)
    const n = 100
    for (const task of ['qa', 'other'] as const) {
      const w = task === 'qa' ? 32 : 16
      const { ctx } = randomContext(31, m, n, 32)
      const d = createWindowKV({ budget: 0.5, task }).start().onPrefillEnd!(ctx)!
      const want = refWindows(refScores(ctx, 0, w), w, 50, 8, task === 'qa')
      expect(want.length).toBeLessThanOrEqual(50)
      expect(want.length).toBeGreaterThan(50 - 8)
      for (const hd of d.heads) expect(Array.from(hd.keep)).toEqual(want)
      // whole windows: every kept token before the suffix sits in a fully kept window of 8
      for (const i of want.filter((i) => i < n - w)) expect(want.includes(i - (i % 8)) && want.includes(Math.min(n - w, i - (i % 8) + 8) - 1)).toBe(true)
    }
  })

  it('shares each group\'s first layer\'s indices over groups of layers, budgets falling linearly', () => {
    const m = shape(10, 2, 1, 8)
    const n = 120
    const { ctx } = randomContext(32, m, n, 16)
    const d = createWindowKV({ budget: 0.4, groupLayers: 4, spread: 0.5 }).start().onPrefillEnd!(ctx)!
    const C = Math.floor(0.4 * n) // 48
    const budgets = [72, 48, 24]
    budgets.forEach((b, g) => {
      const want = refWindows(refScores(ctx, g * 4, 16), 16, b, 8, false)
      for (const hd of d.heads.filter((x) => Math.floor(x.layer / 4) === g)) expect(Array.from(hd.keep)).toEqual(want)
    })
    expect(budgets.reduce((a, b) => a + b) / 3).toBe(C)
  })
})

describe('KVMerger', () => {
  const m = shape(1, 2, 1, 8)

  /** keys with runs of near-duplicates at [10, 15) and [30, 33) */
  function withRuns(seed: number, n: number) {
    const runs: [number, number][] = [[10, 15], [30, 33]]
    const r = rng(seed + 1)
    return randomContext(seed, m, n, 8, undefined, (_, k) => {
      for (const [s, e] of runs) for (let i = s + 1; i < e; i++) for (let c = 0; c < 8; c++) k[i * 8 + c] = k[s * 8 + c] + 0.05 * (r() - 0.5)
    })
  }

  it('merges each run of adjacent similar keys into its most attended token with Gaussian weights', () => {
    const n = 50
    const { ctx, cache } = withRuns(41, n)
    const keys = cache.readKeys(0, 0)
    const d = 8
    // reference: attention received, runs by cosine, pivots, weights
    const a = new Array(n).fill(0)
    for (let qh = 0; qh < 2; qh++) for (let i = 0; i < 8; i++) refProbs(obsRow(ctx, 0, qh, i), n - 8 + i, keys, cache.positions(0, 0), d).forEach((x, j) => (a[j] += x))
    const cos = (i: number, j: number) => {
      let s = 0, x = 0, y = 0
      for (let c = 0; c < d; c++) {
        s += keys[i * d + c] * keys[j * d + c]
        x += keys[i * d + c] ** 2
        y += keys[j * d + c] ** 2
      }
      return s / Math.sqrt(x * y)
    }
    const sets: number[][] = []
    let cur = [0]
    for (let i = 1; i <= n - 8; i++) {
      if (i < n - 8 && cos(i - 1, i) > 0.8) cur.push(i)
      else {
        if (cur.length > 1) sets.push(cur)
        cur = [i]
      }
    }
    expect(sets.map((s) => [s[0], s[s.length - 1] + 1])).toEqual([[10, 15], [30, 33]])
    const dec = createKVMerger({ window: 8 }).start().onPrefillEnd!(ctx)!.heads[0]
    sets.forEach((set, si) => {
      const p = set.reduce((b, i) => (a[i] > a[b] ? i : b), set[0])
      const dist = set.map((i) => keys.subarray(i * d, i * d + d).reduce((s, x, c) => s + (x - keys[p * d + c]) ** 2, 0))
      const sig2 = dist.reduce((x, y) => x + y, 0) / (set.length - 1)
      const mg = dec.merges![si]
      expect(mg.pivot).toBe(p)
      expect(Array.from(mg.members)).toEqual(set)
      Array.from(mg.weights).forEach((wt, j) => expect(wt).toBeCloseTo(Math.exp(-dist[j] / (2 * sig2)), 5))
    })
    const dropped = sets.flatMap((s) => s.filter((i) => i !== dec.merges![sets.indexOf(s)].pivot))
    expect(Array.from(dec.keep)).toEqual(Array.from({ length: n }, (_, i) => i).filter((i) => !dropped.includes(i)))
  })

  it('the cache then holds the pivot with the weighted mean key and value of its run', () => {
    const n = 50
    const { ctx, cache } = withRuns(42, n)
    const keys = cache.readKeys(0, 0)
    const values = cache.readValues(0, 0)
    const dec = createKVMerger({ window: 8 }).start().onPrefillEnd!(ctx)!
    const mg = dec.heads[0].merges![0]
    cache.apply(dec)
    expect(cache.length(0, 0)).toBe(n - 4 - 2)
    const slot = Array.from(cache.positions(0, 0)).indexOf(mg.pivot)
    const z = mg.weights.reduce((a, b) => a + b, 0)
    for (let c = 0; c < 8; c++) {
      const k = Array.from(mg.members).reduce((s, i, j) => s + mg.weights[j] * keys[i * 8 + c], 0) / z
      const v = Array.from(mg.members).reduce((s, i, j) => s + mg.weights[j] * values[i * 8 + c], 0) / z
      expect(cache.readKeys(0, 0)[slot * 8 + c]).toBeCloseTo(k, 5)
      expect(cache.readValues(0, 0)[slot * 8 + c]).toBeCloseTo(v, 5)
    }
  })

  it('respects a budget by evicting the least attended tokens after merging', () => {
    const n = 50
    const { ctx, cache } = withRuns(43, n)
    const dec = createKVMerger({ window: 8, tokens: 20 }).start().onPrefillEnd!(ctx)!
    expect(dec.heads[0].keep.length).toBe(20)
    // the recent window is kept whole
    expect(Array.from(dec.heads[0].keep.slice(-8))).toEqual(Array.from({ length: 8 }, (_, i) => n - 8 + i))
    cache.apply(dec)
    expect(cache.length(0, 0)).toBe(20)
  })
})

describe('Keyformer, WindowKV, KVMerger and ThinK through the registry', () => {
  it('composes ThinK after SnapKV: fewer tokens, then fewer key floats for the older ones', () => {
    const m = shape(2, 6, 2, 16)
    const p = createPolicy('snapkv:budget=0.25+think:ratio=0.5', m)!.start()
    const { ctx, cache } = randomContext(51, m, 256, 32)
    const d = p.onPrefillEnd!(ctx)
    if (d) cache.apply(d)
    // SnapKV keeps 64 of 256; ThinK prunes the 32 older keys to 8 of 16 channels, the recent 32 stay whole
    for (let l = 0; l < 2; l++) for (let h = 0; h < 2; h++) expect(cache.segments(l, h).map((s) => [s.n, s.d])).toEqual([[32, 8], [32, 16]])
  })

  it('names a bad option value', () => {
    const m = shape(2, 6, 2, 16)
    expect(() => createPolicy('think:ratio=1.5', m)).toThrow(/ratio=1.5/)
    expect(() => createPolicy('windowkv:task=summ', m)).toThrow(/summ/)
    expect(() => createPolicy('razorattention:heads=0-1', m)).toThrow(/0-1/)
  })
})
