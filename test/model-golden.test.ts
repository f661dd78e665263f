import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'

const DIR = 'models/fixture-14m'
const golden = JSON.parse(readFileSync(`${DIR}/golden.json`, 'utf8')) as {
  input_ids: number[]
  logits_first8_per_pos: number[][]
  logits_sum_per_pos: number[]
  last_logits_top10: number[]
}

// PyTorch and kvkit agree to about 1e-5 per logit on this model (float32 weights and RoPE frequencies;
// measured: 8e-6 at most on the first 8 logits, 5e-3 on a sum of 4096 logits): the tolerances are a few
// times that, so a change in any kernel, in RoPE or in the attention shows.
const ABS = 3e-5
const ABS_SUM = 2e-2

function checkGolden(model: LlamaModel, positions: number): void {
  const ids = golden.input_ids.slice(0, positions)
  const V = model.config.vocab
  const logits = model.logits(ids)
  for (let p = 0; p < positions; p++) {
    const row = logits.subarray(p * V, (p + 1) * V)
    for (let i = 0; i < 8; i++) expect(Math.abs(row[i] - golden.logits_first8_per_pos[p][i]), `pos ${p} logit ${i}`).toBeLessThan(ABS)
    let sum = 0
    for (let i = 0; i < V; i++) sum += row[i]
    const want = golden.logits_sum_per_pos[p]
    expect(Math.abs(sum - want), `pos ${p} logit sum ${sum} vs ${want}`).toBeLessThan(ABS_SUM)
  }
  if (positions === ids.length && positions === golden.input_ids.length) {
    const last = Array.from(logits.subarray((positions - 1) * V, positions * V))
    const top = last.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, 10).map((x) => x[1])
    expect(top).toEqual(golden.last_logits_top10)
  }
}

// golden.json holds the logits a Hugging Face user gets in float32 (RoPE inverse frequencies in float32,
// as every loader derives them from rope_theta). The runtime's default path must match it tightly.
describe('fixture-14m reproduces the PyTorch golden logits', () => {
  let wasm: LlamaModel
  beforeAll(async () => {
    wasm = await loadModel(DIR, { backend: 'wasm' })
  })
  afterAll(() => wasm?.dispose())

  it('on the wasm backend: first 8 logits, logit sums and the last top-10 at every position', () => {
    checkGolden(wasm, golden.input_ids.length)
  })

  it('on the wasm backend with 7-token chunks (prefill crosses chunk boundaries)', async () => {
    const m = await loadModel(DIR, { backendInstance: wasm.backend, chunk: 7 })
    try {
      checkGolden(m, golden.input_ids.length)
    } finally {
      m.dispose()
    }
  })

  it('on the reference backend (plain TypeScript kernels)', async () => {
    const ref = await loadModel(DIR, { backend: 'reference' })
    try {
      checkGolden(ref, golden.input_ids.length)
    } finally {
      ref.dispose()
    }
  })
})
