// Ring kernels for secret sharing over Z_2^64: wasm i64 arithmetic wraps modulo 2^64, which is exactly
// the ring. Every buffer is n (or k x m, m x n) i64 words; nothing is allocated here. Boolean shares
// use the same words with XOR/AND (64 bits of one value per word).

/** out = a + b (mod 2^64) */
export function mpcAdd(a: usize, b: usize, out: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 3
    store<i64>(out + o, load<i64>(a + o) + load<i64>(b + o))
  }
}

/** out = a - b (mod 2^64) */
export function mpcSub(a: usize, b: usize, out: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 3
    store<i64>(out + o, load<i64>(a + o) - load<i64>(b + o))
  }
}

/** out = a * b elementwise (mod 2^64) */
export function mpcMul(a: usize, b: usize, out: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 3
    store<i64>(out + o, load<i64>(a + o) * load<i64>(b + o))
  }
}

/** out = a ^ b */
export function mpcXor(a: usize, b: usize, out: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 3
    store<i64>(out + o, load<i64>(a + o) ^ load<i64>(b + o))
  }
}

/** out = a & b */
export function mpcAnd(a: usize, b: usize, out: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 3
    store<i64>(out + o, load<i64>(a + o) & load<i64>(b + o))
  }
}

/** out = a << s (s in 0..63) */
export function mpcShl(a: usize, s: i32, out: usize, n: i32): void {
  const k = <i64>s
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 3
    store<i64>(out + o, load<i64>(a + o) << k)
  }
}

/** out = a >> s, arithmetic (signed) when arith != 0, logical otherwise */
export function mpcShr(a: usize, s: i32, arith: i32, out: usize, n: i32): void {
  const k = <i64>s
  if (arith) {
    for (let i = 0; i < n; i++) {
      const o = <usize>i << 3
      store<i64>(out + o, load<i64>(a + o) >> k)
    }
  } else {
    for (let i = 0; i < n; i++) {
      const o = <usize>i << 3
      store<i64>(out + o, <i64>(<u64>load<i64>(a + o) >> <u64>k))
    }
  }
}

/** out (k x n) = a (k x m) . b (m x n), row-major, mod 2^64; accumulates into out when acc != 0 */
export function mpcMatmul(a: usize, b: usize, out: usize, k: i32, m: i32, n: i32, acc: i32): void {
  const rowB = <usize>n << 3
  for (let r = 0; r < k; r++) {
    const orow = out + ((<usize>r * <usize>n) << 3)
    if (!acc) memory.fill(orow, 0, rowB)
    const arow = a + ((<usize>r * <usize>m) << 3)
    for (let t = 0; t < m; t++) {
      const x = load<i64>(arow + (<usize>t << 3))
      if (x == 0) continue
      const brow = b + <usize>t * rowB
      let j = 0
      // two-lane i64 SIMD: the multiply wraps like the scalar one
      const xv = i64x2.splat(x)
      for (; j + 2 <= n; j += 2) {
        const o = <usize>j << 3
        v128.store(orow + o, i64x2.add(v128.load(orow + o), i64x2.mul(xv, v128.load(brow + o))))
      }
      for (; j < n; j++) {
        const o = <usize>j << 3
        store<i64>(orow + o, load<i64>(orow + o) + x * load<i64>(brow + o))
      }
    }
  }
}

/**
 * Beaver multiplication, the local step after opening d = x - a and e = y - b (Beaver, CRYPTO'91):
 * z_i = c_i + d b_i + e a_i (+ d e for party 0).
 */
export function mpcBeaverMul(c: usize, a: usize, b: usize, d: usize, e: usize, party: i32, out: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 3
    const dv = load<i64>(d + o)
    const ev = load<i64>(e + o)
    let z = load<i64>(c + o) + dv * load<i64>(b + o) + ev * load<i64>(a + o)
    if (party == 0) z += dv * ev
    store<i64>(out + o, z)
  }
}

/** The boolean twin over GF(2)^64: z_i = c_i ^ (d & b_i) ^ (e & a_i) (^ d & e for party 0). */
export function mpcBeaverAnd(c: usize, a: usize, b: usize, d: usize, e: usize, party: i32, out: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 3
    const dv = load<i64>(d + o)
    const ev = load<i64>(e + o)
    let z = load<i64>(c + o) ^ (dv & load<i64>(b + o)) ^ (ev & load<i64>(a + o))
    if (party == 0) z ^= dv & ev
    store<i64>(out + o, z)
  }
}
