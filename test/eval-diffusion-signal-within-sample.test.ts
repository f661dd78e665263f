/**
 * evaluate's signal reaches a diffusion sample's decoding (diffusionGenerate's signal), as it reaches a
 * causal sample's prefill and generation: on one thread an abort heard while a sample ran its first
 * decoding cache still decoded the sample under every other cache of the job, to its end.
 */
import { rmSync } from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import { evaluate, type SampleOutcome } from '../src/eval/index.js'
import { makeTinyDream } from './diffusion-helpers.js'

describe('evaluate signal on a diffusion model', () => {
  const { path } = makeTinyDream(7)
  afterAll(() => rmSync(path, { recursive: true, force: true }))

  it('an abort after the first cache of a sample stops its other caches: rejects with the reason', async () => {
    const ac = new AbortController()
    const reason = new Error('stopped during the sample')
    const heard: SampleOutcome[] = []
    const run = evaluate({
      model: path, tasks: ['passkey'], lengths: [256], samples: 1, backend: 'wasm', workers: 1, threads: 1,
      policies: ['full', 'elastic-cache:gamma=1', 'elastic-cache:gamma=0'], diffusion: { blockLength: 8 }, signal: ac.signal,
      onOutcome: (o) => { heard.push(o); ac.abort(reason) },
    })
    await expect(run).rejects.toBe(reason)
    expect(heard.map((o) => o.policy)).toEqual(['full'])
  }, 120_000)
})
