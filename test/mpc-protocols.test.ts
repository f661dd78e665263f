import { describe, expect, it } from 'vitest'
import { encodeFixed, decodeFixed } from '../src/mpc/engine.js'
import { maxDiff, mpcVsPlain, uniforms } from './mpc-helpers.js'

const F = 18
const enc = (xs: number[]): BigInt64Array => encodeFixed(xs, F)

describe('two-party protocols equal the cleartext fixed-point reference', () => {
  for (const trunc of ['exact', 'exact-one-round', 'one-round', 'local'] as const) {
    const exact = trunc.startsWith('exact')
    const tol = exact ? 0n : 1n
    it(`mul with ${trunc} truncation is within ${tol} LSB of floor(x y / 2^f)`, async () => {
      const x = enc(uniforms(1, 300, -100, 100))
      const y = enc(uniforms(2, 300, -100, 100))
      const { mpc, plain } = await mpcVsPlain([x, y], (e, [a, b]) => e.mul(a, b), { trunc, seed: `mul-${trunc}` })
      expect(maxDiff(mpc, plain)).toBeLessThanOrEqual(tol)
      if (!exact) expect(mpc.some((v, i) => v !== plain[i])).toBe(true) // really probabilistic
    })
  }

  for (const trunc of ['exact', 'exact-one-round'] as const) {
    it(`${trunc} truncation is floor for values near the 2^62 bound, zero and negative values`, async () => {
      const x = BigInt64Array.from([0n, -1n, 1n, (1n << 61n) + 12345n, -(1n << 61n) - 7n, (1n << 62n) - 1n, -(1n << 62n) + 1n, 262143n, -262144n, -262145n])
      const { mpc, plain } = await mpcVsPlain([x], (e, [a]) => e.trunc(a, F), { trunc })
      expect(Array.from(mpc)).toEqual(Array.from(plain))
      expect(Array.from(plain)).toEqual(Array.from(x, (v) => v >> 18n))
    })

    for (const bits of [1, 2, 7, 16, 18, 33]) {
      it(`${trunc} truncation by ${bits} bits matches an arithmetic shift over random shares`, async () => {
        const x = enc(uniforms(bits, 200, -1e6, 1e6))
        const { mpc, plain } = await mpcVsPlain([x], (e, [a]) => e.trunc(a, bits), { trunc, seed: `t${bits}` })
        expect(Array.from(mpc)).toEqual(Array.from(plain))
      })
    }
  }

  it('matmul, square and ring products are bit exact', async () => {
    const a = enc(uniforms(3, 4 * 5, -3, 3))
    const b = enc(uniforms(4, 5 * 6, -3, 3))
    const r1 = await mpcVsPlain([a, b], (e, [x, y]) => e.matmul(x, y, 4, 5, 6))
    expect(Array.from(r1.mpc)).toEqual(Array.from(r1.plain))
    const r2 = await mpcVsPlain([a], async (e, [x]) => e.trunc(await e.squareRing(x), F))
    expect(Array.from(r2.mpc)).toEqual(Array.from(r2.plain))
  })

  it('ltz gives the sign bit of every signed 64-bit value, including the extremes', async () => {
    const x = BigInt64Array.from([0n, -1n, 1n, -(1n << 63n), (1n << 63n) - 1n, ...enc(uniforms(5, 100, -50, 50))])
    const { mpc } = await mpcVsPlain([x], (e, [a]) => e.ltz(a))
    expect(Array.from(mpc)).toEqual(Array.from(x, (v) => (v < 0n ? 1n : 0n)))
  })
})

