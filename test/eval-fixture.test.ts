import { describe, expect, it } from 'vitest'
import { evaluate } from '../src/eval/index.js'
import type { SampleOutcome } from '../src/eval/results.js'
import { defaultModelDir } from '../src/eval/paths.js'

/**
 * End to end on the fixture model: a few samples of the tasks it solves at 1024 tokens with the full
 * cache (tasks.md: passkey 1.00, niah_single 0.96). A prompt built any other way than the model was
 * trained on (order of pieces, question block, answer form, BOS) drops these to near zero.
 */
describe('evaluate on the fixture model', () => {
  it('solves passkey and niah_single with the full cache, and a compressed cache keeps fewer bytes', async () => {
    const outcomes: SampleOutcome[] = []
    const results = await evaluate({
      model: defaultModelDir(), policies: ['full', 'streamingllm:budget=0.25'], tasks: ['passkey', 'niah_single'], lengths: [1024],
      samples: 3, seed: 1, workers: 1, onOutcome: (o) => outcomes.push(o),
    })
    expect(results.map((r) => `${r.policy} ${r.task}`)).toEqual(['full passkey', 'full niah_single', 'streamingllm:budget=0.25 passkey', 'streamingllm:budget=0.25 niah_single'])
    const [passkey, single, sPasskey] = results
    expect(passkey.accuracy, JSON.stringify(outcomes.map((o) => o.continuation))).toBe(1)
    expect(single.accuracy).toBeGreaterThanOrEqual(2 / 3)
    expect(passkey.kvBytes).toBe(passkey.kvBytesFull)
    expect(sPasskey.kvBytes).toBeLessThan(0.4 * sPasskey.kvBytesFull)
    // the same prompts; only the continuations' lengths differ
    expect(Math.abs(sPasskey.kvBytesFull / passkey.kvBytesFull - 1)).toBeLessThan(0.01)
    for (const r of results) {
      expect(r.samples).toBe(3)
      expect(r.prefillMs).toBeGreaterThan(0)
      expect(r.decodeMsPerToken).toBeGreaterThan(0)
      // the wasm build that ran is part of every result (relaxed SIMD may break near ties differently)
      expect(r.kernels).toMatch(/^wasm-(relaxed-)?simd$/)
      expect(r.score).toBeGreaterThanOrEqual(r.accuracy - 1e-9)
    }
  })

  it('gives the same continuations in two worker threads as in-process', async () => {
    const run = async (workers: number) => {
      const outcomes: SampleOutcome[] = []
      await evaluate({ model: defaultModelDir(), policies: ['full'], tasks: ['vt'], lengths: [512], samples: 2, seed: 3, workers, onOutcome: (o) => outcomes.push(o) })
      return outcomes.sort((a, b) => a.index - b.index).map((o) => o.continuation)
    }
    const one = await run(1)
    expect(await run(2)).toEqual(one)
  })
})
