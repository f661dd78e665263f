import { beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import type { PagedKVCache } from '../src/cache/paged-cache.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { HookCapture } from '../src/model/hooks.js'
import { CacheBlend } from '../src/reuse/cacheblend.js'
import { CROSS_CHUNK_NEAR, CROSS_CHUNK_SPREAD } from '../src/reuse/cross-chunk.js'
import { KVShare } from '../src/reuse/kvshare.js'
import { ReuseError } from '../src/reuse/errors.js'

// CacheBlend's 'cross-chunk' selection on the fixture model against a plain TypeScript twin: at the
// check layer every context row is a full prefill's, so the twin scores the full prefill's queries and
// keys there in float64 (softmax over every key up to the row; the mass on earlier chunks' keys, slot 0
// and the NEAR slots before the row left out; the largest over the row and the SPREAD before it in its
// chunk) and takes the top round(ratio x N), ties to the earlier slot.
let model: LlamaModel
beforeAll(async () => {
  model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
})

const words = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 2 + ((i * 7919 + seed * 104729) % 4000))

/** the twin: per context slot, the cross-chunk score at layer l from the full prefill's queries [qHeads][N][d] and cache */
function twinScores(full: PagedKVCache, queries: Float32Array, l: number, starts: number[], N: number): Float64Array {
  const { qHeads, kvHeads, headDim: d } = model.config
  const group = qHeads / kvHeads
  const startOf = (t: number) => starts.filter((b) => b <= t).pop()!
  const mass = new Float64Array(N)
  for (let g = 0; g < kvHeads; g++) {
    const keys = full.readKeys(l, g)
    for (let h = g * group; h < (g + 1) * group; h++) {
      for (let t = 0; t < N; t++) {
        const start = startOf(t)
        if (start === 0) continue
        const s = Array.from({ length: t + 1 }, (_, j) => {
          let dot = 0
          for (let c = 0; c < d; c++) dot += queries[(h * N + t) * d + c] * keys[j * d + c]
          return dot / Math.sqrt(d)
        })
        const max = Math.max(...s)
        const e = s.map((x) => Math.exp(x - max))
        const sum = e.reduce((a, b) => a + b, 0)
        mass[t] += e.reduce((a, x, j) => a + (j > 0 && j < start && j < t - CROSS_CHUNK_NEAR ? x : 0), 0) / sum
      }
    }
  }
  return Float64Array.from(mass, (_, t) => {
    let m = 0
    for (let j = Math.max(startOf(t), t - CROSS_CHUNK_SPREAD); j <= t; j++) m = Math.max(m, mass[j])
    return m
  })
}

describe("CacheBlend selection 'cross-chunk'", () => {
  // chunk 2 repeats a span of chunk 0 (an induction target across chunks) and of chunk 1
  const c0 = [0, ...words(119, 1)]
  const c1 = words(100, 2)
  const c2 = [...words(40, 3), ...c0.slice(30, 60), ...words(30, 4), ...c1.slice(10, 30)]
  const chunks = [c0, c1, c2]
  const starts = [0, c0.length, c0.length + c1.length]

  it.each([
    [0.1, 2],
    [0.2, 1],
  ])('ratio %f, check layer %i: recomputes the top round(ratio x N) by the twin', async (ratio, checkLayer) => {
    const ids = chunks.flat()
    const N = ids.length
    const full = model.newCache()
    const capture = new HookCapture({ observationWindow: N }, model.config, model.backend.heap, N)
    model.prefill(ids, full, 0, capture)
    capture.finishPrefill()
    const score = twinScores(full, capture.hooks[checkLayer].observationQueries!, checkLayer, starts, N)
    const order = Array.from({ length: N }, (_, i) => i).sort((x, y) => score[y] - score[x] || x - y)
    const k = Math.round(ratio * N)
    // the case is only a test if the cut is clear of float32 rounding: every score is the cut's (the
    // same token's mass, spread to its followers; ties go to the earlier slot) or 1e-4 away from it
    const cut = score[order[k - 1]]
    expect(Array.from(score).every((x) => x === cut || Math.abs(x - cut) > 1e-4)).toBe(true)
    const ctx = await new CacheBlend(model, { ratio, checkLayer, selection: 'cross-chunk' }).prepare(chunks)
    expect(Array.from(ctx.report.recomputed)).toEqual(order.slice(0, k).sort((x, y) => x - y))
    // deviation picks otherwise here: the test tells the two apart
    const dev = await new CacheBlend(model, { ratio, checkLayer }).prepare(chunks)
    expect(Array.from(dev.report.recomputed)).not.toEqual(Array.from(ctx.report.recomputed))
    capture.dispose()
    full.dispose()
    ctx.dispose()
    dev.dispose()
  })

  it('at ratio 1 gives the full prefill logits bit for bit', async () => {
    const q = words(9, 99)
    const ids = [...chunks.flat(), ...q]
    const ctx = await new CacheBlend(model, { ratio: 1, checkLayer: 2, selection: 'cross-chunk' }).prepare(chunks)
    const h = ctx.open(ids, model)
    const V = model.config.vocab
    const out = new Float32Array(q.length * V)
    model.prefill(q, h.cache, h.cachedTokens, undefined, out)
    expect(out).toEqual(model.logits(ids).slice((ids.length - q.length) * V))
    h.close([], true)
  })

  it('is a ReuseError with gradual filtering, and for KVShare (no chunks)', () => {
    expect(() => new CacheBlend(model, { selection: 'cross-chunk', ratio: 0.15, gradualFrom: 0.3 })).toThrow(ReuseError)
    expect(() => new CacheBlend(model, { selection: 'cross-chunk', ratio: 0.15, gradualFrom: 0.3 })).toThrow('gradualFrom (0.3)')
    expect(() => new KVShare(model, { selection: 'cross-chunk' })).toThrow(ReuseError)
    expect(() => new KVShare(model, { selection: 'cross-chunk' })).toThrow('cross-chunk')
  })
})
