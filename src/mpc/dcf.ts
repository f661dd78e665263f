/**
 * Distributed comparison functions (DCF): function secret sharing of f(x) = beta if x < alpha else 0 over
 * n-bit inputs, output additively shared in Z_2^64. The dealer's Gen gives each party a key; each party
 * evaluates its key on a public x locally, and the two outputs add up to f(x). One DCF per element turns
 * the borrow of a masked truncation into shares without a round (truncation.ts).
 *
 * Construction: Boyle, Chandran, Gilboa, Gupta, Ishai, Kumar, Raghuraman, "Function Secret Sharing for
 * Mixed-Mode and Fixed-Point Secure Computation", EUROCRYPT 2021, Figure 1 (the DCF scheme), with
 * lambda = 128-bit seeds. The PRG G: {0,1}^128 -> (s_L, v_L, t_L, s_R, v_R, t_R) is one block of ChaCha20
 * with the 128-bit key variant (TAU constants, key words repeated), so no runtime crypto API is needed.
 *
 * Shapes: a `DcfKeys` holds one key per element for `n` elements of `bits`-bit inputs, flat:
 * seed (4 words per element), per level the seed correction (4 words), value correction (one ring word)
 * and the two control-bit corrections, and a final correction word. Its size is `dcfKeyBytes(bits)` per
 * element, the bytes a dealer sends each party.
 */
import { chacha20Block, TAU, type ChaCha20Prg } from './prg.js'
import type { Words } from './ring.js'

export class DcfError extends RangeError {
  override name = 'DcfError'
}

export interface DcfKeys {
  readonly party: 0 | 1
  /** input bits, most significant first */
  readonly bits: number
  readonly n: number
  /** n x 4 words: the party's root seed */
  readonly seed: Uint32Array
  /** n x bits x 4 words: the seed correction per level */
  readonly seedCw: Uint32Array
  /** n x bits ring words: the value correction per level */
  readonly valueCw: BigInt64Array
  /** n x bits: bit 0 the left control-bit correction, bit 1 the right */
  readonly controlCw: Uint8Array
  /** n ring words: the final correction */
  readonly finalCw: BigInt64Array
}

/** bytes of one element's key: root seed 16, per level 16 + 8 + 1 (two bits, sent as a byte), final 8 */
export const dcfKeyBytes = (bits: number): number => 16 + bits * 25 + 8

function checkBits(bits: number): void {
  if (!Number.isInteger(bits) || bits < 1 || bits > 62) throw new DcfError(`DCF input bits must be an integer in 1..62, got ${bits}`)
}

/** G(s): one ChaCha20 block keyed by the 128-bit seed s (words 0..3 of `seed` at `at`) */
class SeedPrg {
  private readonly key = new Uint32Array(8)
  readonly out = new Uint32Array(16)
  expand(seed: Uint32Array, at: number): Uint32Array {
    const k = this.key
    k[0] = k[4] = seed[at]
    k[1] = k[5] = seed[at + 1]
    k[2] = k[6] = seed[at + 2]
    k[3] = k[7] = seed[at + 3]
    chacha20Block(TAU, k, 0, this.out)
    return this.out
  }
}
// layout of G's output words: s_L 0..3, v_L 4..5, t_L bit of 6, s_R 7..10, v_R 11..12, t_R bit of 13
const S_AT = [0, 7]
const V_AT = [4, 11]
const T_AT = [6, 13]

const u64 = (w: Uint32Array, at: number): bigint => (BigInt(w[at + 1]) << 32n) | BigInt(w[at])
const wrap = (x: bigint): bigint => BigInt.asIntN(64, x)

/** The correction words both keys share (the dealer's output besides the root seeds). */
export interface DcfCorrections {
  seedCw: Uint32Array
  valueCw: BigInt64Array
  controlCw: Uint8Array
  finalCw: BigInt64Array
}

/** A DCF engine: the wasm kernels (assembly/kernels/mpc-dcf.ts) or the TypeScript twin below. */
export interface DcfKernels {
  dcfCorrections(alpha: Words, beta: Words, bits: number, seed0: Uint32Array, seed1: Uint32Array): DcfCorrections
  dcfEval(key: DcfKeys, x: Words): Words
}

/**
 * Gen for n comparisons at once: key pair for f_i(x) = beta_i if x < alpha_i (unsigned, `bits` bits).
 * Root seeds come from the dealer's PRG `rand`; the correction words from `kernels` (default: the
 * TypeScript twin; `createWasmRing()` gives the wasm kernels). Throws DcfError when bits is out of 1..62,
 * the lengths differ, or an alpha does not fit in `bits` bits.
 */
export function dcfGen(alpha: Words, beta: Words, bits: number, rand: ChaCha20Prg, kernels: DcfKernels = dcfReference): [DcfKeys, DcfKeys] {
  checkBits(bits)
  const n = alpha.length
  if (beta.length !== n) throw new DcfError(`dcfGen: ${n} alphas but ${beta.length} betas`)
  const limit = 1n << BigInt(bits)
  for (let e = 0; e < n; e++) {
    const a = BigInt.asUintN(64, alpha[e])
    if (a >= limit) throw new DcfError(`dcfGen: alpha ${a} at index ${e} does not fit in ${bits} bits`)
  }
  const seed0 = rand.fill32(new Uint32Array(4 * n))
  const seed1 = rand.fill32(new Uint32Array(4 * n))
  const cw = kernels.dcfCorrections(alpha, beta, bits, seed0, seed1)
  return [
    { party: 0, bits, n, seed: seed0, ...cw },
    { party: 1, bits, n, seed: seed1, ...cw },
  ]
}

