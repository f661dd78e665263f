/**
 * An option the chosen selection never reads is refused by name, as 'cross-chunk' already refused
 * deviation and seed: a seed under 'deviation' (the default) and a deviation under 'random' were taken
 * and ignored, so a caller who asked for a seeded run or KV deviation got neither, silently.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { CacheBlend, type CacheBlendOptions } from '../src/reuse/cacheblend.js'
import { ReuseError } from '../src/reuse/errors.js'
import { KVShare } from '../src/reuse/kvshare.js'
import { makeTinyModel } from './tiny-model.js'

let model: LlamaModel
beforeAll(async () => {
  model = (await loadModel(makeTinyModel(), { backend: 'wasm', threads: 1 })) as LlamaModel
})
afterAll(() => model?.dispose())

describe('a selection refuses the options it does not read', () => {
  it.each<[CacheBlendOptions, string]>([
    [{ seed: 3 }, "CacheBlend: selection 'deviation' chooses by deviation, deterministically, and reads no seed; got seed 3"],
    [{ selection: 'deviation', seed: 0 }, "CacheBlend: selection 'deviation' chooses by deviation, deterministically, and reads no seed; got seed 0"],
    [{ selection: 'random', deviation: 'kv' }, `CacheBlend: selection 'random' chooses at random (by seed) and measures no deviation; got deviation "kv"`],
    [{ selection: 'random', deviation: 'key', seed: 2 }, `CacheBlend: selection 'random' chooses at random (by seed) and measures no deviation; got deviation "key"`],
  ])('CacheBlend %j: a ReuseError naming it', (options, message) => {
    expect(() => new CacheBlend(model, options)).toThrow(new ReuseError(message))
  })

  it('KVShare refuses them the same way', () => {
    expect(() => new KVShare(model, { seed: 1 })).toThrow(new ReuseError("KVShare: selection 'deviation' chooses by deviation, deterministically, and reads no seed; got seed 1"))
    expect(() => new KVShare(model, { selection: 'random', deviation: 'kv' })).toThrow(/^KVShare: selection 'random' .* got deviation "kv"$/)
  })

  it('takes the options each selection reads', () => {
    expect(new CacheBlend(model, { selection: 'deviation', deviation: 'kv', gradualFrom: 0.5 }).deviation).toBe('kv')
    expect(new CacheBlend(model, { selection: 'random', seed: 3, gradualFrom: 0.5 }).seed).toBe(3)
    expect(new KVShare(model, { selection: 'random', seed: 4 }).seed).toBe(4)
  })
})
