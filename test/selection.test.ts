/**
 * Dynamic selection (issue 11): each method's selection against a plain TypeScript twin on random
 * caches, sparse attention over a selection against dense attention over a cache holding only those
 * rows, the Selection Cache's reuse, composition with eviction, and the methods end to end on a model.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { attendCache } from '../src/cache/attention.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { createBackend } from '../src/backend/index.js'
import type { Backend } from '../src/backend/backend.js'
import { createPolicy } from '../src/policies/registry.js'
import { PageBounds } from '../src/policies/page-bounds.js'
import { questPageScores } from '../src/policies/quest.js'
import { pageSlots, windowedSelection } from '../src/policies/selection.js'
import type { Policy, PolicyContext, PolicySession } from '../src/policies/types.js'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { ops, randArray, randomContext, rng, shape } from './policy-context-helpers.js'
import { makeTinyModel } from './tiny-model.js'
import { mpcacheDynamicSelect } from '../src/mpc/mpcache-select.js'

const M = shape(3, 8, 2, 16)

/** [n][d] keys of (layer, head) as plain numbers */
function keysOf(ctx: PolicyContext, layer: number, head: number): Float32Array {
  return ctx.cache.readKeys(layer, head)
}

/** float64 softmax_i(q_h . k_i / sqrt(d)) over the n keys K [n][d] */
function refProbs(q: Float32Array, h: number, K: Float32Array, n: number, d: number): number[] {
  const s = Array.from({ length: n }, (_, i) => {
    let dot = 0
    for (let c = 0; c < d; c++) dot += q[h * d + c] * K[i * d + c]
    return dot / Math.sqrt(d)
  })
  const m = Math.max(...s)
  const e = s.map((x) => Math.exp(x - m))
  const z = e.reduce((a, b) => a + b, 0)
  return e.map((x) => x / z)
}

/**
 * TokenSelect's twin: float64 soft vote of the given query heads, max-pooled over `pool` slots (the
 * window clipped at the ends), top k of [first, n-last), ties to the lower slot
 */
function refTokenSelect(ctx: PolicyContext, layer: number, heads: number[], q: Float32Array, B: number, first: number, last: number, pool = 1): number[] {
  const { group, headDim: d } = ctx.model
  const n = ctx.cache.length(layer, heads[0])
  const vote = new Float64Array(n)
  for (const g of heads) {
    const K = keysOf(ctx, layer, g)
    for (let h = g * group; h < (g + 1) * group; h++) refProbs(q, h, K, n, d).forEach((p, i) => (vote[i] += p))
  }
  const r = pool >> 1
  const raw = vote.slice()
  for (let i = 0; i < n; i++) for (let j = Math.max(0, i - r); j <= Math.min(n - 1, i + r); j++) vote[i] = Math.max(vote[i], raw[j])
  // the last window keeps the newest slot whenever last > 0, however small B (the twin of windowsOf)
  const f = Math.min(first, last > 0 ? B - 1 : B)
  const l = Math.min(last, B - f)
  const mid = Array.from({ length: Math.max(0, n - l - f) }, (_, i) => i + f).sort((a, b) => vote[b] - vote[a] || a - b)
  const chosen = new Set([...Array.from({ length: f }, (_, i) => i), ...mid.slice(0, B - f - l), ...Array.from({ length: l }, (_, i) => n - l + i)])
  return [...chosen].sort((a, b) => a - b)
}

/** Quest's twin: per page sum over the group's heads of sum_c max(q_c kmax_c, q_c kmin_c), float64 */
function refQuestScores(ctx: PolicyContext, layer: number, g: number, q: Float32Array, page: number): number[] {
  const { group, headDim: d } = ctx.model
  const n = ctx.cache.length(layer, g)
  const K = keysOf(ctx, layer, g)
  const out: number[] = []
  for (let p = 0; p * page < n; p++) {
    let s = 0
    for (let h = g * group; h < (g + 1) * group; h++) {
      for (let c = 0; c < d; c++) {
        let hi = -Infinity
        let lo = Infinity
        for (let i = p * page; i < Math.min(n, (p + 1) * page); i++) {
          hi = Math.max(hi, K[i * d + c])
          lo = Math.min(lo, K[i * d + c])
        }
        s += Math.max(q[h * d + c] * hi, q[h * d + c] * lo)
      }
    }
    out.push(s)
  }
  return out
}

