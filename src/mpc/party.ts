/**
 * One party of the two-party semi-honest protocol over Z_2^64 (additive sharing x = x0 + x1 mod 2^64).
 * Both parties run the same code in the same order; every exchange is one round: send this party's
 * message, await the peer's. Costs are logged exactly (cost.ts): the figures below are per party.
 *
 *   open n words                1 round, 8n bytes
 *   mulRing / mul (Beaver)      1 round, 16n bytes (+ truncation for mul)
 *   squareRing (square pair)    1 round, 8n bytes
 *   matmul k x m by m x n       1 round, 8(km + mn) bytes (opens X - A and Y - B, operand-sized masks)
 *   and (GF(2)^64 Beaver)       1 round, 16n bytes
 *   ltz (A2B, Kogge-Stone)      8 rounds, 208n bytes: 1 AND round for generate, 6 prefix levels
 *                               (2 ANDs each, 1 on the last) for the carry into bit 63, 1 B2A round
 *   trunc 'exact' by f bits     2 + ceil(log2 f) rounds, (32 ceil(log2 f) + 32)n bytes
 *   trunc 'exact-one-round'     1 round, 8n bytes (a DCF key per element offline, dcf.ts)
 *   trunc 'one-round'           1 round, 8n bytes, floor or floor + 1;  'local': 0 rounds, 0 bytes
 *
 * Security: semi-honest (both parties follow the protocol), trusted dealer (dealer.ts), and every
 * opened value is a uniformly masked one (x - a with a fresh dealer mask) except where an operator
 * says it opens a result on purpose (see the MPC README section).
 */
import type { CostLog, KernelCall } from './cost.js'
import type { DealerStream } from './dealer.js'
import { checkFracBits, FixedPointError, TRUNC_MODES, type FxEngine, type MatmulOperands, type TruncMode } from './engine.js'
import { concatWords, type Ring, type Words } from './ring.js'
import { dcfEval } from './dcf.js'
import { TransportError, type Transport } from './transport.js'

export interface PartyOptions {
  /** fractional bits of the fixed-point encoding (default 18, SecretFlow SPU's FM64; CrypTen uses 16) */
  fracBits?: number
  /** truncation protocol after fixed-point products (default 'one-round') */
  trunc?: TruncMode
}

/** Refuses (FixedPointError, naming it) a fracBits or trunc a party cannot run at; createInProcessParties checks them before its channel opens. */
export function checkPartyOptions(options: PartyOptions): void {
  checkFracBits(options.fracBits ?? 18)
  const trunc = options.trunc ?? 'one-round'
  if (!TRUNC_MODES.includes(trunc)) throw new FixedPointError(`trunc must be one of ${TRUNC_MODES.map((m) => `'${m}'`).join(', ')}, got ${JSON.stringify(trunc)}`)
}

export class ProtocolError extends Error {
  override name = 'ProtocolError'
}

/** An operation on a party that was closed (Party.close): pending ones reject with it, later ones too. */
export class PartyClosedError extends TransportError {
  override name = 'PartyClosedError'
}

const ZERO = 0n
const OFFSET = 1n << 62n

export class Party implements FxEngine {
  readonly fracBits: number
  readonly truncMode: TruncMode
  /** milliseconds spent waiting for the peer's messages (the rest of a run is local compute) */
  waitMs = 0
  /**
   * when set, each round's local compute in ms (from the previous message's arrival to this send) is
   * pushed here: the two parties' per-round maxima are a synchronous protocol's compute critical path
   */
  roundCompute: number[] | null = null
  private lastArrival = -1
  /** set by close(): what every pending and later round rejects with */
  private closedWith: PartyClosedError | null = null
  /** the rejecters of the rounds waiting for the peer's message */
  private readonly waiting = new Set<(e: Error) => void>()

