/**
 * The operations every secret-shared algorithm here is written against, with two engines: `Party`
 * (one side of the two-party protocol, party.ts) and `PlainFixedPoint` (the same fixed-point
 * arithmetic on cleartext ring elements, truncating by exact floor). Composite operators (fx-ops.ts)
 * run unchanged on both, so the protocols are held bit for bit to the cleartext reference.
 *
 * Fixed point: a real x is the ring element round(x * 2^fracBits) read as a signed 64-bit integer.
 */
import type { Ring, Words } from './ring.js'

/**
 * How a product's extra fractional bits are dropped:
 * - 'exact': floor(x / 2^f), bit for bit (Kogge-Stone carry of the low bits; 2 + ceil(log2 f) rounds)
 * - 'one-round': dealer-masked opening (Escudero et al. 2020); floor or floor + 1; never wraps for |x| < 2^62
 * - 'local': SecureML (Mohassel & Zhang, S&P 2017), no communication; floor or floor + 1, but a wrong
 *   result (off by 2^(64-f)) with probability about |x| / 2^63
 */
/**
 * Truncation protocols: 'exact' (carry by a log-depth adder, 2 + ceil(log2 f) rounds), 'exact-one-round'
 * (borrow by function secret sharing, 1 round, larger offline keys), 'one-round' (Escudero et al.'s
 * probabilistic, 1 round, floor or floor + 1), 'local' (SecureML, 0 rounds, 1 LSB error, and a rare
 * large error when shares wrap).
 */
export const TRUNC_MODES = ['exact', 'exact-one-round', 'one-round', 'local'] as const
export type TruncMode = (typeof TRUNC_MODES)[number]

export interface FxEngine {
  readonly fracBits: number
  readonly ring: Ring
  /** this engine's share of a public constant broadcast to n elements */
  constant(value: bigint, n: number): Words
  add(a: Words, b: Words): Words
  sub(a: Words, b: Words): Words
  /** a + c for a public ring element c (fixed-point encoded by the caller) */
  addConst(a: Words, c: bigint): Words
  /** a * c for a public integer c (no truncation) */
  mulConst(a: Words, c: bigint): Words
  /** elementwise ring product, no truncation (for 0/1 selectors and integer work) */
  mulRing(a: Words, b: Words): Promise<Words>
  /** elementwise fixed-point product: ring product, then truncation by fracBits */
  mul(a: Words, b: Words): Promise<Words>
  /** elementwise ring square, no truncation */
  squareRing(a: Words): Promise<Words>
  /** (k x m) . (m x n), ring product, no truncation */
  matmulRing(a: Words, b: Words, k: number, m: number, n: number): Promise<Words>
  /** several ring matrix products in one round (one exchange carries every product's masks) */
  matmulRingBatch(products: MatmulOperands[]): Promise<Words[]>
  /** (k x m) . (m x n) fixed-point product */
  matmul(a: Words, b: Words, k: number, m: number, n: number): Promise<Words>
  /** drop `bits` fractional bits (signed) */
  trunc(a: Words, bits: number): Promise<Words>
  /** 1 where a < 0 (as a signed 64-bit integer), else 0: integers, not fixed point */
  ltz(a: Words): Promise<Words>
  /** a + v for a public vector v (ring elements) */
  addPublic(a: Words, v: Words): Words
  /** a * v elementwise for a public vector v of integers (no truncation): local */
  mulPublic(a: Words, v: Words): Words
  /** opens a value to both parties on purpose (callers document what this reveals) */
  reveal(a: Words): Promise<Words>
  /** runs f with its cost attributed to `name` (a no-op for the cleartext engine) */
  scope<T>(name: string, f: () => Promise<T>): Promise<T>
}

export interface MatmulOperands {
  x: Words
  y: Words
  k: number
  m: number
  n: number
}

export class FixedPointError extends RangeError {
  override name = 'FixedPointError'
}

export function checkFracBits(fracBits: number): void {
  if (!Number.isInteger(fracBits) || fracBits < 1 || fracBits > 30) throw new FixedPointError(`fracBits must be an integer in 1..30, got ${fracBits}`)
}

/** Fixed-point encoding: round(x * 2^f) as a ring element. Non-finite inputs are an error. */
export function encodeFixed(x: ArrayLike<number>, fracBits: number): Words {
  checkFracBits(fracBits)
  const scale = 2 ** fracBits
  const out = new BigInt64Array(x.length)
  for (let i = 0; i < x.length; i++) {
    const v = x[i] * scale
    if (!Number.isFinite(v) || Math.abs(v) >= 2 ** 62) throw new FixedPointError(`encodeFixed: element ${i} = ${x[i]} is not finite or too large for 2^${fracBits} fixed point`)
    out[i] = BigInt(Math.round(v))
  }
  return out
}

export function decodeFixed(w: Words, fracBits: number): Float64Array {
  const scale = 2 ** -fracBits
  const out = new Float64Array(w.length)
  for (let i = 0; i < w.length; i++) out[i] = Number(w[i]) * scale
  return out
}

/** Fixed-point encoding of one public constant. */
export function fixedConst(x: number, fracBits: number): bigint {
  return encodeFixed([x], fracBits)[0]
}

/** The cleartext twin: the same ring and fixed-point arithmetic, truncation = exact floor. */
export class PlainFixedPoint implements FxEngine {
  constructor(
    readonly ring: Ring,
    readonly fracBits = 18,
  ) {
    checkFracBits(fracBits)
  }
  constant(value: bigint, n: number): Words {
    return new BigInt64Array(n).fill(value)
  }
  add = (a: Words, b: Words): Words => this.ring.add(a, b)
  sub = (a: Words, b: Words): Words => this.ring.sub(a, b)
  addConst(a: Words, c: bigint): Words {
    return this.ring.add(a, this.constant(c, a.length))
  }
  mulConst(a: Words, c: bigint): Words {
    return this.ring.mul(a, this.constant(c, a.length))
  }
  async mulRing(a: Words, b: Words): Promise<Words> {
    return this.ring.mul(a, b)
  }
  async mul(a: Words, b: Words): Promise<Words> {
    return this.ring.shr(this.ring.mul(a, b), this.fracBits, true)
  }
  async squareRing(a: Words): Promise<Words> {
    return this.ring.mul(a, a)
  }
  async matmulRing(a: Words, b: Words, k: number, m: number, n: number): Promise<Words> {
    return this.ring.matmul(a, b, k, m, n)
  }
  async matmulRingBatch(products: MatmulOperands[]): Promise<Words[]> {
    return products.map((p) => this.ring.matmul(p.x, p.y, p.k, p.m, p.n))
  }
  async matmul(a: Words, b: Words, k: number, m: number, n: number): Promise<Words> {
    return this.ring.shr(this.ring.matmul(a, b, k, m, n), this.fracBits, true)
  }
  addPublic(a: Words, v: Words): Words {
    return this.ring.add(a, v)
  }
  mulPublic(a: Words, v: Words): Words {
    return this.ring.mul(a, v)
  }
  async reveal(a: Words): Promise<Words> {
    return a.slice()
  }
  async trunc(a: Words, bits: number): Promise<Words> {
    return this.ring.shr(a, bits, true)
  }
  async ltz(a: Words): Promise<Words> {
    return this.ring.shr(a, 63, false)
  }
  scope<T>(_name: string, f: () => Promise<T>): Promise<T> {
    return f()
  }
}
