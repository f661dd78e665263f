import { describe, expect, it } from 'vitest'
import { createThinK } from '../src/policies/think.js'
import { createMPCache } from '../src/policies/mpcache.js'
import { randomContext, refProbs, shape } from './policy-context-helpers.js'

describe('ThinK', () => {
  const m = shape(2, 4, 2, 16)

  it('keeps the channels with the largest ||Qobs[:,c]|| * ||K[:,c]|| over the prompt minus the recent window', () => {
    const n = 50, w = 8, recent = 6
    const { ctx, cache } = randomContext(11, m, n, w)
    const d = m.headDim
    const decision = createThinK({ ratio: 0.4, window: w, recent }).start().onPrefillEnd!(ctx)!
    expect(decision.heads).toHaveLength(m.layers * m.kvHeads)
    for (const hd of decision.heads) {
      // independent twin: norms per channel, sort, drop floor(16 * 0.4) = 6, keep 10
      const keys = cache.readKeys(hd.layer, hd.head)
      const oq = ctx.hooks[hd.layer].observationQueries!
      const score: number[] = []
      for (let c = 0; c < d; c++) {
        let qs = 0, ks = 0
        for (let g = 0; g < m.group; g++) for (let i = 0; i < w; i++) qs += oq[((hd.head * m.group + g) * w + i) * d + c] ** 2
        for (let t = 0; t < n - recent; t++) ks += keys[t * d + c] ** 2
        score.push(Math.sqrt(qs * ks))
      }
      const want = [...score.keys()].sort((a, b) => score[b] - score[a]).slice(0, 10).sort((a, b) => a - b)
      expect(Array.from(hd.keyChannels!.channels)).toEqual(want)
      expect(hd.keyChannels!.upto).toBe(n - recent)
      expect(hd.keep.length).toBe(n)
    }
  })

  it('makes the cache store fewer floats for the pruned keys only', () => {
    const n = 40
    const { ctx, cache } = randomContext(3, m, n, 8)
    const before = cache.bytes().hot
    const keysBefore = cache.readKeys(0, 0)
    const decision = createThinK({ ratio: 0.5, window: 8, recent: 8 }).start().onPrefillEnd!(ctx)!
    cache.apply(decision)
    const [pruned, whole] = cache.segments(0, 0)
    expect([pruned.n, pruned.d, whole.n, whole.d]).toEqual([32, 8, 8, 16])
    // the kept channels hold the old values, the dropped ones read back as 0; the recent keys are whole
    const kept = decision.heads[0].keyChannels!.channels
    const after = cache.readKeys(0, 0)
    for (let c = 0; c < 16; c++) expect(after[5 * 16 + c]).toBe(kept.includes(c) ? keysBefore[5 * 16 + c] : 0)
    expect(after.subarray(32 * 16)).toEqual(keysBefore.subarray(32 * 16))
    // keys of 32 tokens lose 8 floats each, in every head
    expect(before - cache.bytes().hot).toBe(m.layers * m.kvHeads * 32 * 8 * 4)
  })

  it('picks the channels where both the queries and the keys are large', () => {
    // make channel 3 tiny in keys and channel 7 tiny in queries: both must go at ratio 1/8
    const { ctx } = randomContext(5, m, 20, 4, undefined, (_, k) => {
      for (let r = 0; r < k.length / 16; r++) k[r * 16 + 3] *= 1e-3
    })
    for (let l = 0; l < m.layers; l++) {
      const q = ctx.hooks[l].observationQueries!
      for (let r = 0; r < q.length / 16; r++) q[r * 16 + 7] *= 1e-3
    }
    const decision = createThinK({ ratio: 2 / 16, window: 4, recent: 0 }).start().onPrefillEnd!(ctx)!
    for (const hd of decision.heads) expect(Array.from(hd.keyChannels!.channels)).toEqual([0, 1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15])
  })

  it('rejects a bad ratio by name', () => {
    expect(() => createThinK({ ratio: 1.2 })).toThrow(/ratio.*1.2/)
  })
})

describe('MPCache static eviction', () => {
  const m = shape(2, 4, 2, 16)

  function refMaxAttention(ctx: ReturnType<typeof randomContext>['ctx'], layer: number, wUsed: number): number[] {
    const { cache } = ctx
    const n = cache.length(layer, 0)
    const oq = ctx.hooks[layer].observationQueries!
    const op = ctx.hooks[layer].observationPositions!
    const W = op.length
    const d = m.headDim
    const best = new Array(n).fill(0)
    for (let qh = 0; qh < m.qHeads; qh++) {
      const kv = Math.floor(qh / m.group)
      const keys = cache.readKeys(layer, kv)
      for (let i = W - wUsed; i < W; i++) {
        const p = refProbs(oq.subarray((qh * W + i) * d, (qh * W + i + 1) * d), op[i], keys, cache.positions(layer, kv), d)
        p.forEach((x, j) => (best[j] = Math.max(best[j], x)))
      }
    }
    return best
  }

  it('keeps exactly the tokens some observation query attends to with A >= tau, shared across heads', () => {
    const n = 60
    const { ctx } = randomContext(21, m, n, 16)
    // 20% of 60 = 12 observation queries out of the 16 the runtime captured
    const decision = createMPCache({ tau: 0.02, maxQueries: 16 }).start().onPrefillEnd!(ctx)!
    for (let l = 0; l < m.layers; l++) {
      const best = refMaxAttention(ctx, l, 12)
      const want = best.flatMap((x, j) => (x >= 0.02 ? [j] : []))
      expect(want.length).toBeGreaterThan(0)
      expect(want.length).toBeLessThan(n)
      for (const hd of decision.heads.filter((x) => x.layer === l)) expect(Array.from(hd.keep)).toEqual(want)
    }
  })

  it('with a budget keeps the top tokens by max attention', () => {
    const n = 60
    const { ctx } = randomContext(22, m, n, 16)
    const decision = createMPCache({ budget: 0.25, maxQueries: 16 }).start().onPrefillEnd!(ctx)!
    const best = refMaxAttention(ctx, 1, 12)
    const want = [...best.keys()].sort((a, b) => best[b] - best[a]).slice(0, 15).sort((a, b) => a - b)
    expect(Array.from(decision.heads.find((x) => x.layer === 1)!.keep)).toEqual(want)
  })

  it('rejects tau out of range by name', () => {
    expect(() => createMPCache({ tau: 0 })).toThrow(/tau.*0/)
    expect(() => createMPCache({ budget: 1.5 })).toThrow(/budget.*1.5/)
  })
})
