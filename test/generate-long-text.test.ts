/**
 * A text prompt that cannot fit the context is refused before it is tokenized (the tokenizer's lower
 * bound, src/model/token-bound.ts): model.generate throws ContextLengthError naming the limit and the
 * least token count without calling encode. A text near the limit behaves as its token ids do (the
 * path the bound does not touch): refused iff its tokens leave no room, else the same greedy tokens.
 * A tiny model on the fixture's tokenizer, max_position_embeddings 64; model.diffusionGenerate on a
 * tiny Dream (2048 positions) the same way.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { ContextLengthError } from '../src/model/errors.js'
import { makeTinyModel } from './tiny-model.js'
import { makeTinyDream } from './diffusion-helpers.js'

const MAX = 64
let model: LlamaModel
beforeAll(async () => {
  model = await loadModel(makeTinyModel({ eos_token_id: null, max_position_embeddings: MAX }), { backend: 'wasm' })
})
afterAll(() => model?.dispose())

const PROSE = 'It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. '

describe('model.generate on a text prompt past the context', () => {
  it('a 10 MB text: ContextLengthError naming the limit and at least length/14 tokens, encode never called', () => {
    const text = 'x'.repeat(10 * 2 ** 20)
    const encode = vi.spyOn(model.tokenizer, 'encode')
    try {
      expect(() => model.generate(text, { maxNewTokens: 1 })).toThrow(ContextLengthError)
      // 14 units a token at most ("Ġcircumstances"): past the context, letters are not counted
      expect(() => model.generate(text)).toThrow(`generate: a prompt of at least ${Math.ceil(text.length / 14)} tokens leaves no room for a new token (max_position_embeddings ${MAX})`)
      expect(encode).not.toHaveBeenCalled()
    } finally {
      encode.mockRestore()
    }
  })

  it('texts of 60 to 70 tokens (the longest entry repeated, prose, CJK): refused iff they leave no room, else as their ids', async () => {
    const texts: string[] = []
    for (let k = 60; k <= 70; k++) texts.push(' circumstances'.repeat(k))
    // prose cut to every length that gives 60..70 tokens: the bound (length / 14, letters / 13) refuses none of these
    for (let end = 150; end <= 400; end += 3) texts.push(PROSE.repeat(3).slice(0, end))
    texts.push('長い文章を読み込む前に拒否する。'.repeat(4), '長い文章を読み込む前に拒否する。'.repeat(5))
    const refused = { bound: 0, count: 0 }
    let ran = 0
    for (const text of texts) {
      const n = model.tokenizer.encode(text).length
      if (n < 55 || n > 75) continue
      if (n >= MAX) {
        let err: unknown
        try {
          model.generate(text, { maxNewTokens: 2 })
        } catch (e) {
          err = e
        }
        expect(err, `${n} tokens`).toBeInstanceOf(ContextLengthError)
        // the count it names is the exact one or a lower bound on it, and at least the limit
        const named = Number(/a prompt of (?:at least )?(\d+) tokens/.exec((err as Error).message)?.[1])
        expect(named, (err as Error).message).toBeGreaterThanOrEqual(MAX)
        expect(named, (err as Error).message).toBeLessThanOrEqual(n)
        refused[(err as Error).message.includes('at least') ? 'bound' : 'count']++
      } else {
        const a = await model.generate(text, { maxNewTokens: 2, temperature: 0 }).result
        const b = await model.generate(model.tokenizer.encode(text), { maxNewTokens: 2, temperature: 0 }).result
        expect(a.ids, `${n} tokens`).toEqual(b.ids)
        expect(a.stats.promptTokens).toBe(n)
        ran++
      }
    }
    // both sides of the limit, on both paths of the refusal (by the bound, by the count)
    expect(ran).toBeGreaterThanOrEqual(5)
    expect(refused.bound).toBeGreaterThanOrEqual(5)
    expect(refused.count).toBeGreaterThanOrEqual(5)
  })

  it('model.diffusionGenerate on a 10 MB text: ContextLengthError before encode', async () => {
    const dream = await loadModel(makeTinyDream(5).path, { backend: 'wasm' })
    const text = 'x'.repeat(10 * 2 ** 20)
    const encode = vi.spyOn(dream.tokenizer, 'encode')
    try {
      expect(() => dream.diffusionGenerate(text, { genLength: 8 })).toThrow(`diffusionGenerate: a prompt of at least ${Math.ceil(text.length / 14)} tokens and genLength 8 exceed the model's context (max_position_embeddings 2048)`)
      expect(encode).not.toHaveBeenCalled()
      // a short text still runs
      expect((await dream.diffusionGenerate('Hello', { genLength: 4, blockLength: 4, steps: 2 })).ids).toHaveLength(4)
    } finally {
      encode.mockRestore()
      dream.dispose()
    }
  })
})

/** what a refusal says, the count left out: the bound's ('at least N') and the count's (N) must say the same */
const shape = (message: string) => message.replace(/a prompt of (at least )?\d+ tokens/, 'a prompt of N tokens')

