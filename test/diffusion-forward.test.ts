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

describe('the bidirectional forward reusing cached layers', () => {
  it('a token changed: a drift at layer 0 refreshes every layer (the logits of a fresh full forward); no drift leaves stale states', async () => {
    const { path } = makeTinyDream(9)
    const model = await loadModel(path, { backend: 'wasm', threads: 1 })
    try {
      const { BidirectionalForward } = await import('../src/model/diffusion/forward.js')
      const V = TINY_DREAM.vocab
      const L = TINY_DREAM.layers
      const N = 10
      const seq = Int32Array.from([0, 17, 400, 3000, 4096, 4096, 4096, 4096, 4096, 4096])
      const all = Int32Array.from({ length: N }, (_, i) => i)
      const plan = (rows: Int32Array, fullFrom: number, gamma: number, out: Float32Array) =>
        ({ rows, tail: 3, fullFrom, track: Int32Array.of(1), gamma, trackNum: 1, masked: new Uint8Array(N).fill(1, 4), logitRows: 3, out })
      const reuse = new BidirectionalForward(model.backend, model.config, model.weights, N, 3, true)
      const fresh = new BidirectionalForward(model.backend, model.config, model.weights, N, 3, false)
      const worst = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0)
      try {
        const first = reuse.run(seq, plan(all, 0, 0, new Float32Array(3 * V)))
        expect(first.rows).toBe(N * L)
        expect(Array.from(first.track!).every((p) => p < 4)).toBe(true)
        // the changed token, the tracked one, then the three rows whose logits are read
        const rows = Int32Array.of(1, 5, 6, 7, 8)
        const want = new Float32Array(3 * V)
        seq[5] = 1234
        fresh.run(seq, { ...plan(rows, 0, 0, want), track: null, trackNum: 0 })
        const got = new Float32Array(3 * V)
        const out = reuse.run(seq, plan(rows, L, 1, got))
        expect(out.fullFrom).toBe(0)
        expect(out.rows).toBe(rows.length + N * L)
        expect(worst(got, want)).toBeLessThan(1e-5)
        // gamma 0: no layer drifts, every layer computes the five rows alone over stale keys elsewhere
        seq[5] = 77
        fresh.run(seq, { ...plan(rows, 0, 0, want), track: null, trackNum: 0 })
        const stale = new Float32Array(3 * V)
        const kept = reuse.run(seq, plan(rows, L, 0, stale))
        expect(kept.fullFrom).toBe(L)
        expect(kept.rows).toBe(rows.length * L)
        expect(worst(stale, want)).toBeGreaterThan(1e-4)
      } finally {
        reuse.dispose()
        fresh.dispose()
      }
    } finally {
      model.dispose()
      rmSync(path, { recursive: true, force: true })
    }
  })
})
