import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { packedAttendScratch } from '../src/backend/backend.js'
import type { PackedAttendCall } from '../src/backend/model-kernels.js'
import { decodePlan } from '../src/backend/threads/decode-split.js'
import { partsFor } from '../src/backend/threads/kernels.js'
import { attendCache } from '../src/cache/attention.js'
import { kernelBits, valueGroupFor, type PageFormat } from '../src/cache/formats.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import type { LlamaModel } from '../src/model/model.js'
import { loadModel } from '../src/node/load.js'
import { nodeWorkerSpawner } from '../src/node/threads.js'
import { fixturePrompt, sameBits, values } from './threads-helpers.js'

// Attention over packed pages (KIVI's, and VidKV's int2+sign keys) on the worker pool (attendPackedBatch): every KV head's packed part
// in one region, split by rows (bit for bit with one thread) or by keys (partials merged: within float32
// rounding), against attendPacked called head by head on the same pages; attendCache routes KIVI heads
// to it; and the fixture model under KIVI and VidKV generates the same greedy tokens on 1 and 3 threads.

const D = 64
const EPS = 2 ** -24
/**
 * How far a key split may move an output or lse: the kernel sums n exponentials and n weighted values
 * in float32 in key order, and a split regroups those sums (partials merged by their log-sum-exp), which
 * moves each by the order of sqrt(n) roundings (measured: 2e-6 at n = 1024, 4.4e-6 at 3008, relative).
 */
const splitBound = (n: number, x: number) => 4 * Math.sqrt(n) * EPS * Math.max(1, Math.abs(x))
let one: CreatedBackend
const pools: CreatedBackend[] = []
beforeAll(async () => {
  // every backend on one arena: each reads the pages the first one's cache holds
  for (const threads of [2, 3, 4]) pools.push(await createBackend('wasm', { relaxed: false, threads, spawnWorker: nodeWorkerSpawner, heap: pools[0]?.heap }))
  one = await createBackend('wasm', { relaxed: false, heap: pools[0].heap })
})
afterAll(() => pools.forEach((b) => b.close?.()))

/**
 * a cache of `heads` KV heads holding n seeded tokens, quantized to (keys, values); int2+sign keys
 * (VidKV) with every other channel int2, in token groups of 64; KIVI's keys in groups of `group` (pages
 * of 128 tokens for 128)
 */
function packedCache(b: CreatedBackend, heads: number, n: number, keys: PageFormat, vals: PageFormat, group = 32): PagedKVCache {
  const cache = new PagedKVCache(b, { layers: 1, kvHeads: heads, headDim: D, ...(group > 64 ? { pageTokens: group } : {}) })
  cache.append(0, values(n * heads * D, 5 + n, 2), values(n * heads * D, 9 + n), Int32Array.from({ length: n }, (_, i) => i))
  const sign = keys === 'int2+sign' ? { keyHiChannels: Int32Array.from({ length: D / 2 }, (_, i) => 2 * i), group: 64 } : group !== 32 ? { group } : {}
  const quantize = Array.from({ length: heads }, (_, head) => ({ layer: 0, head, upto: n, keys, values: vals, ...sign }))
  cache.apply({ heads: [], quantize })
  return cache
}

