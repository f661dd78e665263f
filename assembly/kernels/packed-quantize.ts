import { floatToHalf, halfToFloat } from './simd'
import { halfDown, halfUp } from './half-directed'

// Quantizing float32 rows into packed KV pages (KIVI, Liu et al. 2024, section 3: keys per channel in
// groups of `group` tokens, values per token in groups of `vGroup` channels; VidKV, Tao et al. 2025,
// sections 3.2-3.3: 1-bit sign keys and ternary values). Layout: src/cache/formats.ts PackedLayout.
// The plain TypeScript twin is src/cache/packing.ts (quantizeGroup, quantizeSignGroup): these kernels
// write the same bytes, so every step that rounds is taken as the twin takes it: min and max in float32,
// the scale (max - min) / levels and each code (x - min) / scale in float64, JavaScript's Math.round
// (half up), float16 metadata by the directed roundings of half-directed.ts, mean |x| summed in float64
// in element order. Pages are written by OR (ternary: by adding digits), so the groups written must be
// zero first, as the twin asks.

// the kernels' code for ternary values (formats.ts kernelBits)
const TERNARY: i32 = 0

/** Math.round of a float64 v >= 0: floor, plus one from a fraction of one half up */
// @ts-ignore: decorator
@inline function roundHalfUp(v: f64): f64 {
  const r = Math.floor(v)
  return v - r >= 0.5 ? r + 1 : r
}

/**
 * One asymmetric min-max group (quantizeGroup's integer formats): `count` (>= 1) floats at x, `stride`
 * bytes apart, as `bits`-bit codes in the planar chunk of B bytes at `codes` (element e in byte e % B,
 * bits [bits * (e / B), + bits)), and float16 (scale, min) at meta.
 */
// @ts-ignore: decorator
@inline function intGroup(x: usize, stride: usize, count: i32, bits: i32, B: i32, codes: usize, meta: usize): void {
  let mn = load<f32>(x)
  let mx = mn
  for (let e = 1; e < count; e++) {
    const v = load<f32>(x + <usize>e * stride)
    mn = min(mn, v)
    mx = max(mx, v)
  }
  const L = (1 << bits) - 1
  const minH = halfDown(mn)
  const lo = <f64>halfToFloat(minH)
  const scaleH = halfUp((<f64>mx - lo) / <f64>L)
  const scale = <f64>halfToFloat(scaleH)
  store<u16>(meta, scaleH)
  store<u16>(meta, minH, 2)
  // a constant group (scale 0) keeps code 0 everywhere: the zeroed chunk already holds it
  if (!(scale > 0)) return
  const top = <f64>L
  for (let e = 0; e < count; e++) {
    const code = <i32>min(top, max(0, roundHalfUp((<f64>load<f32>(x + <usize>e * stride) - lo) / scale)))
    const p = codes + <usize>(e % B)
    store<u8>(p, <i32>load<u8>(p) | (code << (bits * (e / B))))
  }
}

/** mean |x| over a group in float64, summed in element order (the twins' sum), as float16 bits */
// @ts-ignore: decorator
@inline function meanAbsHalf(x: usize, stride: usize, count: i32): u16 {
  let sum: f64 = 0
  for (let e = 0; e < count; e++) sum += Math.abs(<f64>load<f32>(x + <usize>e * stride))
  return floatToHalf(<f32>(count ? sum / <f64>count : 0))
}

/**
 * One ternary group (quantizeGroup's ternary, VidKV section 3.3 after BitNet b1.58's absmean): s = mean
 * |x| as float16 at meta, t = sign(x) where |x| > s / 2 else 0, stored as base-3 digits t + 1 (digit
 * e / B of byte e % B, B = ceil(group / 5)); elements count .. group - 1 get digit 1 (t = 0).
 */
// @ts-ignore: decorator
@inline function ternaryGroup(x: usize, stride: usize, count: i32, group: i32, B: i32, codes: usize, meta: usize): void {
  const sH = meanAbsHalf(x, stride, count)
  store<u16>(meta, sH)
  const half = <f64>halfToFloat(sH) / 2
  let pow = 1
  for (let e = 0; e < group; e++) {
    if (e > 0 && e % B == 0) pow *= 3
    let digit = 1
    if (e < count) {
      const v = <f64>load<f32>(x + <usize>e * stride)
      if (Math.abs(v) > half) digit = v > 0 ? 2 : 0
    }
    const p = codes + <usize>(e % B)
    store<u8>(p, <i32>load<u8>(p) + digit * pow)
  }
}

/**
 * One sign group (quantizeSignGroup, VidKV section 3.2): s = mean |x| as float16 at meta, bit e / B of
 * byte e % B set where x >= 0 (-0 included, as the twin's comparison has it).
 */
// @ts-ignore: decorator
@inline function signGroup(x: usize, stride: usize, count: i32, B: i32, codes: usize, meta: usize): void {
  store<u16>(meta, meanAbsHalf(x, stride, count))
  for (let e = 0; e < count; e++) {
    if (load<f32>(x + <usize>e * stride) >= 0) {
      const p = codes + <usize>(e % B)
      store<u8>(p, <i32>load<u8>(p) | (1 << (e / B)))
    }
  }
}

