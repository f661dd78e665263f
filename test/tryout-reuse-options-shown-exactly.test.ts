/**
 * KVShare's decodeRefresh is checked like every other options object: a misspelt name ({ threshhold })
 * and options that are not an object (true, 5, null) are a ReuseError; they ran on the defaults, silently.
 * And the reuse calls show a bad value as it was given: ratio: '0.2' was refused as "got 0.2", which reads
 * as a number in range, and PrefixCache's maxBlocks: '10' as "got 10".
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { CacheBlend } from '../src/reuse/cacheblend.js'
import { ReuseError } from '../src/reuse/errors.js'
import { KVShare } from '../src/reuse/kvshare.js'
import { PrefixCache } from '../src/reuse/prefix-cache.js'
import { Sequence } from '../src/reuse/sequence.js'
import { alignTokens } from '../src/reuse/token-align.js'
import { makeTinyModel } from './tiny-model.js'

let model: LlamaModel
beforeAll(async () => {
  model = (await loadModel(makeTinyModel(), { backend: 'wasm', threads: 1 })) as LlamaModel
})
afterAll(() => model?.dispose())

describe('reuse options', () => {
  it.each([
    ['a misspelt decodeRefresh option', { decodeRefresh: { threshhold: 0.9 } }, 'KVShare: decodeRefresh: unknown option "threshhold"; options: threshold, tokens, maxRefreshes'],
    ['decodeRefresh: true', { decodeRefresh: true }, 'KVShare: decodeRefresh: options must be an object, got boolean'],
    ['decodeRefresh: null', { decodeRefresh: null }, 'KVShare: decodeRefresh: options must be an object, got null'],
    ['decodeRefresh.threshold as a string', { decodeRefresh: { threshold: '0.9' } }, 'KVShare: decodeRefresh.threshold must be a number in [0, 1], got "0.9"'],
    ['ratio as a string', { ratio: '0.2' }, 'KVShare: ratio must be a number in [0, 1], got "0.2"'],
    ['minReuse as a string', { minReuse: '0.5' }, 'KVShare: minReuse must be a number in [0, 1], got "0.5"'],
  ])('KVShare, %s: ReuseError', (_, options, message) => {
    expect(() => new KVShare(model, options as never)).toThrow(new ReuseError(message))
  })

  it('CacheBlend: strings shown quoted, numbers as written', () => {
    expect(() => new CacheBlend(model, { seed: 'x' as never })).toThrow(new ReuseError('CacheBlend: seed must be a finite number, got "x"'))
    expect(() => new CacheBlend(model, { checkLayer: '1' as never })).toThrow(/checkLayer must be an integer in \[0, \d+\], got "1"$/)
    expect(() => new CacheBlend(model, { ratio: 1.5 })).toThrow(new ReuseError('CacheBlend: ratio must be a number in [0, 1], got 1.5'))
  })

  it('PrefixCache, Sequence and alignTokens: strings shown quoted', () => {
    expect(() => new PrefixCache(model, { maxBlocks: '10' as never })).toThrow(new ReuseError('PrefixCache: maxBlocks must be a positive integer, got "10"'))
    expect(() => new PrefixCache(model, { blockTokens: '16' as never })).toThrow(new ReuseError('PrefixCache: blockTokens must be an integer in [1, 4096], got "16"'))
    expect(() => Sequence.create(model, { pageTokens: '8' as never })).toThrow(new ReuseError('Sequence: pageTokens must be an integer in [1, 4096], got "8"'))
    expect(() => Sequence.create(model).rollback('0' as never)).toThrow(new ReuseError('Sequence.rollback: tokens must be an integer in [0, 0], got "0"'))
    expect(() => alignTokens([1], [1], '3' as never)).toThrow(new ReuseError('alignTokens: maxEdits must be a whole number >= 0, got "3"'))
  })

  it('decodeRefresh: false and an options object are taken', () => {
    expect(new KVShare(model, { decodeRefresh: false }).decodeRefresh).toBeNull()
    expect(new KVShare(model, { decodeRefresh: { tokens: 8 } }).decodeRefresh).toEqual({ threshold: 0.5, tokens: 8, maxRefreshes: 4 })
  })
})