/** attendPacked of `rows` query rows per KV head: through b's batch, or head by head on `one`; outputs then lses */
function attend(b: CreatedBackend, cache: PagedKVCache, heads: number, rows: number, batch: boolean): Float32Array {
  const h = b.heap
  const q = h.f32From(values(heads * rows * D, 3, 1.5))
  const out = h.allocF32(heads * rows * D), lse = h.allocF32(heads * rows)
  const scratches: { free(): void }[] = []
  try {
    const calls: PackedAttendCall[] = Array.from({ length: heads }, (_, g) => {
      const s = cache.segments(0, g)[0]
      const scratch = h.allocF32(packedAttendScratch(rows, D, D, s.n))
      scratches.push(scratch)
      const sign = s.keyBasis ? { sign: { kHi: s.keyBasis.hi.length, group: s.group, vGroup: valueGroupFor(s.group, D) } } : { group: s.group, vGroup: valueGroupFor(s.group, D) }
      return { q: q.ptr + g * rows * D * 4, rows, kd: D, vd: D, kTable: s.kTable, vTable: s.vTable, pageTokens: s.pageTokens, n: s.n, kBits: kernelBits(s.format), vBits: kernelBits(s.valueFormat), scale: 0.125, out: out.ptr + g * rows * D * 4, lse: lse.ptr + g * rows * 4, scratch: scratch.ptr, ...sign }
    })
    if (batch) b.attendPackedBatch!(calls)
    else {
      for (const c of calls) {
        if (c.sign) b.attendSign!(c.q, c.rows, c.kd, c.vd, c.kTable, c.vTable, c.pageTokens, c.n, c.sign.kHi, c.sign.group, c.vBits, c.sign.vGroup, c.scale, c.out, c.vd, c.lse, c.scratch)
        else b.attendPacked!(c.q, c.rows, c.kd, c.vd, c.kTable, c.vTable, c.pageTokens, c.n, c.kBits, 0, c.vBits, c.scale, c.out, c.vd, c.lse, c.scratch, c.group, c.vGroup)
      }
    }
    const res = new Float32Array(out.view.length + lse.view.length)
    res.set(out.view)
    res.set(lse.view, out.view.length)
    return res
  } finally {
    for (const x of [q, out, lse, ...scratches]) x.free()
  }
}

describe('attendPackedBatch on the pool against attendPacked head by head', () => {
  // KV heads x rows (a decode group of 3, one of 8, a prefill chunk of 5 tokens x 3), lengths around
  // the thread counts' key-split thresholds, KIVI-2 and KIVI-4 with int2/int4/int8 values
  // and VidKV's int2+sign keys with ternary values; KIVI-2 in key groups of 128 (its group_size)
  const grid = [[2, 3], [1, 8], [2, 15]].flatMap(([heads, rows]) => [64, 320, 1024, 3008].flatMap((n) => [['int2', 'int2', 32], ['int4', 'int4', 32], ['int2', 'int8', 32], ['int2+sign', 'ternary', 32], ['int2', 'int2', 128]].map(([k, v, g]) => [heads, rows, n, k, v, g] as const)))
  it.each(grid)('%i KV heads x %i rows over %i packed tokens (%s keys, %s values, key groups of %i): bit for bit when split by rows, else within float32 rounding', (heads, rows, n, k, v, g) => {
    const cache = packedCache(pools[0], heads, n, k as PageFormat, v as PageFormat, g as number)
    try {
      expect(cache.segments(0, 0)[0].format).toBe(k)
      const want = attend(one, cache, heads, rows, false)
      const splits = new Set<string>()
      for (const b of pools) {
        const got = attend(b, cache, heads, rows, true)
        const shape = Array.from({ length: heads }, () => ({ hq: rows, keys: n, kd: D, vd: D, keyAlign: cache.segments(0, 0)[0].pageTokens }))
        const parts = partsFor(heads * rows * n * 2 * D, b.threads ?? 1)
        const by = parts < 2 ? 'one' : decodePlan(shape, parts).by
        splits.add(by)
        if (by !== 'keys') {
          expect(sameBits(got, want), `${b.threads} threads, by ${by}`).toBe(true)
          continue
        }
        for (let i = 0; i < got.length; i++) expect(Math.abs(got[i] - want[i]), `${b.threads} threads, value ${i}`).toBeLessThanOrEqual(splitBound(n, want[i]))
      }
      // the long caches do split by keys somewhere (the grid is not only bit-for-bit cases)
      if (n >= 3008 && rows <= 3) expect(splits.has('keys')).toBe(true)
    } finally {
      cache.dispose()
    }
  })
})