/** runs a selecting policy's session on a context: prefill end, then one selection of `layer` */
function selectOnce(policy: Policy, ctx: PolicyContext, layer: number, q: Float32Array): { session: PolicySession; sel: (Int32Array | null)[] | null } {
  const session = policy.start()
  session.onPrefillEnd?.(ctx)
  return { session, sel: session.selectTokens!(ctx, layer, q) }
}

describe('TokenSelect matches its plain twin', () => {
  const grid: [number, number, number, number][] = []
  for (const n of [40, 300, 900]) for (const B of [12, 64, 256]) for (const [first, last] of [[0, 0], [4, 8], [32, 64]]) grid.push([n, B, first, last])
  // budgets at and under the paper's windows (first 128, last 512)
  for (const n of [40, 300]) for (const B of [1, 2, 12, 128]) grid.push([n, B, 128, 512])
  it.each(grid)('n=%i tokens=%i first=%i last=%i: the soft vote of the layer picks the twin\'s slots', (n, B, first, last) => {
    const { ctx, cache } = randomContext(n * 7 + B, M, n, 1)
    const q = randArray(rng(n + B), M.qHeads * M.headDim, 2)
    const p = createPolicy(`tokenselect:tokens=${B},first=${first},last=${last},cache=false`, M)!
    const { session, sel } = selectOnce(p, ctx, 1, q)
    if (n <= B) expect(sel).toBeNull()
    else {
      const want = refTokenSelect(ctx, 1, [0, 1], q, B, first, last)
      for (let g = 0; g < M.kvHeads; g++) expect(Array.from(sel![g]!)).toEqual(want)
    }
    session.dispose?.()
    cache.dispose()
  })

  it.each([1, 2, 12, 128, 129])('tokens=%i under the paper\'s windows: every step attends its own key (the newest slot)', (B) => {
    const n = 300
    const { ctx, cache } = randomContext(n + B, M, n, 1)
    const q = randArray(rng(B), M.qHeads * M.headDim, 2)
    const { session, sel } = selectOnce(createPolicy(`tokenselect:tokens=${B},cache=false`, M)!, ctx, 1, q)
    for (let g = 0; g < M.kvHeads; g++) {
      const slots = Array.from(sel![g]!)
      expect(slots).toHaveLength(B)
      expect(slots[slots.length - 1]).toBe(n - 1)
      // the rest of the budget is the first window: the sinks (the paper's 128) before the newest slot
      expect(slots.slice(0, -1)).toEqual(Array.from({ length: Math.min(B - 1, 128) }, (_, i) => i))
    }
    session.dispose?.()
    cache.dispose()
  })

  it.each([[200, 32], [500, 100]])('n=%i tokens=%i vote=head: each KV head votes over its own group', (n, B) => {
    const { ctx, cache } = randomContext(n + 3, M, n, 1)
    const q = randArray(rng(n), M.qHeads * M.headDim, 2)
    const { sel } = selectOnce(createPolicy(`tokenselect:tokens=${B},first=2,last=4,vote=head,cache=false`, M)!, ctx, 2, q)
    for (let g = 0; g < M.kvHeads; g++) expect(Array.from(sel![g]!)).toEqual(refTokenSelect(ctx, 2, [g], q, B, 2, 4))
    cache.dispose()
  })
})

