import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LlamaModel } from '../src/model/model.js'
import { loadModel } from '../src/node/load.js'
import { createPolicy, PolicyCompositionError } from '../src/policies/registry.js'
import { fixturePrompt } from './threads-helpers.js'

// UnionKV's union is a maximum over every head's votes slot by slot: slot i must be one token in every
// head. After a part that leaves each head its own tokens it combined different tokens (and, over heads of
// different lengths, read past the shorter ones: NaN votes), silently; with bits it sized every head from
// head (0, 0)'s count, so pyramidkv:budget=0.5+unionkv:budget=0.25,bits=4 held 17.5% of the float16
// cache's bytes instead of 12.5%, adakv's 14.9%. Refused at creation like every prompt reader; after
// StreamingLLM (the same slots in every head) it runs and holds its share.

const PER_HEAD = ['snapkv:budget=0.5', 'adakv:budget=0.5', 'pyramidkv:budget=0.5', 'h2o:budget=0.5', 'kvzip:budget=0.5']

describe('UnionKV after a part that leaves each head its own tokens', () => {
  let model: LlamaModel
  beforeAll(async () => {
    model = await loadModel('models/fixture-14m', { threads: 1, wasm: { relaxed: false } })
  })
  afterAll(() => model?.dispose())

  it.each(PER_HEAD.flatMap((first) => ['unionkv:budget=0.25', 'unionkv:budget=0.25,bits=4'].map((then) => [first, then])))('%s then %s: refused at creation, "put unionkv first"', (first, then) => {
    const name = first.split(':')[0]
    expect(() => createPolicy(`${first}+${then}`, model.config)).toThrow(PolicyCompositionError)
    expect(() => createPolicy(`${first}+${then}`, model.config)).toThrow(`needs every KV head of a layer to hold the same tokens, and ${name} leaves each head its own`)
  })

  it('with bits the advice "put unionkv first" is given only where that composes: its packed rows cannot be evicted after it either', () => {
    expect(() => createPolicy('snapkv:budget=0.5+unionkv:budget=0.25', model.config)).toThrow('leaves each head its own; put unionkv first')
    expect(() => createPolicy('snapkv:budget=0.5+unionkv:budget=0.25,bits=4', model.config)).toThrow('leaves each head its own; nor can unionkv:bits=4 run first (snapkv evicts after unionkv:bits=4 packed the rows, which cannot be evicted)')
  })

  it('after StreamingLLM a byte budget holds its share of the bytes StreamingLLM left', async () => {
    const ids = fixturePrompt(1000)
    const go = async (policy?: string) => (await model.generate(ids, { maxNewTokens: 1, kvDtype: 'float16', policy }).result).stats.kvBytes.total
    const full = await go()
    const perToken = full / 1000
    // 999 prompt tokens compressed, the last one's row added after: 0.5 x 0.25 of the compressed rows' bytes
    expect(await go('streamingllm:budget=0.5+unionkv:budget=0.25,bits=4')).toBeLessThanOrEqual(0.125 * (full - perToken) + perToken)
  })
})
