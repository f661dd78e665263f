/**
 * IEEE 754 binary16 (float16) conversions for the packed pages' group metadata. Quantizers need directed
 * rounding: a group's minimum rounded down and its scale rounded up keep every value of the group inside
 * [min, min + levels * scale], so the round-trip error stays within half a step.
 */

const F32 = new Float32Array(1)
const U32 = new Uint32Array(F32.buffer)

/** float16 bits -> the float they hold (subnormals, infinities and NaN included) */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1
  const exp = (h >> 10) & 0x1f
  const frac = h & 0x3ff
  if (exp === 0) return sign * frac * 2 ** -24
  if (exp === 31) return frac ? NaN : sign * Infinity
  return sign * (1 + frac / 1024) * 2 ** (exp - 15)
}

/** float -> float16 bits, round to nearest even (overflow gives infinity) */
export function floatToHalf(x: number): number {
  F32[0] = x
  const u = U32[0]
  const sign = (u >>> 16) & 0x8000
  const exp = (u >>> 23) & 0xff
  let frac = u & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (frac ? 0x200 : 0)
  let e = exp - 127 + 15
  if (e >= 31) return sign | 0x7c00
  if (e <= 0) {
    // subnormal half: shift the implicit 1 in, round to nearest even
    if (e < -10) return sign
    frac |= 0x800000
    const shift = 14 - e
    let h = frac >>> shift
    const rest = frac & ((1 << shift) - 1)
    const half = 1 << (shift - 1)
    if (rest > half || (rest === half && h & 1)) h++
    return sign | h
  }
  let h = (e << 10) | (frac >>> 13)
  const rest = frac & 0x1fff
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++
  return sign | h
}

/** the next float16 (bits) towards +inf (dir 1) or -inf (dir -1) */
function stepHalf(h: number, dir: 1 | -1): number {
  if ((h & 0x7fff) === 0) return dir > 0 ? 0x0001 : 0x8001
  const negative = (h & 0x8000) !== 0
  return dir > 0 === !negative ? h + 1 : h - 1
}

/** float16 bits of the largest float16 <= x */
export function halfDown(x: number): number {
  const h = floatToHalf(x)
  return halfToFloat(h) > x ? stepHalf(h, -1) : h
}

/** float16 bits of the smallest float16 >= x */
export function halfUp(x: number): number {
  const h = floatToHalf(x)
  return halfToFloat(h) < x ? stepHalf(h, 1) : h
}

/** the largest finite float16 */
export const HALF_MAX = 65504
