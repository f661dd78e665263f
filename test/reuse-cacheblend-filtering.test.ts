import { beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import type { PagedKVCache } from '../src/cache/paged-cache.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { CacheBlend } from '../src/reuse/cacheblend.js'
import { computeChunk, MemoryChunkStore, placeChunk } from '../src/reuse/chunk-kv.js'
import { ReuseError } from '../src/reuse/errors.js'

// CacheBlend's gradual filtering, KV deviation and BOS-prefixed chunks on the fixture model, against
// references built here: the rows a layer recomputed are the ones whose cached keys left the placed
// (re-rotated) chunk keys; each layer's set must be the top of the previous one by the deviation at that
// layer (hand-computed shares), the check layer's by the full prefill's deviation; a BOS-prefixed chunk's
// KV must be the chunk encoded after a BOS at its final position.
let model: LlamaModel
beforeAll(async () => {
  model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
})

const words = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 2 + ((i * 7919 + seed * 104729) % 4000))
const range = (n: number) => Array.from({ length: n }, (_, i) => i)

/** the chunks' KV placed one after another, nothing recomputed */
function placedCache(chunks: number[][]): PagedKVCache {
  const placed = model.newCache()
  let first = 0
  for (const c of chunks) {
    placeChunk(model, placed, computeChunk(model, c), first)
    first += c.length
  }
  return placed
}

/** per slot, squared L2 between two caches' keys (and values) at layer l over the KV heads */
function deviation(a: PagedKVCache, b: PagedKVCache, l: number, N: number, values: boolean): Float64Array {
  const d = model.config.headDim
  const dev = new Float64Array(N)
  for (let h = 0; h < model.config.kvHeads; h++) {
    const pairs = [[a.readKeys(l, h), b.readKeys(l, h)]]
    if (values) pairs.push([a.readValues(l, h), b.readValues(l, h)])
    for (const [x, y] of pairs) for (let i = 0; i < N * d; i++) dev[Math.floor(i / d)] += (x[i] - y[i]) ** 2
  }
  return dev
}

/** the k of `among` with the largest dev, ties to the earlier slot, ascending */
const top = (among: number[], dev: Float64Array, k: number) => [...among].sort((x, y) => dev[y] - dev[x] || x - y).slice(0, k).sort((x, y) => x - y)

/** slots whose keys at layer l differ from the placed ones (the rows that layer recomputed) */
function changed(cache: PagedKVCache, placed: PagedKVCache, l: number, N: number): number[] {
  const d = model.config.headDim
  const a = cache.readKeys(l, 0)
  const b = placed.readKeys(l, 0)
  return range(N).filter((t) => a.subarray(t * d, (t + 1) * d).some((x, c) => x !== b[t * d + c]))
}

describe('CacheBlend gradual filtering (paper section 4.3)', () => {
  // the first chunk is the BOS alone (exact KV, deviation 0), so every recomputed row of the others shows
  it.each([
    // ratio, gradualFrom, deviation
    [0.15, 0.4, 'key'],
    [0.1, 0.3, 'kv'],
    [0.2, 0.2, 'kv'],
  ] as const)('ratio %f from %f (%s deviation): each layer keeps the top of the previous layer by its own deviation', async (ratio, gradualFrom, dev) => {
    const chunks = [[0], words(90, 1), words(70, 2), words(60, 3)]
    const ids = chunks.flat()
    const N = ids.length
    const candidates = N
    const L = model.config.layers
    const ctx = await new CacheBlend(model, { ratio, gradualFrom, deviation: dev, checkLayer: 1 }).prepare(chunks)
    const full = model.newCache()
    model.prefill(ids, full, 0)
    const placed = placedCache(chunks)
    // the shares by hand for 8 layers, check layer 1: kept after layers 1..6, linear from gradualFrom to ratio
    expect(L).toBe(8)
    const share = (l: number) => gradualFrom + ((ratio - gradualFrom) * (l - 1)) / 5
    let rows = top(range(N), deviation(full, placed, 1, N, dev === 'kv'), Math.round(share(1) * candidates))
    expect(Array.from(ctx.report.recomputed)).toEqual(rows)
    // the first chunk (the BOS) is exact and left alone: the layers up to the check layer recompute the rest
    const counts = [N - 1, N - 1, rows.length]
    expect(changed(ctx.cache, placed, 2, N)).toEqual(rows)
    for (let l = 2; l < L - 1; l++) {
      // layer l recomputed `rows`; the next layer recomputes the top of them by deviation at layer l
      rows = top(rows, deviation(ctx.cache, placed, l, N, dev === 'kv'), Math.round(share(l) * candidates))
      expect(changed(ctx.cache, placed, l + 1, N)).toEqual(rows)
      counts.push(rows.length)
    }
    expect(ctx.report.perLayer).toEqual(counts)
    expect(counts[L - 1]).toBe(Math.round(ratio * N))
    for (const c of [full, placed]) c.dispose()
    ctx.dispose()
  })

  it('at ratio 1 (gradualFrom 1, KV deviation, BOS-prefixed chunks) it is still the full prefill bit for bit', async () => {
    const chunks = [[0, ...words(40, 4)], words(75, 5), words(30, 6)]
    const ids = chunks.flat()
    const ctx = await new CacheBlend(model, { ratio: 1, gradualFrom: 1, deviation: 'kv', chunkPrefix: 'bos' }).prepare(chunks)
    const full = model.newCache()
    model.prefill(ids, full, 0)
    for (let l = 0; l < model.config.layers; l++) {
      expect(ctx.cache.readKeys(l, 1)).toEqual(full.readKeys(l, 1))
      expect(ctx.cache.readValues(l, 0)).toEqual(full.readValues(l, 0))
    }
    full.dispose()
    ctx.dispose()
  })
})

