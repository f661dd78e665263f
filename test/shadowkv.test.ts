/**
 * ShadowKV (issue 11): the truncated SVD against ml-matrix's own SVD (another algorithm); the chunk
 * layout, chunk choice and rebuilt keys against a plain TypeScript twin on small caches; attention with
 * rebuilt keys against dense attention over a cache holding those keys; end to end on the fixture model
 * through the public API (the full cache's tokens at a budget covering every token, the values in the
 * host tier, typed errors for bad options before any work).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SVD, Matrix } from 'ml-matrix'
import { attendCache, attendCacheAsync } from '../src/cache/attention.js'
import { CacheError } from '../src/cache/errors.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { RopeTables } from '../src/model/rope.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { createPolicy, PolicyCompositionError, PolicyOptionValueError, PolicySpecError, UnknownPolicyOptionError } from '../src/policies/registry.js'
import { EXACT_COLUMNS, lowRankFactors } from '../src/policies/low-rank.js'
import type { TokenSelection } from '../src/cache/types.js'
import type { PolicyContext } from '../src/policies/types.js'
import { ops, randArray, randomContext, rng, shape } from './policy-context-helpers.js'

const backend = ops.backend

/** a [rows][cols] float32 matrix of rank `rank` (product of two random factors) */
function rankLimited(r: () => number, rows: number, cols: number, rank: number): Float32Array {
  const a = randArray(r, rows * rank)
  const b = randArray(r, rank * cols)
  const x = new Float32Array(rows * cols)
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) for (let k = 0; k < rank; k++) x[i * cols + j] += a[i * rank + k] * b[k * cols + j]
  return x
}

describe('lowRankFactors against ml-matrix SVD', () => {
  it.each([[40, 8, 3], [200, 16, 5], [300, 32, 12], [64, 32, 32]])('T=%i n=%i rank=%i: singular values and the best rank-r error (Eckart-Young)', (T, n, r) => {
    const x = randArray(rng(T + n + r), T * n)
    const f = lowRankFactors(backend, x, T, n, r)
    const svd = new SVD(new Matrix(Array.from({ length: T }, (_, i) => Array.from(x.subarray(i * n, (i + 1) * n)))), { autoTranspose: true })
    const s = svd.diagonal
    for (let k = 0; k < r; k++) expect(Math.abs(f.singular[k] - s[k])).toBeLessThan(1e-3 * s[0])
    // ||X - A B||_F^2 = sum of the dropped squared singular values
    let err = 0
    for (let i = 0; i < T; i++) for (let j = 0; j < n; j++) {
      let y = 0
      for (let k = 0; k < r; k++) y += f.a[i * r + k] * f.b[k * n + j]
      err += (x[i * n + j] - y) ** 2
    }
    const dropped = s.slice(r).reduce((a, v) => a + v * v, 0)
    const total = s.reduce((a, v) => a + v * v, 0)
    expect(Math.abs(err - dropped) / total).toBeLessThan(1e-4)
    expect(f.energy).toBeCloseTo(1 - dropped / total, 4)
  })

  it('a matrix of rank r comes back exactly from r components', () => {
    const x = rankLimited(rng(3), 120, 24, 4)
    const f = lowRankFactors(backend, x, 120, 24, 4)
    let worst = 0
    for (let i = 0; i < 120; i++) for (let j = 0; j < 24; j++) {
      let y = 0
      for (let k = 0; k < 4; k++) y += f.a[i * 4 + k] * f.b[k * 24 + j]
      worst = Math.max(worst, Math.abs(y - x[i * 24 + j]))
    }
    expect(worst).toBeLessThan(2e-3)
    expect(f.energy).toBeCloseTo(1, 5)
  })

  it('past EXACT_COLUMNS columns, randomized subspace iteration keeps the leading singular values and the best rank-r energy', () => {
    // a decaying spectrum, as keys have: column j scaled by 0.97^j
    const T = 400
    const n = EXACT_COLUMNS + 64
    const r = 24
    const x = randArray(rng(11), T * n)
    for (let i = 0; i < T; i++) for (let j = 0; j < n; j++) x[i * n + j] *= 0.97 ** j
    const f = lowRankFactors(backend, x, T, n, r)
    const s = new SVD(new Matrix(Array.from({ length: T }, (_, i) => Array.from(x.subarray(i * n, (i + 1) * n)))), { autoTranspose: true, computeLeftSingularVectors: false, computeRightSingularVectors: false }).diagonal
    for (let k = 0; k < r; k++) expect(Math.abs(f.singular[k] - s[k]) / s[k]).toBeLessThan(2e-2)
    const total = s.reduce((a, v) => a + v * v, 0)
    const best = s.slice(0, r).reduce((a, v) => a + v * v, 0) / total
    expect(Math.abs(f.energy - best)).toBeLessThan(5e-3)
    // and A B is that close to X: ||X - A B||^2 / ||X||^2 within 5e-3 of the optimum 1 - best
    let err = 0
    for (let i = 0; i < T; i++) for (let j = 0; j < n; j++) {
      let y = 0
      for (let k = 0; k < r; k++) y += f.a[i * r + k] * f.b[k * n + j]
      err += (x[i * n + j] - y) ** 2
    }
    expect(Math.abs(err / total - (1 - best))).toBeLessThan(5e-3)
  })

  it.each([0, 9, 1.5])('rank %s outside [1, min(T, n)] is a RangeError', (r) => {
    expect(() => lowRankFactors(backend, new Float32Array(16), 2, 8, r)).toThrow(RangeError)
  })
})

