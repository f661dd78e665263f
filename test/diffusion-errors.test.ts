import { rmSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import { ContextLengthError, DecodingModeError, elasticCache, ModelInputError, ModelLoadError } from '../src/index.js'
import type { LlamaModel } from '../src/model/model.js'
import { makeTinyDream, TINY_DREAM } from './diffusion-helpers.js'
import { makeTinyModel } from './tiny-model.js'

const MASK = TINY_DREAM.vocab - 1
const dirs: string[] = []
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }) })
const dream = (extra: Record<string, unknown> = {}) => {
  const { path } = makeTinyDream(5, TINY_DREAM, extra)
  dirs.push(path)
  return path
}

describe('loading a Dream config', () => {
  it('refuses a Dream config without mask_token_id', async () => {
    await expect(loadModel(dream({ mask_token_id: undefined }), { backend: 'wasm' })).rejects.toThrow(ModelLoadError)
    await expect(loadModel(dream({ mask_token_id: undefined }), { backend: 'wasm' })).rejects.toThrow(/mask_token_id, which is missing/)
  })
  it('refuses a mask id outside the vocabulary', async () => {
    await expect(loadModel(dream({ mask_token_id: 4097 }), { backend: 'wasm' })).rejects.toThrow(/mask_token_id = 4097 is not a token id in \[0, 4097\)/)
    await expect(loadModel(dream({ mask_token_id: -1 }), { backend: 'wasm' })).rejects.toThrow(ModelLoadError)
  })
  it('reads the mask id and Dream\'s logit shift', async () => {
    const m = await loadModel(dream(), { backend: 'wasm' })
    expect(m.config.diffusion).toEqual({ maskTokenId: MASK, logitShift: 1 })
    expect(m.config.architecture).toBe('DreamModel')
    m.dispose()
  })
})

