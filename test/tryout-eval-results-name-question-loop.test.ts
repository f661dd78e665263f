import { describe, expect, it } from 'vitest'
import { aggregate, type SampleOutcome } from '../src/eval/results.js'
import { resultsJson } from '../src/eval/json.js'

// evaluate() / `kvkit eval --json` rows said which KV element type a cell ran with (kvDtype) but not which
// loop (question 'with' the context, or 'after' it: the query-agnostic loop), though each sample's
// outcome knew it: two runs of one policy, one per loop, wrote rows that could not be told apart. The
// cell now carries `question`, as it carries kvDtype.

const outcome = (index: number, question: 'with' | 'after'): SampleOutcome => ({
  policy: 'lagkv', task: 'passkey', length: 512, index, question, correct: true, score: 1, continuation: '1',
  kvBytes: 10, kvBytesFull: 20, prefillMs: 1, compressMs: 0, decodeMsPerToken: 1, kernels: 'wasm-simd', kvDtype: 'float32', newTokens: 4,
})
const cell = [{ policy: 'lagkv', task: 'passkey', length: 512 }]

describe('an evaluation cell names its question loop', () => {
  it.each(['with', 'after'] as const)('question %s is in the result and its JSON row', (q) => {
    const [r] = aggregate([outcome(0, q), outcome(1, q)], cell)
    expect(r.question).toBe(q)
    expect(JSON.parse(resultsJson([r])).results[0].question).toBe(q)
  })

  it('the JSON row puts it after kvDtype', () => {
    const keys = Object.keys(JSON.parse(resultsJson(aggregate([outcome(0, 'after')], cell))).results[0])
    expect(keys.slice(keys.indexOf('kvDtype'), keys.indexOf('kvDtype') + 2)).toEqual(['kvDtype', 'question'])
  })
})
