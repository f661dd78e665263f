/**
 * The dealer's seeded pseudo-random generator: ChaCha20 (RFC 8439 block function) in counter mode,
 * keyed by a 256-bit seed, nonce zero. A cryptographic PRG, so shares drawn from it are
 * indistinguishable from uniform to a party that lacks the seed; plain JavaScript (no node:crypto),
 * so it runs in every runtime the executor runs in.
 */

export class PrgSeedError extends RangeError {
  override name = 'PrgSeedError'
}

function rotl(x: number, n: number): number {
  return (x << n) | (x >>> (32 - n))
}

export class ChaCha20Prg {
  private readonly key = new Uint32Array(8)
  private readonly block = new Uint32Array(16)
  private counter = 0
  private used = 16

  /** @param seed 32 bytes, or a string hashed into them (for reproducible test and bench seeds) */
  constructor(seed: Uint8Array | string) {
    const bytes = typeof seed === 'string' ? seedFromString(seed) : seed
    if (bytes.length !== 32) throw new PrgSeedError(`ChaCha20Prg: the seed must be 32 bytes, got ${bytes.length}`)
    const dv = new DataView(bytes.buffer, bytes.byteOffset, 32)
    for (let i = 0; i < 8; i++) this.key[i] = dv.getUint32(i * 4, true)
  }

  private refill(): void {
    chacha20Block(SIGMA, this.key, this.counter, this.block)
    this.counter++
    this.used = 0
  }

  /** Fills `out` with keystream words (little-endian 32-bit words, in stream order). */
  fill32(out: Uint32Array): Uint32Array {
    let i = 0
    while (i < out.length) {
      if (this.used === 16) this.refill()
      const take = Math.min(16 - this.used, out.length - i)
      out.set(this.block.subarray(this.used, this.used + take), i)
      this.used += take
      i += take
    }
    return out
  }

  /** n uniform ring elements of Z_2^64 */
  words(n: number): BigInt64Array {
    const out = new BigInt64Array(n)
    this.fill32(new Uint32Array(out.buffer))
    return out
  }
}

/** "expand 32-byte k": the constants of ChaCha20 with a 256-bit key (RFC 8439 section 2.3) */
export const SIGMA = Uint32Array.of(0x61707865, 0x3320646e, 0x79622d32, 0x6b206574)
/** "expand 16-byte k": the constants of Bernstein's ChaCha with a 128-bit key (key words repeated) */
export const TAU = Uint32Array.of(0x61707865, 0x3120646e, 0x79622d36, 0x6b206574)

/**
 * The ChaCha20 block function (RFC 8439 section 2.3, 20 rounds) with nonce zero: `out` receives the 16
 * keystream words of block `counter` for the 8 key words `key` under the 4 `constants`.
 */