describe('typed errors of the decoding calls, before any work', () => {
  let model: LlamaModel
  let causal: LlamaModel
  beforeAll(async () => {
    model = await loadModel(dream(), { backend: 'wasm', threads: 1 })
    const p = makeTinyModel()
    dirs.push(p)
    causal = await loadModel(p, { backend: 'wasm', threads: 1 })
  })
  afterAll(() => {
    model.dispose()
    causal.dispose()
  })

  it('a diffusion model refuses causal generation and says what to call', async () => {
    expect(() => model.generate([1, 2, 3])).toThrow(DecodingModeError)
    expect(() => model.generate([1, 2, 3])).toThrow(/call model.diffusionGenerate\(promptIds, \{ genLength, blockLength, steps \}\)/)
    await expect(model.prefillPrompt([1, 2, 3], [])).rejects.toThrow(DecodingModeError)
  })
  it('a causal model refuses the diffusion API and says what to call', () => {
    expect(() => causal.diffusionGenerate([1, 2], { genLength: 4 })).toThrow(DecodingModeError)
    expect(() => causal.diffusionGenerate([1, 2], { genLength: 4 })).toThrow(/causal LM: call model.generate/)
  })

  const bad: [string, unknown, RegExp][] = [
    ['genLength 0', { genLength: 0 }, /genLength must be a positive integer, got 0/],
    ['genLength 2.5', { genLength: 2.5 }, /genLength must be a positive integer, got 2.5/],
    ['no genLength', {}, /genLength must be a positive integer, got undefined/],
    ['blockLength not a divisor', { genLength: 8, blockLength: 3 }, /genLength 8 is not a multiple of blockLength 3/],
    ['blockLength above genLength', { genLength: 8, blockLength: 16 }, /blockLength must be an integer in \[1, genLength = 8\], got 16/],
    ['blockLength 0', { genLength: 8, blockLength: 0 }, /blockLength must be an integer in \[1, genLength = 8\], got 0/],
    ['steps 0', { genLength: 8, steps: 0 }, /steps must be a positive integer, got 0/],
    ['steps not a multiple of the blocks', { genLength: 8, blockLength: 4, steps: 3 }, /steps 3 is not a multiple of the number of blocks 2/],
    ['more steps per block than tokens', { genLength: 8, blockLength: 4, steps: 10 }, /5 steps per block, more than blockLength 4/],
    ['remasking random', { genLength: 8, remasking: 'random' }, /remasking must be 'low_confidence', got "random"/],
    ['an unknown cache', { genLength: 8, cache: 'dkv' }, /cache must be 'none' or elasticCache\(\{...\}\), got "dkv"/],
    ['a window shorter than the block', { genLength: 8, blockLength: 8, cache: elasticCache({ windowLength: 4 }) }, /windowLength 4 is shorter than blockLength 8/],
    ['stopAtEos not a boolean', { genLength: 8, stopAtEos: 'yes' }, /stopAtEos must be a boolean, got "yes"/],
    ['an unknown option', { genLength: 8, maxNewTokens: 8 }, /unknown option "maxNewTokens"/],
    ['onStep not a function', { genLength: 8, onStep: 3 }, /onStep must be a function, got number/],
  ]
  it.each(bad)('%s', (_, options, message) => {
    expect(() => model.diffusionGenerate([5, 6], options as never)).toThrow(ModelInputError)
    expect(() => model.diffusionGenerate([5, 6], options as never)).toThrow(message)
  })

  it('bad prompts: the mask token, an id outside the vocabulary, empty, beyond the context', () => {
    expect(() => model.diffusionGenerate([5, MASK, 6], { genLength: 4 })).toThrow(/prompt\[1\] is the mask token 4096/)
    expect(() => model.diffusionGenerate([5, 4097], { genLength: 4 })).toThrow(/prompt\[1\] = 4097 is not a token id in \[0, 4097\)/)
    expect(() => model.diffusionGenerate([], { genLength: 4 })).toThrow(/empty token list/)
    expect(() => model.diffusionGenerate([5, 6], { genLength: TINY_DREAM.maxPositions - 1 })).toThrow(ContextLengthError)
  })

  it.each([
    [{ gamma: 1.5 }, /gamma must be a number in \[0, 1\], got 1.5/],
    [{ gamma: -0.1 }, /gamma must be a number in \[0, 1\], got -0.1/],
    [{ gamma: NaN }, /gamma must be a number in \[0, 1\], got NaN/],
    [{ trackNum: 0 }, /trackNum must be a positive integer, got 0/],
    [{ windowLength: 0 }, /windowLength must be a positive integer, got 0/],
    [{ blockCaching: 1 }, /blockCaching must be a boolean, got 1/],
    [{ window: 32 }, /unknown option "window"/],
    [{ refreshFrom: 'layer-0' }, /refreshFrom must be 'drifting-layer' or 'next-layer', got "layer-0"/],
  ])('elasticCache(%o)', (o, message) => {
    expect(() => elasticCache(o as never)).toThrow(ModelInputError)
    expect(() => elasticCache(o as never)).toThrow(message)
  })

  it('an aborted decode rejects with the signal\'s reason', async () => {
    const ac = new AbortController()
    const p = model.diffusionGenerate([5, 6], { genLength: 8, signal: ac.signal })
    ac.abort(new Error('stop now'))
    await expect(p).rejects.toThrow('stop now')
  })
})

describe('stopAtEos', () => {
  it('stops after the first block that holds an end-of-sequence token; the answer ends before it', async () => {
    const m0 = await loadModel(dream(), { backend: 'wasm', threads: 1 })
    const prompt = [0, 17, 400, 3000, 5, 99]
    const free = await m0.diffusionGenerate(prompt, { genLength: 12, blockLength: 4, steps: 12 })
    m0.dispose()
    // the same weights with the second answer token declared the end-of-sequence token
    const eos = free.tokens[1]
    const m = await loadModel(dream({ eos_token_id: eos }), { backend: 'wasm', threads: 1 })
    try {
      const all = await m.diffusionGenerate(prompt, { genLength: 12, blockLength: 4, steps: 12 })
      expect(all.tokens).toEqual(free.tokens)
      expect(all.finishReason).toBe('eos')
      const first = free.tokens.indexOf(eos)
      expect(all.ids).toEqual(free.tokens.slice(0, first))
      const stopped = await m.diffusionGenerate(prompt, { genLength: 12, blockLength: 4, steps: 12, stopAtEos: true })
      expect(stopped.stats.steps).toBe(4)
      expect(stopped.tokens.slice(0, 4)).toEqual(free.tokens.slice(0, 4))
      expect(stopped.tokens.slice(4)).toEqual(new Array(8).fill(MASK))
      expect(stopped.ids).toEqual(all.ids)
      expect(stopped.finishReason).toBe('eos')
    } finally {
      m.dispose()
    }
  })
})
