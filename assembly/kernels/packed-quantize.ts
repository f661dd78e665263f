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
// the largest |x| a packed group holds (src/cache/half.ts PACKABLE_MAX): its range stays a finite float16 scale
const PACKABLE_MAX: f32 = 32752

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
  const m = laneMeta(mn, mx, L, meta)
  const lo = f64x2.extract_lane(m, 0)
  const scale = f64x2.extract_lane(m, 1)
  // a constant group (scale 0) keeps code 0 everywhere: the zeroed chunk already holds it
  if (!(scale > 0)) return
  const top = <f64>L
  // byte b of the chunk gathers elements b, b + B, b + 2B ... (slot s at bits * s)
  for (let b = 0; b < B; b++) {
    let acc = 0
    let shift = 0
    for (let e = b; e < count; e += B) {
      acc |= <i32>min(top, max(0, roundHalfUp((<f64>load<f32>(x + <usize>e * stride) - lo) / scale))) << shift
      shift += bits
    }
    const p = codes + <usize>b
    store<u8>(p, <i32>load<u8>(p) | acc)
  }
}

/**
 * Codes of 4 floats (f32x4 x) for lanes whose (min, scale) are (lo01, sc01) for lanes 0-1 and (lo23,
 * sc23) for lanes 2-3, in float64 lanes as intGroup computes them: round half up of (x - min) / scale,
 * clamped to [0, top]; 0 where the lane's scale is 0 (live: all-ones where scale > 0). i32x4 codes.
 */
// @ts-ignore: decorator
@inline function codes4(x: v128, lo01: v128, lo23: v128, sc01: v128, sc23: v128, top: v128, live: v128): v128 {
  const a = f64x2.div(f64x2.sub(f64x2.promote_low_f32x4(x), lo01), sc01)
  const b = f64x2.div(f64x2.sub(f64x2.promote_low_f32x4(v128.shuffle<f32>(x, x, 2, 3, 2, 3)), lo23), sc23)
  // a whole number c in [0, 255] plus 2^52 leaves c in the low mantissa bits (exact): its low 32 bits
  // are the code (dead lanes, NaN, give garbage that `live` clears)
  const ca = f64x2.add(clampCode(a, top), f64x2.splat(4503599627370496.0))
  const cb = f64x2.add(clampCode(b, top), f64x2.splat(4503599627370496.0))
  return v128.and(v128.shuffle<i32>(ca, cb, 0, 2, 4, 6), live)
}

/**
 * Math.round (half up) of float64 lanes v >= 0, clamped to [0, top]. pmin/pmax (one instruction each,
 * where min/max order signed zeros and NaN) equal min/max here: v is never -0, and a NaN lane (a scale
 * of 0) becomes 0 and is cleared by the caller anyway.
 */
// @ts-ignore: decorator
@inline function clampCode(v: v128, top: v128): v128 {
  const r = f64x2.floor(v)
  const up = v128.and(f64x2.ge(f64x2.sub(v, r), f64x2.splat(0.5)), f64x2.splat(1))
  return f64x2.pmin(top, f64x2.pmax(f64x2.splat(0), f64x2.add(r, up)))
}

/** a lane's float16 (scale, min) from its min and max, stored at meta; returns (min, scale) as floats */
// @ts-ignore: decorator
@inline function laneMeta(mn: f32, mx: f32, L: i32, meta: usize): v128 {
  const minH = halfDown(mn)
  const lo = <f64>halfToFloat(minH)
  const scaleH = halfUp((<f64>mx - lo) / <f64>L)
  store<u16>(meta, scaleH)
  store<u16>(meta, minH, 2)
  return f64x2.replace_lane(f64x2.splat(lo), 1, <f64>halfToFloat(scaleH))
}

/**
 * intGroup over 4 key channels at once (lanes: channels c .. c + 3, whose floats are adjacent in a row):
 * `count` rows at x, stride bytes apart; the channels' chunks chunkStep bytes apart from `codes`, their
 * (scale, min) 4 bytes apart from meta. Each lane takes intGroup's steps, so the bytes are its bytes.
 */