// ---- the plain twin: chunk layout, outliers, chunk choice, rebuilt keys ----

interface TwinOptions { tokens: number; chunk: number; outliers: number; sink: number; local: number }

/** float64 RoPE of one [d] row at position p (rotate-half, angle fround(p f) as the runtime's tables) */
function ropeRow(x: ArrayLike<number>, p: number, inv: Float32Array): number[] {
  const h = inv.length
  const out = Array.from(x)
  for (let i = 0; i < h; i++) {
    const a = Math.fround(p * inv[i])
    out[i] = x[i] * Math.cos(a) - x[i + h] * Math.sin(a)
    out[i + h] = x[i + h] * Math.cos(a) + x[i] * Math.sin(a)
  }
  return out
}

/** ShadowKV's step for one KV head, written from the paper without the kernels: the selected slots and which are rebuilt */
function twinSelect(K: Float32Array, n: number, d: number, q: Float32Array, g: number, group: number, o: TwinOptions): { slots: number[]; rebuilt: Set<number> } {
  const sink = Math.min(o.sink, n)
  const chunks = Math.max(0, Math.floor((n - sink - o.local) / o.chunk))
  const localStart = sink + chunks * o.chunk
  const mean = (c: number) => Array.from({ length: d }, (_, j) => {
    let s = 0
    for (let t = 0; t < o.chunk; t++) s += K[(sink + c * o.chunk + t) * d + j]
    return s / o.chunk
  })
  const cos = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    let ab = 0, aa = 0, bb = 0
    for (let j = 0; j < d; j++) {
      ab += a[j] * b[j]
      aa += a[j] * a[j]
      bb += b[j] * b[j]
    }
    return ab / Math.sqrt(aa * bb)
  }
  const landmarks = Array.from({ length: chunks }, (_, c) => mean(c))
  const minCos = landmarks.map((l, c) => Math.min(...Array.from({ length: o.chunk }, (_, t) => cos(K.subarray((sink + c * o.chunk + t) * d), l))))
  const byCos = landmarks.map((_, c) => c).sort((a, b) => minCos[a] - minCos[b] || a - b)
  const outliers = new Set(byCos.slice(0, Math.min(o.outliers, chunks)))
  const scored = landmarks.map((_, c) => c).filter((c) => !outliers.has(c))
  const best = scored.map((c) => {
    let m = -Infinity
    for (let h = g * group; h < (g + 1) * group; h++) {
      const logits = scored.map((c2) => landmarks[c2].reduce((s, v, j) => s + v * q[h * d + j], 0) / Math.sqrt(d))
      const top = Math.max(...logits)
      const z = logits.reduce((s, x) => s + Math.exp(x - top), 0)
      m = Math.max(m, Math.exp(logits[scored.indexOf(c)] - top) / z)
    }
    return m
  })
  const kSel = Math.max(1, Math.floor(o.tokens / o.chunk))
  const chosen = scored.map((c, i) => [c, i]).sort((a, b) => best[b[1]] - best[a[1]] || a[0] - b[0]).slice(0, kSel).map(([c]) => c)
  const rebuilt = new Set(chosen.flatMap((c) => Array.from({ length: o.chunk }, (_, t) => sink + c * o.chunk + t)))
  const dense = [
    ...Array.from({ length: sink }, (_, i) => i),
    ...[...outliers].flatMap((c) => Array.from({ length: o.chunk }, (_, t) => sink + c * o.chunk + t)),
    ...Array.from({ length: n - localStart }, (_, i) => localStart + i),
  ]
  return { slots: [...dense, ...rebuilt].sort((a, b) => a - b), rebuilt }
}