describe('exact cost accounting (per party, no tolerance)', () => {
  it('a multiply costs one round and 16 bytes per element per party, and no truncation traffic when local', async () => {
    const { costs } = await mpcVsPlain([enc([1.5]), enc([2.25])], (e, [a, b]) => e.mul(a, b), { trunc: 'local' })
    for (const c of costs) expect(c.total).toMatchObject({ rounds: 1, bytesSent: 16 })
    expect(costs[0].total.offlineBytes).toBe(0) // party 0's triple comes from its seed
    expect(costs[1].total.offlineBytes).toBe(8) // party 1 is sent c1
  })

  it.each([[1, 64, 512], [3, 5, 7], [6, 64, 1]])('a %i x %i by %i-column product sends (mk + mn) x 8 bytes in one round', async (k, m, n) => {
    const a = enc(uniforms(k, k * m, -1, 1))
    const b = enc(uniforms(n, m * n, -1, 1))
    const { costs } = await mpcVsPlain([a, b], (e, [x, y]) => e.matmulRing(x, y, k, m, n))
    for (const c of costs) expect(c.total).toMatchObject({ rounds: 1, bytesSent: (m * k + m * n) * 8 })
    expect(costs[1].total.offlineBytes).toBe(k * n * 8)
  })

  it('comparison costs the rounds and bits of its Kogge-Stone adder: 1 + 6 AND rounds + 1 B2A round', async () => {
    const n = 10
    const { costs } = await mpcVsPlain([enc(uniforms(9, n, -1, 1))], (e, [a]) => e.ltz(a))
    // generate: 1 AND word; levels 1-5: 2 AND words; level 6: 1 AND word (only G); each AND opens 2 words
    const andWords = 1 + 2 * 5 + 1
    const b2aBytes = 16 // one Beaver product
    for (const c of costs) expect(c.total).toMatchObject({ rounds: 1 + 6 + 1, bytesSent: n * (andWords * 16 + b2aBytes) })
    expect(costs[0].byOp.get('and')).toMatchObject({ rounds: 7, bytesSent: n * andWords * 16 })
  })

  it('exact truncation by f bits costs 2 + ceil(log2 f) rounds; one-round truncation one round of 8 bytes', async () => {
    const n = 4
    const x = enc(uniforms(11, n, -1, 1))
    const exact = await mpcVsPlain([x], (e, [a]) => e.trunc(a, 18), { trunc: 'exact' })
    const L = Math.ceil(Math.log2(18))
    for (const c of exact.costs) expect(c.total).toMatchObject({ rounds: 2 + L, bytesSent: n * (16 + 32 * (L - 1) + 16 + 32) })
    const one = await mpcVsPlain([x], (e, [a]) => e.trunc(a, 18), { trunc: 'one-round' })
    for (const c of one.costs) expect(c.total).toMatchObject({ rounds: 1, bytesSent: n * 8 })
    expect(one.costs[1].total.offlineBytes).toBe(n * 16) // shares of r >> f and of r's top bit
  })

  it('exact one-round truncation costs one round of 8 bytes per element; its DCF keys go offline', async () => {
    const n = 4
    const x = enc(uniforms(12, n, -1, 1))
    const { costs } = await mpcVsPlain([x], (e, [a]) => e.trunc(a, 18), { trunc: 'exact-one-round' })
    for (const c of costs) expect(c.total).toMatchObject({ rounds: 1, bytesSent: n * 8 })
    const key = 16 + 18 * (16 + 8 + 1) + 8 // root seed, per level seed/value/control corrections, final word
    expect(costs[0].total.offlineBytes).toBe(n * key)
    expect(costs[1].total.offlineBytes).toBe(n * (key + 24)) // and the corrections of r, r >> f, r's top bit
  })

  it('decodes fixed point with the configured fractional bits (16, as CrypTen)', async () => {
    const x = encodeFixed([1.25, -3.5], 16)
    const { mpc } = await mpcVsPlain([x, x], (e, [a, b]) => e.mul(a, b), { fracBits: 16 })
    expect(Array.from(decodeFixed(mpc, 16))).toEqual([1.5625, 12.25])
  })
})

describe('the dealer PRG', () => {
  it('is ChaCha20: the all-zero key and nonce give the published keystream', async () => {
    const { ChaCha20Prg } = await import('../src/mpc/prg.js')
    const w = new ChaCha20Prg(new Uint8Array(32)).words(4)
    expect(Buffer.from(new Uint8Array(w.buffer)).toString('hex')).toBe('76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7')
    expect(() => new ChaCha20Prg(new Uint8Array(16))).toThrow(/32 bytes, got 16/)
  })
})