  constructor(
    readonly id: 0 | 1,
    readonly transport: Transport,
    readonly dealer: DealerStream,
    readonly ring: Ring,
    readonly cost: CostLog,
    options: PartyOptions = {},
  ) {
    checkPartyOptions(options)
    this.fracBits = options.fracBits ?? 18
    this.truncMode = options.trunc ?? 'one-round'
    if (dealer.party !== id) throw new ProtocolError(`party ${id} was given party ${dealer.party}'s dealer stream`)
  }

  scope<T>(name: string, f: () => Promise<T>): Promise<T> {
    return this.cost.scope(name, f)
  }

  /** an operator that is also a protocol kernel of SPU's table */
  private op<T>(name: string, call: KernelCall | KernelCall[], f: () => Promise<T>): Promise<T> {
    return this.cost.scope(name, () => this.cost.kernel(call, f))
  }

  /** One round: sends the concatenation of `parts`, returns the peer's parts (same lengths). */
  async exchange(parts: Words[]): Promise<Words[]> {
    const msg = concatWords(...parts)
    const total = msg.length
    const t0 = performance.now()
    if (this.roundCompute && this.lastArrival >= 0) this.roundCompute.push(t0 - this.lastArrival)
    if (this.closedWith) throw this.closedWith
    this.transport.send(msg)
    this.cost.round(msg.byteLength)
    // close() rejects a round waiting here at once, whatever the transport does with its own receive
    const got = await new Promise<Words>((resolve, reject) => {
      this.waiting.add(reject)
      this.transport
        .recv()
        .then(resolve, reject)
        .finally(() => this.waiting.delete(reject))
    })
    this.lastArrival = performance.now()
    this.waitMs += this.lastArrival - t0
    if (got.length !== total) throw new ProtocolError(`party ${this.id}: expected ${total} words from the peer, got ${got.length} (the parties ran different operations)`)
    let o = 0
    return parts.map((p) => got.subarray(o, (o += p.length)))
  }

  /**
   * Releases the party's transport (its socket, its message port): the peer sees the channel end.
   * Every operation waiting for the peer rejects with a PartyClosedError, and so does every later one
   * that needs a round; operations with no round (add, constant, local truncation) still compute.
   * Idempotent. The ring and dealer stream are not released: a ring may serve other parties.
   */
  close(): void {
    if (this.closedWith) return
    this.closedWith = new PartyClosedError(`party ${this.id} was closed (Party.close): no round can run on it`)
    for (const reject of this.waiting) reject(this.closedWith)
    this.waiting.clear()
    this.transport.close()
  }

  /** whether close() was called */
  get closed(): boolean {
    return this.closedWith !== null
  }

  /** Reconstructs x in the clear (both parties learn it). */
  open(x: Words): Promise<Words> {
    return this.op('open', { kernel: 'a2p', elements: x.length }, async () => {
      const [peer] = await this.exchange([x])
      return this.ring.add(x, peer)
    })
  }

  constant(value: bigint, n: number): Words {
    return new BigInt64Array(n).fill(this.id === 0 ? value : ZERO)
  }
  add = (a: Words, b: Words): Words => this.ring.add(a, b)
  sub = (a: Words, b: Words): Words => this.ring.sub(a, b)
  addConst(a: Words, c: bigint): Words {
    return this.id === 0 ? this.ring.add(a, this.constant(c, a.length)) : a.slice()
  }
  mulConst(a: Words, c: bigint): Words {
    return this.ring.mul(a, new BigInt64Array(a.length).fill(c))
  }

  mulRing(a: Words, b: Words): Promise<Words> {
    return this.op('mul', { kernel: 'mul_aa', elements: a.length }, async () => {
      const t = this.dealer.triple(a.length)
      const [dp, ep] = await this.exchange([this.ring.sub(a, t.a), this.ring.sub(b, t.b)])
      const d = this.ring.add(this.ring.sub(a, t.a), dp)
      const e = this.ring.add(this.ring.sub(b, t.b), ep)
      return this.ring.beaverMul(t.c, t.a, t.b, d, e, this.id)
    })
  }

  async mul(a: Words, b: Words): Promise<Words> {
    return this.trunc(await this.mulRing(a, b), this.fracBits)
  }