describe("CacheBlend chunkPrefix 'bos'", () => {
  it('a chunk is placed as if encoded after a BOS right before its slots; a chunk starting with the BOS as it is', async () => {
    const chunks = [[0, ...words(30, 7)], words(50, 8), words(45, 9)]
    const store = new MemoryChunkStore()
    // ratio 0 and check layer 0: layers 1.. keep the placed KV
    const ctx = await new CacheBlend(model, { ratio: 0, checkLayer: 0, chunkPrefix: 'bos', store }).prepare(chunks)
    const d = model.config.headDim
    let first = 0
    for (const [i, c] of chunks.entries()) {
      // the reference: the chunk (after a BOS unless it starts with one) prefilled at its final positions
      const ref = model.newCache()
      const own = i === 0 ? c : [0, ...c]
      model.prefill(own, ref, first - (own.length - c.length))
      const skip = own.length - c.length
      for (const l of [1, 4, 7]) for (let h = 0; h < model.config.kvHeads; h++) {
        for (const [got, want] of [[ctx.cache.readKeys(l, h), ref.readKeys(l, h)], [ctx.cache.readValues(l, h), ref.readValues(l, h)]]) {
          const g = got.subarray(first * d, (first + c.length) * d)
          const w = want.subarray(skip * d, (skip + c.length) * d)
          let worst = 0
          for (let j = 0; j < g.length; j++) worst = Math.max(worst, Math.abs(g[j] - w[j]))
          expect(worst).toBeLessThan(2e-3)
        }
      }
      ref.dispose()
      first += c.length
    }
    // a prefixed chunk is stored under its BOS-prefixed tokens: another prepare finds all three
    const again = await new CacheBlend(model, { chunkPrefix: 'bos', store }).prepare([chunks[2], chunks[1]])
    expect([again.report.chunkHits, store.size]).toEqual([2, 3])
    // the same chunks encoded alone differ (the first token is no sink here)
    const plain = placedCache(chunks)
    const s = chunks[0].length
    const a = plain.readKeys(4, 0).subarray(s * d, (s + 1) * d)
    const b = ctx.cache.readKeys(4, 0).subarray(s * d, (s + 1) * d)
    expect(Math.max(...a.map((x, j) => Math.abs(x - b[j])))).toBeGreaterThan(1e-2)
    for (const c of [ctx, again]) c.dispose()
    plain.dispose()
  })
})

describe('CacheBlend prepare(chunks, { always })', () => {
  it('recomputes the given slots in every layer, plus round(ratio x the others) of the others by deviation', async () => {
    const chunks = [[0], words(60, 12), words(70, 13)]
    const ids = chunks.flat()
    const N = ids.length
    const always = [100, 5, 77, 5]
    const ctx = await new CacheBlend(model, { ratio: 0.1 }).prepare(chunks, { always })
    const full = model.newCache()
    model.prefill(ids, full, 0)
    const placed = placedCache(chunks)
    const others = range(N).filter((t) => !always.includes(t))
    const want = [...top(others, deviation(full, placed, 1, N, false), Math.round(0.1 * others.length)), 5, 77, 100].sort((x, y) => x - y)
    expect(Array.from(ctx.report.recomputed)).toEqual(want)
    for (const l of [2, 7]) expect(changed(ctx.cache, placed, l, N)).toEqual(want)
    for (const c of [full, placed]) c.dispose()
    ctx.dispose()
  })

  it.each([[[3, 41]], [[-1]], [[1.5]]])('always %j outside the 41 context slots is a ReuseError', async (always) => {
    await expect(new CacheBlend(model).prepare([[0, ...words(40, 14)]], { always })).rejects.toThrow(ReuseError)
  })
})

describe('CacheBlend filtering options misuse', () => {
  it.each([
    ['gradualFrom below ratio', () => new CacheBlend(model, { ratio: 0.3, gradualFrom: 0.2 })],
    ['gradualFrom 1.2', () => new CacheBlend(model, { gradualFrom: 1.2 })],
    ['deviation "value"', () => new CacheBlend(model, { deviation: 'value' as never })],
    ['chunkPrefix "eos"', () => new CacheBlend(model, { chunkPrefix: 'eos' as never })],
  ])('%s is a ReuseError at construction', (_n, f) => {
    expect(f).toThrow(ReuseError)
  })
})
