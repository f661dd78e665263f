import { beforeAll, describe, expect, it } from 'vitest'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { attendCache } from '../src/cache/attention.js'
import { CacheError } from '../src/cache/errors.js'
import type { Decision } from '../src/cache/types.js'

let be: CreatedBackend
beforeAll(async () => {
  be = await createBackend('wasm')
})

const L = 2, H = 2, D = 8, PT = 4

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1
  return () => {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5
    return ((s >>> 0) / 4294967296) * 2 - 1
  }
}
/** a cache with n tokens in every (layer, head); row values are recorded for checking */
function filled(n: number, seed = 1, keys: 'post-rope' | 'pre-rope' = 'post-rope') {
  const cache = new PagedKVCache(be.heap, { layers: L, kvHeads: H, headDim: D, pageTokens: PT, keys })
  const r = rng(seed)
  const K: Float32Array[] = [], V: Float32Array[] = []
  for (let l = 0; l < L; l++) {
    const k = Float32Array.from({ length: n * H * D }, r)
    const v = Float32Array.from({ length: n * H * D }, r)
    cache.append(l, k, v, Int32Array.from({ length: n }, (_, i) => 100 + i))
    K.push(k); V.push(v)
  }
  /** row i of (layer, head) as [n][H][D] was appended */
  const row = (a: Float32Array[], l: number, h: number, i: number) => a[l].slice((i * H + h) * D, (i * H + h + 1) * D)
  return { cache, keyRow: (l: number, h: number, i: number) => row(K, l, h, i), valueRow: (l: number, h: number, i: number) => row(V, l, h, i) }
}
const keepAll = (n: number) => Int32Array.from({ length: n }, (_, i) => i)
const pageBytes = PT * D * 4

describe('PagedKVCache storage', () => {
  it('stores ragged per-head lengths for real: bytes are kept tokens x bytes per token, pages match', () => {
    const { cache, keyRow, valueRow } = filled(10)
    expect(cache.bytesPerToken).toBe(L * H * 2 * D * 4)
    expect(cache.bytes().hot).toBe(10 * cache.bytesPerToken)
    const keeps = [[0, 3, 9], [1, 2, 4, 5, 6, 7, 8], keepAll(10), []].map((k) => Int32Array.from(k))
    const liveBefore = be.heap.bytesLive
    cache.apply({ heads: keeps.map((keep, i) => ({ layer: i >> 1, head: i & 1, keep })) })
    const lens = keeps.map((k) => k.length)
    lens.forEach((n, i) => expect(cache.length(i >> 1, i & 1)).toBe(n))
    const b = cache.bytes()
    expect(b.hot).toBe(lens.reduce((s, n) => s + n, 0) * 2 * D * 4)
    // whole pages per head (keys and values) plus two page tables of 4 entries each
    const pages = lens.reduce((s, n) => s + Math.ceil(n / PT), 0)
    expect(b.reserved).toBe(pages * 2 * pageBytes + 4 * 2 * 4 * 4)
    expect(be.heap.bytesLive).toBeLessThan(liveBefore)
    // rows and positions follow the keep lists
    expect(Array.from(cache.positions(0, 0))).toEqual([100, 103, 109])
    const k = cache.readKeys(0, 1)
    const v = cache.readValues(0, 1)
    keeps[1].forEach((slot, i) => {
      expect(k.slice(i * D, (i + 1) * D)).toEqual(keyRow(0, 1, slot))
      expect(v.slice(i * D, (i + 1) * D)).toEqual(valueRow(0, 1, slot))
    })
    cache.dispose()
  })

  it('appends after compaction into the pooled pages and reuses memory after clear()', () => {
    const { cache } = filled(9)
    cache.apply({ heads: [{ layer: 0, head: 0, keep: Int32Array.of(2, 5) }] })
    const k = new Float32Array(H * D).fill(7)
    cache.append(0, k, k, Int32Array.of(200))
    expect(cache.length(0, 0)).toBe(3)
    expect(cache.length(0, 1)).toBe(10)
    expect(Array.from(cache.positions(0, 0))).toEqual([102, 105, 200])
    expect(cache.readKeys(0, 0).slice(2 * D)).toEqual(new Float32Array(D).fill(7))
    cache.clear()
    expect(cache.bytes().hot).toBe(0)
    const live = be.heap.bytesLive
    cache.append(1, k, k, Int32Array.of(0))
    // the page came from the pool: no new heap memory
    expect(be.heap.bytesLive).toBe(live)
    cache.dispose()
  })

  it('merges tokens into a kept pivot with their weights and evicts unkept members', () => {
    const { cache, keyRow, valueRow } = filled(6)
    cache.apply({
      heads: [{
        layer: 1, head: 0, keep: Int32Array.of(0, 2, 5),
        merges: [{ pivot: 2, members: Int32Array.of(2, 3, 4), weights: Float32Array.of(1, 2, 0.5) }],
      }],
    })
    const want = (row: (l: number, h: number, i: number) => Float32Array) => {
      const a = row(1, 0, 2), b = row(1, 0, 3), c = row(1, 0, 4)
      return Float32Array.from(a, (_, i) => (1 * a[i] + 2 * b[i] + 0.5 * c[i]) / 3.5)
    }
    const k = cache.readKeys(1, 0).slice(D, 2 * D)
    const v = cache.readValues(1, 0).slice(D, 2 * D)
    want(keyRow).forEach((x, i) => expect(k[i]).toBeCloseTo(x, 5))
    want(valueRow).forEach((x, i) => expect(v[i]).toBeCloseTo(x, 5))
    expect(cache.readKeys(1, 0).slice(0, D)).toEqual(keyRow(1, 0, 0))
    expect(Array.from(cache.positions(1, 0))).toEqual([100, 102, 105])
    cache.dispose()
  })

  it('appends extra tokens (a compensation token) after the kept ones', () => {
    const { cache } = filled(5)
    const key = new Float32Array(D).fill(0.25), value = new Float32Array(D).fill(-1)
    cache.apply({ heads: [{ layer: 0, head: 1, keep: Int32Array.of(0, 4), extra: [{ key, value, position: -1 }] }] })
    expect(cache.length(0, 1)).toBe(3)
    expect(Array.from(cache.positions(0, 1))).toEqual([100, 104, -1])
    expect(cache.readKeys(0, 1).slice(2 * D)).toEqual(key)
    expect(cache.readValues(0, 1).slice(2 * D)).toEqual(value)
    cache.dispose()
  })
})