function errorOf(f: () => unknown): Error {
  try {
    f()
  } catch (e) {
    return e as Error
  }
  throw new Error('no error thrown')
}

describe('the bound\'s refusal is the count\'s (tryout-bound)', () => {
  it('generate: the same ContextLengthError but for "at least"; an option error before it, as after encode', () => {
    const text = 'x'.repeat(10 * 2 ** 20)
    const ids = Array.from({ length: MAX + 5 }, (_, i) => 10 + (i % 50))
    const byBound = errorOf(() => model.generate(text))
    const byCount = errorOf(() => model.generate(ids))
    expect(byBound).toBeInstanceOf(ContextLengthError)
    expect(byBound.message).toContain('at least')
    expect(shape(byBound.message)).toBe(shape(byCount.message))
    // the option checks that come before the count's refusal come before the bound's
    for (const options of [{ maxNewTokens: 0 }, { maxNewToken: 3 }] as object[]) {
      const a = errorOf(() => model.generate(text, options))
      const b = errorOf(() => model.generate(ids, options))
      expect([a.constructor, a.message]).toEqual([b.constructor, b.message])
      expect(a).not.toBeInstanceOf(ContextLengthError)
    }
  })

  it('diffusionGenerate: "a prompt of at least N tokens and genLength G exceed the context", refused where prompt + genLength do not fit; option errors first', async () => {
    const dream = await loadModel(makeTinyDream(5).path, { backend: 'wasm' })
    try {
      const ctx = dream.config.maxPositions
      // 14 units a token at most: this text is at least ctx - 4 tokens (exactly that many), past the context with genLength 8
      const text = ' circumstances'.repeat(ctx - 4)
      expect(dream.tokenizer.minTokens!(text)).toBe(ctx - 4)
      const ids = dream.tokenizer.encode(text)
      const byBound = errorOf(() => dream.diffusionGenerate(text, { genLength: 8 }))
      const byCount = errorOf(() => dream.diffusionGenerate(ids, { genLength: 8 }))
      expect(byBound).toBeInstanceOf(ContextLengthError)
      expect(byBound.message).toContain(`at least ${ctx - 4} tokens and genLength 8`)
      expect(shape(byBound.message)).toBe(shape(byCount.message))
      for (const options of [{ genLength: 8, blockLength: 3 }, { genLength: 0 }, { genLength: 8, steps: 9 }, { genLength: 8, remasking: 'random' }] as object[]) {
        const a = errorOf(() => dream.diffusionGenerate(text, options as never))
        const b = errorOf(() => dream.diffusionGenerate(ids, options as never))
        expect([a.constructor, a.message]).toEqual([b.constructor, b.message])
      }
    } finally {
      dream.dispose()
    }
  })
})
