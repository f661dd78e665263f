/**
 * diffusionGenerate and elasticCache name a bad number as it was given: NaN and Infinity are written
 * as themselves, not as JSON's null (which names no value the caller passed).
 */
import { rmSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import { elasticCache, ModelInputError } from '../src/index.js'
import type { LlamaModel } from '../src/model/model.js'
import { makeTinyDream } from './diffusion-helpers.js'

const { path } = makeTinyDream(11)
afterAll(() => rmSync(path, { recursive: true, force: true }))

describe('NaN and Infinity named in the errors', () => {
  let model: LlamaModel
  beforeAll(async () => { model = await loadModel(path, { backend: 'wasm', threads: 1 }) })
  afterAll(() => model.dispose())

  const cases: [string, Record<string, unknown>, string][] = [
    ['genLength NaN', { genLength: NaN }, 'genLength must be a positive integer, got NaN'],
    ['genLength Infinity', { genLength: Infinity }, 'genLength must be a positive integer, got Infinity'],
    ['blockLength NaN', { genLength: 8, blockLength: NaN }, 'blockLength must be an integer in [1, genLength = 8], got NaN'],
    ['steps -Infinity', { genLength: 8, steps: -Infinity }, 'steps must be a positive integer, got -Infinity'],
  ]
  for (const [name, o, message] of cases) {
    it(name, () => {
      expect(() => model.diffusionGenerate([1, 2], o as never)).toThrow(ModelInputError)
      expect(() => model.diffusionGenerate([1, 2], o as never)).toThrow(message)
    })
  }
  it('elasticCache options', () => {
    expect(() => elasticCache({ gamma: NaN })).toThrow('gamma must be a number in [0, 1], got NaN')
    expect(() => elasticCache({ trackNum: Infinity })).toThrow('trackNum must be a positive integer, got Infinity')
    expect(() => elasticCache({ windowLength: NaN })).toThrow('windowLength must be a positive integer, got NaN')
    expect(() => elasticCache({ gamma: '0.5' as never })).toThrow('gamma must be a number in [0, 1], got "0.5"')
  })
})
