/**
 * The trusted dealer of the offline phase: Beaver triples (Beaver, CRYPTO'91), square pairs, matrix
 * triples with operand-sized masks, AND triples over GF(2)^64, and truncation pairs.
 *
 * Seeded-PRG trick: party 0's share of everything is expanded from seed0, party 1's share of every
 * uniformly random value from seed1, so the dealer only ever sends party 1 the correction words that
 * make the correlation hold (c1 = a.b - c0 and the like). Those corrections are the offline bytes;
 * party 0 receives nothing after its seed.
 *
 * Simulation note: each party constructs its own `DealerStream`; party 1's stream is given both seeds
 * and computes its corrections itself, standing in for a dealer process that would send them. Party 1
 * therefore could learn party 0's masks: the protocols' security assumes the dealer is a separate
 * trusted party, which this prototype simulates and does not enforce.
 */
import { ChaCha20Prg, seedFromString } from './prg.js'
import type { CostLog } from './cost.js'
import { dcfGen, dcfKeyBytes, type DcfKeys } from './dcf.js'
import type { Ring, Words } from './ring.js'

export interface DealerSeeds {
  /** party 0's seed, shared with the dealer */
  seed0: Uint8Array | string
  /** party 1's seed, shared with the dealer */
  seed1: Uint8Array | string
  /**
   * the dealer's own seed, for the randomness no party may hold (FSS keys: the truncation mask whose low
   * bits a DCF key hides). Default: derived from seed0 XOR seed1, which is only sound in this simulation.
   */
  dealer?: Uint8Array | string
}

const seedBytes = (s: Uint8Array | string): Uint8Array => (typeof s === 'string' ? seedFromString(s) : s)

export interface Triple {
  a: Words
  b: Words
  c: Words
}

export class DealerStream {
  private readonly prg0: ChaCha20Prg
  private readonly prg1: ChaCha20Prg | null
  private readonly prgDealer: ChaCha20Prg

  constructor(
    readonly party: 0 | 1,
    seeds: DealerSeeds,
    private readonly ring: Ring,
    private readonly cost: CostLog,
  ) {
    this.prg0 = new ChaCha20Prg(seeds.seed0)
    this.prg1 = party === 1 ? new ChaCha20Prg(seeds.seed1) : null
    const s0 = seedBytes(seeds.seed0)
    const s1 = seedBytes(seeds.seed1)
    this.prgDealer = new ChaCha20Prg(seeds.dealer ?? s0.map((b, i) => b ^ (s1[i] ?? 0)))
  }

  /** For party 0 its seeded share; for party 1 its seeded share and (dealer side) party 0's. */
  private pair(n: number): { mine: Words; other: Words | null } {
    const s0 = this.prg0.words(n)
    if (this.party === 0) return { mine: s0, other: null }
    return { mine: this.prg1!.words(n), other: s0 }
  }

  /** party 1's share of a value the dealer knows in the clear: the correction it is sent */
  private correction(value: Words, share0: Words): Words {
    this.cost.offline(value.byteLength)
    return this.ring.sub(value, share0)
  }

  /** n elementwise Beaver triples: c = a * b (mod 2^64) */
  triple(n: number): Triple {
    const a = this.pair(n)
    const b = this.pair(n)
    const c0 = this.prg0.words(n)
    if (this.party === 0) return { a: a.mine, b: b.mine, c: c0 }
    const prod = this.ring.mul(this.ring.add(a.mine, a.other!), this.ring.add(b.mine, b.other!))
    return { a: a.mine, b: b.mine, c: this.correction(prod, c0) }
  }

  /** a matrix triple: A (k x m), B (m x n), C = A.B (k x n) */
  matrixTriple(k: number, m: number, n: number): Triple {
    const a = this.pair(k * m)
    const b = this.pair(m * n)
    const c0 = this.prg0.words(k * n)
    if (this.party === 0) return { a: a.mine, b: b.mine, c: c0 }
    const prod = this.ring.matmul(this.ring.add(a.mine, a.other!), this.ring.add(b.mine, b.other!), k, m, n)
    return { a: a.mine, b: b.mine, c: this.correction(prod, c0) }
  }

  /** n square pairs: (a, a^2) */
  square(n: number): { a: Words; aa: Words } {
    const a = this.pair(n)
    const c0 = this.prg0.words(n)
    if (this.party === 0) return { a: a.mine, aa: c0 }
    const x = this.ring.add(a.mine, a.other!)
    return { a: a.mine, aa: this.correction(this.ring.mul(x, x), c0) }
  }

  /** n AND triples over GF(2)^64, XOR-shared: c = a & b */
  andTriple(n: number): Triple {
    const a = this.pair(n)
    const b = this.pair(n)
    const c0 = this.prg0.words(n)
    if (this.party === 0) return { a: a.mine, b: b.mine, c: c0 }
    const prod = this.ring.and(this.ring.xor(a.mine, a.other!), this.ring.xor(b.mine, b.other!))
    this.cost.offline(prod.byteLength)
    return { a: a.mine, b: b.mine, c: this.ring.xor(prod, c0) }
  }

  /**
   * n truncation masks for `bits`: r uniform, with additive shares of r, of r >>> bits (logical) and of
   * r's top bit (Escudero et al., "Improved primitives for MPC over mixed arithmetic-binary circuits",
   * CRYPTO 2020, the probabilistic truncation).
   */
  truncMask(n: number, bits: number): { r: Words; rHigh: Words; rMsb: Words } {
    const r = this.pair(n)
    const h0 = this.prg0.words(n)
    const m0 = this.prg0.words(n)
    if (this.party === 0) return { r: r.mine, rHigh: h0, rMsb: m0 }
    const full = this.ring.add(r.mine, r.other!)
    return {
      r: r.mine,
      rHigh: this.correction(this.ring.shr(full, bits, false), h0),
      rMsb: this.correction(this.ring.shr(full, 63, false), m0),
    }
  }

  /**
   * n masks for the exact one-round truncation by `bits`: r uniform (drawn by the dealer), additive shares
   * of r, of r >>> bits and of r's top bit, and this party's DCF key for [x < r mod 2^bits] (the borrow
   * out of the low bits; Boyle et al., EUROCRYPT 2021). Both parties receive their key online-free: its
   * bytes (dcfKeyBytes) count as offline bytes for each; party 1 also receives the share corrections.
   */
  truncFssMask(n: number, bits: number): { r: Words; rHigh: Words; rMsb: Words; borrow: DcfKeys } {
    const full = this.prgDealer.words(n)
    const low = this.ring.and(full, new BigInt64Array(n).fill((1n << BigInt(bits)) - 1n))
    const keys = dcfGen(low, new BigInt64Array(n).fill(1n), bits, this.prgDealer, this.ring)
    this.cost.offline(n * dcfKeyBytes(bits))
    const r0 = this.prg0.words(n)
    const h0 = this.prg0.words(n)
    const m0 = this.prg0.words(n)
    if (this.party === 0) return { r: r0, rHigh: h0, rMsb: m0, borrow: keys[0] }
    return {
      r: this.correction(full, r0),
      rHigh: this.correction(this.ring.shr(full, bits, false), h0),
      rMsb: this.correction(this.ring.shr(full, 63, false), m0),
      borrow: keys[1],
    }
  }
}
