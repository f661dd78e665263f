import { rowAt } from '../kernels/simd'

/** rotate_half rotation of one row of d floats at a with half-row tables c and s (d/2 floats each). */
// @ts-ignore: decorator
@inline function rotateRow(a: usize, half: i32, c: usize, s: usize): void {
  const h4 = half & ~3
  const b = a + (<usize>half << 2)
  for (let i = 0; i < h4; i += 4) {
    const off = <usize>i << 2
    const x1 = v128.load(a + off)
    const x2 = v128.load(b + off)
    const vc = v128.load(c + off)
    const vs = v128.load(s + off)
    v128.store(a + off, f32x4.sub(f32x4.mul(x1, vc), f32x4.mul(x2, vs)))
    v128.store(b + off, f32x4.add(f32x4.mul(x2, vc), f32x4.mul(x1, vs)))
  }
  for (let i = h4; i < half; i++) {
    const off = <usize>i << 2
    const x1 = load<f32>(a + off)
    const x2 = load<f32>(b + off)
    const vc = load<f32>(c + off)
    const vs = load<f32>(s + off)
    store<f32>(a + off, x1 * vc - x2 * vs)
    store<f32>(b + off, x2 * vc + x1 * vs)
  }
}

/**
 * Rotary embedding in place, Hugging Face's rotate_half layout: channel i pairs with i + d/2.
 * x is [T][heads][d]; cos and sin are [T][d/2] (the caller computes them from positions and inverse
 * frequencies, so llama3 scaling and cache-relative positions need no kernel change).
 */
export function rope(x: usize, T: i32, heads: i32, d: i32, cos: usize, sin: usize): void {
  const half = d >> 1
  const rowT = <usize>(heads * d) << 2
  for (let t = 0; t < T; t++) {
    const ct = cos + <usize>(t * half) * 4
    const st = sin + <usize>(t * half) * 4
    for (let h = 0; h < heads; h++) rotateRow(x + <usize>t * rowT + (<usize>(h * d) << 2), half, ct, st)
  }
}

/**
 * The same rotation over rows [first, first + n) of one paged stream of d-float rows (a cached head's
 * keys, read through its page table), row first + r with cos, sin row r ([n][d/2]). Re-rotating cached
 * post-RoPE keys to new positions is this with the tables of the angle differences (src/reuse/rerotate.ts).
 */
export function ropeRows(table: usize, pageTokens: i32, first: i32, n: i32, d: i32, cos: usize, sin: usize): void {
  const half = d >> 1
  for (let r = 0; r < n; r++) {
    const off = <usize>(r * half) << 2
    rotateRow(rowAt(table, pageTokens, d, first + r), half, cos + off, sin + off)
  }
}
