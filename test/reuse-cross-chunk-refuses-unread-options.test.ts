import { beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { CacheBlend } from '../src/reuse/cacheblend.js'
import { KVShare } from '../src/reuse/kvshare.js'
import { ReuseError } from '../src/reuse/errors.js'

// selection 'cross-chunk' reads neither `deviation` nor `seed`: CacheBlend took them and ignored them,
// so a caller who asked for KV deviation or a seeded run got neither, silently. It refuses them now, by
// name. KVShare's refusal of 'cross-chunk' said only which selections it allows: it says why now.
let model: LlamaModel
beforeAll(async () => {
  model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
})

describe("CacheBlend selection 'cross-chunk'", () => {
  it.each([
    [{ deviation: 'kv' as const }, 'deviation "kv"'],
    [{ deviation: 'key' as const }, 'deviation "key"'],
    [{ seed: 3 }, 'seed 3'],
    [{ deviation: 'kv' as const, seed: 0 }, 'deviation "kv" and seed 0'],
  ])('refuses %j it would not read, naming it', (extra, named) => {
    const make = () => new CacheBlend(model, { selection: 'cross-chunk', checkLayer: 2, ...extra })
    expect(make).toThrow(ReuseError)
    expect(make).toThrow(named)
  })

  it('takes the options it reads, and the others still take deviation and seed', () => {
    expect(new CacheBlend(model, { selection: 'cross-chunk', checkLayer: 2, ratio: 0.2, chunkPrefix: 'bos' }).selection).toBe('cross-chunk')
    expect(new CacheBlend(model, { selection: 'deviation', deviation: 'kv' }).deviation).toBe('kv')
    expect(new CacheBlend(model, { selection: 'random', seed: 3 }).seed).toBe(3)
  })
})

describe("KVShare selection 'cross-chunk'", () => {
  it('is refused with the reason: its context has no chunks', () => {
    const make = () => new KVShare(model, { selection: 'cross-chunk' })
    expect(make).toThrow(ReuseError)
    expect(make).toThrow(/no chunks/)
  })
})
