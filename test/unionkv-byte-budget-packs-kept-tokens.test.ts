/**
 * UnionKV with `bits`: the budget is a share of the cache's bytes, each head keeps the most tokens whose
 * rows fit once packed in KIVI's format (groups of 128), and those rows are packed. Pinned by hand-computed
 * token counts, by the kept counts and bytes of a real generation on the fixture model through the public
 * API, and by its twin, the composition it stands for: UnionKV at that token count, then KIVI with groups
 * of 128 and no float window, which must generate the same tokens and hold the same bytes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { packedBytesPerToken, packedTokensPerHead } from '../src/policies/packed-budget.js'
import { PolicyOptionValueError } from '../src/policies/errors.js'
import type { KVDtype } from '../src/cache/formats.js'

let model: LlamaModel
beforeAll(async () => {
  model = (await loadModel(defaultModelDir(), { backend: 'wasm', threads: 1 })) as LlamaModel
})
afterAll(() => model?.dispose())

describe('tokens a head keeps under a byte budget with packed rows (hand-computed)', () => {
  it('an int2 token is 38 bytes at head_dim 64 and groups of 128 (keys 18, values 20), int4 70, int8 134', () => {
    // keys: 64 channels x 32 bytes of codes + 64 x (scale, min) float16, over 128 tokens; values: 16 bytes
    // of codes + one (scale, min) a token (groups of 64 channels)
    expect(packedBytesPerToken('int2', 64)).toBe((64 * 32 + 64 * 4) / 128 + 16 + 4)
    expect(packedBytesPerToken('int2', 64)).toBe(38)
    expect(packedBytesPerToken('int4', 64)).toBe(70)
    expect(packedBytesPerToken('int8', 64)).toBe(134)
  })

  it.each<[number, number, 'int2' | 'int4', KVDtype, number]>([
    // 4095 tokens at 12.5% of float16 (256 bytes a token): 131040 bytes; 26 groups (3328 x 38 = 126464) and 17 float tokens
    [4095, 0.125, 'int2', 'float16', 3345],
    // 699 tokens, float16: 22368 bytes; 4 groups (19456) and 11 float tokens (a fifth group would be 24320)
    [699, 0.125, 'int2', 'float16', 523],
    // 699 tokens, float32 (512 bytes a token): 44736 bytes; 5 groups (24320) and 39 float tokens
    [699, 0.125, 'int2', 'float32', 679],
    // the whole prompt fits: 699 tokens at 25% of float16 (44736 bytes) hold 5 groups and 59 float tokens (39424)
    [699, 0.25, 'int2', 'float16', 699],
    // int4 at 12.5% of float16, 4095 tokens: 14 groups (1792 x 70 = 125440) and 21 float tokens (15 groups: 134400)
    [4095, 0.125, 'int4', 'float16', 1813],
    // fewer bytes than one token: one token
    [3, 0.125, 'int2', 'float16', 1],
  ])('n=%i at %f in %s over %s keeps %i', (n, ratio, format, dtype, expected) => {
    expect(packedTokensPerHead(n, ratio, format, 64, dtype)).toBe(expected)
  })

  it('the count never spends more than the budget, and one more token would', () => {
    for (const n of [1, 2, 127, 128, 129, 255, 256, 700, 4095]) {
      for (const ratio of [0.05, 0.125, 0.25, 0.5, 1]) {
        for (const dtype of ['float16', 'float32'] as const) {
          const F = 128 * (dtype === 'float16' ? 2 : 4)
          const cost = (c: number) => Math.floor(c / 128) * 128 * 38 + (c % 128) * F
          const c = packedTokensPerHead(n, ratio, 'int2', 64, dtype)
          if (c > 1) expect(cost(c)).toBeLessThanOrEqual(ratio * n * F)
          if (c < n) for (let more = c + 1; more <= n; more++) expect(cost(more)).toBeGreaterThan(ratio * n * F)
        }
      }
    }
  })
})

const prompt = [0, ...Array.from({ length: 699 }, (_, i) => 2 + ((i * 7919) % 4000))]

describe('UnionKV at a byte budget on the fixture model (public API)', () => {
  it.each<[string, KVDtype, number]>([
    ['unionkv:budget=0.125,bits=2', 'float16', 523],
    ['unionkv:budget=0.125,bits=2', 'float32', 679],
    // 44736 bytes: 4 int4 groups (35840) and 34 float tokens (5 groups: 44800)
    ['unionkv:budget=0.25,bits=4', 'float16', 546],
  ])('%s over %s keeps the hand-computed tokens, packs whole groups of 128 and generates as its composition twin', async (policy, kvDtype, C) => {
    const bits = /bits=(\d)/.exec(policy)![1]
    const run = async (p: string) => {
      let kept: Int32Array[][] = []
      const r = await model.generate(prompt, { maxNewTokens: 12, policy: p, kvDtype, onKept: (k) => void (k.stage === 'prefill' && (kept = k.kept)) }).result
      return { r, kept }
    }
    const { r: a, kept } = await run(policy)
    const { r: twin, kept: twinKept } = await run(`unionkv:tokens=${C}+kivi:bits=${bits},groupSize=128,residual=0`)
    // the prompt but its last token is compressed: 699 tokens a head, C of them kept by every head
    expect(new Set(kept.flat().map((k) => k.length))).toEqual(new Set([C]))
    expect(kept).toEqual(twinKept)
    expect(a.ids).toEqual(twin.ids)
    expect(a.stats.kvBytes).toEqual(twin.stats.kvBytes)
    const streams = model.config.layers * model.config.kvHeads
    const packed = a.stats.kvBytes.quantized / streams / packedBytesPerToken(bits === '2' ? 'int2' : 'int4', 64)
    expect(packed).toBe(Math.floor(C / 128) * 128)
  })

  it('holds no more of the prompt than the budget: bytes after prefill within 12.5% of the float16 cache', async () => {
    const r = await model.generate(prompt, { maxNewTokens: 1, policy: 'unionkv:budget=0.125,bits=2', kvDtype: 'float16' }).result
    const perToken = model.config.layers * model.config.kvHeads * 2 * model.config.headDim * 2
    // one float row a head for the last prompt token's step (and none decoded past it)
    expect(r.stats.kvBytes.total).toBeLessThanOrEqual(0.125 * 699 * perToken + perToken)
  })

  it.each([
    ['unionkv:bits=3', 'bits must be 2, 4 or 8, got 3'],
    ['unionkv:bits=2,tokens=64', 'give budget, not tokens=64'],
    ['unionkv:bits=4,every=8', 'every must be 0, got 8'],
  ])('%s is refused naming the bad value, before any generation', (policy, message) => {
    expect(() => model.generate(prompt, { maxNewTokens: 2, policy })).toThrow(PolicyOptionValueError)
    expect(() => model.generate(prompt, { maxNewTokens: 2, policy })).toThrow(message)
  })
})
