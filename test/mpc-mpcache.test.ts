import { describe, expect, it } from 'vitest'
import { createMPCache } from '../src/policies/mpcache.js'
import { decodeFixed, encodeFixed, PlainFixedPoint, type FxEngine } from '../src/mpc/engine.js'
import { decodeStepAttention, mpcacheSelect, mpcacheStaticEvict, mpcacheSummaries, type LayerShares } from '../src/mpc/mpcache.js'
import { dynamicPlan, mpcacheDynamicSelect, resolveDynamicOptions } from '../src/mpc/mpcache-select.js'
import { concatWords } from '../src/mpc/ring.js'
import { randArray, randomContext, rng, shape } from './policy-context-helpers.js'
import { mpcVsPlain, wasmRing } from './mpc-helpers.js'

const F = 18
const enc = (x: ArrayLike<number>): BigInt64Array => encodeFixed(x, F)

/** float attention of one query over the selected rows */
function floatAttention(q: ArrayLike<number>, keys: ArrayLike<number>, values: ArrayLike<number>, idx: ArrayLike<number>, d: number): number[] {
  const logits = Array.from(idx, (j) => { let s = 0; for (let c = 0; c < d; c++) s += q[c] * keys[j * d + c]; return s / Math.sqrt(d) })
  const m = Math.max(...logits)
  const p = logits.map((x) => Math.exp(x - m))
  const z = p.reduce((a, b) => a + b)
  const out = new Array(d).fill(0)
  Array.from(idx).forEach((j, i) => { for (let c = 0; c < d; c++) out[c] += (p[i] / z) * values[j * d + c] })
  return out
}
/** a public result as this engine's share of it (party 1 contributes zeros), so shares sum to it once */
const asShare = (e: FxEngine, xs: ArrayLike<number>): BigInt64Array => BigInt64Array.from(Array.from(xs), (x) => e.constant(BigInt(x), 1)[0])

function relError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let num = 0, den = 0
  for (let i = 0; i < want.length; i++) { num += (got[i] - want[i]) ** 2; den += want[i] ** 2 }
  return Math.sqrt(num / den)
}

/** keys with per-cluster structure (so selection has something to find) */
function structuredKeys(r: () => number, n: number, d: number): Float32Array {
  const k = randArray(r, n * d, 0.6)
  for (let c = 0; c * 32 < n; c++) {
    const dir = randArray(r, d, 0.8)
    for (let t = c * 32; t < Math.min(n, c * 32 + 32); t++) for (let j = 0; j < d; j++) k[t * d + j] += dir[j]
  }
  return k
}

describe('MPCache static eviction over shares', () => {
  it('keeps the same tokens as kvkit\'s plaintext MPCache policy', async () => {
    const m = shape(2, 4, 2, 16)
    const n = 60
    const W = 16
    const { ctx, cache } = randomContext(21, m, n, W)
    const decision = createMPCache({ tau: 0.02, maxQueries: W }).start().onPrefillEnd!(ctx)!
    const w = Math.ceil(0.2 * n) // the policy's observation window
    for (let l = 0; l < m.layers; l++) {
      const oq = ctx.hooks[l].observationQueries!
      const op = ctx.hooks[l].observationPositions!
      const queries = Array.from({ length: m.qHeads }, (_, h) => enc(oq.subarray((h * W + W - w) * m.headDim, (h + 1) * W * m.headDim)))
      const keys = Array.from({ length: m.kvHeads }, (_, h) => enc(cache.readKeys(l, h)))
      const input = (xs: BigInt64Array[]) => ({ queries: xs.slice(0, m.qHeads), keys: xs.slice(m.qHeads), queryPositions: op.subarray(W - w), keyPositions: cache.positions(l, 0), headDim: m.headDim })
      const { mpc } = await mpcVsPlain([...queries, ...keys], async (e, xs) => asShare(e, await mpcacheStaticEvict(e, input(xs), { tau: 0.02 })), { trunc: 'one-round', seed: `static${l}` })
      const want = Array.from(decision.heads.find((x) => x.layer === l)!.keep)
      expect(want.length).toBeLessThan(n)
      expect(Array.from(mpc, Number)).toEqual(want)
    }
  })
})