describe('ShadowKV selection and rebuilt keys match the plain twin', () => {
  const M = shape(2, 6, 2, 8)
  const inv = Float32Array.from({ length: M.headDim / 2 }, (_, i) => 1 / Math.pow(10000, (2 * i) / M.headDim))
  const rope = new RopeTables(backend, inv)
  const grid: [number, TwinOptions, number][] = []
  for (const n of [60, 150]) {
    for (const [tokens, chunk, outliers, sink, local] of [[8, 4, 2, 2, 4], [16, 2, 3, 0, 2], [12, 8, 1, 4, 8], [24, 4, 0, 1, 5]]) {
      for (const rank of [4, 16]) grid.push([n, { tokens, chunk, outliers, sink, local }, rank])
    }
  }
  it.each(grid)('n=%i %o rank=%i: the same slots; exact keys for sink, outliers and local window; keys of rank <= r rebuilt exactly', (n, o, rank) => {
    // pre-RoPE keys of rank 4 (both heads side by side), stored post-RoPE at positions 0..n-1
    const r = rng(n * 31 + o.tokens + rank)
    const pre = rankLimited(r, n, M.kvHeads * M.headDim, 4)
    const { ctx, cache } = randomContext(n + rank, M, n, 1, undefined, (_, k) => {
      for (let t = 0; t < n; t++) for (let g = 0; g < M.kvHeads; g++) k.set(ropeRow(pre.subarray((t * M.kvHeads + g) * M.headDim, (t * M.kvHeads + g + 1) * M.headDim), t, inv), (t * M.kvHeads + g) * M.headDim)
    })
    const c: PolicyContext = { ...ctx, runtime: { ropeTables: (p: ArrayLike<number>, cos: number, sin: number) => rope.fill(p, cos, sin) } as PolicyContext['runtime'] }
    const posts = Array.from({ length: M.kvHeads }, (_, g) => cache.readKeys(1, g))
    const s = createPolicy(`shadowkv:tokens=${o.tokens},chunk=${o.chunk},outliers=${o.outliers},sink=${o.sink},local=${o.local},rank=${rank}`, M)!.start()
    s.onPrefillEnd!(c)
    expect(cache.bytes().offloaded).toBe(cache.bytes().total)
    // a decode token lands in the arena and is always attended
    for (let l = 0; l < M.layers; l++) cache.append(l, randArray(r, M.kvHeads * M.headDim), randArray(r, M.kvHeads * M.headDim), Int32Array.of(n))
    const q = randArray(r, M.qHeads * M.headDim, 2)
    const sel = s.selectTokens!(c, 1, q) as TokenSelection
    for (let g = 0; g < M.kvHeads; g++) {
      const want = twinSelect(posts[g], n, M.headDim, q, g, M.group, o)
      expect(Array.from(sel[g]!)).toEqual([...want.slots, n])
      const keys = ops.heap.f32(sel.rebuiltKeys![g], want.slots.length * M.headDim)
      want.slots.forEach((slot, i) => {
        const got = Array.from(keys.subarray(i * M.headDim, (i + 1) * M.headDim))
        const exact = Array.from(posts[g].subarray(slot * M.headDim, (slot + 1) * M.headDim))
        if (!want.rebuilt.has(slot)) expect(got).toEqual(exact)
        else if (rank >= 4) got.forEach((v, j) => expect(Math.abs(v - exact[j])).toBeLessThan(2e-3 * (1 + Math.abs(exact[j]))))
      })
    }
    s.dispose!()
    cache.dispose()
  })

  it('a prompt whose chunks fit the budget stays dense, in the arena', () => {
    const { ctx, cache } = randomContext(2, M, 40, 1)
    const s = createPolicy('shadowkv:tokens=64,chunk=4', M)!.start()
    s.onPrefillEnd!({ ...ctx, runtime: { ropeTables: () => {} } as unknown as PolicyContext['runtime'] })
    expect(s.selectTokens!(ctx, 0, new Float32Array(M.qHeads * M.headDim))).toBeNull()
    expect(cache.bytes().offloaded).toBe(0)
    s.dispose!()
    cache.dispose()
  })
})

