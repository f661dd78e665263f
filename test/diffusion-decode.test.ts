import { rmSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import { elasticCache } from '../src/index.js'
import type { LlamaModel } from '../src/model/model.js'
import { mostConfident, numTransferTokens, predict } from '../src/model/diffusion/schedule.js'
import { cosineDrift } from '../src/model/diffusion/elastic-cache.js'
import { planRows } from '../src/model/diffusion/decode.js'
import { makeTinyDream, plainDiffusionDecode, TINY_DREAM } from './diffusion-helpers.js'

describe('the unmasking schedule, by hand', () => {
  it('LLaDA get_num_transfer_tokens: even split, the remainder to the first steps', () => {
    expect(numTransferTokens(10, 4)).toEqual([3, 3, 2, 2])
    expect(numTransferTokens(8, 8)).toEqual([1, 1, 1, 1, 1, 1, 1, 1])
    expect(numTransferTokens(5, 1)).toEqual([5])
  })
  it('greedy token and its softmax probability; ties to the lower id; the mask token never predicted', () => {
    const a = predict(Float32Array.of(1, 3, 3, 0), 0, 4, 3)
    expect(a.token).toBe(1)
    expect(a.confidence).toBeCloseTo(Math.exp(3) / (Math.exp(1) + 2 * Math.exp(3) + 1), 6)
    // the mask (id 2) has the largest logit: the prediction is the best other token, the softmax over all
    const b = predict(Float32Array.of(9, 0, 1, 5), 1, 3, 2)
    expect(b.token).toBe(1)
    expect(b.confidence).toBeCloseTo(Math.exp(1) / (1 + Math.exp(1) + Math.exp(5)), 6)
  })
  it('the most confident first, a tie to the lower position, returned in position order', () => {
    expect(mostConfident([0.2, 0.9, 0.5, 0.9, 0.1], 2)).toEqual([1, 3])
    expect(mostConfident([0.2, 0.9, 0.5, 0.9, 0.1], 3)).toEqual([1, 2, 3])
    expect(mostConfident([0.4, 0.4, 0.4], 2)).toEqual([0, 1])
  })
})

describe('Elastic-Cache\'s pieces, by hand', () => {
  it('drift similarity: the mean over (token, head) rows of the cosine of the two attention rows', () => {
    const before = Float32Array.of(1, 0, 0, 0.5, 0.5, 0)
    const now = Float32Array.of(0, 1, 0, 0.5, 0.5, 0)
    expect(cosineDrift(before, now, 3)).toBeCloseTo(0.5, 12)
    expect(cosineDrift(Float32Array.of(0.6, 0.8), Float32Array.of(0.8, 0.6), 2)).toBeCloseTo(0.96, 6)
  })
  it('the rows a reused step computes: fresh and tracked tokens, then the window\'s masked positions\' rows (shifted by one)', () => {
    const masked = new Uint8Array(10).fill(1, 5)
    const p = planRows([5, 6], masked, 5, 1, { window: 4, blockCaching: true }, Int32Array.of(0, 4), [3])
    expect(Array.from(p.rows)).toEqual([0, 3, 4, 5, 6, 7])
    expect(p.tail).toBe(4)
    const all = planRows([5, 6], masked, 5, 1, { window: 4, blockCaching: false }, Int32Array.of(0, 4), [3])
    expect(Array.from(all.rows)).toEqual([0, 3, 4, 5, 6, 7, 8])
    // full recomputation: the block's masked rows alone (every other row is computed anyway)
    expect(Array.from(planRows([5, 6], masked, 5, 1, null, null, [3]).rows)).toEqual([4, 5])
  })
})

describe('iterative unmasking of a tiny random Dream model', () => {
  const { path, t } = makeTinyDream(5)
  let model: LlamaModel
  beforeAll(async () => { model = await loadModel(path, { backend: 'wasm', threads: 1 }) })
  afterAll(() => {
    model.dispose()
    rmSync(path, { recursive: true, force: true })
  })
  const prompt = (n: number) => Array.from({ length: n }, (_, i) => (i * 389 + 17) % 4000 + 2)

  it('each step unmasks the scheduled count inside its block (8 tokens, blocks of 4, 4 steps; 6 tokens, one block, 4 steps)', async () => {
    const steps: { block: number; positions: number[] }[] = []
    await model.diffusionGenerate(prompt(5), { genLength: 8, blockLength: 4, steps: 4, onStep: (s) => steps.push(s) })
    expect(steps.map((s) => s.positions.length)).toEqual([2, 2, 2, 2])
    expect(steps.map((s) => s.block)).toEqual([0, 0, 1, 1])
    for (const s of steps) for (const p of s.positions) expect(Math.floor(p / 4)).toBe(s.block)
    expect(steps.flatMap((s) => s.positions).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
    const one: number[] = []
    await model.diffusionGenerate(prompt(5), { genLength: 6, steps: 4, onStep: (s) => one.push(s.positions.length) })
    expect(one).toEqual([2, 2, 1, 1])
  })

  // prompt length x genLength x blockLength (steps: one and two tokens a step): the runtime's decode
  // with full recomputation against LLaDA's loop over the float64 forward; Elastic-Cache at gamma 1 equal
  // to it token for token; at gamma 0 (never refresh) fewer tokens computed and every position decoded
  const grid: [number, number, number, number][] = []
  for (const P of [1, 4, 9]) for (const [G, B] of [[4, 4], [8, 4], [8, 2], [12, 6]]) for (const per of [B, B / 2]) grid.push([P, G, B, (G / B) * per])
  it.each(grid)('prompt %i, genLength %i, blockLength %i, steps %i', async (P, G, B, S) => {
    const ids = prompt(P)
    const want = plainDiffusionDecode(t, TINY_DREAM, ids, G, B, S)
    const perStep: number[][] = []
    const full = await model.diffusionGenerate(ids, { genLength: G, blockLength: B, steps: S, onStep: (s) => perStep.push(s.positions) })
    expect(full.tokens).toEqual(want.tokens)
    expect(perStep).toEqual(want.perStep)
    expect(full.stats.recompute.computeRatio).toBe(1)
    expect(full.stats.recompute.layersRecomputed).toEqual(new Array(S).fill(TINY_DREAM.layers))
    const always = await model.diffusionGenerate(ids, { genLength: G, blockLength: B, steps: S, cache: elasticCache({ gamma: 1 }) })
    expect(always.tokens).toEqual(full.tokens)
    expect(always.stats.recompute.refreshSteps).toBe(S)
    const never = await model.diffusionGenerate(ids, { genLength: G, blockLength: B, steps: S, cache: elasticCache({ gamma: 0 }) })
    expect(never.tokens).not.toContain(TINY_DREAM.vocab - 1)
    expect(never.stats.recompute.refreshSteps).toBe(1)
    if (S > 1) expect(never.stats.recompute.computeRatio).toBeLessThan(1)
  })

  it('Elastic-Cache at the paper\'s gamma reuses layers on a longer answer and decodes every position', async () => {
    const r = await model.diffusionGenerate(prompt(20), { genLength: 32, blockLength: 8, steps: 32, cache: elasticCache() })
    const full = await model.diffusionGenerate(prompt(20), { genLength: 32, blockLength: 8, steps: 32 })
    const rc = r.stats.recompute
    expect(rc.cache).toBe('elastic-cache')
    expect(rc.refreshSteps).toBeLessThan(32)
    expect(rc.computeRatio).toBeLessThan(1)
    expect(rc.tokensRecomputed.length).toBe(32)
    expect(r.tokens).not.toContain(TINY_DREAM.vocab - 1)
    // noise model, so no accuracy claim: most positions agree with full recomputation
    expect(r.tokens.filter((x, i) => x === full.tokens[i]).length).toBeGreaterThan(16)
  })

  it('Elastic-Cache options: more tracked tokens and no block caching still give full recomputation at gamma 1; block caching computes fewer rows', async () => {
    const o = { genLength: 16, blockLength: 4, steps: 16 }
    const full = await model.diffusionGenerate(prompt(6), o)
    for (const c of [elasticCache({ gamma: 1, trackNum: 3 }), elasticCache({ gamma: 1, blockCaching: false }), elasticCache({ gamma: 1, windowLength: 8 })]) {
      expect((await model.diffusionGenerate(prompt(6), { ...o, cache: c })).tokens).toEqual(full.tokens)
    }
    const rows = async (c: ReturnType<typeof elasticCache>) => (await model.diffusionGenerate(prompt(6), { ...o, cache: c })).stats.recompute.tokensRecomputed
    const cached = await rows(elasticCache({ gamma: 0 }))
    const all = await rows(elasticCache({ gamma: 0, blockCaching: false }))
    const wide = await rows(elasticCache({ gamma: 0, windowLength: 12 }))
    // step 1 of the first block: the window's 4 masked rows (and the fresh and tracked ones) against all 15 masked rows
    expect(all[1]).toBeGreaterThan(cached[1])
    expect(wide[1]).toBeGreaterThan(cached[1])
    expect(cached[0]).toBe((6 + 16) * TINY_DREAM.layers)
  })

  it('refreshFrom next-layer (the paper\'s code): a drift at layer l recomputes from l + 1, so gamma 1 refreshes every layer but the first', async () => {
    const o = { genLength: 8, blockLength: 4, steps: 8 }
    const r = await model.diffusionGenerate(prompt(6), { ...o, cache: elasticCache({ gamma: 1, refreshFrom: 'next-layer' }) })
    expect(r.stats.recompute.layersRecomputed).toEqual([TINY_DREAM.layers, ...new Array(7).fill(TINY_DREAM.layers - 1)])
    expect(r.tokens).not.toContain(TINY_DREAM.vocab - 1)
    const same = await model.diffusionGenerate(prompt(6), { ...o, cache: elasticCache({ gamma: 1 }) })
    expect(same.stats.recompute.layersRecomputed).toEqual(new Array(8).fill(TINY_DREAM.layers))
  })

  it('two decodes of one configuration at once give what each gives alone', async () => {
    for (const cache of ['none', elasticCache({ gamma: 0.9 })] as const) {
      const o = { genLength: 12, blockLength: 4, steps: 12, cache }
      const alone = await model.diffusionGenerate(prompt(7), o)
      const [a, b] = await Promise.all([model.diffusionGenerate(prompt(7), o), model.diffusionGenerate(prompt(7), o)])
      expect(a.tokens).toEqual(alone.tokens)
      expect(b.tokens).toEqual(alone.tokens)
      expect(a.stats.recompute.tokensRecomputed).toEqual(alone.stats.recompute.tokensRecomputed)
      // and with a different decode interleaved
      const [c] = await Promise.all([model.diffusionGenerate(prompt(7), o), model.diffusionGenerate(prompt(3), { genLength: 8, steps: 8 })])
      expect(c.tokens).toEqual(alone.tokens)
    }
  })
})