describe('attendCache hands KIVI heads to the batch', () => {
  it('decode over a KIVI-2 cache with a float32 window: every head\'s packed part goes through attendPackedBatch, and the result equals the one-thread backend\'s', () => {
    const b = pools[1]
    const cache = packedCache(b, 2, 640, 'int2', 'int2')
    const h = b.heap
    const q = h.f32From(values(6 * D, 4)), out = h.allocF32(6 * D), want = h.allocF32(6 * D)
    try {
      // a window of 3 float32 tokens after the packed ones, the last the decode token
      cache.append(0, values(3 * 2 * D, 77), values(3 * 2 * D, 78), Int32Array.of(640, 641, 642))
      const seen: number[] = []
      const spy = { ...b, attendPackedBatch: (calls: readonly PackedAttendCall[]) => { seen.push(...calls.map((c) => c.n)); b.attendPackedBatch!(calls) } }
      attendCache(spy, cache, { layer: 0, q: q.ptr, T: 1, qHeads: 6, out: out.ptr, scale: 0.125 })
      expect(seen).toEqual([640, 640])
      attendCache(one, cache, { layer: 0, q: q.ptr, T: 1, qHeads: 6, out: want.ptr, scale: 0.125 })
      for (let i = 0; i < 6 * D; i++) expect(Math.abs(out.view[i] - want.view[i])).toBeLessThanOrEqual(splitBound(643, want.view[i]))
    } finally {
      for (const x of [q, out, want]) x.free()
      cache.dispose()
    }
  })
})

describe('attendCache over packed and float parts on 4 threads against one thread', () => {
  // head sizes, page sizes and query chunks other than the fixture's: a packed prefix of 960 tokens (KIVI
  // int4, or VidKV's int2+sign keys with ternary values), then float32 rows, then T new tokens
  const grid = [64, 96, 128].flatMap((d) => [32, 128].flatMap((pt) => [1, 4].flatMap((T) => [['int4', 'int8'], ['int2+sign', 'ternary']].map(([k, v]) => [d, pt, T, k, v] as const))))
  it.each(grid)('headDim %i, pages of %i, %i new tokens, %s keys / %s values: within the key split bound', (d, pt, T, k, v) => {
    const b = pools[2]
    const heads = 2, group = 3, n = 1000 + T
    const cache = new PagedKVCache(b, { layers: 1, kvHeads: heads, headDim: d, pageTokens: pt })
    const h = b.heap
    const q = h.f32From(values(T * heads * group * d, 6)), got = h.allocF32(T * heads * group * d), want = h.allocF32(T * heads * group * d)
    try {
      cache.append(0, values(n * heads * d, 21, 2), values(n * heads * d, 22), Int32Array.from({ length: n }, (_, i) => i))
      const sign = k === 'int2+sign' ? { keyHiChannels: Int32Array.from({ length: d / 2 }, (_, i) => 2 * i), group: pt } : {}
      cache.apply({ heads: [], quantize: Array.from({ length: heads }, (_, head) => ({ layer: 0, head, upto: 960, keys: k as PageFormat, values: v as PageFormat, ...sign })) })
      expect(cache.segments(0, 0)[0].format).toBe(k)
      const a = { layer: 0, q: q.ptr, T, qHeads: heads * group, scale: 1 / Math.sqrt(d) }
      attendCache(b, cache, { ...a, out: got.ptr })
      attendCache(one, cache, { ...a, out: want.ptr })
      for (let i = 0; i < got.view.length; i++) expect(Math.abs(got.view[i] - want.view[i]), `value ${i}`).toBeLessThanOrEqual(splitBound(n, want.view[i]))
    } finally {
      for (const x of [q, got, want]) x.free()
      cache.dispose()
    }
  })
})

describe('the fixture model over KIVI pages on threads', () => {
  let m1: LlamaModel
  let m3: LlamaModel
  beforeAll(async () => {
    m1 = await loadModel('models/fixture-14m', { threads: 1, wasm: { relaxed: false } })
    m3 = await loadModel('models/fixture-14m', { threads: 3, wasm: { relaxed: false } })
  })
  afterAll(() => [m1, m3].forEach((m) => m?.dispose()))

  it.each(['kivi:bits=2', 'kivi:bits=4', 'snapkv:budget=0.5+kivi:bits=2', 'vidkv'])('%s: a 1500-token prompt, 8 greedy tokens: the same on 1 and 3 threads', async (policy) => {
    const ids = fixturePrompt(1500)
    const a = await m1.generate(ids, { maxNewTokens: 8, policy }).result
    const b = await m3.generate(ids, { maxNewTokens: 8, policy }).result
    expect(b.ids).toEqual(a.ids)
  })
})
