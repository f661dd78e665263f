import { describe, expect, it } from 'vitest'
import { decodeFixed, encodeFixed, PlainFixedPoint } from '../src/mpc/engine.js'
import { exp, gatherOneHot, maxRows, reciprocal, softmax, topK } from '../src/mpc/fx-ops.js'
import { ChaCha20Prg } from '../src/mpc/prg.js'
import { referenceRing } from '../src/mpc/ring.js'
import { mpcVsPlain, uniforms, wasmRing } from './mpc-helpers.js'

const F = 18
const enc = (xs: number[]): BigInt64Array => encodeFixed(xs, F)
const dec = (w: BigInt64Array): number[] => Array.from(decodeFixed(w, F))

describe('ring kernels equal the BigInt reference', () => {
  it('for every operation on random words, including wrap-around and all shift widths', async () => {
    const ring = await wasmRing()
    const prg = new ChaCha20Prg('kernels')
    const a = prg.words(37)
    const b = prg.words(37)
    for (const op of ['add', 'sub', 'mul', 'xor', 'and'] as const) expect(Array.from(ring[op](a, b))).toEqual(Array.from(referenceRing[op](a, b)))
    for (const s of [0, 1, 13, 63]) {
      expect(Array.from(ring.shl(a, s))).toEqual(Array.from(referenceRing.shl(a, s)))
      expect(Array.from(ring.shr(a, s, true))).toEqual(Array.from(referenceRing.shr(a, s, true)))
      expect(Array.from(ring.shr(a, s, false))).toEqual(Array.from(referenceRing.shr(a, s, false)))
    }
    for (const [k, m, n] of [[1, 5, 7], [3, 4, 1], [2, 3, 8]]) {
      const x = prg.words(k * m)
      const y = prg.words(m * n)
      expect(Array.from(ring.matmul(x, y, k, m, n))).toEqual(Array.from(referenceRing.matmul(x, y, k, m, n)))
    }
    const [c, d, e] = [prg.words(37), prg.words(37), prg.words(37)]
    for (const party of [0, 1] as const) {
      expect(Array.from(ring.beaverMul(c, a, b, d, e, party))).toEqual(Array.from(referenceRing.beaverMul(c, a, b, d, e, party)))
      expect(Array.from(ring.beaverAnd(c, a, b, d, e, party))).toEqual(Array.from(referenceRing.beaverAnd(c, a, b, d, e, party)))
    }
  })

  it('rejects mismatched operands and bad shifts before computing', async () => {
    const ring = await wasmRing()
    expect(() => ring.add(new BigInt64Array(2), new BigInt64Array(3))).toThrow(/lengths differ \(2, 3\)/)
    expect(() => ring.shr(new BigInt64Array(2), 64, true)).toThrow(/0\.\.63, got 64/)
    expect(() => ring.matmul(new BigInt64Array(6), new BigInt64Array(6), 2, 3, 3)).toThrow(/2x3 and 3x3/)
  })
})

