/**
 * new PagedKVCache with no backend or no options is a CacheError naming the argument, not a TypeError
 * from destructuring or the `in` operator; options with more fields than it reads (a model config)
 * still make a cache.
 */
import { describe, expect, it } from 'vitest'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { CacheError } from '../src/cache/errors.js'
import { Heap } from '../src/backend/heap.js'
import type { KVCacheOptions } from '../src/cache/types.js'

describe('PagedKVCache constructor arguments', () => {
  it.each([
    ['no backend', () => new PagedKVCache(undefined as unknown as Heap, { layers: 1, kvHeads: 1, headDim: 8 }), 'KVCache: compute must be a backend (createBackend) or a Heap, got undefined'],
    ['a null backend', () => new PagedKVCache(null as unknown as Heap, { layers: 1, kvHeads: 1, headDim: 8 }), 'got null'],
    ['no options', () => new PagedKVCache(new Heap(), undefined as unknown as KVCacheOptions), 'KVCache: options must be an object ({ layers, kvHeads, headDim }), got undefined'],
    ['a string as options', () => new PagedKVCache(new Heap(), 'layers=1' as unknown as KVCacheOptions), 'got string'],
  ])('%s: CacheError', (_, make, message) => {
    expect(make).toThrow(CacheError)
    expect(make).toThrow(message)
  })

  it('a model-config-like object with extra fields makes a cache', () => {
    const config = { layers: 2, kvHeads: 1, headDim: 8, qHeads: 2, group: 2, vocab: 10 }
    const cache = new PagedKVCache(new Heap(), config)
    expect(cache.options.layers).toBe(2)
    cache.dispose()
  })
})
