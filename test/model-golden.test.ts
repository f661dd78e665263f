import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { expectGoldenRows, top10 } from './golden-logits.js'

const DIR = 'models/fixture-14m'
const golden = JSON.parse(readFileSync(`${DIR}/golden.json`, 'utf8')) as {
  input_ids: number[]
  logits_first8_per_pos: number[][]
  logits_sum_per_pos: number[]
  last_logits_top10: number[]
}

function checkGolden(model: LlamaModel, positions: number): void {
  const ids = golden.input_ids.slice(0, positions)
  const V = model.config.vocab
  const logits = model.logits(ids)
  expectGoldenRows(logits, V, golden, positions)
  if (positions === ids.length && positions === golden.input_ids.length) {
    expect(top10(logits.subarray((positions - 1) * V, positions * V))).toEqual(golden.last_logits_top10)
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