describe('attention with rebuilt keys', () => {
  const d = 8
  const group = 2
  it.each([[30, 16], [100, 64], [100, 16]])('n=%i pages of %i: equals dense attention over a cache holding the rebuilt keys, synchronous and awaited', async (n, pageTokens) => {
    const r = rng(n + pageTokens)
    const heap = backend.heap
    const K = randArray(r, n * d)
    const V = randArray(r, n * d)
    const pos = Int32Array.from({ length: n }, (_, i) => i)
    const host = new PagedKVCache(backend, { layers: 1, kvHeads: 1, headDim: d, pageTokens })
    host.append(0, K.subarray(0, (n - 2) * d), V.subarray(0, (n - 2) * d), pos.subarray(0, n - 2))
    host.moveTo('host')
    host.append(0, K.subarray((n - 2) * d), V.subarray((n - 2) * d), pos.subarray(n - 2))
    const sel = pos.filter((i) => i % 3 === 0 || i >= n - 2)
    const outside = sel.filter((i) => i < n - 2)
    const R = randArray(r, outside.length * d)
    const rebuilt = heap.f32From(R)
    // the reference: a cache of the selected rows, keys rebuilt where the host held them
    const ref = new PagedKVCache(backend, { layers: 1, kvHeads: 1, headDim: d, pageTokens })
    const rowsK = new Float32Array(sel.length * d)
    const rowsV = new Float32Array(sel.length * d)
    sel.forEach((s, i) => {
      rowsK.set(i < outside.length ? R.subarray(i * d, (i + 1) * d) : K.subarray(s * d, (s + 1) * d), i * d)
      rowsV.set(V.subarray(s * d, (s + 1) * d), i * d)
    })
    ref.append(0, rowsK, rowsV, sel)
    const q = heap.f32From(randArray(r, group * d, 2))
    const outs = [0, 1, 2].map(() => heap.allocF32(group * d))
    const base = { layer: 0, q: q.ptr, T: 1, qHeads: group, scale: 1 / Math.sqrt(d) }
    attendCache(backend, host, { ...base, out: outs[0].ptr, select: [sel], rebuiltKeys: [rebuilt.ptr] })
    await attendCacheAsync(backend, host, { ...base, out: outs[1].ptr, select: [sel], rebuiltKeys: [rebuilt.ptr] })
    attendCache(backend, ref, { ...base, out: outs[2].ptr })
    const want = outs[2].view.slice()
    for (const o of outs.slice(0, 2)) o.view.forEach((v, i) => expect(v).toBeCloseTo(want[i], 5))
    for (const b of [q, rebuilt, ...outs]) b.free()
    host.dispose()
    ref.dispose()
  })

  it('rebuilt keys without a selection for the head are a CacheError', () => {
    const c = new PagedKVCache(backend, { layers: 1, kvHeads: 1, headDim: d, pageTokens: 16 })
    c.append(0, new Float32Array(4 * d), new Float32Array(4 * d), Int32Array.from([0, 1, 2, 3]))
    const heap = backend.heap
    const q = heap.allocF32(group * d)
    const out = heap.allocF32(group * d)
    expect(() => attendCache(backend, c, { layer: 0, q: q.ptr, T: 1, qHeads: group, out: out.ptr, scale: 1, rebuiltKeys: [q.ptr] })).toThrow(CacheError)
    q.free()
    out.free()
    c.dispose()
  })
})

