import { rmSync } from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import { EvalArgumentError, evaluate, planEvaluation, type SampleOutcome } from '../src/eval/index.js'
import { makeTinyDream } from './diffusion-helpers.js'
import { makeTinyModel } from './tiny-model.js'

// The eval harness on a masked diffusion LM: its "policies" are the decoding caches, checked before any
// model loads; the tasks run by iterative unmasking, Elastic-Cache at gamma 1 giving full recomputation's
// continuations (an equality check: the random model's answers are noise).
describe('eval of a diffusion model', () => {
  const { path } = makeTinyDream(7)
  const causal = makeTinyModel()
  afterAll(() => {
    rmSync(path, { recursive: true, force: true })
    rmSync(causal, { recursive: true, force: true })
  })
  const base = { model: path, tasks: ['passkey'], lengths: [256], samples: 2 }

  it('plans decoding caches as the policies, with the decoding options in every job', () => {
    const { jobs, cells } = planEvaluation({ ...base, policies: ['full', 'elastic-cache:gamma=0.5,trackNum=2,refreshFrom=next-layer'], diffusion: { blockLength: 4 } })
    expect(cells.map((c) => c.policy)).toEqual(['full', 'elastic-cache:gamma=0.5,trackNum=2,refreshFrom=next-layer'])
    expect(jobs.every((j) => j.diffusion?.blockLength === 4)).toBe(true)
  })

  it.each([
    [['snapkv:budget=0.5'], {}, /decodes with 'full' \(recompute every step\) or 'elastic-cache/],
    [['elastic-cache:gamma=2'], {}, /gamma must be a number in \[0, 1\], got 2/],
    [['elastic-cache:gama=0.5'], {}, /unknown option "gama"/],
    [['full'], { genLength: 10, blockLength: 4 }, /genLength 10 is not a multiple of blockLength 4/],
    [['full'], { steps: 0 }, /steps must be a positive integer, got 0/],
    [['full'], { steps: 16 }, /diffusion steps 16 needs genLength too/],
  ])('refuses %j with %j before any model loads', (policies, diffusion, message) => {
    expect(() => planEvaluation({ ...base, policies, diffusion })).toThrow(EvalArgumentError)
    expect(() => planEvaluation({ ...base, policies, diffusion })).toThrow(message)
  })

  it('a causal model refuses diffusion options', () => {
    expect(() => planEvaluation({ ...base, model: causal, policies: ['full'], diffusion: { blockLength: 4 } })).toThrow(/for a masked diffusion LM; this model is causal/)
  })

  it('runs the task with full recomputation and Elastic-Cache; gamma 1 gives the same continuations', async () => {
    const outcomes: SampleOutcome[] = []
    const results = await evaluate({ ...base, backend: 'wasm', policies: ['full', 'elastic-cache:gamma=1', 'elastic-cache:gamma=0'], workers: 1, threads: 1, diffusion: { blockLength: 8 }, onOutcome: (o) => outcomes.push(o) })
    expect(results.map((r) => r.policy)).toEqual(['full', 'elastic-cache:gamma=1', 'elastic-cache:gamma=0'])
    for (const r of results) {
      expect(r.samples).toBe(2)
      expect(r.diffusion!.decodeMs).toBeGreaterThan(0)
    }
    expect(results[0].diffusion!.computeRatio).toBe(1)
    expect(results[2].diffusion!.computeRatio).toBeLessThan(1)
    expect(results[2].diffusion!.refreshSteps).toBe(1)
    for (const i of [0, 1]) {
      const text = (policy: string) => outcomes.find((o) => o.policy === policy && o.index === i)!.continuation
      expect(text('elastic-cache:gamma=1')).toBe(text('full'))
      expect(text('full').length).toBeGreaterThan(0)
    }
    expect(results[1].accuracy).toBe(results[0].accuracy)
  })
})