  squareRing(a: Words): Promise<Words> {
    return this.op('square', { kernel: 'mul_aa', elements: a.length }, async () => {
      const s = this.dealer.square(a.length)
      const mine = this.ring.sub(a, s.a)
      const [peer] = await this.exchange([mine])
      const d = this.ring.add(mine, peer)
      // x^2 = (d + a)^2 = a^2 + 2 d a + d^2; the public d^2 is added by party 0
      let z = this.ring.add(s.aa, this.ring.mul(this.ring.add(d, d), s.a))
      if (this.id === 0) z = this.ring.add(z, this.ring.mul(d, d))
      return z
    })
  }

  matmulRing(x: Words, y: Words, k: number, m: number, n: number): Promise<Words> {
    return this.matmulRingBatch([{ x, y, k, m, n }]).then(([z]) => z)
  }

  /** Beaver matrix products with operand-sized masks: opens X - A (k x m) and Y - B (m x n) per product. */
  matmulRingBatch(products: MatmulOperands[]): Promise<Words[]> {
    const calls = products.map((p): KernelCall => ({ kernel: 'mmul_aa', elements: p.k * p.n, shape: [p.k, p.m, p.n] }))
    return this.op('matmul', calls, async () => {
      for (const { x, y, k, m, n } of products) {
        if (x.length !== k * m || y.length !== m * n) throw new ProtocolError(`matmul: expected ${k}x${m} and ${m}x${n} shares, got ${x.length} and ${y.length} words`)
      }
      const ts = products.map((p) => this.dealer.matrixTriple(p.k, p.m, p.n))
      const mine = ts.flatMap((t, i) => [this.ring.sub(products[i].x, t.a), this.ring.sub(products[i].y, t.b)])
      const peer = await this.exchange(mine)
      return ts.map((t, i) => {
        const { k, m, n } = products[i]
        const d = this.ring.add(mine[2 * i], peer[2 * i])
        const e = this.ring.add(mine[2 * i + 1], peer[2 * i + 1])
        // Z = C + D.B + A.E (+ D.E for party 0)
        let z = this.ring.add(t.c, this.ring.add(this.ring.matmul(d, t.b, k, m, n), this.ring.matmul(t.a, e, k, m, n)))
        if (this.id === 0) z = this.ring.add(z, this.ring.matmul(d, e, k, m, n))
        return z
      })
    })
  }

  addPublic(a: Words, v: Words): Words {
    return this.id === 0 ? this.ring.add(a, v) : a.slice()
  }
  mulPublic(a: Words, v: Words): Words {
    return this.ring.mul(a, v)
  }
  reveal(a: Words): Promise<Words> {
    return this.open(a)
  }

  async matmul(x: Words, y: Words, k: number, m: number, n: number): Promise<Words> {
    return this.trunc(await this.matmulRing(x, y, k, m, n), this.fracBits)
  }

  /** Boolean shares (XOR over 64-bit words): z = x & y, one round. Several pairs share the round. */
  and(xs: Words[], ys: Words[]): Promise<Words[]> {
    return this.op('and', { kernel: 'and_bb', elements: xs.reduce((s, x) => s + x.length, 0) }, async () => {
      const ts = xs.map((x) => this.dealer.andTriple(x.length))
      const mine = ts.flatMap((t, i) => [this.ring.xor(xs[i], t.a), this.ring.xor(ys[i], t.b)])
      const peer = await this.exchange(mine)
      return ts.map((t, i) => {
        const d = this.ring.xor(mine[2 * i], peer[2 * i])
        const e = this.ring.xor(mine[2 * i + 1], peer[2 * i + 1])
        return this.ring.beaverAnd(t.c, t.a, t.b, d, e, this.id)
      })
    })
  }