describe('PagedKVCache rejects bad decisions and changes nothing', () => {
  const bad: [string, (n: number) => Decision, RegExp][] = [
    ['index out of range', () => ({ heads: [{ layer: 0, head: 0, keep: Int32Array.of(0, 12) }] }), /keep\[1\] = 12 is outside \[0, 8\)/],
    ['negative index', () => ({ heads: [{ layer: 0, head: 0, keep: Int32Array.of(-1) }] }), /= -1 is outside/],
    ['not ascending', () => ({ heads: [{ layer: 0, head: 0, keep: Int32Array.of(3, 1) }] }), /ascending.*\[1\] = 1/],
    ['duplicate', () => ({ heads: [{ layer: 0, head: 0, keep: Int32Array.of(1, 1) }] }), /duplicates/],
    // ends in range, the fault inside: the one-compare check falls back to the loop that names it
    ['out of order inside a list whose ends are in range', () => ({ heads: [{ layer: 0, head: 0, keep: Int32Array.of(0, 1, 5, 3, 7) }] }), /ascending.*\[2\] = 5, \[3\] = 3/],
    ['out of range inside a list whose ends are in range', () => ({ heads: [{ layer: 0, head: 0, keep: Int32Array.of(0, 12, 5) }] }), /keep\[1\] = 12 is outside \[0, 8\)/],
    ['duplicate inside a list whose ends are in range', () => ({ heads: [{ layer: 0, head: 0, keep: Int32Array.of(0, 2, 2, 7) }] }), /duplicates: \[1\] = 2, \[2\] = 2/],
    ['layer out of range', () => ({ heads: [{ layer: 5, head: 0, keep: Int32Array.of(1) }] }), /layer = 5/],
    ['merges not an array', () => ({ heads: [{ layer: 0, head: 0, keep: Int32Array.of(1), merges: {} as unknown as [] }] }), /heads\[1\]\.merges must be an array/],
    ['extra not an array', () => ({ heads: [{ layer: 0, head: 0, keep: Int32Array.of(1), extra: {} as unknown as [] }] }), /heads\[1\]\.extra must be an array/],
    ['head listed twice', () => ({ heads: [{ layer: 0, head: 0, keep: Int32Array.of(1) }, { layer: 0, head: 0, keep: Int32Array.of(2) }] }), /twice/],
    ['keep not an Int32Array', () => ({ heads: [{ layer: 0, head: 0, keep: [1, 2] as unknown as Int32Array }] }), /Int32Array/],
    ['pivot not kept', () => ({ heads: [{ layer: 0, head: 0, keep: Int32Array.of(1), merges: [{ pivot: 2, members: Int32Array.of(3), weights: Float32Array.of(1) }] }] }), /pivot = 2 is not in keep/],
    ['negative weight', () => ({ heads: [{ layer: 0, head: 0, keep: Int32Array.of(1), merges: [{ pivot: 1, members: Int32Array.of(3), weights: Float32Array.of(-2) }] }] }), /weights\[0\] = -2/],
    ['extra of the wrong size', () => ({ heads: [{ layer: 0, head: 0, keep: Int32Array.of(1), extra: [{ key: new Float32Array(3), value: new Float32Array(D), position: 0 }] }] }), /key must be a Float32Array of 8, got 3/],
    ['channel out of range', () => ({ heads: [{ layer: 0, head: 0, keep: Int32Array.of(1), keyChannels: { channels: Int32Array.of(1, 9), upto: 1 } }] }), /channels\[1\] = 9/],
    ['pruning past the kept slots', () => ({ heads: [{ layer: 0, head: 0, keep: Int32Array.of(1), keyChannels: { channels: Int32Array.of(1), upto: 3 } }] }), /upto = 3/],
  ]
  it.each(bad)('%s', (_name, make, message) => {
    const { cache } = filled(8)
    const before = [cache.readKeys(0, 0), cache.readValues(0, 0), cache.positions(0, 0), cache.bytes()]
    // a valid head first: the bad one must stop the whole decision before anything is done
    const d = make(8)
    d.heads.unshift({ layer: 1, head: 1, keep: Int32Array.of(0) })
    expect(() => cache.apply(d)).toThrow(CacheError)
    expect(() => cache.apply(d)).toThrow(message)
    expect([cache.readKeys(0, 0), cache.readValues(0, 0), cache.positions(0, 0), cache.bytes()]).toEqual(before)
    expect(cache.length(1, 1)).toBe(8)
    cache.dispose()
  })
})

