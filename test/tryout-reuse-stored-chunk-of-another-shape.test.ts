/**
 * A chunk store's entry made by a model of another shape is a ReuseError naming both shapes when it is
 * loaded (checkStoredChunk, CacheBlend and KVShare). Store keys hash the tokens (and the salt) only, and a
 * store outlives its model (a folder, Redis, IndexedDB): two models with one tokenizer sharing a store
 * found each other's chunks, which were placed row by row and failed inside the cache, a CacheError
 * ("reposition: slots [5, 9) are outside the 0 of (layer 4, head 0)") or a row size, after the chunks'
 * work. A salt per model keeps them apart, as the message says.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { CacheBlend } from '../src/reuse/cacheblend.js'
import { MemoryChunkStore, type ChunkKV } from '../src/reuse/chunk-kv.js'
import { ReuseError } from '../src/reuse/errors.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { makeTinyModel, TINY } from './tiny-model.js'

const chunks = [[11, 12, 13, 14], [21, 22, 23, 24, 25]]
let tiny: LlamaModel
let fixture: LlamaModel

beforeAll(async () => {
  // the same tokenizer: the same chunk ids, the same store keys
  tiny = (await loadModel(makeTinyModel(), { backend: 'wasm', threads: 1 })) as LlamaModel
  fixture = (await loadModel(defaultModelDir(), { backend: 'wasm', threads: 1 })) as LlamaModel
})
afterAll(() => {
  tiny?.dispose()
  fixture?.dispose()
})

describe("a stored chunk of another model's shape", () => {
  it('ReuseError naming both shapes; the store keeps the entry and a salt per model keeps them apart', async () => {
    const store = new MemoryChunkStore()
    await new CacheBlend(tiny, { store }).prepare(chunks)
    expect(store.size).toBe(2)
    const blend = new CacheBlend(fixture, { store })
    await expect(blend.prepare(chunks)).rejects.toThrow(ReuseError)
    await expect(blend.prepare(chunks)).rejects.toThrow(
      `holds KV of another shape (${TINY.LAYERS} layers of ${TINY.KVH * TINY.D} floats a token) than this model's (8 layers of 128 floats a token): a store shared by models needs a salt per model`,
    )
    expect(store.size).toBe(2)
    const own = await new CacheBlend(fixture, { store, salt: 'fixture-14m' }).prepare(chunks)
    const want = await new CacheBlend(fixture).prepare(chunks)
    expect(own.ids).toEqual(want.ids)
    const q = [31, 32]
    const a = await fixture.generate([...own.ids, ...q], { maxNewTokens: 3, reuse: own }).result
    const b = await fixture.generate([...want.ids, ...q], { maxNewTokens: 3, reuse: want }).result
    expect(a.ids).toEqual(b.ids)
  })

  it('an entry whose rows were cut short: ReuseError naming the floats it holds', async () => {
    const inner = new MemoryChunkStore()
    const keys: string[] = []
    const store = { get: (k: string) => inner.get(k), set: (k: string, kv: ChunkKV) => (keys.push(k), inner.set(k, kv)) }
    await new CacheBlend(fixture, { store }).prepare([chunks[0]])
    const kv = inner.get(keys[0])!
    inner.set(keys[0], { ids: kv.ids, k: kv.k.map((x) => x.subarray(0, x.length / 2)), v: kv.v })
    await expect(new CacheBlend(fixture, { store }).prepare([chunks[0]])).rejects.toThrow('(8 layers of 64 floats a token) than this model')
  })
})
