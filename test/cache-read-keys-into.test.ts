// readKeysInto (keys straight into arena memory, what selection over packed or multi-segment heads reads
// every step) against readKeyRange (the same rows as a fresh array) and, for float32 rows, against the
// keys as appended: over every kind of head (one arena segment in float32 or float16, a host segment then
// an arena one, a channel-pruned prefix, packed int2 / int4 / int2+sign prefixes, a forked cache) and a
// grid of ranges (empty, whole, across each segment boundary, inside one page, random).
import { beforeAll, describe, expect, it } from 'vitest'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { CacheError } from '../src/cache/errors.js'
import type { KVDtype } from '../src/cache/formats.js'
import { rng } from './kernels-helpers.js'

let be: CreatedBackend
beforeAll(async () => {
  be = await createBackend('wasm')
})

const L = 2, H = 2, D = 8

function newCache(pageTokens: number, kvDtype: KVDtype = 'float32'): PagedKVCache {
  return new PagedKVCache(be, { layers: L, kvHeads: H, headDim: D, pageTokens, kvDtype })
}

/** appends n random tokens to every layer; returns each layer's keys as appended ([n][H][D]) */
function appendRandom(cache: PagedKVCache, n: number, first: number, seed: number): Float32Array[] {
  const r = rng(seed)
  const out: Float32Array[] = []
  for (let l = 0; l < L; l++) {
    const k = Float32Array.from({ length: n * H * D }, () => Math.round(r() * 64) / 32 - 1)
    const v = Float32Array.from({ length: n * H * D }, () => Math.round(r() * 64) / 32 - 1)
    cache.append(l, k, v, Int32Array.from({ length: n }, (_, i) => first + i))
    out.push(k)
  }
  return out
}

/** the ranges of the grid over a head of n slots whose segments start at `starts` */
function ranges(n: number, starts: number[], seed: number): [number, number][] {
  const r = rng(seed)
  const out: [number, number][] = [[0, 0], [0, n], [1, n - 1], [n, n], [n - 1, n], [0, 1], [2, 5]]
  for (const s of starts) for (const [a, b] of [[s - 1, s + 1], [0, s], [s, n], [s - 3, s + 7]]) out.push([Math.max(0, a), Math.min(n, b)])
  for (let i = 0; i < 6; i++) {
    const a = Math.floor(r() * n)
    out.push([a, a + Math.floor(r() * (n - a + 1))])
  }
  return out.filter(([a, b]) => a <= b)
}

/** readKeysInto over the grid for every head, each range into NaN-poisoned arena memory */
function checkHeads(cache: PagedKVCache, seed: number, appended?: Float32Array[]): void {
  const heap = be.heap
  for (let l = 0; l < L; l++) for (let h = 0; h < H; h++) {
    const n = cache.length(l, h)
    const starts: number[] = []
    let at = 0
    for (const s of cache.segments(l, h)) { starts.push(at); at += s.n }
    for (const [a, b] of ranges(n, starts.slice(1), seed + l * H + h)) {
      const what = `(layer ${l}, head ${h}) [${a}, ${b}) of ${n}`
      const m = b - a
      const buf = heap.allocF32(m * D + 4)
      try {
        heap.F32.fill(NaN, buf.ptr >> 2, (buf.ptr >> 2) + m * D + 4)
        cache.readKeysInto(l, h, a, b, buf.ptr)
        const got = heap.F32.slice(buf.ptr >> 2, (buf.ptr >> 2) + m * D)
        expect(got, what).toEqual(cache.readKeyRange(l, h, a, b))
        // nothing written past the rows
        expect(Number.isNaN(heap.F32[(buf.ptr >> 2) + m * D]), `${what}: the float after the rows`).toBe(true)
        if (appended) {
          const want = new Float32Array(m * D)
          for (let t = a; t < b; t++) want.set(appended[l].subarray((t * H + h) * D, (t * H + h + 1) * D), (t - a) * D)
          expect(got, `${what}: the keys as appended`).toEqual(want)
        }
      } finally {
        buf.free()
      }
    }
  }
}

