/**
 * A small seeded PRNG (xoshiro128**, seeded through splitmix32) so that the same seed gives the same
 * samples on every run, runtime and backend. Math.random cannot be seeded; the method names follow
 * Python's `random` because the fixture's task generator (models/fixture-14m/train.py) is written with it.
 */
export class Rng {
  private s0: number
  private s1: number
  private s2: number
  private s3: number

  constructor(seed: number | string) {
    let x = typeof seed === 'number' ? seed >>> 0 : hashString(seed)
    const next = (): number => {
      // splitmix32: spreads one 32-bit seed over the four state words
      x = (x + 0x9e3779b9) >>> 0
      let z = x
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
      return (z ^ (z >>> 16)) >>> 0
    }
    this.s0 = next(); this.s1 = next(); this.s2 = next(); this.s3 = next()
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1
  }

  /** a uniform 32-bit unsigned integer */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0
    const t = this.s1 << 9
    this.s2 ^= this.s0
    this.s3 ^= this.s1
    this.s1 ^= this.s2
    this.s0 ^= this.s3
    this.s2 ^= t
    this.s3 = rotl(this.s3, 11)
    return result
  }

  /** uniform in [0, 1) with 53 random bits */
  random(): number {
    const hi = this.nextUint32() >>> 5
    const lo = this.nextUint32() >>> 6
    return (hi * 67108864 + lo) / 9007199254740992
  }

  /** uniform integer in [lo, hi) */
  randrange(lo: number, hi: number): number {
    if (!(hi > lo)) throw new Error(`randrange: empty range [${lo}, ${hi})`)
    return lo + Math.floor(this.random() * (hi - lo))
  }

  /** uniform integer in [lo, hi], both ends included */
  randint(lo: number, hi: number): number {
    return this.randrange(lo, hi + 1)
  }

  choice<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('choice from an empty list')
    return items[this.randrange(0, items.length)]
  }

  /** k distinct items in random order */
  sample<T>(items: readonly T[], k: number): T[] {
    if (k > items.length) throw new Error(`sample: ${k} items asked from ${items.length}`)
    const pool = items.slice()
    for (let i = 0; i < k; i++) {
      const j = this.randrange(i, pool.length)
      ;[pool[i], pool[j]] = [pool[j], pool[i]]
    }
    return pool.slice(0, k)
  }

  /** a uniform integer of `bits` bits (bits <= 32) */
  getrandbits(bits: number): number {
    if (bits < 1 || bits > 32) throw new Error(`getrandbits: ${bits} bits (1..32)`)
    return bits === 32 ? this.nextUint32() : this.nextUint32() >>> (32 - bits)
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0
}

/** FNV-1a over UTF-16 code units, then a final splitmix mix: a stable 32-bit seed from a string */
export function hashString(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0
  return (h ^ (h >>> 16)) >>> 0
}
