/**
 * evaluate / planEvaluation refuse an option they do not know and a callback that is not a function,
 * with EvalArgumentError naming it, before any model loads: a misspelt `sampels: 8` ran the default
 * samples silently, and `onProgress: 5` threw a TypeError at the first finished sample, after its prefill
 * and generation. A count given as a string is named as a string ("got \"8\"", it read "got 8").
 */
import { describe, expect, it } from 'vitest'
import { planEvaluation, EvalArgumentError, type EvalOptions } from '../src/eval/runner.js'
import { defaultModelDir } from '../src/eval/paths.js'

const base = { model: defaultModelDir(), policies: ['full'], tasks: ['passkey'], lengths: [512], samples: 1 }

describe('evaluate options it does not know', () => {
  it('a misspelt option, a callback that is not one, a count as a string: EvalArgumentError naming them', () => {
    const cases: [unknown, string][] = [
      [{ ...base, sampels: 8 }, 'unknown option "sampels"; options: model, policies, tasks'],
      [{ ...base, signl: null }, 'unknown option "signl"'],
      [{ ...base, onProgress: 5 }, 'onProgress must be a function, got 5'],
      [{ ...base, onOutcome: 'log' }, 'onOutcome must be a function, got "log"'],
      [{ ...base, samples: '8' }, 'samples must be a positive integer, got "8"'],
      [{ ...base, seed: '1' }, 'seed must be a non-negative integer, got "1"'],
      [{ ...base, workers: '2' }, 'workers must be a positive integer, got "2"'],
    ]
    for (const [opts, msg] of cases) {
      const plan = () => planEvaluation(opts as EvalOptions)
      expect(plan, msg).toThrow(EvalArgumentError)
      expect(plan, msg).toThrow(msg)
    }
  })

  it('every documented option is accepted', () => {
    const plan = planEvaluation({ ...base, sharePrefill: true, firstSample: 0, seed: 1, backend: 'wasm', question: 'with', kvDtype: 'float32', workers: 1, threads: 1, onProgress: () => {}, onOutcome: () => {} })
    expect(plan.jobs.length).toBe(1)
  })
})