/**
 * n key rows x [n][d] (float32) into slots row0 .. row0 + n of a paged key stream (int32 page pointers
 * at table, pageTokens slots a page, a multiple of group; row0 a multiple of group): each channel's
 * token group as one group, the last one partial when n is not a multiple of group. sign false: every
 * channel `bits`-bit (8, 4, 2, 1) with (scale, min); sign true (int2+sign): the first hi channels int2
 * with (scale, min), the rest 1-bit signs with a scale alone.
 */
function keyPack(x: usize, n: i32, d: i32, table: usize, pageTokens: i32, row0: i32, bits: i32, hi: i32, group: i32, sign: bool): void {
  const chunk = (group * (sign ? 1 : bits) + 7) >> 3
  const hiChunk = (group * 2 + 7) >> 3
  const lineBytes = hi * hiChunk + (d - hi) * chunk
  const lineMeta = sign ? hi * 4 + (d - hi) * 2 : d * 4
  const metaOffset = <usize>(((pageTokens + group - 1) / group) * lineBytes)
  const stride = <usize>d << 2
  for (let t = 0; t < n; t += group) {
    const row = row0 + t
    const page = <usize>load<u32>(table + (<usize>(row / pageTokens) << 2))
    const tg = (row % pageTokens) / group
    const line = page + <usize>(tg * lineBytes)
    const meta = page + metaOffset + <usize>(tg * lineMeta)
    const count = min(group, n - t)
    const xt = x + <usize>t * stride
    for (let c = 0; c < d; c++) {
      const xc = xt + (<usize>c << 2)
      if (!sign) intGroup(xc, stride, count, bits, chunk, line + <usize>(c * chunk), meta + (<usize>c << 2))
      else if (c < hi) intGroup(xc, stride, count, 2, hiChunk, line + <usize>(c * hiChunk), meta + (<usize>c << 2))
      else signGroup(xc, stride, count, chunk, line + <usize>(hi * hiChunk + (c - hi) * chunk), meta + <usize>(hi * 4 + (c - hi) * 2))
    }
  }
}

/**
 * KIVI's keys: n rows x [n][d] (float32) packed as `bits`-bit codes (8, 4, 2, 1) per channel in token
 * groups of `group` into slots row0 .. row0 + n of a paged key stream (table: int32 page pointers,
 * pageTokens slots a page, a multiple of group; row0 a multiple of group; the groups written zeroed).
 * Bytes equal src/cache/packing.ts packKeyGroup's.
 */
export function packKeys(x: usize, n: i32, d: i32, table: usize, pageTokens: i32, row0: i32, bits: i32, group: i32): void {
  keyPack(x, n, d, table, pageTokens, row0, bits, 0, group, false)
}

/** packKeys for VidKV's int2+sign keys: the first hi channels int2, the others 1-bit signs with a scale alone */
export function packSignKeys(x: usize, n: i32, d: i32, table: usize, pageTokens: i32, row0: i32, hi: i32, group: i32): void {
  keyPack(x, n, d, table, pageTokens, row0, 1, hi, group, true)
}

/**
 * KIVI's values: n rows x [n][vd] (float32) packed per row in channel groups of vGroup (the last one
 * partial when vGroup does not divide vd) as `bits`-bit codes (8, 4, 2, 1) with (scale, min), or ternary
 * (bits 0) with a scale alone, into slots row0 .. row0 + n of a paged value stream (table as packKeys;
 * the rows written zeroed). Bytes equal src/cache/packing.ts packValueRow's.
 */
export function packValues(x: usize, n: i32, vd: i32, table: usize, pageTokens: i32, row0: i32, bits: i32, vGroup: i32): void {
  const ternary = bits == TERNARY
  const chunk = ternary ? (vGroup + 4) / 5 : (vGroup * bits + 7) >> 3
  const perLine = (vd + vGroup - 1) / vGroup
  const metaBytes = ternary ? 2 : 4
  const metaOffset = <usize>(pageTokens * perLine * chunk)
  for (let t = 0; t < n; t++) {
    const row = row0 + t
    const page = <usize>load<u32>(table + (<usize>(row / pageTokens) << 2))
    const g0 = (row % pageTokens) * perLine
    const xt = x + (<usize>(t * vd) << 2)
    for (let cg = 0; cg < perLine; cg++) {
      const c0 = cg * vGroup
      const count = min(vGroup, vd - c0)
      const codes = page + <usize>((g0 + cg) * chunk)
      const meta = page + metaOffset + <usize>((g0 + cg) * metaBytes)
      if (ternary) ternaryGroup(xt + (<usize>c0 << 2), 4, count, vGroup, chunk, codes, meta)
      else intGroup(xt + (<usize>c0 << 2), 4, count, bits, chunk, codes, meta)
    }
  }
}
