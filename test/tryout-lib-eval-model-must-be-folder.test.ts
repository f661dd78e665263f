/**
 * evaluate's `model` is a folder path (each worker loads the model itself). A loaded model or another
 * non-string is refused with an EvalArgumentError saying so; it used to read "model folder not found:
 * [object Object]".
 */
import { describe, expect, it } from 'vitest'
import { planEvaluation, EvalArgumentError, type EvalOptions } from '../src/eval/runner.js'

const base = { policies: ['full'], tasks: ['passkey'], lengths: [1024], samples: 1, seed: 7 }

describe("evaluate's model option", () => {
  it.each([
    ['a loaded model', { config: { layers: 8 }, generate() {} }, 'got object'],
    ['undefined', undefined, 'got undefined'],
    ['a URL object', new URL('file:///models/fixture-14m'), 'got object'],
  ])('%s is refused, saying a folder path is needed', (_, model, got) => {
    const plan = () => planEvaluation({ ...base, model } as unknown as EvalOptions)
    expect(plan).toThrow(EvalArgumentError)
    expect(plan).toThrow(`model must be the model's folder (a path string; each worker loads it), ${got}`)
  })
})