describe('readKeysInto: a head\'s keys straight into arena memory', () => {
  it('one float32 arena segment: the keys as appended, over the grid of ranges', () => {
    const cache = newCache(8)
    checkHeads(cache, 1, appendRandom(cache, 45, 0, 11))
    cache.dispose()
  })

  it('one float16 arena segment: readKeyRange\'s widened halves', () => {
    const cache = newCache(8, 'float16')
    appendRandom(cache, 45, 0, 12)
    checkHeads(cache, 2)
    cache.dispose()
  })

  it('a host segment then an arena segment', () => {
    const cache = newCache(8)
    const a = appendRandom(cache, 21, 0, 13)
    cache.moveTo('host')
    const b = appendRandom(cache, 16, 100, 14)
    expect(cache.segments(0, 0).length).toBe(2)
    checkHeads(cache, 3, a.map((x, l) => Float32Array.of(...x, ...b[l])))
    cache.dispose()
  })

  it('a channel-pruned prefix (pruned channels read as 0) then whole rows', () => {
    const cache = newCache(4)
    appendRandom(cache, 34, 0, 15)
    const keep = Int32Array.from({ length: 34 }, (_, i) => i).filter((i) => i !== 3 && i !== 20)
    const heads = []
    for (let l = 0; l < L; l++) for (let h = 0; h < H; h++) heads.push({ layer: l, head: h, keep, keyChannels: { channels: Int32Array.of(0, 2, 3, 7), upto: 13 } })
    cache.apply({ heads })
    expect(cache.segments(1, 1).length).toBe(2)
    checkHeads(cache, 4)
    cache.dispose()
  })

  for (const keys of ['int2', 'int4', 'int2+sign'] as const) {
    it(`a packed ${keys} prefix (dequantized through the get-rows kernels) then float rows`, () => {
      const cache = newCache(32)
      appendRandom(cache, 100, 0, 16)
      const quantize = []
      for (let l = 0; l < L; l++) for (let h = 0; h < H; h++) {
        quantize.push({ layer: l, head: h, upto: 64, keys, values: keys === 'int2+sign' ? 'ternary' as const : keys, ...(keys === 'int2+sign' ? { keyHiChannels: Int32Array.of(1, 6) } : {}) })
      }
      cache.apply({ heads: [], quantize })
      expect(cache.segments(0, 1).length).toBe(2)
      checkHeads(cache, 5)
      cache.dispose()
    })
  }

  it('a fork reads the pages it shares with the original', () => {
    const cache = newCache(8)
    const k = appendRandom(cache, 30, 0, 17)
    const fork = cache.fork()
    checkHeads(fork, 6, k)
    fork.dispose()
    cache.dispose()
  })

  it('refuses a bad range or pointer before writing anything', () => {
    const cache = newCache(8)
    appendRandom(cache, 10, 0, 18)
    const buf = be.heap.allocF32(16 * D)
    try {
      be.heap.F32.fill(NaN, buf.ptr >> 2, (buf.ptr >> 2) + 16 * D)
      expect(() => cache.readKeysInto(0, 0, 3, 11, buf.ptr)).toThrow(CacheError)
      expect(() => cache.readKeysInto(0, 0, 5, 4, buf.ptr)).toThrow(/\[5, 4\)/)
      expect(() => cache.readKeysInto(0, 0, -1, 2, buf.ptr)).toThrow(CacheError)
      expect(() => cache.readKeysInto(0, 0, 0, 2, buf.ptr + 2)).toThrow(/not a 4-byte aligned/)
      expect(() => cache.readKeysInto(0, 0, 0, 2, 0)).toThrow(CacheError)
      expect(() => cache.readKeysInto(0, 0, 0.5, 2, buf.ptr)).toThrow(CacheError)
      expect(be.heap.F32.slice(buf.ptr >> 2, (buf.ptr >> 2) + 16 * D).every(Number.isNaN)).toBe(true)
    } finally {
      buf.free()
      cache.dispose()
    }
  })
})
