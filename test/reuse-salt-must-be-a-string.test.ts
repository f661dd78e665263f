/**
 * CacheBlend's and KVShare's per-tenant `salt` keys the store: a salt that is not a string was turned into
 * text, so every object salt was "[object Object]" and two tenants with { tenant: 'a' } and { tenant: 'b' }
 * shared each other's chunks. Now a ReuseError names the type when the object is made (as
 * PrefixCache.tenant does), and two string salts still key the same chunk apart.
 */
import { describe, expect, it } from 'vitest'
import { useFixtureModel } from './fixture-model-helpers.js'
import { CacheBlend } from '../src/reuse/cacheblend.js'
import { MemoryChunkStore } from '../src/reuse/chunk-kv.js'
import { ReuseError } from '../src/reuse/errors.js'
import { KVShare } from '../src/reuse/kvshare.js'

const fixture = useFixtureModel()
const make = {
  CacheBlend: (salt: unknown, store = new MemoryChunkStore()) => new CacheBlend(fixture.model, { salt, store } as never),
  KVShare: (salt: unknown, store = new MemoryChunkStore()) => new KVShare(fixture.model, { salt, store } as never),
}

describe('a reuse salt', () => {
  it.each((['CacheBlend', 'KVShare'] as const).flatMap((who) => [
    [who, { tenant: 'a' }, 'object'],
    [who, 42, 'number'],
    [who, null, 'null'],
    [who, ['a'], 'object'],
  ] as const))('%s with salt %j: ReuseError naming its type when made', (who, salt, type) => {
    expect(() => make[who](salt)).toThrow(ReuseError)
    expect(() => make[who](salt)).toThrow(`${who}: salt must be a string, got ${type}`)
  })

  it.each(['CacheBlend', 'KVShare'] as const)('%s: two tenants\' string salts key the same chunk apart, an absent salt is ""', async (who) => {
    const ids = [0, ...fixture.model.tokenizer.encode('The ferry leaves at noon.')]
    const keysOf = async (salt: unknown) => {
      const keys: string[] = []
      const inner = new MemoryChunkStore()
      const store = { get: (k: string) => inner.get(k), set: (k: string, kv: Parameters<MemoryChunkStore['set']>[1]) => { keys.push(k); inner.set(k, kv) } }
      const r = make[who](salt, store as never)
      if (r instanceof CacheBlend) (await r.prepare([ids])).dispose()
      else (await r.prepare(ids)).dispose()
      return keys
    }
    const [a, b, none, empty] = [await keysOf('a'), await keysOf('b'), await keysOf(undefined), await keysOf('')]
    expect(a).toHaveLength(1)
    expect(a[0]).not.toBe(b[0])
    expect(none).toEqual(empty)
  })
})
