/**
 * evaluate takes `signal` (EvalOptions.signal): an abort rejects with its reason, on one thread within
 * the sample running (between its prefill chunks and decode steps), on worker threads at once. An
 * evaluation (minutes to hours) could not be stopped from code: `signal` was not an option, and given
 * it was ignored and the run went to its end. A signal that is not one is an EvalArgumentError.
 */
import { describe, expect, it } from 'vitest'
import { evaluate, planEvaluation, EvalArgumentError, type EvalOptions } from '../src/eval/runner.js'
import { defaultModelDir } from '../src/eval/paths.js'
import type { SampleOutcome } from '../src/eval/results.js'

const base = { model: defaultModelDir(), policies: ['full'], tasks: ['passkey'], lengths: [128], samples: 4, threads: 1 }

describe('evaluate signal', () => {
  it('a signal that is not an AbortSignal: EvalArgumentError', () => {
    expect(() => planEvaluation({ ...base, signal: 'stop' } as unknown as EvalOptions)).toThrow(EvalArgumentError)
    expect(() => planEvaluation({ ...base, signal: 'stop' } as unknown as EvalOptions)).toThrow('signal must be an AbortSignal, got "stop"')
  })

  it('aborted before the call: rejects with the reason, no sample runs', async () => {
    const heard: SampleOutcome[] = []
    const reason = new Error('stopped before')
    await expect(evaluate({ ...base, workers: 1, signal: AbortSignal.abort(reason), onOutcome: (o) => heard.push(o) })).rejects.toBe(reason)
    expect(heard).toEqual([])
  })

  it.each([1, 2])('aborted at the first finished sample on %i worker(s): rejects with the reason, the rest never run', async (workers) => {
    const ac = new AbortController()
    const reason = new Error('stopped during')
    const heard: SampleOutcome[] = []
    const run = evaluate({ ...base, workers, signal: ac.signal, onOutcome: (o) => { heard.push(o); ac.abort(reason) } })
    await expect(run).rejects.toBe(reason)
    // two workers may each have finished one sample before the abort reached them
    expect(heard.length).toBeGreaterThanOrEqual(1)
    expect(heard.length).toBeLessThanOrEqual(workers)
  }, 120_000)
})