describe('composite operators: secret shares equal the cleartext fixed point bit for bit (exact truncation)', () => {
  it('max over rows of odd and even length', async () => {
    const x = enc(uniforms(1, 3 * 7, -20, 20))
    const { mpc, plain } = await mpcVsPlain([x], (e, [a]) => maxRows(e, a, 3, 7))
    expect(Array.from(mpc)).toEqual(Array.from(plain))
    expect(dec(plain)).toEqual([0, 1, 2].map((r) => Math.max(...dec(x.slice(r * 7, r * 7 + 7)))))
  })

  it('exp, both reciprocals and the three softmax variants', async () => {
    const x = enc(uniforms(2, 2 * 9, -6, 2))
    const pos = enc(uniforms(3, 6, 1, 40))
    const runs = [
      mpcVsPlain([x], (e, [a]) => exp(e, e.addConst(a, enc([-2])[0]))),
      mpcVsPlain([pos], (e, [a]) => reciprocal(e, a, { method: 'newton' })),
      mpcVsPlain([pos], (e, [a]) => reciprocal(e, a, { method: 'goldschmidt' })),
      ...(['exact', 'clip', '2quad'] as const).map((variant) => mpcVsPlain([x], (e, [a]) => softmax(e, a, 2, 9, { variant }))),
    ]
    for (const r of await Promise.all(runs)) expect(Array.from(r.mpc)).toEqual(Array.from(r.plain))
  })

  it('top-k by bitonic sorting returns the k largest and their indices, padding a non-power-of-two row', async () => {
    const vals = uniforms(4, 2 * 11, -5, 5)
    const x = enc(vals)
    const { mpc, plain } = await mpcVsPlain([x, x], async (e, [a]) => {
      const { values, indices } = await topK(e, a, 2, 11, 4)
      return BigInt64Array.from([...values, ...indices])
    })
    expect(Array.from(mpc)).toEqual(Array.from(plain))
    for (let r = 0; r < 2; r++) {
      const row = vals.slice(r * 11, r * 11 + 11)
      const want = row.map((v, i) => [v, i]).sort((p, q) => q[0] - p[0]).slice(0, 4).map((p) => p[1])
      expect(Array.from(plain.slice(8 + r * 4, 8 + r * 4 + 4), Number)).toEqual(want)
    }
  })

  it('one-hot gather picks the rows the one-hot matrix names', async () => {
    const table = enc(uniforms(5, 6 * 3, -1, 1))
    const oneHot = BigInt64Array.from([0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0].map(BigInt))
    const { mpc } = await mpcVsPlain([oneHot, table], (e, [h, t]) => gatherOneHot(e, h, t, 2, 6, 3))
    expect(Array.from(mpc)).toEqual([...table.slice(6, 9), ...table.slice(0, 3)])
  })
})

describe('fixed-point algorithms against floating point', () => {
  it('exp is within 2e-4 relative on [-12, 0]; Newton reciprocal within 4 LSB on [1, 500], Goldschmidt within 1e-3 relative', async () => {
    const plain = new PlainFixedPoint(await wasmRing(), F)
    const xs = uniforms(6, 200, -12, 0)
    const got = dec(await exp(plain, enc(xs)))
    xs.forEach((x, i) => expect(Math.abs(got[i] - Math.exp(x))).toBeLessThanOrEqual(2e-4 * Math.exp(x) + 2 ** -F * 4))
    const ys = uniforms(7, 100, 1, 500)
    const newton = dec(await reciprocal(plain, enc(ys), { method: 'newton' }))
    ys.forEach((y, i) => expect(Math.abs(newton[i] - 1 / y)).toBeLessThanOrEqual(2 ** -F * 4))
    // Goldschmidt does not correct itself: the truncation error of its first eps stays
    const gold = dec(await reciprocal(plain, enc(ys), { method: 'goldschmidt' }))
    ys.forEach((y, i) => expect(Math.abs(gold[i] - 1 / y)).toBeLessThanOrEqual(1e-3 / y + 2 ** -F * 8))
  })

  it('exact softmax is within 1e-3 of the float softmax; clipping zeroes what lies 14 below the max', async () => {
    const plain = new PlainFixedPoint(await wasmRing(), F)
    const xs = [...uniforms(8, 15, -8, 3), -20]
    const want = xs.map((x) => Math.exp(x - Math.max(...xs)))
    const sum = want.reduce((a, b) => a + b)
    const got = dec(await softmax(plain, enc(xs), 1, 16))
    got.forEach((g, i) => expect(Math.abs(g - want[i] / sum)).toBeLessThan(1e-3 * (want[i] / sum) + 1e-5))
    const clipped = dec(await softmax(plain, enc(xs), 1, 16, { variant: 'clip' }))
    expect(clipped[15]).toBe(0)
  })

  it('rejects bad options by name before any work', async () => {
    const plain = new PlainFixedPoint(await wasmRing(), F)
    await expect(softmax(plain, enc([1, 2]), 1, 2, { variant: 'nope' as 'exact' })).rejects.toThrow(/variant .* got "nope"/)
    await expect(topK(plain, enc([1, 2]), 1, 2, 3)).rejects.toThrow(/k must be an integer in 1\.\.2, got 3/)
    await expect(reciprocal(plain, enc([1]), { method: 'halley' as 'newton' })).rejects.toThrow(/"halley"/)
  })
})
