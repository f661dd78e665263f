/**
 * A NaN length given once to the evaluation is refused as a length that is not an integer, naming NaN;
 * it used to be reported as given twice ("length null is given twice"), because indexOf never finds
 * NaN. NaN given twice is a repeat, named as NaN.
 */
import { describe, expect, it } from 'vitest'
import { planEvaluation, EvalArgumentError } from '../src/eval/runner.js'
import { defaultModelDir } from '../src/eval/paths.js'

const base = { model: defaultModelDir(), policies: ['full'], tasks: ['passkey'], lengths: [1024], samples: 1, seed: 7 }

describe('a NaN length', () => {
  it.each([
    [[NaN], 'length must be an integer of at least 128 tokens, got NaN'],
    [[1024, NaN], 'length must be an integer of at least 128 tokens, got NaN'],
    [[NaN, NaN], 'length NaN is given twice'],
  ])('lengths %j: %s', (lengths, message) => {
    const plan = () => planEvaluation({ ...base, lengths })
    expect(plan).toThrow(EvalArgumentError)
    expect(plan).toThrow(message)
  })
})
