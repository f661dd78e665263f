import { madd } from './simd'

// The compute core's one exp. exp of four floats at once (Cephes expf): n = round(x / ln2), r = x - n ln2 with ln2 split in two
// so r is exact, exp(r) by a degree-5 polynomial on [-ln2/2, ln2/2], then 2^n built straight into the
// exponent bits. About 1 ulp, like Mathf.exp, and several times faster because it is branch-free SIMD.
// Inputs below -87.3 (results below the smallest normal float) give 0, -inf included; inputs are
// clamped at 88 above (softmax and attention only ever pass x - max <= 0).

// 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits (no round/convert ops,
// which are multi-instruction sequences on x86 without AVX-512)
const ROUND = f32x4.splat(12582912.0)

// @ts-ignore: decorator
@inline export function expv(x: v128): v128 {
  const underflow = f32x4.lt(x, f32x4.splat(-87.33654))
  x = f32x4.max(f32x4.min(x, f32x4.splat(88.0)), f32x4.splat(-87.33654))
  const t = madd(x, f32x4.splat(1.44269504088896341), ROUND)
  const n = f32x4.sub(t, ROUND)
  let r = f32x4.sub(x, f32x4.mul(n, f32x4.splat(0.693359375)))
  r = f32x4.add(r, f32x4.mul(n, f32x4.splat(2.12194440e-4)))
  let p = f32x4.splat(1.9875691500e-4)
  p = madd(p, r, f32x4.splat(1.3981999507e-3))
  p = madd(p, r, f32x4.splat(8.3334519073e-3))
  p = madd(p, r, f32x4.splat(4.1665795894e-2))
  p = madd(p, r, f32x4.splat(1.6666665459e-1))
  p = madd(p, r, f32x4.splat(5.0000001201e-1))
  const e = f32x4.add(madd(p, f32x4.mul(r, r), r), f32x4.splat(1))
  // the low bits of t hold n (two's complement): shifted into the exponent field, plus the bias
  const scale = i32x4.add(i32x4.shl(t, 23), i32x4.splat(127 << 23))
  return v128.andnot(f32x4.mul(e, scale), underflow)
}

/** exp of one float through the same arithmetic as expv (scalar tails see exactly what SIMD lanes see). */
// @ts-ignore: decorator
@inline export function exp1(x: f32): f32 {
  return f32x4.extract_lane(expv(f32x4.splat(x)), 0)
}