export function chacha20Block(constants: Uint32Array, key: Uint32Array, counter: number, out: Uint32Array): void {
  const c0 = constants[0], c1 = constants[1], c2 = constants[2], c3 = constants[3]
  const k0 = key[0], k1 = key[1], k2 = key[2], k3 = key[3], k4 = key[4], k5 = key[5], k6 = key[6], k7 = key[7]
  const n0 = counter >>> 0
  const n1 = Math.floor(counter / 2 ** 32) >>> 0
  let x0 = c0, x1 = c1, x2 = c2, x3 = c3, x4 = k0, x5 = k1, x6 = k2, x7 = k3
  let x8 = k4, x9 = k5, x10 = k6, x11 = k7, x12 = n0, x13 = n1, x14 = 0, x15 = 0
  for (let r = 0; r < 10; r++) {
    // column rounds
    x0 = (x0 + x4) | 0; x12 = rotl(x12 ^ x0, 16); x8 = (x8 + x12) | 0; x4 = rotl(x4 ^ x8, 12)
    x0 = (x0 + x4) | 0; x12 = rotl(x12 ^ x0, 8); x8 = (x8 + x12) | 0; x4 = rotl(x4 ^ x8, 7)
    x1 = (x1 + x5) | 0; x13 = rotl(x13 ^ x1, 16); x9 = (x9 + x13) | 0; x5 = rotl(x5 ^ x9, 12)
    x1 = (x1 + x5) | 0; x13 = rotl(x13 ^ x1, 8); x9 = (x9 + x13) | 0; x5 = rotl(x5 ^ x9, 7)
    x2 = (x2 + x6) | 0; x14 = rotl(x14 ^ x2, 16); x10 = (x10 + x14) | 0; x6 = rotl(x6 ^ x10, 12)
    x2 = (x2 + x6) | 0; x14 = rotl(x14 ^ x2, 8); x10 = (x10 + x14) | 0; x6 = rotl(x6 ^ x10, 7)
    x3 = (x3 + x7) | 0; x15 = rotl(x15 ^ x3, 16); x11 = (x11 + x15) | 0; x7 = rotl(x7 ^ x11, 12)
    x3 = (x3 + x7) | 0; x15 = rotl(x15 ^ x3, 8); x11 = (x11 + x15) | 0; x7 = rotl(x7 ^ x11, 7)
    // diagonal rounds
    x0 = (x0 + x5) | 0; x15 = rotl(x15 ^ x0, 16); x10 = (x10 + x15) | 0; x5 = rotl(x5 ^ x10, 12)
    x0 = (x0 + x5) | 0; x15 = rotl(x15 ^ x0, 8); x10 = (x10 + x15) | 0; x5 = rotl(x5 ^ x10, 7)
    x1 = (x1 + x6) | 0; x12 = rotl(x12 ^ x1, 16); x11 = (x11 + x12) | 0; x6 = rotl(x6 ^ x11, 12)
    x1 = (x1 + x6) | 0; x12 = rotl(x12 ^ x1, 8); x11 = (x11 + x12) | 0; x6 = rotl(x6 ^ x11, 7)
    x2 = (x2 + x7) | 0; x13 = rotl(x13 ^ x2, 16); x8 = (x8 + x13) | 0; x7 = rotl(x7 ^ x8, 12)
    x2 = (x2 + x7) | 0; x13 = rotl(x13 ^ x2, 8); x8 = (x8 + x13) | 0; x7 = rotl(x7 ^ x8, 7)
    x3 = (x3 + x4) | 0; x14 = rotl(x14 ^ x3, 16); x9 = (x9 + x14) | 0; x4 = rotl(x4 ^ x9, 12)
    x3 = (x3 + x4) | 0; x14 = rotl(x14 ^ x3, 8); x9 = (x9 + x14) | 0; x4 = rotl(x4 ^ x9, 7)
  }
  out[0] = x0 + c0; out[1] = x1 + c1; out[2] = x2 + c2; out[3] = x3 + c3
  out[4] = x4 + k0; out[5] = x5 + k1; out[6] = x6 + k2; out[7] = x7 + k3
  out[8] = x8 + k4; out[9] = x9 + k5; out[10] = x10 + k6; out[11] = x11 + k7
  out[12] = x12 + n0; out[13] = x13 + n1; out[14] = x14; out[15] = x15
}

/** 32 bytes from a label: FNV-1a-seeded SplitMix64 expansion (deterministic, for reproducible seeds only) */
export function seedFromString(label: string): Uint8Array {
  let h = 0xcbf29ce484222325n
  for (let i = 0; i < label.length; i++) h = BigInt.asUintN(64, (h ^ BigInt(label.charCodeAt(i))) * 0x100000001b3n)
  const out = new Uint8Array(32)
  const dv = new DataView(out.buffer)
  for (let i = 0; i < 4; i++) {
    h = BigInt.asUintN(64, h + 0x9e3779b97f4a7c15n)
    let z = h
    z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n)
    z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn)
    dv.setBigUint64(i * 8, z ^ (z >> 31n), true)
  }
  return out
}
