import { beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { CacheBlend } from '../src/reuse/cacheblend.js'
import { computeChunk, MemoryChunkStore, placeChunk } from '../src/reuse/chunk-kv.js'
import { ReuseError } from '../src/reuse/errors.js'

// CacheBlend on the fixture model: at ratio 1 a full prefill bit for bit; below it, the layers up to the
// check layer equal a full prefill and the tokens chosen are the top keys by deviation between the full
// prefill's keys and the placed (re-rotated) chunk keys there, computed here independently.
let model: LlamaModel
beforeAll(async () => {
  model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
})

const words = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 2 + ((i * 7919 + seed * 104729) % 4000))
const V = () => model.config.vocab

/** logits of the question's positions after the blended context, and the context's cache */
async function blendLogits(blend: CacheBlend, chunks: number[][], q: number[]) {
  const ctx = await blend.prepare(chunks)
  const ids = [...chunks.flat(), ...q]
  const h = ctx.open(ids, model)
  const out = new Float32Array(q.length * V())
  model.prefill(q, h.cache, h.cachedTokens, undefined, out)
  return { out, ctx, h, ids }
}

describe('CacheBlend at ratio 1', () => {
  it.each([
    // chunk lengths, check layer
    [[60, 150, 70], 1],
    [[200], 0],
    [[5, 129, 33, 1], 7],
  ])('chunks %j (check layer %i) give the full prefill logits bit for bit', async (lens, checkLayer) => {
    const chunks = lens.map((n, i) => (i === 0 ? [0, ...words(n - 1, i)] : words(n, i)))
    const q = words(9, 99)
    const { out, ctx, h, ids } = await blendLogits(new CacheBlend(model, { ratio: 1, checkLayer }), chunks, q)
    // every slot but the first chunk's, whose KV was computed where it sits with nothing before it
    expect(Array.from(ctx.report.recomputed)).toEqual(Array.from({ length: ids.length - q.length - lens[0] }, (_, i) => lens[0] + i))
    expect(out).toEqual(model.logits(ids).slice((ids.length - q.length) * V()))
    h.close([], true)
  })

  it('answers as a full prefill through generate({ reuse })', async () => {
    const chunks = [[0, ...words(40, 1)], words(50, 2)]
    const q = words(6, 3)
    const ctx = await new CacheBlend(model, { ratio: 1 }).prepare(chunks)
    const r = await model.generate([...chunks.flat(), ...q], { reuse: ctx, maxNewTokens: 6 }).result
    expect(r.stats.cachedTokens).toBe(91)
    expect(r.ids).toEqual((await model.generate([...chunks.flat(), ...q], { maxNewTokens: 6 }).result).ids)
  })
})