describe('TokenSelect with the vote max-pooled (pool) or its first layers dense (dense)', () => {
  const grid: [number, number, number, string][] = []
  for (const [n, B] of [[60, 24], [300, 64], [900, 128]]) for (const pool of [3, 7]) for (const vote of ['layer', 'head']) grid.push([n, B, pool, vote])
  it.each(grid)('n=%i tokens=%i pool=%i vote=%s: the twin\'s slots, in runs around the voted tokens', (n, B, pool, vote) => {
    const { ctx, cache } = randomContext(n * 5 + pool, M, n, 1)
    const q = randArray(rng(n * 3 + B), M.qHeads * M.headDim, 2)
    const { session, sel } = selectOnce(createPolicy(`tokenselect:tokens=${B},first=4,last=8,pool=${pool},vote=${vote},cache=false`, M)!, ctx, 1, q)
    for (let g = 0; g < M.kvHeads; g++) {
      const want = refTokenSelect(ctx, 1, vote === 'layer' ? [0, 1] : [g], q, B, 4, 8, pool)
      expect(Array.from(sel![g]!), `head ${g}`).toEqual(want)
      expect(want).toHaveLength(B)
    }
    session.dispose?.()
    cache.dispose()
  })

  it('dense=2: the first two layers attend densely, the others select the twin\'s slots; the GPU plan says so', () => {
    const { ctx, cache } = randomContext(17, M, 300, 1)
    const q = randArray(rng(23), M.qHeads * M.headDim, 2)
    const session = createPolicy('tokenselect:tokens=48,first=4,last=8,dense=2,cache=false', M)!.start()
    session.onPrefillEnd?.(ctx)
    for (const layer of [0, 1]) expect(session.selectTokens!(ctx, layer, q), `layer ${layer}`).toBeNull()
    const sel = session.selectTokens!(ctx, 2, q)!
    for (let g = 0; g < M.kvHeads; g++) expect(Array.from(sel[g]!)).toEqual(refTokenSelect(ctx, 2, [0, 1], q, 48, 4, 8))
    // the GPU plan carries the dense layers
    expect(session.selectionPlan?.(ctx)).toMatchObject({ kind: 'soft-vote', dense: 2, budget: 48 })
    session.dispose?.()
    cache.dispose()
  })

  it('refuses an even pool, and leaves the GPU plan to an unpooled vote', () => {
    expect(() => createPolicy('tokenselect:tokens=64,pool=4', M)).toThrow(/pool must be odd, got 4/)
    const { ctx, cache } = randomContext(3, M, 200, 1)
    expect(createPolicy('tokenselect:tokens=64,pool=5', M)!.start().selectionPlan?.(ctx) ?? null).toBeNull()
    expect(createPolicy('tokenselect:tokens=64', M)!.start().selectionPlan?.(ctx)).toMatchObject({ kind: 'soft-vote' })
    cache.dispose()
  })
})

describe('TokenSelect Selection Cache', () => {
  it('reuses the last top-k while cos(q_t, q_cached) >= threshold, and the windows stay current', () => {
    const { ctx, cache } = randomContext(5, M, 400, 1)
    const r = rng(9)
    const q0 = randArray(r, M.qHeads * M.headDim, 2)
    const session = createPolicy('tokenselect:tokens=64,first=4,last=8,threshold=0.9', M)!.start()
    session.onPrefillEnd?.(ctx)
    const first = session.selectTokens!(ctx, 0, q0)![0]!
    // a new token arrives in every head; a query close to q0 (cos ~0.99) hits
    const pos = Int32Array.of(400)
    for (let l = 0; l < M.layers; l++) cache.append(l, randArray(r, M.kvHeads * M.headDim), randArray(r, M.kvHeads * M.headDim), pos)
    const near = q0.map((x) => x + 0.1 * (r() - 0.5))
    const again = session.selectTokens!(ctx, 0, near)![0]!
    expect(Array.from(again)).toEqual(Array.from(windowedSelection(401, 4, 8, first.filter((s) => s >= 4 && s < 392))))
    expect(again[again.length - 1]).toBe(400)
    // an unrelated query misses and selects anew, as the twin does
    const far = randArray(r, M.qHeads * M.headDim, 2)
    const fresh = session.selectTokens!(ctx, 0, far)![0]!
    expect(Array.from(fresh)).toEqual(refTokenSelect(ctx, 0, [0, 1], far, 64, 4, 8))
    expect(session.report!()).toEqual({ cacheLookups: 3, cacheHits: 1, cacheHitRate: 1 / 3 })
    cache.dispose()
  })

  it('cache=false selects every step anew and reports no lookups', () => {
    const { ctx, cache } = randomContext(6, M, 300, 1)
    const q = randArray(rng(2), M.qHeads * M.headDim, 2)
    const session = createPolicy('tokenselect:tokens=32,cache=false', M)!.start()
    session.selectTokens!(ctx, 0, q)
    session.selectTokens!(ctx, 0, q)
    expect(session.report!().cacheHits).toBe(0)
    cache.dispose()
  })
})

