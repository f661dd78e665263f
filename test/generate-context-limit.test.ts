/**
 * Kind 5 of issue 8: the library keeps to the model's context. A prompt that leaves no room for a new
 * token is refused (ContextLengthError) before any work; generation stops when prompt + new tokens reach
 * max_position_embeddings, with finishReason 'context'; `logits` refuses more tokens than fit. The
 * result says why generation ended: 'length' at maxNewTokens, 'eos' at an end-of-sequence token.
 * Grid: a tiny model with max_position_embeddings 64 x prompt lengths x maxNewTokens.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { ContextLengthError } from '../src/model/errors.js'
import { makeTinyModel } from './tiny-model.js'

const MAX = 64
let model: LlamaModel
beforeAll(async () => {
  model = await loadModel(makeTinyModel({ eos_token_id: null, max_position_embeddings: MAX }), { backend: 'wasm' })
})
afterAll(() => model?.dispose())
const prompt = (n: number) => Array.from({ length: n }, (_, i) => 10 + ((i * 37) % 3000))

describe('the context limit', () => {
  it('prompt lengths x maxNewTokens: refused, or stopped at the limit with finishReason context', async () => {
    let cases = 0
    for (const n of [1, 30, 60, 62, 63, 64, 65, 100]) {
      for (const maxNewTokens of [1, 3, 40]) {
        const where = `${n} prompt tokens + ${maxNewTokens}`
        if (n >= MAX) {
          expect(() => model.generate(prompt(n), { maxNewTokens }), where).toThrow(ContextLengthError)
        } else {
          const r = await model.generate(prompt(n), { maxNewTokens }).result
          const room = MAX - n
          expect(r.ids.length, where).toBe(Math.min(maxNewTokens, room))
          expect(r.finishReason, where).toBe(maxNewTokens <= room ? 'length' : 'context')
        }
        cases++
      }
    }
    expect(cases).toBe(24)
  })

  it('the issue\'s example: 60 prompt tokens and 40 new stop after 4, at position 63', async () => {
    const gen = model.generate(prompt(60), { maxNewTokens: 40 })
    const streamed: number[] = []
    for await (const t of gen) streamed.push(t.id)
    const r = await gen.result
    expect(r.ids).toHaveLength(4)
    expect(streamed).toEqual(r.ids)
    expect(r.finishReason).toBe('context')
  })

  it('the refusal names the limit in force: max_position_embeddings, or contextLimit where loadModel set one', async () => {
    expect(() => model.generate(prompt(MAX), { maxNewTokens: 1 })).toThrow(/\(max_position_embeddings 64\)/)
    for (const limit of [32, 100]) {
      const limited = await loadModel(makeTinyModel({ eos_token_id: null, max_position_embeddings: MAX }), { backend: 'wasm', contextLimit: limit })
      try {
        const msg = `(contextLimit ${limit}; max_position_embeddings ${MAX})`
        expect(() => limited.generate(prompt(limit), { maxNewTokens: 1 })).toThrow(msg)
        expect(() => limited.logits(prompt(limit + 1))).toThrow(msg)
        expect((await limited.generate(prompt(limit - 2), { maxNewTokens: 5 }).result).ids).toHaveLength(2)
      } finally {
        limited.dispose()
      }
    }
  })

  it('logits: up to max_position_embeddings tokens, refused beyond', () => {
    for (const n of [1, MAX - 1, MAX]) expect(model.logits(prompt(n)).length).toBe(n * model.config.vocab)
    for (const n of [MAX + 1, 2 * MAX]) expect(() => model.logits(prompt(n))).toThrow(ContextLengthError)
  })

  it('finishReason eos: the model\'s first greedy token made its end-of-sequence token', async () => {
    const first = (await model.generate(prompt(10), { maxNewTokens: 1 }).result).ids[0]
    const eosModel = await loadModel(makeTinyModel({ eos_token_id: first, max_position_embeddings: MAX }), { backend: 'wasm' })
    try {
      const r = await eosModel.generate(prompt(10), { maxNewTokens: 5 }).result
      expect(r.ids).toEqual([])
      expect(r.text).toBe('')
      expect(r.finishReason).toBe('eos')
    } finally {
      eosModel.dispose()
    }
  })

  it.each([[60, 40, 96], [100, 10, 128], [30, 50, 70]])('contextLimit lifts the limit explicitly: %i prompt tokens + %i new under a limit of %i', async (n, maxNewTokens, limit) => {
    const lifted = await loadModel(makeTinyModel({ eos_token_id: null, max_position_embeddings: MAX }), { backend: 'wasm', contextLimit: limit })
    try {
      expect(lifted.config.maxPositions).toBe(limit)
      expect(lifted.config.trainedPositions).toBe(MAX)
      const r = await lifted.generate(prompt(n), { maxNewTokens }).result
      expect(r.ids.length).toBe(Math.min(maxNewTokens, limit - n))
      expect(r.finishReason).toBe(maxNewTokens <= limit - n ? 'length' : 'context')
    } finally {
      lifted.dispose()
    }
  })

  it.each([0, 1, 2.5, -3, NaN])('contextLimit %s is refused before any file is read', async (limit) => {
    await expect(loadModel(makeTinyModel({}), { backend: 'wasm', contextLimit: limit })).rejects.toThrow(/contextLimit must be an integer of at least 2 tokens/)
  })
})
