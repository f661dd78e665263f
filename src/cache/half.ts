import { floatToHalf, halfToFloat } from '../backend/half.js'

/**
 * Directed float16 rounding for the packed pages' group metadata: a group's minimum rounded down and its
 * scale rounded up keep every value of the group inside [min, min + levels * scale], so the round-trip
 * error stays within half a step. (Nearest rounding and widening: src/backend/half.ts.)
 */

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

/** the largest |x| a packed group holds: its range (at most twice that) stays a finite float16 scale */
export const PACKABLE_MAX = 32752
