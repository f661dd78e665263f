import { describe, expect, it } from 'vitest'
import { planEvaluation, EvalArgumentError } from '../src/eval/runner.js'
import { aggregate, wilsonInterval, type SampleOutcome } from '../src/eval/results.js'
import { policyLabels } from '../src/eval/labels.js'
import { resultsJson } from '../src/eval/json.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { readModelFacts } from '../src/eval/model-facts.js'

const base = { model: defaultModelDir(), policies: ['full', 'snapkv:budget=0.5'], tasks: ['passkey', 'vt'], lengths: [1024, 2048], samples: 3, seed: 7 }

describe('evaluation plan', () => {
  it('makes one job per task, length and sample carrying every policy, so the policies share its prompt', () => {
    const { jobs, cells } = planEvaluation(base)
    expect(cells).toHaveLength(2 * 2 * 2)
    expect(jobs).toHaveLength(2 * 2 * 3)
    const key = (j: (typeof jobs)[number]) => `${j.task}/${j.length}/${j.index}/${j.seed}`
    expect(new Set(jobs.map(key)).size).toBe(jobs.length)
    for (const j of jobs) expect(j).toMatchObject({ policies: base.policies, sharePrefill: true, seed: 7 })
    expect(planEvaluation({ ...base, sharePrefill: false }).jobs.every((j) => !j.sharePrefill)).toBe(true)
  })

  it('orders the jobs sample by sample, so that a run stopped early has every task at the same count', () => {
    const { jobs } = planEvaluation({ ...base, lengths: [1024] })
    expect(jobs.map((j) => `${j.index}${j.task}`)).toEqual(['0passkey', '0vt', '1passkey', '1vt', '2passkey', '2vt'])
  })

  it('rejects bad arguments with an EvalArgumentError naming the bad value', () => {
    const bad: [Partial<typeof base> & Record<string, unknown>, RegExp][] = [
      [{ tasks: ['passkey', 'needle'] }, /unknown task "needle"/],
      [{ lengths: [100] }, /at least 128 tokens, got 100/],
      [{ lengths: [16384] }, /length 16384 is beyond what the model supports \(max_position_embeddings 8192; --context-limit lifts it\)/],
      [{ samples: 0 }, /samples must be a positive integer, got 0/],
      [{ model: '/no/such/model' }, /model folder not found: \/no\/such\/model/],
      [{ policies: ['snapkv:budget=x=1'] }, /snapkv/],
      [{ policies: [] }, /no policy given/],
      [{ seed: -1 }, /seed must be a non-negative integer, got -1/],
      [{ books: ['data/books/11-0.txt', '/no/such/book.txt'] }, /book not found: \/no\/such\/book.txt/],
      [{ books: [] }, /books is empty/],
      [{ books: ['data/books/11-0.txt'], haystack: 'data/books' }, /either as haystack .* or as books/],
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
    policy, task: 'passkey', length: 1024, index, question: 'with', correct, score, continuation: '', kvBytes: kv, kvBytesFull: 1000, prefillMs: 10 * (index + 1), compressMs: 1, decodeMsPerToken: 2, kernels: 'wasm-simd', kvDtype: 'float32',
    newTokens: 3 + index, ...(policy === 'b' ? { policyStats: { blocksMoved: 2 + 2 * index } } : {}),
  })
  it('average each cell over its samples, in the order the cells were asked for', () => {
    const r = aggregate([o('b', 1, false, 0.5, 250), o('a', 0, true, 1, 1000), o('b', 0, true, 1, 250), o('a', 1, true, 1, 1000)],
      [{ policy: 'a', task: 'passkey', length: 1024 }, { policy: 'b', task: 'passkey', length: 1024 }])
    expect(r).toEqual([
      { policy: 'a', task: 'passkey', length: 1024, samples: 2, accuracy: 1, accuracyInterval: [expect.closeTo(0.3424, 3), 1], score: 1, kvBytes: 1000, kvBytesFull: 1000, prefillMs: 15, compressMs: 1, decodeMsPerToken: 2, kernels: 'wasm-simd', kvDtype: 'float32', question: 'with', newTokens: 3.5 },
      { policy: 'b', task: 'passkey', length: 1024, samples: 2, accuracy: 0.5, accuracyInterval: [expect.closeTo(0.0945, 3), expect.closeTo(0.9055, 3)], score: 0.75, kvBytes: 250, kvBytesFull: 1000, prefillMs: 15, compressMs: 1, decodeMsPerToken: 2, kernels: 'wasm-simd', kvDtype: 'float32', question: 'with', newTokens: 3.5, policyStats: { blocksMoved: 3 } },
    ])
    expect(JSON.parse(resultsJson(r))).toEqual({ results: r })
    expect(Object.keys(JSON.parse(resultsJson(r)).results[0])).toEqual(['policy', 'task', 'length', 'samples', 'accuracy', 'accuracyInterval', 'score', 'kvBytes', 'kvBytesFull', 'prefillMs', 'compressMs', 'decodeMsPerToken', 'kernels', 'kvDtype', 'question', 'newTokens'])
    expect(Object.keys(JSON.parse(resultsJson(r)).results[1]).slice(-2)).toEqual(['newTokens', 'policyStats'])
  })
})

describe('the 95% Wilson interval of an accuracy', () => {
  // hand-computed from Wilson's formula with z = 1.96
  it.each([
    [0, 8, 0, 0.3244],
    [4, 8, 0.2152, 0.7848],
    [8, 8, 0.6756, 1],
    [7, 8, 0.5291, 0.9776],
    [1, 2, 0.0945, 0.9055],
    [12, 24, 0.3143, 0.6857],
  ])('%i of %i: [%f, %f]', (k, n, lo, hi) => {
    const [a, b] = wilsonInterval(k, n)
    expect(a).toBeCloseTo(lo, 3)
    expect(b).toBeCloseTo(hi, 3)
  })
  it('is the whole range for no samples', () => {
    expect(wilsonInterval(0, 0)).toEqual([0, 1])
  })
})

describe('short policy labels', () => {
  it('name the policy and its budget, letter the variants of one policy, and keep full bare', () => {
    const rec = 'window=16,share=model,combine=max,local=0.25,rest=layer,pooling=avg,kernel=9'
    const specs = ['full', 'snapkv:budget=0.5', 'snapkv:budget=0.25', 'adakv:budget=0.5', 'streamingllm:tokens=512',
      `snapkv:budget=0.5,${rec}`, `snapkv:budget=0.25,${rec}`, 'snapkv:budget=0.5+think:ratio=0.5']
    const labels = policyLabels(specs)
    expect(specs.map((s) => labels.get(s)!.label)).toEqual([
      'full', 'snapkv 50%', 'snapkv 25%', 'adakv 50%', 'streamingllm 512 tok', 'snapkv B 50%', 'snapkv B 25%', 'snapkv+think 50%',
    ])
    expect(labels.get(`snapkv:budget=0.25,${rec}`)!.family).toBe(`snapkv:${rec}`)
    expect(labels.get('snapkv:budget=0.5+think:ratio=0.5')!.familyLabel).toBe('snapkv+think')
  })
})
