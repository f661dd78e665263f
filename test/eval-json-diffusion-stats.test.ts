/**
 * `--json` (resultsJson) carries a diffusion cell's decode statistics (mean decodeMs, computeRatio,
 * refreshSteps: what Elastic-Cache is measured by), as evaluate() returns them; a causal cell has none.
 * The means are checked against hand-computed ones.
 */
import { describe, expect, it } from 'vitest'
import { aggregate, type SampleOutcome } from '../src/eval/results.js'
import { resultsJson } from '../src/eval/json.js'

const outcome = (index: number, policy: string, diffusion?: SampleOutcome['diffusion']): SampleOutcome => ({
  policy, task: 'passkey', length: 256, index, question: 'with', correct: index === 0, score: 1, continuation: '1',
  kvBytes: 10, kvBytesFull: 10, prefillMs: 0, compressMs: 0, decodeMsPerToken: 1, kernels: 'wasm-simd', kvDtype: 'float32', newTokens: 4,
  ...(diffusion ? { diffusion } : {}),
})

describe('resultsJson and diffusion cells', () => {
  it('writes the mean decode statistics of a diffusion cell', () => {
    const outcomes = [
      outcome(0, 'elastic-cache', { genLength: 16, steps: 16, decodeMs: 100, computeRatio: 0.25, refreshSteps: 3 }),
      outcome(1, 'elastic-cache', { genLength: 16, steps: 16, decodeMs: 300, computeRatio: 0.5, refreshSteps: 6 }),
      outcome(0, 'full'),
    ]
    const rows = JSON.parse(resultsJson(aggregate(outcomes, [
      { policy: 'elastic-cache', task: 'passkey', length: 256 },
      { policy: 'full', task: 'passkey', length: 256 },
    ]))).results
    expect(rows[0].diffusion).toEqual({ decodeMs: 200, computeRatio: 0.375, refreshSteps: 4.5 })
    expect(rows[1].diffusion).toBeUndefined()
    expect(rows[1].newTokens).toBe(4)
  })
})
