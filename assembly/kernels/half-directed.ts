import { floatToHalf, halfToFloat } from './simd'

// Directed float16 rounding for packed pages' group metadata (the twin of src/cache/half.ts): a group's
// minimum rounded down and its scale rounded up keep every value of the group inside
// [min, min + levels * scale], so a code's round-trip error stays within half a step. Built on the
// nearest-even conversion every float16 page uses (simd.ts floatToHalf), then one step where it went
// the wrong way, exactly as the TypeScript twin does, so both give the same bits.

/** the next float16 (bits) towards +inf (up) or -inf (!up); zero of either sign steps to +-2^-24 */
// @ts-ignore: decorator
@inline function stepHalf(h: u32, up: bool): u32 {
  if ((h & 0x7fff) == 0) return up ? 0x0001 : 0x8001
  const negative = (h & 0x8000) != 0
  return up != negative ? h + 1 : h - 1
}

/** float16 bits of the largest float16 <= x */
// @ts-ignore: decorator
@inline export function halfDown(x: f32): u16 {
  const h = <u32>floatToHalf(x)
  return <u16>(halfToFloat(<u16>h) > x ? stepHalf(h, false) : h)
}

/**
 * float16 bits of the smallest float16 >= x, x a float64 (the twin computes a scale in float64: the
 * nearest half is taken of x rounded to float32, then compared with x itself)
 */
// @ts-ignore: decorator
@inline export function halfUp(x: f64): u16 {
  const h = <u32>floatToHalf(<f32>x)
  return <u16>(<f64>halfToFloat(<u16>h) < x ? stepHalf(h, true) : h)
}
