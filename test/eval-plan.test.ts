import { describe, expect, it } from 'vitest'
import { planEvaluation, EvalArgumentError } from '../src/eval/runner.js'
import { aggregate, type SampleOutcome } from '../src/eval/results.js'
import { resultsJson } from '../src/eval/json.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { readModelFacts } from '../src/eval/model-facts.js'

const base = { model: defaultModelDir(), policies: ['full', 'snapkv:budget=0.5'], tasks: ['passkey', 'vt'], lengths: [1024, 2048], samples: 3, seed: 7 }

describe('evaluation plan', () => {
  it('makes one job per policy, task, length and sample, every policy on the same sample seeds', () => {
    const { jobs, cells } = planEvaluation(base)
    expect(cells).toHaveLength(2 * 2 * 2)
    expect(jobs).toHaveLength(2 * 2 * 2 * 3)
    const key = (j: (typeof jobs)[number]) => `${j.task}/${j.length}/${j.index}/${j.seed}`
    const a = jobs.filter((j) => j.policy === 'full').map(key)
    expect(jobs.filter((j) => j.policy === 'snapkv:budget=0.5').map(key)).toEqual(a)
    expect(new Set(a).size).toBe(a.length)
  })

  it('rejects bad arguments with an EvalArgumentError naming the bad value', () => {
    const bad: [Partial<typeof base> & Record<string, unknown>, RegExp][] = [
      [{ tasks: ['passkey', 'needle'] }, /unknown task "needle"/],
      [{ lengths: [100] }, /at least 128 tokens, got 100/],
      [{ lengths: [16384] }, /length 16384 is beyond what the model supports \(max_position_embeddings 8192\)/],
      [{ samples: 0 }, /samples must be a positive integer, got 0/],
      [{ model: '/no/such/model' }, /model folder not found: \/no\/such\/model/],
      [{ policies: ['snapkv:budget=x=1'] }, /snapkv/],
      [{ policies: [] }, /no policy given/],
      [{ seed: -1 }, /seed must be a non-negative integer, got -1/],
    ]
    for (const [over, msg] of bad) {
      const f = () => planEvaluation({ ...base, ...over } as typeof base)
      expect(f).toThrow(EvalArgumentError)
      expect(f).toThrow(msg)
    }
  })

  it('reads the model facts policies are validated against from config.json', () => {
    expect(readModelFacts(defaultModelDir())).toMatchObject({ maxPositions: 8192, shape: { layers: 8, qHeads: 6, kvHeads: 2, headDim: 64, group: 3 } })
  })
})

describe('results', () => {
  const o = (policy: string, index: number, correct: boolean, score: number, kv: number): SampleOutcome => ({
    policy, task: 'passkey', length: 1024, index, correct, score, continuation: '', kvBytes: kv, kvBytesFull: 1000, prefillMs: 10 * (index + 1), decodeMsPerToken: 2, kernels: 'wasm-simd',
  })
  it('average each cell over its samples, in the order the cells were asked for', () => {
    const r = aggregate([o('b', 1, false, 0.5, 250), o('a', 0, true, 1, 1000), o('b', 0, true, 1, 250), o('a', 1, true, 1, 1000)],
      [{ policy: 'a', task: 'passkey', length: 1024 }, { policy: 'b', task: 'passkey', length: 1024 }])
    expect(r).toEqual([
      { policy: 'a', task: 'passkey', length: 1024, samples: 2, accuracy: 1, score: 1, kvBytes: 1000, kvBytesFull: 1000, prefillMs: 15, decodeMsPerToken: 2, kernels: 'wasm-simd' },
      { policy: 'b', task: 'passkey', length: 1024, samples: 2, accuracy: 0.5, score: 0.75, kvBytes: 250, kvBytesFull: 1000, prefillMs: 15, decodeMsPerToken: 2, kernels: 'wasm-simd' },
    ])
    expect(JSON.parse(resultsJson(r))).toEqual({ results: r })
    expect(Object.keys(JSON.parse(resultsJson(r)).results[0])).toEqual(['policy', 'task', 'length', 'samples', 'accuracy', 'score', 'kvBytes', 'kvBytesFull', 'prefillMs', 'decodeMsPerToken', 'kernels'])
  })
})