// @ts-ignore: decorator
@inline function intGroup4(x: usize, stride: usize, count: i32, bits: i32, B: i32, codes: usize, chunkStep: usize, meta: usize): void {
  let mn = v128.load(x)
  let mx = mn
  for (let e = 1; e < count; e++) {
    const v = v128.load(x + <usize>e * stride)
    mn = f32x4.min(mn, v)
    mx = f32x4.max(mx, v)
  }
  const L = (1 << bits) - 1
  const m0 = laneMeta(f32x4.extract_lane(mn, 0), f32x4.extract_lane(mx, 0), L, meta)
  const m1 = laneMeta(f32x4.extract_lane(mn, 1), f32x4.extract_lane(mx, 1), L, meta + 4)
  const m2 = laneMeta(f32x4.extract_lane(mn, 2), f32x4.extract_lane(mx, 2), L, meta + 8)
  const m3 = laneMeta(f32x4.extract_lane(mn, 3), f32x4.extract_lane(mx, 3), L, meta + 12)
  const lo01 = v128.shuffle<f64>(m0, m1, 0, 2)
  const lo23 = v128.shuffle<f64>(m2, m3, 0, 2)
  const sc01 = v128.shuffle<f64>(m0, m1, 1, 3)
  const sc23 = v128.shuffle<f64>(m2, m3, 1, 3)
  const zero = f64x2.splat(0)
  const live = v128.shuffle<i32>(f64x2.gt(sc01, zero), f64x2.gt(sc23, zero), 0, 2, 4, 6)
  if (!v128.any_true(live)) return
  const top = f64x2.splat(<f64>L)
  // byte b of each chunk gathers elements b, b + B, b + 2B ... (slot s at bits * s)
  for (let b = 0; b < B; b++) {
    let acc = i32x4.splat(0)
    let shift = 0
    for (let e = b; e < count; e += B) {
      acc = v128.or(acc, i32x4.shl(codes4(v128.load(x + <usize>e * stride), lo01, lo23, sc01, sc23, top, live), shift))
      shift += bits
    }
    const p = codes + <usize>b
    store<u8>(p, <i32>load<u8>(p) | i32x4.extract_lane(acc, 0))
    store<u8>(p + chunkStep, <i32>load<u8>(p + chunkStep) | i32x4.extract_lane(acc, 1))
    store<u8>(p + 2 * chunkStep, <i32>load<u8>(p + 2 * chunkStep) | i32x4.extract_lane(acc, 2))
    store<u8>(p + 3 * chunkStep, <i32>load<u8>(p + 3 * chunkStep) | i32x4.extract_lane(acc, 3))
  }
}

/**
 * intGroup over one whole value group of contiguous floats (count = group, a multiple of 4, and B * 8 /
 * bits = group, so B is a multiple of 4 for groups of 32, 64, 128): 4 elements a step, 4 chunk bytes a
 * store. Same steps, so the same bytes.
 */
// @ts-ignore: decorator
@inline function intGroupRow(x: usize, count: i32, bits: i32, B: i32, codes: usize, meta: usize): void {
  let mn4 = v128.load(x)
  let mx4 = mn4
  for (let e = 4; e < count; e += 4) {
    const v = v128.load(x + (<usize>e << 2))
    mn4 = f32x4.min(mn4, v)
    mx4 = f32x4.max(mx4, v)
  }
  // min and max are order-free (float32 min/max, -0 below +0, as Math.min and Math.max)
  const mn = min(min(f32x4.extract_lane(mn4, 0), f32x4.extract_lane(mn4, 1)), min(f32x4.extract_lane(mn4, 2), f32x4.extract_lane(mn4, 3)))
  const mx = max(max(f32x4.extract_lane(mx4, 0), f32x4.extract_lane(mx4, 1)), max(f32x4.extract_lane(mx4, 2), f32x4.extract_lane(mx4, 3)))
  const L = (1 << bits) - 1
  const m = laneMeta(mn, mx, L, meta)
  const scale = f64x2.extract_lane(m, 1)
  if (!(scale > 0)) return
  const lo = f64x2.splat(f64x2.extract_lane(m, 0))
  const sc = f64x2.splat(scale)
  const top = f64x2.splat(<f64>L)
  const live = i32x4.splat(-1)
  for (let b = 0; b < B; b += 4) {
    let acc = i32x4.splat(0)
    let shift = 0
    for (let e = b; e < count; e += B) {
      acc = v128.or(acc, i32x4.shl(codes4(v128.load(x + (<usize>e << 2)), lo, lo, sc, sc, top, live), shift))
      shift += bits
    }
    // four codes bytes (each lane < 256) into one 32-bit store
    const bytes = i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_u(acc, acc), i16x8.splat(0))
    const p = codes + <usize>b
    store<u32>(p, load<u32>(p) | i32x4.extract_lane(bytes, 0))
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
  // byte b holds elements b, b + B, b + 2B ... as digits 3^0, 3^1, 3^2 ...
  for (let b = 0; b < B; b++) {
    let acc = 0
    let pow = 1
    for (let e = b; e < group; e += B) {
      let digit = 1
      if (e < count) {
        const v = <f64>load<f32>(x + <usize>e * stride)
        if (Math.abs(v) > half) digit = v > 0 ? 2 : 0
      }
      acc += digit * pow
      pow *= 3
    }
    const p = codes + <usize>b
    store<u8>(p, <i32>load<u8>(p) + acc)
  }
}

