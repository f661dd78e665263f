/**
 * The reuse classes refuse an option they do not know (a misspelling such as `maxBlock` would be
 * ignored and its default used, silently), as generate and loadModel do, with a ReuseError naming it
 * when the object is made; options that are not an object are refused too.
 */
import { describe, expect, it } from 'vitest'
import { useFixtureModel } from './fixture-model-helpers.js'
import { CacheBlend } from '../src/reuse/cacheblend.js'
import { KVShare } from '../src/reuse/kvshare.js'
import { PrefixCache } from '../src/reuse/prefix-cache.js'
import { Sequence } from '../src/reuse/sequence.js'
import { ReuseError } from '../src/reuse/errors.js'

const fixture = useFixtureModel()

const makers: [string, (options: object) => unknown, object, string][] = [
  ['Sequence.create', (o) => Sequence.create(fixture.model, o), { pageTokens: 32 }, 'pageToken'],
  ['PrefixCache', (o) => new PrefixCache(fixture.model, o), { blockTokens: 16, maxBlocks: 8, eviction: 'lfu' }, 'maxBlock'],
  ['CacheBlend', (o) => new CacheBlend(fixture.model, o), { ratio: 0.2, checkLayer: 1, chunkPrefix: 'bos', salt: 'a' }, 'chunk_prefix'],
  ['KVShare', (o) => new KVShare(fixture.model, o), { ratio: 0.2, minReuse: 0.3, maxRequests: 4, decodeRefresh: false }, 'min_reuse'],
]

describe('reuse options are checked by name', () => {
  it.each(makers)('%s refuses an unknown option, naming it', (where, make, known, typo) => {
    const bad = () => make({ ...known, [typo]: 1 })
    expect(bad).toThrow(ReuseError)
    expect(bad).toThrow(`${where}: unknown option ${JSON.stringify(typo)}`)
  })

  it.each(makers)('%s refuses options that are not an object', (where, make) => {
    expect(() => make(null as unknown as object)).toThrow(`${where}: options must be an object, got null`)
  })

  it.each(makers)('%s takes every option it documents', (_, make, known) => {
    const made = make(known) as { dispose?: () => void }
    expect(made).toBeTruthy()
    made.dispose?.()
  })
})