/**
 * Eval: this party's additive share of f_i(x_i) for each element, x_i public (`bits`-bit unsigned, the
 * low `bits` bits of each word are used). Throws DcfError on a length mismatch.
 */
export function dcfEval(key: DcfKeys, x: Words, kernels: DcfKernels = dcfReference): Words {
  if (x.length !== key.n) throw new DcfError(`dcfEval: ${key.n} keys but ${x.length} inputs`)
  return kernels.dcfEval(key, x)
}

function correctionsReference(alpha: Words, beta: Words, bits: number, seed0: Uint32Array, seed1: Uint32Array): DcfCorrections {
  const n = alpha.length
  const cw: DcfCorrections = {
    seedCw: new Uint32Array(4 * n * bits),
    valueCw: new BigInt64Array(n * bits),
    controlCw: new Uint8Array(n * bits),
    finalCw: new BigInt64Array(n),
  }
  const g0 = new SeedPrg()
  const g1 = new SeedPrg()
  const s0 = new Uint32Array(4)
  const s1 = new Uint32Array(4)
  const sCw = new Uint32Array(4)
  for (let e = 0; e < n; e++) {
    const a = BigInt.asUintN(64, alpha[e])
    s0.set(seed0.subarray(4 * e, 4 * e + 4))
    s1.set(seed1.subarray(4 * e, 4 * e + 4))
    let t0 = 0
    let t1 = 1
    let vAlpha = 0n
    for (let i = 0; i < bits; i++) {
      const ai = Number((a >> BigInt(bits - 1 - i)) & 1n)
      const o0 = g0.expand(s0, 0)
      const o1 = g1.expand(s1, 0)
      const keep = ai
      const lose = 1 - ai
      for (let w = 0; w < 4; w++) sCw[w] = o0[S_AT[lose] + w] ^ o1[S_AT[lose] + w]
      const sign = t1 ? -1n : 1n
      let vCw = sign * (u64(o1, V_AT[lose]) - u64(o0, V_AT[lose]) - vAlpha)
      if (lose === 0) vCw += sign * beta[e]
      vCw = wrap(vCw)
      vAlpha = wrap(vAlpha - u64(o1, V_AT[keep]) + u64(o0, V_AT[keep]) + sign * vCw)
      const tCwL = (o0[T_AT[0]] & 1) ^ (o1[T_AT[0]] & 1) ^ ai ^ 1
      const tCwR = (o0[T_AT[1]] & 1) ^ (o1[T_AT[1]] & 1) ^ ai
      const tCwKeep = keep === 0 ? tCwL : tCwR
      const at = e * bits + i
      cw.seedCw.set(sCw, 4 * at)
      cw.valueCw[at] = vCw
      cw.controlCw[at] = tCwL | (tCwR << 1)
      const nt0 = (o0[T_AT[keep]] & 1) ^ (t0 & tCwKeep)
      const nt1 = (o1[T_AT[keep]] & 1) ^ (t1 & tCwKeep)
      for (let w = 0; w < 4; w++) {
        s0[w] = o0[S_AT[keep] + w] ^ (t0 ? sCw[w] : 0)
        s1[w] = o1[S_AT[keep] + w] ^ (t1 ? sCw[w] : 0)
      }
      t0 = nt0
      t1 = nt1
    }
    cw.finalCw[e] = wrap((t1 ? -1n : 1n) * (u64(s1, 0) - u64(s0, 0) - vAlpha))
  }
  return cw
}

function evalReference(key: DcfKeys, x: Words): Words {
  const { bits, party } = key
  const g = new SeedPrg()
  const s = new Uint32Array(4)
  const out = new BigInt64Array(key.n)
  const sign = party === 1 ? -1n : 1n
  for (let e = 0; e < key.n; e++) {
    const xe = BigInt.asUintN(64, x[e])
    s.set(key.seed.subarray(4 * e, 4 * e + 4))
    let t = party as number
    let v = 0n
    for (let i = 0; i < bits; i++) {
      const at = e * bits + i
      const o = g.expand(s, 0)
      const xi = Number((xe >> BigInt(bits - 1 - i)) & 1n)
      let tNext = o[T_AT[xi]] & 1
      if (t) {
        for (let w = 0; w < 4; w++) s[w] = o[S_AT[xi] + w] ^ key.seedCw[4 * at + w]
        tNext ^= (key.controlCw[at] >> xi) & 1
        v += sign * (u64(o, V_AT[xi]) + key.valueCw[at])
      } else {
        for (let w = 0; w < 4; w++) s[w] = o[S_AT[xi] + w]
        v += sign * u64(o, V_AT[xi])
      }
      t = tNext
    }
    v += sign * (u64(s, 0) + (t ? key.finalCw[e] : 0n))
    out[e] = wrap(v)
  }
  return out
}

/** The TypeScript twin of the wasm DCF kernels (BigInt per element: ~50x slower; tests hold the kernels to it). */
export const dcfReference: DcfKernels = { dcfCorrections: correctionsReference, dcfEval: evalReference }