describe('ShadowKV end to end on the fixture model', () => {
  let model: LlamaModel
  beforeAll(async () => {
    model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
  })
  afterAll(() => model?.dispose())
  const prompt = (n: number) => [0, ...Array.from({ length: n - 1 }, (_, i) => 2 + ((i * 7919) % 4000))]

  it.each([[120, 'tokens=200'], [300, 'budget=1,outliers=0,sink=0,local=0']])('%i tokens, %s: a budget covering every token gives the full cache\'s tokens', async (n, opt) => {
    const ids = prompt(n)
    const full = await model.generate(ids, { maxNewTokens: 8 }).result
    const skv = await model.generate(ids, { maxNewTokens: 8, policy: `shadowkv:${opt}` }).result
    expect(skv.ids).toEqual(full.ids)
  })

  it.each([[400, 64], [700, 128]])('%i tokens, tokens=%i: the prompt\'s values live in the host tier, keys are rebuilt, the arena is freed after', async (n, B) => {
    const { layers, kvHeads, headDim } = model.config
    const live = model.backend.heap.bytesLive
    const steps = 4
    const r = await model.generate(prompt(n), { maxNewTokens: steps, policy: `shadowkv:tokens=${B},outliers=4` }).result
    const valueBytes = layers * kvHeads * (n - 1) * headDim * 4
    // the store keeps a row's key and value in one tier: the host holds the values (and the unread exact keys)
    expect(r.stats.kvBytes.offloaded).toBe(2 * valueBytes)
    expect(r.stats.kvBytes.hot).toBe(layers * kvHeads * steps * headDim * 2 * 4)
    const p = r.stats.policy!
    expect(p.keysRebuilt).toBe(steps * layers * kvHeads * Math.floor(B / 8) * 8)
    expect(p.shadowBytes).toBeGreaterThan(0)
    expect(p.keyEnergy).toBeGreaterThan(0.5)
    expect(model.backend.heap.bytesLive).toBe(live)
  })

  it('composes after prefill-time eviction: factors the slots SnapKV kept (heads holding different slots, one by one)', async () => {
    const { layers, kvHeads, headDim } = model.config
    const r = await model.generate(prompt(500), { maxNewTokens: 3, policy: 'snapkv:budget=0.5+shadowkv:tokens=64,outliers=2' }).result
    const kept = Math.floor(0.5 * 499)
    expect(r.stats.kvBytes.offloaded).toBe(2 * layers * kvHeads * kept * headDim * 4)
    expect(r.stats.policy!.keysRebuilt).toBe(3 * layers * kvHeads * 64)
  })

  it('a part deciding during decoding beside it is a PolicyCompositionError at the generate call', () => {
    expect(() => model.generate(prompt(300), { maxNewTokens: 4, policy: 'streamingllm:tokens=200,every=1+shadowkv:tokens=32,outliers=2' })).toThrow(PolicyCompositionError)
    expect(() => model.generate(prompt(300), { maxNewTokens: 4, policy: 'streamingllm:tokens=200,every=1+shadowkv:tokens=32,outliers=2' })).toThrow(/after shadowkv factored the prompt/)
  })

  it('runs on float16 pages (rebuilt keys rounded to halves)', async () => {
    const m16 = (await loadModel(defaultModelDir(), { backend: 'wasm', kvDtype: 'float16' })) as LlamaModel
    try {
      const r = await m16.generate(prompt(300), { maxNewTokens: 3, policy: 'shadowkv:tokens=64,outliers=4' }).result
      expect(r.ids.length).toBe(3)
      expect(r.stats.kvBytes.offloaded).toBe(2 * m16.config.layers * m16.config.kvHeads * 299 * m16.config.headDim * 2)
    } finally {
      m16.dispose()
    }
  })

  it.each([
    ['shadowkv:rank=0', PolicyOptionValueError], ['shadowkv:rank=129', PolicyOptionValueError], ['shadowkv:chunk=0', PolicyOptionValueError],
    ['shadowkv:tokens=0', PolicyOptionValueError], ['shadowkv:budget=1.5', PolicyOptionValueError], ['shadowkv:outliers=-1', PolicyOptionValueError],
    ['shadowkv:budget=0.5,tokens=8', PolicySpecError], ['shadowkv:svd=1', UnknownPolicyOptionError],
  ])('%s is refused with %O before any work', async (spec, type) => {
    const live = model.backend.heap.bytesLive
    let seen: unknown = null
    try {
      await model.generate(prompt(50), { maxNewTokens: 2, policy: spec }).result
    } catch (e) {
      seen = e
    }
    expect(seen).toBeInstanceOf(type)
    expect(String((seen as Error).message)).toMatch(spec.split(':')[1].split('=')[0].split(',')[0])
    expect(model.backend.heap.bytesLive).toBe(live)
  })
})
