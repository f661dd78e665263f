// Small SIMD helpers shared by the model kernels.

/** a*b + c: fused on the relaxed-SIMD build, mul+add otherwise (same source, two targets). */
// @ts-ignore: decorator
@inline export function fma(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c)
  return f32x4.add(f32x4.mul(a, b), c)
}

// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3)
}

// @ts-ignore: decorator
@inline export function hmax(v: v128): f32 {
  const a = f32x4.extract_lane(v, 0), b = f32x4.extract_lane(v, 1), c = f32x4.extract_lane(v, 2), d = f32x4.extract_lane(v, 3)
  const ab = a > b ? a : b
  const cd = c > d ? c : d
  return ab > cd ? ab : cd
}

/**
 * exp of four floats (Cephes expf: range reduction by ln 2, degree-5 polynomial; ~2 ulp). Inputs below
 * -87.3 give about 1e-38 rather than 0: callers that need exact zeros (masked scores) write them.
 */
// @ts-ignore: decorator
@inline export function exp4(x: v128): v128 {
  // pmin/pmax: one instruction each (min/max pay for NaN and -0 rules the clamp does not need)
  x = f32x4.pmin(f32x4.pmax(x, f32x4.splat(-87.3)), f32x4.splat(88.37))
  const fx = f32x4.floor(f32x4.add(f32x4.mul(x, f32x4.splat(1.44269504088896341)), f32x4.splat(0.5)))
  x = f32x4.sub(x, f32x4.mul(fx, f32x4.splat(0.693359375)))
  x = f32x4.sub(x, f32x4.mul(fx, f32x4.splat(-2.12194440e-4)))
  let y = f32x4.splat(1.9875691500e-4)
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(1.3981999507e-3))
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(8.3334519073e-3))
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(4.1665795894e-2))
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(1.6666665459e-1))
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(5.0000001201e-1))
  y = f32x4.add(f32x4.add(f32x4.mul(y, f32x4.mul(x, x)), x), f32x4.splat(1.0))
  const e = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(fx), i32x4.splat(127)), 23)
  return f32x4.mul(y, e)
}

// @ts-ignore: decorator
@inline export function exp1(x: f32): f32 {
  return f32x4.extract_lane(exp4(f32x4.splat(x)), 0)
}