describe('Quest matches its plain twin', () => {
  const grid: [number, number, number][] = []
  for (const n of [50, 333, 1000]) for (const page of [4, 16]) for (const B of [32, 128]) grid.push([n, page, B])
  it.each(grid)('n=%i page=%i tokens=%i: page scores and the top pages per KV head', (n, page, B) => {
    const { ctx, cache } = randomContext(n + page + B, M, n, 1)
    const q = randArray(rng(n * page), M.qHeads * M.headDim, 2)
    const bounds = new PageBounds(ops.heap, page)
    for (let g = 0; g < M.kvHeads; g++) {
      const got = questPageScores(ctx, bounds, 2, g, q)
      const want = refQuestScores(ctx, 2, g, q, page)
      expect(got.length).toBe(want.length)
      got.forEach((x, i) => expect(x).toBeCloseTo(want[i], 3))
    }
    bounds.free()
    const { session, sel } = selectOnce(createPolicy(`quest:tokens=${B},page=${page}`, M)!, ctx, 2, q)
    const pages = Math.ceil(n / page)
    const kPages = Math.floor(B / page)
    if (pages <= kPages) expect(sel!.every((s) => s === null)).toBe(true)
    else {
      for (let g = 0; g < M.kvHeads; g++) {
        const want = refQuestScores(ctx, 2, g, q, page)
        const order = want.slice(0, pages - 1).map((s, i) => [s, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).map((x) => x[1])
        expect(Array.from(sel![g]!)).toEqual(Array.from(pageSlots([...order.slice(0, kPages - 1), pages - 1], page, n)))
      }
    }
    session.dispose?.()
    cache.dispose()
  })

  it('the first `dense` layers attend densely', () => {
    const { ctx, cache } = randomContext(1, M, 500, 1)
    const q = randArray(rng(1), M.qHeads * M.headDim)
    const s = createPolicy('quest:tokens=64,dense=2', M)!.start()
    expect(s.selectTokens!(ctx, 0, q)).toBeNull()
    expect(s.selectTokens!(ctx, 1, q)).toBeNull()
    expect(s.selectTokens!(ctx, 2, q)).not.toBeNull()
    s.dispose?.()
    cache.dispose()
  })

  it.each([1, 7, 16, 40])('page bounds folded in as %i tokens arrive equal bounds rebuilt from scratch', (add) => {
    const { ctx, cache } = randomContext(add, M, 100, 1)
    const folded = new PageBounds(ops.heap, 16)
    folded.view(ctx, 0, 1)
    const r = rng(add)
    for (let t = 0; t < add; t++) cache.append(0, randArray(r, M.kvHeads * M.headDim), randArray(r, M.kvHeads * M.headDim), Int32Array.of(100 + t))
    const a = folded.view(ctx, 0, 1)
    const got = ops.heap.f32(ops.heap.I32[a.kTable >> 2], a.n * a.d).slice()
    const fresh = new PageBounds(ops.heap, 16)
    const b = fresh.view(ctx, 0, 1)
    expect(got).toEqual(ops.heap.f32(ops.heap.I32[b.kTable >> 2], b.n * b.d).slice())
    folded.free()
    fresh.free()
    cache.dispose()
  })
})

describe('DELTA matches its plain twin', () => {
  /** float64: per page, sum over its tokens of the max over all query heads of softmax(q_h . k / sqrt(d)) */
  function refDeltaScores(ctx: PolicyContext, layer: number, q: Float32Array, page: number): number[] {
    const { group, headDim: d, kvHeads } = ctx.model
    const n = ctx.cache.length(layer, 0)
    const best = new Array(n).fill(0)
    for (let g = 0; g < kvHeads; g++) {
      const K = keysOf(ctx, layer, g)
      for (let h = g * group; h < (g + 1) * group; h++) refProbs(q, h, K, n, d).forEach((p, i) => (best[i] = Math.max(best[i], p)))
    }
    const out = new Array(Math.ceil(n / page)).fill(0)
    best.forEach((x, i) => (out[Math.floor(i / page)] += x))
    return out
  }
  it.each([[200, 16, 64, 2], [333, 4, 40, 3], [90, 8, 200, 1]])('n=%i page=%i tokens=%i recent=%i: full layer dense, Δ layer dense and scoring, sparse layers attend to its top pages + recent pages', (n, page, B, recent) => {
    const { ctx, cache } = randomContext(n + B, M, n, 1)
    const q = randArray(rng(n), M.qHeads * M.headDim, 3)
    const s = createPolicy(`delta:tokens=${B},page=${page},full=1,interval=2,recent=${recent}`, M)!.start()
    expect(s.selectTokens!(ctx, 0, q)).toBeNull()
    expect(s.selectTokens!(ctx, 1, q)).toBeNull()
    const sel = s.selectTokens!(ctx, 2, q)
    const pages = Math.ceil(n / page)
    const kPages = Math.floor(B / page)
    if (pages <= kPages) expect(sel).toBeNull()
    else {
      const want = refDeltaScores(ctx, 1, q, page)
      const r = Math.min(recent, kPages)
      const order = want.slice(0, pages - r).map((x, i) => [x, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).map((x) => x[1])
      const slots = Array.from(pageSlots([...order.slice(0, kPages - r), ...Array.from({ length: r }, (_, i) => pages - r + i)], page, n))
      for (let g = 0; g < M.kvHeads; g++) expect(Array.from(sel![g]!)).toEqual(slots)
    }
    cache.dispose()
  })
})

describe('NOSA-style locality', () => {
  it.each([[640, 64, 512, 0.5], [300, 16, 128, 0.25], [300, 16, 128, 1]])('n=%i block=%i tokens=%i agnostic=%f: value-norm blocks + Quest-bound blocks + the newest, transfers counted', (n, block, B, share) => {
    const { ctx, cache } = randomContext(n, M, n, 1)
    const r = rng(n)
    const q = randArray(r, M.qHeads * M.headDim, 2)
    const s = createPolicy(`nosa:tokens=${B},block=${block},agnostic=${share}`, M)!.start()
    const sel = s.selectTokens!(ctx, 1, q)!
    const blocks = Math.ceil(n / block)
    const k = Math.floor(B / block)
    const rank = (score: number[], skip: Set<number>, count: number) => score.map((x, i) => [x, i]).filter(([, i]) => !skip.has(i)).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, count).map((x) => x[1])
    for (let g = 0; g < M.kvHeads; g++) {
      const V = ctx.cache.readValues(1, g)
      const norms = Array.from({ length: blocks - 1 }, (_, b) => {
        let t = 0
        for (let i = b * block; i < (b + 1) * block; i++) t += Math.hypot(...V.subarray(i * M.headDim, (i + 1) * M.headDim))
        return t / block
      })
      const chosen = new Set([blocks - 1, ...rank(norms, new Set(), Math.round(share * (k - 1)))])
      for (const b of rank(refQuestScores(ctx, 1, g, q, block).slice(0, blocks - 1), chosen, k - chosen.size)) chosen.add(b)
      expect(Array.from(sel[g]!)).toEqual(Array.from(pageSlots([...chosen], block, n)))
    }
    s.selectTokens!(ctx, 1, q)
    const same = s.report!()
    expect(same.blocksMoved).toBe(same.blocksSelected / 2)
    s.selectTokens!(ctx, 1, randArray(r, M.qHeads * M.headDim, 2))
    const after = s.report!()
    // the agnostic part and the newest block stay: only query-aware blocks can move
    expect(after.blocksMoved - same.blocksMoved).toBeLessThanOrEqual(M.kvHeads * (k - 1 - Math.round(share * (k - 1))))
    s.dispose?.()
    cache.dispose()
  })
})

describe("MPCache's dynamic part as a selection policy", () => {
  it.each([[100, 8, 4], [400, 32, 16], [1000, 32, 16]])('n=%i cluster=%i block=%i: each KV head gets the cleartext reference on its group\'s summed query; the next layer shares it', (n, cluster, block) => {
    const { ctx, cache } = randomContext(n, M, n, 1)
    const q = randArray(rng(n), M.qHeads * M.headDim, 2)
    const s = createPolicy(`mpcache_select:cluster=${cluster},block=${block}`, M)!.start()
    const sel = s.selectTokens!(ctx, 0, q)!
    for (let g = 0; g < M.kvHeads; g++) {
      const qg = new Float32Array(M.headDim)
      for (let h = 0; h < M.group; h++) for (let c = 0; c < M.headDim; c++) qg[c] += q[(g * M.group + h) * M.headDim + c]
      const want = n <= 2 * cluster ? null : mpcacheDynamicSelect(qg, keysOf(ctx, 0, g), n, M.headDim, { clusterTokens: cluster, blockTokens: block })
      expect(sel[g] && Array.from(sel[g]!)).toEqual(want && Array.from(want))
      if (want) expect(want.length).toBeLessThan(n)
    }
    // layer 1 shares layer 0's lists; layer 2 selects anew
    expect(s.selectTokens!(ctx, 1, randArray(rng(1), M.qHeads * M.headDim))).toBe(sel)
    expect(s.selectTokens!(ctx, 2, q)).not.toBe(sel)
    cache.dispose()
  })
})

describe('sparse attention over a selection equals dense attention restricted to it', () => {
  let backend: Backend
  beforeAll(async () => {
    backend = await createBackend('wasm')
  })
  const grid: [number, number, number][] = []
  for (const n of [20, 64, 65, 300]) for (const density of [0.1, 0.5, 1]) for (const pageTokens of [16, 64]) grid.push([n, density, pageTokens])
  it.each(grid)('n=%i, %f of the slots, pages of %i: bit for bit', (n, density, pageTokens) => {
    const heap = backend.heap
    const d = 16
    const group = 4
    const r = rng(n * 13 + pageTokens)
    const whole = new PagedKVCache(backend, { layers: 1, kvHeads: 1, headDim: d, pageTokens })
    const K = randArray(r, n * d)
    const V = randArray(r, n * d)
    whole.append(0, K, V, Int32Array.from({ length: n }, (_, i) => i))
    const picked = Int32Array.from({ length: n }, (_, i) => i).filter((i) => i === n - 1 || r() < density)
    const part = new PagedKVCache(backend, { layers: 1, kvHeads: 1, headDim: d, pageTokens })
    const rows = (A: Float32Array) => Float32Array.from({ length: picked.length * d }, (_, j) => A[picked[Math.floor(j / d)] * d + (j % d)])
    part.append(0, rows(K), rows(V), picked)
    const q = heap.f32From(randArray(r, group * d, 2))
    const out = [heap.allocF32(group * d), heap.allocF32(group * d)]
    const base = { layer: 0, q: q.ptr, T: 1, qHeads: group, scale: 1 / Math.sqrt(d) }
    attendCache(backend, whole, { ...base, out: out[0].ptr, select: [picked] })
    attendCache(backend, part, { ...base, out: out[1].ptr })
    expect(out[0].view.slice()).toEqual(out[1].view.slice())
    for (const b of [q, ...out]) b.free()
    whole.dispose()
    part.dispose()
  })
})

describe('selection composes with eviction', () => {
  it.each(['snapkv:tokens=24+tokenselect:tokens=8,first=2,last=2', 'tokenselect:tokens=8,first=2,last=2+snapkv:tokens=24', 'adakv:tokens=24,window=4+quest:tokens=8,page=4,dense=0'])('%s selects among the slots eviction kept', (spec) => {
    const p = createPolicy(spec, M)!
    const { ctx, cache } = randomContext(4, M, 120, 8)
    const s = p.start()
    const d = s.onPrefillEnd!(ctx)
    if (d) {
      cache.apply(d)
      s.onApplied?.(d, ctx)
    }
    const q = randArray(rng(4), M.qHeads * M.headDim)
    for (let l = 0; l < M.layers; l++) {
      const sel = s.selectTokens!(ctx, l, q)
      // AdaKV shares 24 a head across the layer's heads, raggedly
      expect(cache.length(l, 0) + cache.length(l, 1)).toBe(48)
      for (let g = 0; g < M.kvHeads; g++) {
        const n = cache.length(l, g)
        const list = sel?.[g]
        if (list) {
          expect(list.length).toBeLessThanOrEqual(8)
          expect(list.every((x, i) => x >= 0 && x < n && (i === 0 || x > list[i - 1]))).toBe(true)
          expect(list[list.length - 1]).toBe(n - 1)
        }
      }
    }
    s.dispose?.()
    cache.dispose()
  })
})

describe('selection end to end on a model', () => {
  let model: LlamaModel
  beforeAll(async () => {
    model = await loadModel(makeTinyModel({ eos_token_id: null }), { backend: 'wasm' })
  })
  afterAll(() => model?.dispose())
  const prompt = Array.from({ length: 40 }, (_, i) => 5 + ((i * 37) % 200))

  it.each(['tokenselect:tokens=64', 'quest:tokens=64,page=4', 'tokenselect:tokens=64,rope=selected'])('%s with a budget above the sequence decodes as the full cache does', async (spec) => {
    const full = await model.generate(prompt, { maxNewTokens: 6 }).result
    const sel = await model.generate(prompt, { maxNewTokens: 6, policy: spec }).result
    expect(sel.ids).toEqual(full.ids)
  })

  it.each(['tokenselect:tokens=12,first=2,last=4', 'quest:tokens=12,page=4,dense=1', 'tokenselect:tokens=12,first=2,last=4,rope=selected'])('%s decodes and reports its counters, freeing what it held', async (spec) => {
    const live = model.backend.heap.bytesLive
    const r = await model.generate(prompt, { maxNewTokens: 6, policy: spec }).result
    expect(r.ids.length).toBe(6)
    expect(r.stats.kvBytes.total).toBe(r.stats.kvBytesFull)
    if (spec.startsWith('tokenselect')) expect(r.stats.policy!.cacheLookups).toBe(6 * model.config.layers)
    expect(model.backend.heap.bytesLive).toBe(live)
  })
})