/**
 * One sign group (quantizeSignGroup, VidKV section 3.2): s = mean |x| as float16 at meta, bit e / B of
 * byte e % B set where x >= 0 (-0 included, as the twin's comparison has it).
 */
// @ts-ignore: decorator
@inline function signGroup(x: usize, stride: usize, count: i32, B: i32, codes: usize, meta: usize): void {
  store<u16>(meta, meanAbsHalf(x, stride, count))
  for (let b = 0; b < B; b++) {
    let acc = 0
    let bit = 1
    for (let e = b; e < count; e += B) {
      if (load<f32>(x + <usize>e * stride) >= 0) acc |= bit
      bit <<= 1
    }
    const p = codes + <usize>b
    store<u8>(p, <i32>load<u8>(p) | acc)
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
    // the integer channels (all of them, or int2+sign's first hi) four at a time, then one at a time
    const ints = sign ? hi : d
    const kb = sign ? 2 : bits
    const kChunk = sign ? hiChunk : chunk
    let c = 0
    for (; c + 4 <= ints; c += 4) intGroup4(xt + (<usize>c << 2), stride, count, kb, kChunk, line + <usize>(c * kChunk), <usize>kChunk, meta + (<usize>c << 2))
    for (; c < ints; c++) intGroup(xt + (<usize>c << 2), stride, count, kb, kChunk, line + <usize>(c * kChunk), meta + (<usize>c << 2))
    for (; c < d; c++) signGroup(xt + (<usize>c << 2), stride, count, chunk, line + <usize>(hi * hiChunk + (c - hi) * chunk), meta + <usize>(hi * 4 + (c - hi) * 2))
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
  // whole groups of whole chunk bytes go four elements a step (intGroupRow)
  const whole = !ternary && vGroup % 4 == 0 && chunk % 4 == 0 && chunk * 8 == vGroup * bits
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
      else if (whole && count == vGroup) intGroupRow(xt + (<usize>c0 << 2), count, bits, chunk, codes, meta)
      else intGroup(xt + (<usize>c0 << 2), 4, count, bits, chunk, codes, meta)
    }
  }
}

/**
 * The index of the first of x[0 .. n) (float32) that a packed group cannot hold: NaN, or |x| > 32752
 * (src/cache/packing.ts checkPackable, the twin); n when every value can be packed. The store runs it
 * on every row before any page is written.
 */
export function firstUnpackable(x: usize, n: i32): i32 {
  const lim = f32x4.splat(PACKABLE_MAX)
  let i = 0
  // four at a time until a vector holds one (NaN compares false, so it is caught too)
  for (; i + 4 <= n; i += 4) if (!i32x4.all_true(f32x4.le(f32x4.abs(v128.load(x + (<usize>i << 2))), lim))) break
  for (; i < n; i++) if (!(Mathf.abs(load<f32>(x + (<usize>i << 2))) <= PACKABLE_MAX)) return i
  return n
}