  /**
   * Group generate of the sum of two boolean-shared addends whose generate g = a & b and propagate
   * p = a ^ b are given, over the low `width` bits: Kogge-Stone parallel prefix (Kogge & Stone, 1973),
   * ceil(log2 width) levels of one round each; G's bit i is the carry out of bits 0..i.
   * G and P of a block are never both 1, so G | (P & G') is computed as G ^ (P & G').
   */
  private async prefixGenerate(g: Words, p: Words, width: number): Promise<Words> {
    const levels = Math.ceil(Math.log2(width))
    let G = g
    let P = p
    for (let j = 0; j < levels; j++) {
      const s = 1 << j
      const Gs = this.ring.shl(G, s)
      if (j === levels - 1) {
        const [t] = await this.and([P], [Gs])
        G = this.ring.xor(G, t)
      } else {
        const [t, pp] = await this.and([P, P], [Gs, this.ring.shl(P, s)])
        G = this.ring.xor(G, t)
        P = pp
      }
    }
    return G
  }

  /**
   * Arithmetic shares of the products of bits held one by each party: for each pair, party 0's bits u
   * and party 1's bits v give shares of u*v (Beaver on the sharings (u, 0) and (0, v)), in one round.
   */
  private crossProducts(mineBits: Words[]): Promise<Words[]> {
    const mine = concatWords(...mineBits)
    const zeros = new BigInt64Array(mine.length)
    const prod = this.mulRing(this.id === 0 ? mine : zeros, this.id === 1 ? mine : zeros)
    return prod.then((z) => {
      let q = 0
      return mineBits.map((b) => z.subarray(q, (q += b.length)).slice())
    })
  }

  /** B2A of bits XOR-shared as words 0/1: b = b0 + b1 - 2 b0 b1. */
  private async bitsToArithmetic(bits: Words): Promise<Words> {
    const [z] = await this.crossProducts([bits])
    return this.ring.sub(bits, this.ring.add(z, z))
  }

  /** 1 where x < 0: the sign bit of x0 + x1 through A2B with a Kogge-Stone adder, then B2A. */
  ltz(x: Words): Promise<Words> {
    return this.op('ltz', [{ kernel: 'a2b', elements: x.length }, { kernel: 'b2a', elements: x.length }], async () => {
      const n = x.length
      const zeros = new BigInt64Array(n)
      // boolean sharings of the two addends: (x0, 0) and (0, x1)
      const a = this.id === 0 ? x : zeros
      const b = this.id === 1 ? x : zeros
      const [g] = await this.and([a], [b])
      const p = this.ring.xor(a, b)
      const G = await this.prefixGenerate(g, p, 63)
      // sum bit 63 = p63 ^ carry into 63 = p63 ^ G62
      const msb = this.ring.shr(this.ring.xor(p, this.ring.shl(G, 1)), 63, false)
      return this.bitsToArithmetic(msb)
    })
  }

  trunc(x: Words, bits: number): Promise<Words> {
    if (!Number.isInteger(bits) || bits < 1 || bits > 62) throw new FixedPointError(`trunc: bits must be an integer in 1..62, got ${bits}`)
    const call: KernelCall = { kernel: 'trunc_a', elements: x.length }
    if (this.truncMode === 'local') return this.op('trunc', call, async () => this.truncLocal(x, bits))
    if (this.truncMode === 'one-round') return this.op('trunc', call, () => this.truncOneRound(x, bits))
    if (this.truncMode === 'exact-one-round') return this.op('trunc', call, () => this.truncExactOneRound(x, bits))
    return this.op('trunc', call, () => this.truncExact(x, bits))
  }

  /** SecureML: party 0 shifts its share, party 1 shifts the negation of its share and negates back. */
  truncLocal(x: Words, bits: number): Words {
    if (this.id === 0) return this.ring.shr(x, bits, true)
    const zero = new BigInt64Array(x.length)
    return this.ring.sub(zero, this.ring.shr(this.ring.sub(zero, x), bits, true))
  }