/** softmax(scale q.k) v over rows given as plain arrays: the independent reference */
function plainAttention(q: Float32Array, keys: Float32Array[], values: Float32Array[], scale: number): Float64Array {
  const s = keys.map((k) => k.reduce((a, x, c) => a + x * q[c], 0) * scale)
  const m = Math.max(...s)
  const p = s.map((x) => Math.exp(x - m))
  const z = p.reduce((a, b) => a + b, 0)
  const out = new Float64Array(values[0].length)
  values.forEach((v, j) => v.forEach((x, c) => (out[c] += (p[j] / z) * x)))
  return out
}
function rows(a: Float32Array, n: number, d = D): Float32Array[] {
  return Array.from({ length: n }, (_, i) => a.slice(i * d, (i + 1) * d))
}

describe('attention over the cache', () => {
  const qHeads = 4
  const group = qHeads / H
  function decode(cache: PagedKVCache, q: Float32Array, layer: number, extra: { select?: (Int32Array | null)[]; rotate?: Parameters<typeof attendCache>[2]['rotate'] } = {}) {
    const heap = be.heap
    const qp = heap.alloc(q.length * 4)
    const out = heap.alloc(q.length * 4)
    heap.F32.set(q, qp >> 2)
    attendCache(be, cache, { layer, q: qp, T: 1, qHeads, out, scale: 0.3, ...extra })
    const o = heap.F32.slice(out >> 2, (out >> 2) + q.length)
    heap.release(qp)
    heap.release(out)
    return o
  }

  it('with channel-pruned prefix keys equals a plain computation on the kept channels (log-sum-exp merge)', () => {
    const { cache } = filled(11, 5)
    const channels = Int32Array.of(0, 2, 3, 6)
    cache.apply({ heads: [{ layer: 1, head: 0, keep: Int32Array.of(0, 1, 3, 4, 6, 8, 9, 10), keyChannels: { channels, upto: 5 } }] })
    expect(cache.segments(1, 0).map((s) => [s.n, s.d])).toEqual([[5, 4], [3, D]])
    // pruned rows are stored with 4 floats per key: fewer bytes
    expect(cache.bytes().hot).toBe((11 * 3 + 8) * 2 * D * 4 - 5 * (D - 4) * 4)
    const q = Float32Array.from({ length: qHeads * D }, rng(9))
    const got = decode(cache, q, 1)
    // reference: pruned keys read back with zeros in the dropped channels give exactly q restricted to the kept ones
    const keys = rows(cache.readKeys(1, 0), 8)
    for (let i = 0; i < 5; i++) for (let c = 0; c < D; c++) if (!channels.includes(c)) expect(keys[i][c]).toBe(0)
    const values = rows(cache.readValues(1, 0), 8)
    for (let h = 0; h < group; h++) {
      const want = plainAttention(q.slice(h * D, (h + 1) * D), keys, values, 0.3)
      want.forEach((x, c) => expect(got[h * D + c]).toBeCloseTo(x, 5))
    }
    cache.dispose()
  })

  it('over selected slots (the kernels\' gathered attend) equals a plain computation over those rows', () => {
    const { cache } = filled(13, 6)
    const q = Float32Array.from({ length: qHeads * D }, rng(3))
    const sel = [Int32Array.of(0, 4, 5, 12), null]
    const got = decode(cache, q, 0, { select: sel })
    for (let g = 0; g < H; g++) {
      const all = rows(cache.readKeys(0, g), 13), vals = rows(cache.readValues(0, g), 13)
      const idx = sel[g] ? Array.from(sel[g]!) : all.map((_, i) => i)
      for (let h = 0; h < group; h++) {
        const qh = g * group + h
        const want = plainAttention(q.slice(qh * D, (qh + 1) * D), idx.map((i) => all[i]), idx.map((i) => vals[i]), 0.3)
        want.forEach((x, c) => expect(got[qh * D + c]).toBeCloseTo(x, 5))
      }
    }
    expect(() => decode(cache, q, 0, { select: [Int32Array.of(3, 2), null] })).toThrow(/ascending/)
    expect(() => decode(cache, q, 0, { select: [Int32Array.of(13), null] })).toThrow(/13 outside \[0, 13\)/)
    cache.dispose()
  })

  it('with pre-RoPE keys rotated at attention time equals attention over keys stored after RoPE', () => {
    // rotation: rotate_half with one frequency per channel pair, at the given positions
    const inv = Float32Array.from({ length: D / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / D))
    const rotateRows = (x: Float32Array, pos: number) => {
      const y = x.slice()
      for (let i = 0; i < D / 2; i++) {
        const c = Math.cos(pos * inv[i]), s = Math.sin(pos * inv[i])
        y[i] = x[i] * c - x[i + D / 2] * s
        y[i + D / 2] = x[i + D / 2] * c + x[i] * s
      }
      return y
    }
    const rotate = (x: number, n: number, heads: number, positions: ArrayLike<number>) => {
      const F = be.heap.F32
      for (let r = 0; r < n; r++) for (let h = 0; h < heads; h++) {
        const at = (x >> 2) + (r * heads + h) * D
        F.set(rotateRows(F.slice(at, at + D), positions[r]), at)
      }
    }
    const n = 9
    const pre = filled(n, 11, 'pre-rope')
    const post = new PagedKVCache(be.heap, { layers: L, kvHeads: H, headDim: D, pageTokens: PT })
    for (let l = 0; l < L; l++) {
      const k = new Float32Array(n * H * D), v = new Float32Array(n * H * D)
      for (let i = 0; i < n; i++) for (let h = 0; h < H; h++) {
        k.set(rotateRows(pre.keyRow(l, h, i), i), (i * H + h) * D)
        v.set(pre.valueRow(l, h, i), (i * H + h) * D)
      }
      post.append(l, k, v, Int32Array.from({ length: n }, (_, i) => i))
    }
    const q = Float32Array.from({ length: qHeads * D }, rng(4))
    const qRot = new Float32Array(q.length)
    for (let h = 0; h < qHeads; h++) qRot.set(rotateRows(q.slice(h * D, (h + 1) * D), n - 1), h * D)
    const a = decode(pre.cache, q, 1, { rotate })
    const b = decode(post, qRot, 1)
    a.forEach((x, i) => expect(x).toBeCloseTo(b[i], 5))
    expect(() => decode(pre.cache, q, 1)).toThrow(/rotate function/)
    expect(() => pre.cache.apply({ heads: [{ layer: 0, head: 0, keep: Int32Array.of(0), keyChannels: { channels: Int32Array.of(0), upto: 1 } }] })).toThrow(/pre-RoPE|before RoPE/)
    pre.cache.dispose()
    post.dispose()
  })
})
