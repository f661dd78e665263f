import { rmSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { makeTinyDream, plainBidirectional, TINY_DREAM } from './diffusion-helpers.js'

// The bidirectional forward of a tiny random Dream model (Qwen2 weights with Q/K/V biases, tied head,
// no causal mask) against the float64 twin, on both compute cores.
describe('bidirectional forward of a Dream model', () => {
  const { path, t } = makeTinyDream(5)
  const models: Record<string, LlamaModel> = {}
  beforeAll(async () => {
    models.wasm = await loadModel(path, { backend: 'wasm', threads: 1 })
    models.reference = await loadModel(path, { backend: 'reference' })
  })
  afterAll(() => {
    for (const m of Object.values(models)) m.dispose()
    rmSync(path, { recursive: true, force: true })
  })

  it.each(['wasm', 'reference'])('logits of every position match the plain forward (%s)', (backend) => {
    const V = TINY_DREAM.vocab
    // prompt tokens, the mask token in the middle and at the end (what a decode step sees)
    const ids = [0, 17, 400, 3000, 4096, 5, 99, 4096, 4096, 1234, 7, 4096]
    const want = plainBidirectional(t, TINY_DREAM, ids)
    const got = models[backend].logits(ids)
    let worst = 0
    want.forEach((row, p) => row.forEach((v, i) => (worst = Math.max(worst, Math.abs(got[p * V + i] - v) / (1 + Math.abs(v))))))
    expect(worst).toBeLessThan(1e-4)
  })

  it('a later token changes an earlier position\'s logits (attention is not causal)', () => {
    const V = TINY_DREAM.vocab
    const a = models.wasm.logits([3, 4, 5, 6])
    const b = models.wasm.logits([3, 4, 5, 900])
    let diff = 0
    for (let i = 0; i < V; i++) diff = Math.max(diff, Math.abs(a[i] - b[i]))
    expect(diff).toBeGreaterThan(1e-3)
  })
})