describe('MPCache dynamic selection over shares', () => {
  const d = 64
  const n = 333 // 11 clusters, the last partial

  it('selects exactly as the cleartext fixed-point engine and attends within 1e-3 of float attention', async () => {
    const r = rng(5)
    const H = 6, kvHeads = 2
    const layers = Array.from({ length: 2 }, () => ({ q: randArray(r, H * d, 1.5), keys: Array.from({ length: kvHeads }, () => structuredKeys(r, n, d)), values: Array.from({ length: kvHeads }, () => randArray(r, n * d)) }))
    const flat = layers.flatMap((L) => [enc(L.q), ...L.keys.map(enc), ...L.values.map(enc)])
    const program = async (e: FxEngine, xs: BigInt64Array[]) => {
      const shares: LayerShares[] = []
      for (let l = 0; l < 2; l++) {
        const [q, k0, k1, v0, v1] = xs.slice(l * 5, l * 5 + 5)
        shares.push({ q, keys: [k0, k1], values: [v0, v1], summaries: await mpcacheSummaries(e, [k0, k1], n, d) })
      }
      const { outputs, selections } = await decodeStepAttention(e, shares, n, d, 'mpcache')
      return concatWords(...outputs, ...selections.flat().map((s) => asShare(e, s)))
    }
    const { mpc, plain } = await mpcVsPlain(flat, program, { trunc: 'exact', seed: 'dyn' })
    expect(Array.from(mpc)).toEqual(Array.from(plain))
    // index sharing: layer 1 reuses layer 0's selection; each head's selection is the float reference's
    const t = (mpc.length - 2 * H * d) / (2 * H)
    const sel = (l: number, h: number) => Array.from(mpc.subarray(2 * H * d + (l * H + h) * t, 2 * H * d + (l * H + h + 1) * t), Number)
    for (let h = 0; h < H; h++) {
      expect(sel(1, h)).toEqual(sel(0, h))
      expect(sel(0, h)).toEqual(Array.from(mpcacheDynamicSelect(layers[0].q.subarray(h * d, (h + 1) * d), layers[0].keys[Math.floor(h / 3)], n, d)))
      for (let l = 0; l < 2; l++) {
        const got = decodeFixed(mpc.subarray((l * H + h) * d, (l * H + h + 1) * d), F)
        const want = floatAttention(layers[l].q.subarray(h * d, (h + 1) * d), layers[l].keys[Math.floor(h / 3)], layers[l].values[Math.floor(h / 3)], sel(0, h), d)
        expect(relError(got, want)).toBeLessThan(1e-3)
      }
    }
  })

  it('matches the float reference selection in at least 99.9% of (head, step) cases', async () => {
    const e = new PlainFixedPoint(await wasmRing(), F)
    const r = rng(9)
    let same = 0, total = 0
    for (let step = 0; step < 60; step++) {
      const nn = 200 + step * 7
      const keys = structuredKeys(r, nn, d)
      const summaries = await mpcacheSummaries(e, [enc(keys)], nn, d)
      const q = randArray(r, 20 * d, 1.5)
      const sels = await mpcacheSelect(e, enc(q), summaries, nn, d)
      sels.forEach((s, h) => {
        total++
        if (Array.from(s).join() === Array.from(mpcacheDynamicSelect(q.subarray(h * d, (h + 1) * d), keys, nn, d)).join()) same++
      })
    }
    expect(total).toBe(1200)
    expect(same / total).toBeGreaterThanOrEqual(0.999)
  })

  it('keeps the first and last cluster and the planned number of blocks', () => {
    const o = resolveDynamicOptions()
    expect(dynamicPlan(333, o)).toEqual({ clusters: 11, middleKept: 4, blocksKept: 5 })
    const r = rng(3)
    const keys = structuredKeys(r, 333, d)
    const s = Array.from(mpcacheDynamicSelect(randArray(r, d), keys, 333, d))
    expect(s.slice(0, 32)).toEqual(Array.from({ length: 32 }, (_, i) => i))
    expect(s.slice(-13)).toEqual(Array.from({ length: 13 }, (_, i) => 320 + i))
    expect(s.length).toBe(32 + 13 + 5 * 16)
    expect(Array.from(mpcacheDynamicSelect(randArray(r, d), keys, 64, d))).toHaveLength(64) // two clusters: everything
  })

  it('rejects bad options by name', () => {
    expect(() => resolveDynamicOptions({ blockTokens: 5 })).toThrow(/blockTokens .* dividing clusterTokens \(32\), got 5/)
    expect(() => resolveDynamicOptions({ alpha: 2 })).toThrow(/alpha .* got 2/)
    expect(() => mpcacheDynamicSelect(new Float32Array(3), new Float32Array(64 * 4), 4, 64)).toThrow(/q of 64/)
  })
})
