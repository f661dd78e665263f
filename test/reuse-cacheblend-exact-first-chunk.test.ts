import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { CacheBlend } from '../src/reuse/cacheblend.js'
import type { RecomputeSelection } from '../src/reuse/selective-recompute.js'

// The first chunk, encoded as it stands, sits where it was computed with nothing before it: its KV is
// the full prefill's, so CacheBlend leaves it alone in every layer, and `ratio` still counts it.
let model: LlamaModel
beforeAll(async () => {
  model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
})
afterAll(() => model.dispose())

const words = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 2 + ((i * 7919 + seed * 104729) % 4000))

describe('CacheBlend leaves the exact first chunk alone', () => {
  it.each([
    // what the first chunk is, selection, ratio, check layer, the first chunk
    ['the BOS and 47 tokens', 'deviation', 0.15, 1, [0, ...words(47, 1)]],
    ['33 tokens, no BOS', 'deviation', 0.3, 0, words(33, 2)],
    ['the BOS and 60 tokens', 'cross-chunk', 0.2, 2, [0, ...words(60, 3)]],
    ['the BOS and 20 tokens', 'random', 0.5, 1, [0, ...words(20, 4)]],
    ['the BOS alone', 'deviation', 1, 3, [0]],
  ] as const)('first chunk %s: none of its rows recomputed in any layer, round(ratio x N) chosen (%s, ratio %f, check layer %i)', async (_, selection, ratio, checkLayer, first) => {
    const chunks = [[...first], words(70, 5), words(45, 6)]
    const ids = chunks.flat()
    const N = ids.length
    const ctx = await new CacheBlend(model, { ratio, checkLayer, selection }).prepare(chunks)
    const full = model.newCache()
    model.prefill(ids, full, 0)
    expect(ctx.report.perLayer.slice(0, checkLayer + 1)).toEqual(Array(checkLayer + 1).fill(N - first.length))
    expect(ctx.report.recomputed.length).toBe(Math.min(Math.round(ratio * N), N - first.length))
    expect(Array.from(ctx.report.recomputed).every((t) => t >= first.length)).toBe(true)
    // the rows left alone are the full prefill's bit for bit in every layer
    const d = model.config.headDim
    for (let l = 0; l < model.config.layers; l++)
      for (let h = 0; h < model.config.kvHeads; h++) {
        expect(ctx.cache.readKeys(l, h).subarray(0, first.length * d)).toEqual(full.readKeys(l, h).subarray(0, first.length * d))
        expect(ctx.cache.readValues(l, h).subarray(0, first.length * d)).toEqual(full.readValues(l, h).subarray(0, first.length * d))
      }
    full.dispose()
    ctx.dispose()
  })

  it("a first chunk encoded after a BOS it does not start with (chunkPrefix 'bos') is recomputed like the others", async () => {
    const chunks = [words(40, 7), words(50, 8)]
    const ctx = await new CacheBlend(model, { ratio: 0.2, checkLayer: 1, chunkPrefix: 'bos' }).prepare(chunks)
    expect(ctx.report.perLayer.slice(0, 2)).toEqual([90, 90])
    ctx.dispose()
  })

  it.each(['deviation', 'random'] as RecomputeSelection[])('a slot of the first chunk in `always` is recomputed, from it on (%s)', async (selection) => {
    const chunks = [[0, ...words(39, 9)], words(50, 10)]
    const ctx = await new CacheBlend(model, { ratio: 0.1, checkLayer: 1, selection }).prepare(chunks, { always: [25] })
    expect(ctx.report.perLayer.slice(0, 2)).toEqual([90 - 25, 90 - 25])
    expect(Array.from(ctx.report.recomputed)).toContain(25)
    expect(ctx.report.recomputed.length).toBe(Math.round(0.1 * 89) + 1)
    ctx.dispose()
  })
})
