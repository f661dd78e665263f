import { beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { CacheBlend, type CacheBlendOptions } from '../src/reuse/cacheblend.js'
import { computeChunk, placeChunk } from '../src/reuse/chunk-kv.js'

// At the check layer the selective recompute rewrites every row's keys and values but runs the
// attention and MLP of the kept rows alone (recomputeKeysValues, then recomputeAttention on the kept
// ones; the cross-chunk choice takes the log-sum-exps from attentionLse). Pinned against the plain
// schedule built here from recomputeLayer: every row through every layer up to the check layer, then
// the rows CacheBlend kept through the rest. The two caches must be equal bit for bit in every layer.
let model: LlamaModel
beforeAll(async () => {
  model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
})

const words = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 2 + ((i * 7919 + seed * 104729) % 4000))

describe('the check layer recomputes attention and MLP for the kept rows only', () => {
  const chunks = [[0, ...words(99, 1)], words(150, 2), [...words(60, 3), ...words(50, 1).slice(5), ...words(40, 2)]]
  it.each([
    [{ ratio: 0.2, checkLayer: 2, selection: 'cross-chunk' }],
    [{ ratio: 0.3, checkLayer: 1 }],
    [{ ratio: 0.1, checkLayer: 3, deviation: 'kv' }],
  ] as [CacheBlendOptions][])('%j: the cache of recomputeLayer on every row to the check layer, then the kept rows', async (options) => {
    const ctx = await new CacheBlend(model, options).prepare(chunks)
    const ids = chunks.flat()
    const N = ids.length
    const { layers, hidden: H } = model.config
    const fwd = model.forward
    const cache = model.newCache('post-rope', 64, 'float32')
    let first = 0
    for (const c of chunks) {
      placeChunk(model, cache, computeChunk(model, c), first)
      first += c.length
    }
    let rows: Int32Array = Int32Array.from({ length: N }, (_, i) => i)
    let hidden = fwd.embedRows(ids)
    for (let l = 0; l < layers; l++) {
      for (let i = 0; i < rows.length; i += fwd.chunk) {
        const at = rows.slice(i, i + fwd.chunk)
        fwd.recomputeLayer(l, hidden.subarray(i * H, (i + at.length) * H), at, at, cache)
      }
      if (l !== options.checkLayer) continue
      const keep = ctx.report.recomputed
      expect(keep.length).toBe(Math.round(options.ratio! * N))
      hidden = Float32Array.from({ length: keep.length * H }, (_, j) => hidden[keep[Math.floor(j / H)] * H + (j % H)])
      rows = keep
    }
    for (let l = 0; l < layers; l++) expect(ctx.cache.readLayer(l)).toEqual(cache.readLayer(l))
    cache.dispose()
    ctx.dispose()
  })
})
