import { beforeAll, describe, expect, it } from 'vitest'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import type { KVDtype } from '../src/cache/formats.js'
import { packedRows, quantizeBeyond } from '../src/policies/kivi.js'
import { fixtureModelsOnThreads } from './fixture-models-helper.js'
import { fixturePrompt, values } from './threads-helpers.js'

// KIVI (and MiKV, VidKV: quantizeBeyond) packs the rows beyond its residual window whatever the cache's
// kvDtype. Float16 rows are float rows, not packed ones: with kvDtype 'float16' the policy used to count
// every float16 row as already packed and quantized nothing, silently (kvBytes.quantized 0), on one
// thread and on the worker pool alike.

const shape = { layers: 2, qHeads: 6, kvHeads: 2, headDim: 64, group: 3 }

let backend: CreatedBackend
beforeAll(async () => {
  backend = await createBackend('wasm')
})

describe('quantizeBeyond on float16 rows', () => {
  it.each<KVDtype>(['float32', 'float16'])('%s cache of 300 rows, residual 128: groups of 32 up to slot 160 packed, then nothing more', (kvDtype) => {
    const { layers, kvHeads, headDim: d } = shape
    const cache = new PagedKVCache(backend, { layers, kvHeads, headDim: d, kvDtype })
    try {
      const n = 300
      for (let l = 0; l < layers; l++) cache.append(l, values(n * kvHeads * d, 3 + l), values(n * kvHeads * d, 7 + l), Int32Array.from({ length: n }, (_, i) => i))
      for (let l = 0; l < layers; l++) for (let h = 0; h < kvHeads; h++) expect(packedRows(cache, l, h)).toBe(0)
      const d1 = quantizeBeyond(cache, shape, 128, 'int2', 'int2')
      // floor((300 - 128) / 32) * 32 = 160 slots a head
      expect(d1?.quantize?.map((q) => [q.layer, q.head, q.upto])).toEqual([[0, 0, 160], [0, 1, 160], [1, 0, 160], [1, 1, 160]])
      cache.apply(d1!)
      for (let l = 0; l < layers; l++) for (let h = 0; h < kvHeads; h++) expect(packedRows(cache, l, h)).toBe(160)
      expect(cache.bytes().quantized).toBeGreaterThan(0)
      expect(quantizeBeyond(cache, shape, 128, 'int2', 'int2')).toBeNull()
    } finally {
      cache.dispose()
    }
  })
})

describe('kivi:bits=2 through generate with kvDtype float16', () => {
  const models = fixtureModelsOnThreads([1, 2])

  it('packs the prompt beyond the residual on 1 and 2 threads, the same tokens on both', async () => {
    const ids = fixturePrompt(300)
    const opts = { kvDtype: 'float16' as const, policy: 'kivi:bits=2', maxNewTokens: 4, temperature: 0 }
    const [one, two] = models
    const [a, b] = [await one.generate(ids, opts).result, await two.generate(ids, opts).result]
    expect(two.backend.threads).toBe(2)
    for (const r of [a, b]) {
      expect(r.stats.kvBytes.quantized).toBeGreaterThan(0)
      // fewer bytes than the float16 cache holding every row
      expect(r.stats.kvBytes.total).toBeLessThan(r.stats.kvBytesFull)
    }
    expect(b.ids).toEqual(a.ids)
  })
})
