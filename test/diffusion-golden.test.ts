/**
 * The trained masked-diffusion fixture (models/diffusion-14m) against PyTorch: the bidirectional forward's
 * logits against golden.json (tools/trained/train_diffusion.py, float32 from the saved float16 weights),
 * and kvkit's iterative unmasking against the PyTorch decoder of tools/trained/diffusion.py on the same
 * prompt (diffusion-decode.json, computed with it on the CPU: LLaDA's low-confidence remasking with
 * Dream's shifted logits).
 */
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { elasticCache } from '../src/index.js'
import { expectGoldenRows, top10 } from './golden-logits.js'

const DIR = 'models/diffusion-14m'
const golden = JSON.parse(readFileSync(`${DIR}/golden.json`, 'utf8')) as {
  input_ids: number[]
  logits_first8_per_pos: number[][]
  logits_sum_per_pos: number[]
  top10_per_pos: number[][]
}
const decodes = JSON.parse(readFileSync('test/data/diffusion-decode.json', 'utf8')) as {
  cases: { prompt_ids: number[]; gen_length: number; block_length: number; steps: number; ids: number[] }[]
}

describe('diffusion-14m reproduces PyTorch', () => {
  let model: LlamaModel
  beforeAll(async () => {
    model = await loadModel(DIR, { backend: 'wasm' })
  })
  afterAll(() => model?.dispose())

  it('loads as a Dream diffusion model with its mask token', () => {
    expect(model.config.diffusion?.maskTokenId).toBe(4096)
    expect(model.config.vocab).toBe(4097)
  })

  it('the bidirectional logits at every position: first 8, sums and top-10 (masked positions included)', () => {
    const V = model.config.vocab
    const logits = model.logits(golden.input_ids)
    expectGoldenRows(logits, V, golden, golden.input_ids.length)
    golden.input_ids.forEach((_, p) => expect(top10(logits.subarray(p * V, (p + 1) * V)), `pos ${p} top-10`).toEqual(golden.top10_per_pos[p]))
  })

  it.each(decodes.cases.map((c, i) => [i, c] as const))('decode %i: the same tokens as PyTorch\'s LLaDA loop, with full recomputation and with Elastic-Cache at gamma 1', async (_, c) => {
    const o = { genLength: c.gen_length, blockLength: c.block_length, steps: c.steps }
    const full = await model.diffusionGenerate(c.prompt_ids, o)
    expect(full.tokens).toEqual(c.ids)
    const elastic = await model.diffusionGenerate(c.prompt_ids, { ...o, cache: elasticCache({ gamma: 1 }) })
    expect(elastic.tokens).toEqual(c.ids)
  })
})