describe('CacheBlend below ratio 1', () => {
  it.each([
    [0.15, 1],
    [0.3, 2],
    [0.05, 0],
    [0, 1],
  ])('ratio %f, check layer %i: recomputes round(ratio x N) tokens, the top by key deviation at the check layer', async (ratio, checkLayer) => {
    const chunks = [[0, ...words(49, 5)], words(80, 6), words(60, 7)]
    const ids = chunks.flat()
    const N = ids.length
    const blend = new CacheBlend(model, { ratio, checkLayer })
    const ctx = await blend.prepare(chunks)
    expect(ctx.report.recomputed.length).toBe(Math.round(ratio * N))
    // the reference: the full prefill's keys at the check layer against the re-rotated chunk keys
    const full = model.newCache()
    model.prefill(ids, full, 0)
    const placed = model.newCache()
    let first = 0
    for (const c of chunks) {
      placeChunk(model, placed, computeChunk(model, c), first)
      first += c.length
    }
    const d = model.config.headDim
    const dev = new Float64Array(N)
    for (let h = 0; h < model.config.kvHeads; h++) {
      const a = full.readKeys(checkLayer, h)
      const b = placed.readKeys(checkLayer, h)
      for (let i = 0; i < N * d; i++) dev[Math.floor(i / d)] += (a[i] - b[i]) ** 2
      // the layers up to the check layer are a full prefill's
      for (let l = 0; l <= checkLayer; l++) expect(ctx.cache.readKeys(l, h)).toEqual(full.readKeys(l, h))
    }
    const want = Array.from({ length: N }, (_, i) => i).sort((x, y) => dev[y] - dev[x] || x - y).slice(0, Math.round(ratio * N)).sort((x, y) => x - y)
    expect(Array.from(ctx.report.recomputed)).toEqual(want)
    // a token left alone keeps its placed keys in the last layer; a recomputed one differs from them
    const last = model.config.layers - 1
    const kept = ctx.cache.readKeys(last, 0)
    const reused = placed.readKeys(last, 0)
    const chosen = new Set(want)
    for (let t = 0; t < N; t++) {
      const same = kept.subarray(t * d, (t + 1) * d).every((x, c) => x === reused[t * d + c])
      expect(same).toBe(!chosen.has(t) || t < chunks[0].length && dev[t] === 0)
    }
    full.dispose()
    placed.dispose()
    ctx.dispose()
  })

  it('the random ablation recomputes as many tokens, a different set, the same for the same seed', async () => {
    const chunks = [[0, ...words(99, 8)], words(100, 9)]
    const a = await new CacheBlend(model, { ratio: 0.15 }).prepare(chunks)
    const b = await new CacheBlend(model, { ratio: 0.15, selection: 'random', seed: 3 }).prepare(chunks)
    const c = await new CacheBlend(model, { ratio: 0.15, selection: 'random', seed: 3 }).prepare(chunks)
    expect(b.report.recomputed.length).toBe(a.report.recomputed.length)
    expect(b.report.recomputed).not.toEqual(a.report.recomputed)
    expect(c.report.recomputed).toEqual(b.report.recomputed)
    for (const x of [a, b, c]) x.dispose()
  })

  it('finds chunks in its store the second time, in any order', async () => {
    const store = new MemoryChunkStore()
    const blend = new CacheBlend(model, { store })
    const x = words(30, 10), y = words(40, 11)
    const first = await blend.prepare([x, y])
    const again = await blend.prepare([y, x])
    expect([first.report.chunkHits, again.report.chunkHits, store.size]).toEqual([0, 2, 2])
    first.dispose()
    again.dispose()
  })
})

describe('CacheBlend misuse', () => {
  it.each([
    ['ratio 1.5', () => new CacheBlend(model, { ratio: 1.5 })],
    ['checkLayer 8 of 8 layers', () => new CacheBlend(model, { checkLayer: 8 })],
    ['selection "top"', () => new CacheBlend(model, { selection: 'top' as never })],
  ])('%s is a ReuseError at construction', (_n, f) => {
    expect(f).toThrow(ReuseError)
  })

  it.each([
    ['no chunks', [] as number[][]],
    ['an empty chunk', [[1, 2], []]],
    ['a token outside the vocabulary', [[1, 99999]]],
  ])('%s is refused by prepare', async (_n, chunks) => {
    await expect(new CacheBlend(model).prepare(chunks)).rejects.toThrow()
  })

  it('a prompt that does not start with the context, or a second generation, is a ReuseError', async () => {
    const ctx = await new CacheBlend(model).prepare([[0, 5, 6, 7]])
    expect(() => model.generate([0, 5, 6, 8, 9], { reuse: ctx })).toThrow(ReuseError)
    expect(() => model.generate([0, 5, 6, 7], { reuse: ctx })).toThrow(ReuseError)
    await model.generate([0, 5, 6, 7, 9], { reuse: ctx, maxNewTokens: 1 }).result
    expect(() => model.generate([0, 5, 6, 7, 9], { reuse: ctx })).toThrow(ReuseError)
  })
})
