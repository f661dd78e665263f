import { describe, expect, it } from 'vitest'
import { dcfEval, dcfGen, DcfError, dcfKeyBytes, dcfReference } from '../src/mpc/dcf.js'
import { ChaCha20Prg } from '../src/mpc/prg.js'
import { createWasmRing } from '../src/mpc/ring.js'

const add = (a: BigInt64Array, b: BigInt64Array): bigint[] => Array.from(a, (v, i) => BigInt.asIntN(64, v + b[i]))

describe('distributed comparison function (Boyle et al. 2021): the two shares add up to beta [x < alpha]', () => {
  for (const bits of [1, 2, 3, 6]) {
    it(`every alpha against every x for ${bits}-bit inputs`, () => {
      const N = 1 << bits
      const rand = new ChaCha20Prg(`dcf-grid-${bits}`)
      // element e compares against alpha = e, with a beta that has high bits set (a full ring element)
      const alpha = BigInt64Array.from({ length: N }, (_, e) => BigInt(e))
      const beta = BigInt64Array.from({ length: N }, (_, e) => BigInt.asIntN(64, 0x9e3779b97f4a7c15n * BigInt(e + 1)))
      const [k0, k1] = dcfGen(alpha, beta, bits, rand)
      for (let x = 0; x < N; x++) {
        const xs = new BigInt64Array(N).fill(BigInt(x))
        expect(add(dcfEval(k0, xs), dcfEval(k1, xs))).toEqual(Array.from(beta, (b, e) => (x < e ? b : 0n)))
      }
    })
  }

  it('18-bit inputs (the default fractional bits) at the edges and at random points', () => {
    const bits = 18
    const top = (1n << 18n) - 1n
    const rand = new ChaCha20Prg('dcf-18')
    const pts = [0n, 1n, 2n, top - 1n, top, 1n << 17n, (1n << 17n) - 1n, 12345n, 200000n]
    const alpha = BigInt64Array.from(pts.flatMap((a) => pts.map(() => a)))
    const xs = BigInt64Array.from(pts.flatMap(() => pts))
    const [k0, k1] = dcfGen(alpha, new BigInt64Array(alpha.length).fill(1n), bits, rand)
    expect(add(dcfEval(k0, xs), dcfEval(k1, xs))).toEqual(Array.from(alpha, (a, i) => (xs[i] < a ? 1n : 0n)))
  })

  it('the wasm kernels write the same keys and the same shares as the TypeScript twin', async () => {
    const ring = await createWasmRing()
    for (const bits of [1, 5, 18, 40]) {
      const n = 300
      const inputs = new ChaCha20Prg(`dcf-wasm-in-${bits}`).words(3 * n)
      const mask = (1n << BigInt(bits)) - 1n
      const alpha = inputs.subarray(0, n).map((v) => v & mask)
      const beta = inputs.subarray(n, 2 * n)
      const xs = inputs.subarray(2 * n).map((v, i) => (i % 7 === 0 ? alpha[i] : i % 11 === 0 ? alpha[i] - 1n : v) & mask)
      const ref = dcfGen(alpha, beta, bits, new ChaCha20Prg(`dcf-wasm-${bits}`), dcfReference)
      const wasm = dcfGen(alpha, beta, bits, new ChaCha20Prg(`dcf-wasm-${bits}`), ring)
      expect(wasm).toEqual(ref)
      const shares = ref.map((k) => dcfEval(k, xs, dcfReference))
      expect(wasm.map((k) => dcfEval(k, xs, ring))).toEqual(shares)
      expect(add(shares[0], shares[1])).toEqual(Array.from(beta, (b, i) => (BigInt.asUintN(64, xs[i]) < BigInt.asUintN(64, alpha[i]) ? b : 0n)))
    }
  })

  it('a single key reveals nothing obvious: one party\'s shares of 0 and of 1 look alike', () => {
    const rand = new ChaCha20Prg('dcf-hiding')
    const n = 2000
    const alpha = new BigInt64Array(n).fill(100n)
    const [k0] = dcfGen(alpha, new BigInt64Array(n).fill(1n), 8, rand)
    const below = dcfEval(k0, new BigInt64Array(n).fill(5n)) // f = 1
    const above = dcfEval(k0, new BigInt64Array(n).fill(200n)) // f = 0
    const ones = (w: BigInt64Array): number => Array.from(w, (v) => (v & 1n ? 1 : 0) as number).reduce((a, b) => a + b, 0)
    for (const w of [below, above]) expect(Math.abs(ones(w) - n / 2)).toBeLessThan(4 * Math.sqrt(n / 4))
  })

  it('key size is 16 + 25 bits + 8 bytes per element', () => {
    expect(dcfKeyBytes(18)).toBe(474)
  })

  it('rejects bad shapes with a DcfError naming the value', () => {
    const rand = new ChaCha20Prg('dcf-bad')
    expect(() => dcfGen(BigInt64Array.of(4n), BigInt64Array.of(1n), 2, rand)).toThrow(DcfError)
    expect(() => dcfGen(BigInt64Array.of(4n), BigInt64Array.of(1n), 2, rand)).toThrow(/alpha 4 at index 0 does not fit in 2 bits/)
    expect(() => dcfGen(BigInt64Array.of(1n), BigInt64Array.of(1n), 0, rand)).toThrow(/bits must be an integer in 1..62, got 0/)
    expect(() => dcfGen(BigInt64Array.of(1n), BigInt64Array.of(1n, 2n), 4, rand)).toThrow(/1 alphas but 2 betas/)
    const [k] = dcfGen(BigInt64Array.of(1n), BigInt64Array.of(1n), 4, rand)
    expect(() => dcfEval(k, BigInt64Array.of(1n, 2n))).toThrow(/1 keys but 2 inputs/)
  })
})
