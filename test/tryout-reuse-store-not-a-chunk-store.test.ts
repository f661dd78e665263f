/**
 * CacheBlend's and KVShare's `store` option is checked when they are made: a value that is not a
 * ChunkStore (an object without get and set, a string, null) was taken, and the first prepare() failed
 * inside the chunk load with a TypeError ("store.get is not a function"). Now a ReuseError names what is
 * missing; a ChunkStore written by hand (get and set, delete optional) is taken as before.
 */
import { describe, expect, it } from 'vitest'
import { useFixtureModel } from './fixture-model-helpers.js'
import { CacheBlend } from '../src/reuse/cacheblend.js'
import { MemoryChunkStore } from '../src/reuse/chunk-kv.js'
import { ReuseError } from '../src/reuse/errors.js'
import { KVShare } from '../src/reuse/kvshare.js'

const fixture = useFixtureModel()
const make = { CacheBlend: (store: unknown) => new CacheBlend(fixture.model, { store } as never), KVShare: (store: unknown) => new KVShare(fixture.model, { store } as never) }

describe('a store that is not a ChunkStore', () => {
  it.each((['CacheBlend', 'KVShare'] as const).flatMap((who) => [
    [who, {}, 'store must be a ChunkStore: its get and set are not functions'],
    [who, { get: (): undefined => undefined }, 'store must be a ChunkStore: its set is not a function'],
    [who, { get: (): undefined => undefined, set: (): void => {}, delete: true }, 'store must be a ChunkStore: its delete is not a function'],
    [who, 'memory', 'store must be a ChunkStore (MemoryChunkStore, FileChunkStore, ...), got string'],
    [who, null, 'store must be a ChunkStore (MemoryChunkStore, FileChunkStore, ...), got null'],
  ] as const))('%s with %j: ReuseError when made', (who, store, message) => {
    expect(() => make[who](store)).toThrow(ReuseError)
    expect(() => make[who](store)).toThrow(`${who}: ${message}`)
  })

  it.each(['CacheBlend', 'KVShare'] as const)('%s takes a hand-written ChunkStore and uses it', async (who) => {
    const inner = new MemoryChunkStore()
    const keys: string[] = []
    const store = { get: (k: string) => inner.get(k), set: (k: string, kv: Parameters<MemoryChunkStore['set']>[1]) => { keys.push(k); inner.set(k, kv) } }
    const ids = [0, ...fixture.model.tokenizer.encode('The ferry leaves at noon.')]
    if (who === 'CacheBlend') (await new CacheBlend(fixture.model, { store }).prepare([ids])).dispose()
    else (await new KVShare(fixture.model, { store }).prepare(ids)).dispose()
    expect(keys).toHaveLength(1)
  })
})