  /**
   * Escudero et al. (CRYPTO 2020) probabilistic truncation with a dealer mask r: open c = y + r for
   * y = x + 2^62 in [0, 2^63); then y >> f = (c >> f) - (r >> f) + w 2^(64-f) - [c_lo < r_lo] with the
   * wrap w = r_msb (1 - c_msb). The borrow term is left out: the result is floor or floor + 1.
   */
  async truncOneRound(x: Words, bits: number): Promise<Words> {
    const m = this.dealer.truncMask(x.length, bits)
    const c = await this.open(this.ring.add(this.addConst(x, OFFSET), m.r))
    const cHigh = this.ring.shr(c, bits, false)
    const notCMsb = this.ring.sub(new BigInt64Array(c.length).fill(1n), this.ring.shr(c, 63, false))
    const wrap = this.ring.shl(this.ring.mul(m.rMsb, notCMsb), 64 - bits)
    const mine = this.ring.add(this.ring.sub(this.id === 0 ? cHigh : new BigInt64Array(c.length), m.rHigh), wrap)
    return this.addConst(mine, -(OFFSET >> BigInt(bits)))
  }

  /**
   * Exact floor(x / 2^f) for |x| < 2^62 in one round: the masked truncation above plus its borrow
   * [c_lo < r_lo], which each party gets as a share by evaluating its DCF key on the public c_lo (Boyle
   * et al., "Function Secret Sharing for Mixed-Mode and Fixed-Point Secure Computation", EUROCRYPT 2021,
   * section 5: the truncation gate). No second round: the cost moves offline, into the keys.
   */
  async truncExactOneRound(x: Words, bits: number): Promise<Words> {
    const m = this.dealer.truncFssMask(x.length, bits)
    const c = await this.open(this.ring.add(this.addConst(x, OFFSET), m.r))
    const cLow = this.ring.and(c, new BigInt64Array(c.length).fill((1n << BigInt(bits)) - 1n))
    const borrow = dcfEval(m.borrow, cLow, this.ring)
    const cHigh = this.ring.shr(c, bits, false)
    const notCMsb = this.ring.sub(new BigInt64Array(c.length).fill(1n), this.ring.shr(c, 63, false))
    const wrap = this.ring.shl(this.ring.mul(m.rMsb, notCMsb), 64 - bits)
    const mine = this.ring.sub(this.ring.add(this.ring.sub(this.id === 0 ? cHigh : new BigInt64Array(c.length), m.rHigh), wrap), borrow)
    return this.addConst(mine, -(OFFSET >> BigInt(bits)))
  }

  /**
   * Exact floor(x / 2^f) for |x| < 2^62. With y = x + 2^62 = y0 + y1 - w 2^64:
   *   floor(y / 2^f) = (y0 >>> f) + (y1 >>> f) + carry - w 2^(64-f)
   * where carry = [lo(y0) + lo(y1) >= 2^f] comes from a Kogge-Stone adder over the f low bits, and the
   * wrap w = msb(y0) OR msb(y1) because y < 2^63. Both bits are converted to arithmetic shares in one
   * last round.
   */
  async truncExact(x: Words, bits: number): Promise<Words> {
    const n = x.length
    const y = this.addConst(x, OFFSET)
    const low = (1n << BigInt(bits)) - 1n
    const lo = this.ring.and(y, new BigInt64Array(n).fill(low))
    const zeros = new BigInt64Array(n)
    const [g] = await this.and([this.id === 0 ? lo : zeros], [this.id === 1 ? lo : zeros])
    const G = bits > 1 ? await this.prefixGenerate(g, lo, bits) : g
    const carryBit = this.ring.shr(this.ring.shl(G, 64 - bits), 63, false)
    const msb = this.ring.shr(y, 63, false)
    const [cc, mm] = await this.crossProducts([carryBit, msb])
    const carry = this.ring.sub(carryBit, this.ring.add(cc, cc))
    const wrap = this.ring.sub(msb, mm) // u + v - uv, each party's u or v is its own msb
    let z = this.ring.add(this.ring.shr(y, bits, false), carry)
    z = this.ring.sub(z, this.ring.shl(wrap, 64 - bits))
    return this.addConst(z, -(OFFSET >> BigInt(bits)))
  }
}
