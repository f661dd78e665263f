import { beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { CacheBlend } from '../src/reuse/cacheblend.js'
import { loadChunks, MemoryChunkStore, type ChunkKV } from '../src/reuse/chunk-kv.js'

// A chunk listed twice in one request (the same passage retrieved twice) and missing from the store was
// computed (a prefill of the chunk) and stored twice. It is computed once and placed at both places.
let model: LlamaModel
beforeAll(async () => {
  model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
})

/** a MemoryChunkStore counting its writes */
class CountingStore extends MemoryChunkStore {
  sets = 0
  override set(key: string, kv: ChunkKV): void {
    this.sets++
    super.set(key, kv)
  }
}

const a = [11, 12, 13, 14, 15, 16]
const b = [21, 22, 23, 24]

describe('loadChunks', () => {
  it('computes and stores a repeated missing chunk once, both places getting that KV', async () => {
    const store = new CountingStore()
    const out = await loadChunks(model, store, [a, b, a, a])
    expect(store.sets).toBe(2)
    expect(out[2].kv).toBe(out[0].kv)
    expect(out[3].kv).toBe(out[0].kv)
    expect(out.map((x) => x.hit)).toEqual([false, false, false, false])
  })

  it("CacheBlend places it at both slots: the same context as with the chunk already stored", async () => {
    const store = new CountingStore()
    const once = await new CacheBlend(model, { store, ratio: 0.3 }).prepare([a, b, a])
    expect(store.sets).toBe(2)
    const warm = await new CacheBlend(model, { store, ratio: 0.3 }).prepare([a, b, a])
    expect(warm.report.chunkHits).toBe(3)
    for (let l = 0; l < model.config.layers; l++) expect(once.cache.readLayer(l)).toEqual(warm.cache.readLayer(l))
    once.dispose()
    warm.dispose()
  })
})
