/**
 * A chunk store's entry that is not a chunk (no token ids, or not an object: a custom ChunkStore's get
 * returning what it was not given) is a ReuseError when CacheBlend loads it, as an entry of another
 * shape is (checkStoredChunk): it was a TypeError reading `length` of undefined.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { CacheBlend } from '../src/reuse/cacheblend.js'
import type { ChunkKV, ChunkStore } from '../src/reuse/chunk-kv.js'
import { ReuseError } from '../src/reuse/errors.js'
import { makeTinyModel } from './tiny-model.js'

let model: LlamaModel
beforeAll(async () => {
  model = (await loadModel(makeTinyModel(), { backend: 'wasm', threads: 1 })) as LlamaModel
})
afterAll(() => model?.dispose())

/** a store whose every entry is `entry` */
const storeOf = (entry: unknown): ChunkStore => ({ get: async () => entry as ChunkKV, set: async () => {} })

describe('a stored entry that is not a chunk', () => {
  it.each([
    ['without ids', { k: [], v: [] }],
    ['a string', 'chunk'],
  ])('%s: ReuseError saying the entry holds no token ids', async (_, entry) => {
    const blend = new CacheBlend(model, { store: storeOf(entry) })
    await expect(blend.prepare([[11, 12, 13]])).rejects.toThrow(ReuseError)
    await expect(blend.prepare([[11, 12, 13]])).rejects.toThrow(/the entry for key [0-9a-f]{64} is not a chunk \(no token ids\)/)
  })
})
