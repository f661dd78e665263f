import { hsum, madd, widenHalf4 } from './simd'
import { signHeads } from './packed-sign'

// Fused kernels over packed KV pages (int8/4/2/1 codes with float16 scale and min per group of 32;
// layout: src/cache/formats.ts PackedLayout). Nothing is widened to a float32 copy of the keys or values:
// codes go from bytes to float lanes in registers and meet the query there. A key group's scale folds
// into the query (q'_c = q_c * s_c) and its min into one bias per head (sum_c q_c * min_c), so a score
// is q' . codes + bias (KIVI, Liu et al. 2024, section 3.3: the fused dequantize-matmul). Attention over
// packed pages (the values' half): packed-attend.ts; VidKV's int2+sign keys in any group: packed-sign.ts.
// Key groups of 64 and 128 tokens (KIVI's group_size, ABI 1.15): scorePackedKeysGroupStrided.

/** tokens of a 32-token key group: the kernels' tile, and the only group of the ABI < 1.15 exports */
export const GROUP: i32 = 32
// bytes of a 32-token int2 chunk (the int2 channels of int2+sign keys)
const HI_CHUNK: i32 = 8

/** the page holding key group g (table: int32 page pointers, groupsPerPage groups a page) */
// @ts-ignore: decorator
@inline export function groupPage(table: usize, g: i32, groupsPerPage: i32): usize {
  return <usize>load<u32>(table + (<usize>(g / groupsPerPage) << 2))
}

/** float16 bits -> float32 */
// @ts-ignore: decorator
@inline export function halfToF32(h: u32): f32 {
  const sign = (h & 0x8000) << 16
  const exp = (h >> 10) & 0x1f
  const frac = h & 0x3ff
  if (exp == 0) {
    const v = <f32>frac * 5.9604644775390625e-8
    return sign ? -v : v
  }
  if (exp == 31) return reinterpret<f32>(sign | 0x7f800000 | (frac << 13))
  return reinterpret<f32>(sign | ((exp + 112) << 23) | (frac << 13))
}

/**
 * 16 consecutive codes (elements e0 .. e0 + 15, e0 = 0 or 16) of a 32-element planar chunk, as u8 lanes.
 * The shifts are 16-bit (the mask after each drops the bits shifted in from the next byte): V8 lowers
 * i8x16.shr_u to a 16-bit shift plus a byte mask it builds each time (five x64 instructions by a
 * constant, more by a count known only at run time, as int2's and int1's e0 >> 2).
 */
// @ts-ignore: decorator
@inline export function codes16(p: usize, bits: i32, e0: i32): v128 {
  if (bits == 8) return v128.load(p + <usize>e0)
  if (bits == 4) {
    const v = v128.load(p)
    return v128.and(e0 == 0 ? v : i16x8.shr_u(v, 4), i8x16.splat(15))
  }
  if (bits == 2) {
    // 8 bytes; element e in byte e % 8, slot e / 8
    const v = v128.load64_zero(p)
    const s = e0 >> 2
    const a = v128.and(i16x8.shr_u(v, s), i8x16.splat(3))
    const b = v128.and(i16x8.shr_u(v, s + 2), i8x16.splat(3))
    return i8x16.shuffle(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23)
  }
  // 1 bit: 4 bytes; element e in byte e % 4, bit e / 4
  const v = v128.load32_zero(p)
  const r = i16x8.shr_u(i8x16.swizzle(v, i8x16(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3)), e0 >> 2)
  return i8x16.min_u(v128.and(r, i8x16(1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 8, 8, 8, 8)), i8x16.splat(1))
}

// u8 lanes -> four float lanes each (codes are small: the signed convert is exact and one instruction on x86)
// @ts-ignore: decorator
@inline export function f0(c: v128): v128 { return f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(c))) }
// @ts-ignore: decorator
@inline export function f1(c: v128): v128 { return f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(i16x8.extend_low_i8x16_u(c))) }
// @ts-ignore: decorator
@inline export function f2(c: v128): v128 { return f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(i16x8.extend_high_i8x16_u(c))) }
// @ts-ignore: decorator
@inline export function f3(c: v128): v128 { return f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(i16x8.extend_high_i8x16_u(c))) }

/**
 * Scores of 16 tokens (half `e0` of token group at `codes`) for H <= 3 heads whose folded queries sit at
 * qs (rows of d floats) with biases at bias: out[h * outStride + e0 + j] for the `valid` first tokens.
 */
// @ts-ignore: decorator
@inline function scoreHalf(codes: usize, chunk: i32, bits: i32, hi: i32, e0: i32, d: i32, H: i32, qs: usize, bias: usize, out: usize, outStride: usize, valid: i32): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0)
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0)
  let c0 = f32x4.splat(0), c1 = f32x4.splat(0), c2 = f32x4.splat(0), c3 = f32x4.splat(0)
  const qStride = <usize>d << 2
  // int2+sign keys: the first hi channels are int2 chunks of 8 bytes, the rest `bits`-bit chunks after them
  const rest = codes + <usize>(hi * HI_CHUNK) - <usize>(hi * chunk)
  for (let c = 0; c < d; c++) {
    const k = c < hi ? codes16(codes + <usize>(c * HI_CHUNK), 2, e0) : codes16(rest + <usize>(c * chunk), bits, e0)
    const k0 = f0(k), k1 = f1(k), k2 = f2(k), k3 = f3(k)
    const qa = v128.load32_splat(qs + (<usize>c << 2))
    a0 = madd(qa, k0, a0); a1 = madd(qa, k1, a1); a2 = madd(qa, k2, a2); a3 = madd(qa, k3, a3)
    if (H > 1) {
      const qb = v128.load32_splat(qs + qStride + (<usize>c << 2))
      b0 = madd(qb, k0, b0); b1 = madd(qb, k1, b1); b2 = madd(qb, k2, b2); b3 = madd(qb, k3, b3)
    }
    if (H > 2) {
      const qc = v128.load32_splat(qs + 2 * qStride + (<usize>c << 2))
      c0 = madd(qc, k0, c0); c1 = madd(qc, k1, c1); c2 = madd(qc, k2, c2); c3 = madd(qc, k3, c3)
    }
  }
  storeHalf(out + (<usize>e0 << 2), a0, a1, a2, a3, v128.load32_splat(bias), valid)
  if (H > 1) storeHalf(out + outStride + (<usize>e0 << 2), b0, b1, b2, b3, v128.load32_splat(bias + 4), valid)
  if (H > 2) storeHalf(out + 2 * outStride + (<usize>e0 << 2), c0, c1, c2, c3, v128.load32_splat(bias + 8), valid)
}

// @ts-ignore: decorator
@inline export function storeHalf(out: usize, a0: v128, a1: v128, a2: v128, a3: v128, bias: v128, valid: i32): void {
  a0 = f32x4.add(a0, bias); a1 = f32x4.add(a1, bias); a2 = f32x4.add(a2, bias); a3 = f32x4.add(a3, bias)
  if (valid >= 16) {
    v128.store(out, a0); v128.store(out, a1, 16); v128.store(out, a2, 32); v128.store(out, a3, 48)
    return
  }
  for (let j = 0; j < valid; j++) {
    const v = j < 4 ? a0 : j < 8 ? a1 : j < 12 ? a2 : a3
    store<f32>(out + (<usize>j << 2), lane(v, j & 3))
  }
}

// @ts-ignore: decorator
@inline export function lane(v: v128, j: i32): f32 {
  if (j == 0) return f32x4.extract_lane(v, 0)
  if (j == 1) return f32x4.extract_lane(v, 1)
  if (j == 2) return f32x4.extract_lane(v, 2)
  return f32x4.extract_lane(v, 3)
}

/**
 * A key group's fold (KIVI's fused dequantize-matmul): qs[h][c] = scale * s_c * q[h][c] and
 * bias[h] = scale * sum_c min_c * q[h][c] for the group's (scale, min) float16 pairs at meta.
 */
// @ts-ignore: decorator
@inline export function foldGroup(q: usize, qHeads: i32, d: i32, meta: usize, scale: f32, qs: usize, bias: usize): void {
  const vscale = f32x4.splat(scale)
  // fold the group's scales into the queries and its mins into one bias per head (each float16
  // decoded once per channel, whatever the group size)
  memory.fill(bias, 0, <usize>qHeads << 2)
  // four channels at a time: their (scale, min) halves widened in one go (the fold was a third of the
  // kernel's time as scalar code at 3 heads x 64 channels)
  let c0 = 0
  for (; c0 + 4 <= d; c0 += 4) {
    const m8 = v128.load(meta + (<usize>c0 << 2))
    const a = widenHalf4(i32x4.extend_low_i16x8_s(m8))
    const b = widenHalf4(i32x4.extend_high_i16x8_s(m8))
    const sc = f32x4.mul(vscale, v128.shuffle<f32>(a, b, 0, 2, 4, 6))
    const mn = f32x4.mul(vscale, v128.shuffle<f32>(a, b, 1, 3, 5, 7))
    for (let h = 0; h < qHeads; h++) {
      const off = <usize>(h * d + c0) << 2
      const x = v128.load(q + off)
      v128.store(qs + off, f32x4.mul(x, sc))
      const bh = bias + (<usize>h << 2)
      store<f32>(bh, load<f32>(bh) + hsum(f32x4.mul(x, mn)))
    }
  }
  for (let c = c0; c < d; c++) {
    const m = meta + (<usize>c << 2)
    const sc = scale * halfToF32(load<u16>(m))
    const mn = scale * halfToF32(load<u16>(m, 2))
    for (let h = 0; h < qHeads; h++) {
      const x = load<f32>(q + (<usize>(h * d + c) << 2))
      store<f32>(qs + (<usize>(h * d + c) << 2), x * sc)
      const b = bias + (<usize>h << 2)
      store<f32>(b, load<f32>(b) + x * mn)
    }
  }
}

/**
 * out[h*n + i] = scale * (q_h . k_i) for qHeads query heads over n packed keys of d channels
 * (int `bits` = 8, 4, 2 or 1; pages of pageTokens rows, a multiple of 32; int2+sign keys: the first `hi`
 * channels int2, the rest int1, else hi = 0). Equal to dequantizing the
 * keys (k = s * code + min) and scoring in float32, within float32 rounding.
 * scratch: qHeads * (d + 1) floats (the group's folded queries and biases).
 */
export function scorePackedKeys(q: usize, qHeads: i32, d: i32, table: usize, pageTokens: i32, n: i32, bits: i32, scale: f32, out: usize, scratch: usize): void {
  scorePackedKeysMixed(q, qHeads, d, table, pageTokens, n, bits, 0, scale, out, scratch)
}

/** scorePackedKeys over keys whose first `hi` channels are int2 and the rest `bits`-bit (int2+sign: bits 1; ABI 1.5) */
export function scorePackedKeysMixed(q: usize, qHeads: i32, d: i32, table: usize, pageTokens: i32, n: i32, bits: i32, hi: i32, scale: f32, out: usize, scratch: usize): void {
  scorePackedKeysMixedStrided(q, qHeads, d, table, pageTokens, n, bits, hi, scale, out, n, scratch)
}

/**
 * scorePackedKeysMixed with head h's scores at out + h * outStride floats (ABI 1.11): a thread scoring a
 * range of the keys writes its part of each head's row in place.
 */
export function scorePackedKeysMixedStrided(q: usize, qHeads: i32, d: i32, table: usize, pageTokens: i32, n: i32, bits: i32, hi: i32, scale: f32, out: usize, outRow: i32, scratch: usize): void {
  const chunk = bits * 4
  const lineBytes = hi * HI_CHUNK + (d - hi) * chunk
  const groupsPerPage = pageTokens / GROUP
  const metaOffset = <usize>(groupsPerPage * lineBytes)
  const qs = scratch
  const bias = scratch + (<usize>(qHeads * d) << 2)
  const outStride = <usize>outRow << 2
  const groups = (n + GROUP - 1) / GROUP
  for (let g = 0; g < groups; g++) {
    const page = groupPage(table, g, groupsPerPage)
    const tg = g % groupsPerPage
    const codes = page + <usize>(tg * lineBytes)
    const meta = page + metaOffset + (<usize>(tg * d) << 2)
    foldGroup(q, qHeads, d, meta, scale, qs, bias)
    const first = g * GROUP
    for (let h = 0; h < qHeads; ) {
      const H = qHeads - h == 3 ? 3 : qHeads - h >= 2 ? 2 : 1
      const o = out + <usize>h * outStride + (<usize>first << 2)
      const qsh = qs + (<usize>(h * d) << 2)
      const bh = bias + (<usize>h << 2)
      for (let e0 = 0; e0 < GROUP; e0 += 16) {
        const valid = min(16, n - first - e0)
        if (valid <= 0) break
        if (bits == 4) {
          if (H == 3) scoreHalf(codes, chunk, 4, hi, e0, d, 3, qsh, bh, o, outStride, valid)
          else if (H == 2) scoreHalf(codes, chunk, 4, hi, e0, d, 2, qsh, bh, o, outStride, valid)
          else scoreHalf(codes, chunk, 4, hi, e0, d, 1, qsh, bh, o, outStride, valid)
        } else if (bits == 2) {
          if (H == 3) scoreHalf(codes, chunk, 2, hi, e0, d, 3, qsh, bh, o, outStride, valid)
          else if (H == 2) scoreHalf(codes, chunk, 2, hi, e0, d, 2, qsh, bh, o, outStride, valid)
          else scoreHalf(codes, chunk, 2, hi, e0, d, 1, qsh, bh, o, outStride, valid)
        } else if (bits == 8) {
          if (H == 3) scoreHalf(codes, chunk, 8, hi, e0, d, 3, qsh, bh, o, outStride, valid)
          else if (H == 2) scoreHalf(codes, chunk, 8, hi, e0, d, 2, qsh, bh, o, outStride, valid)
          else scoreHalf(codes, chunk, 8, hi, e0, d, 1, qsh, bh, o, outStride, valid)
        } else {
          if (H == 3) scoreHalf(codes, chunk, 1, hi, e0, d, 3, qsh, bh, o, outStride, valid)
          else if (H == 2) scoreHalf(codes, chunk, 1, hi, e0, d, 2, qsh, bh, o, outStride, valid)
          else scoreHalf(codes, chunk, 1, hi, e0, d, 1, qsh, bh, o, outStride, valid)
        }
      }
      h += H
    }
  }
}

/**
 * scorePackedKeysMixedStrided over keys of `bits` (8, 4, 2, 1; hi = 0) in token groups of `group` = 32,
 * 64 or 128 (pageTokens a multiple of it; layout src/cache/formats.ts PackedLayout: a channel's group is
 * one planar chunk of group * bits / 8 bytes). Each group's scales and mins fold into the query once for
 * all its tokens. Equal to dequantizing the keys and scoring in float32, within float32 rounding; group
 * 32 runs scorePackedKeysMixedStrided itself. scratch: qHeads * (d + 1) floats. ABI 1.15.
 */
export function scorePackedKeysGroupStrided(q: usize, qHeads: i32, d: i32, table: usize, pageTokens: i32, n: i32, bits: i32, group: i32, scale: f32, out: usize, outRow: i32, scratch: usize): void {
  if (group == GROUP) return scorePackedKeysMixedStrided(q, qHeads, d, table, pageTokens, n, bits, 0, scale, out, outRow, scratch)
  const chunk = (group * bits) >> 3
  const lineBytes = d * chunk
  const groupsPerPage = pageTokens / group
  const metaOffset = <usize>(groupsPerPage * lineBytes)
  const qs = scratch
  const bias = scratch + (<usize>(qHeads * d) << 2)
  const outStride = <usize>outRow << 2
  const groups = (n + group - 1) / group
  for (let g = 0; g < groups; g++) {
    const page = groupPage(table, g, groupsPerPage)
    const tg = g % groupsPerPage
    const codes = page + <usize>(tg * lineBytes)
    foldGroup(q, qHeads, d, page + metaOffset + (<usize>(tg * d) << 2), scale, qs, bias)
    const first = g * group
    for (let h = 0; h < qHeads; ) {
      const H = qHeads - h == 3 ? 3 : qHeads - h >= 2 ? 2 : 1
      const o = out + <usize>h * outStride + (<usize>first << 2)
      const qsh = qs + (<usize>(h * d) << 2)
      const bh = bias + (<usize>h << 2)
      for (let e0 = 0; e0 < group; e0 += 16) {
        const valid = min(16, n - first - e0)
        if (valid <= 0) break
        // the sign kernel's 16-token step with no int2 channels (hi 0), one body per code width
        // (planar16's masks constant there)
        if (bits == 4) signHeads(codes, 0, 0, chunk, 4, e0, d, H, qsh, bh, o, outStride, valid)
        else if (bits == 2) signHeads(codes, 0, 0, chunk, 2, e0, d, H, qsh, bh, o, outStride, valid)
        else if (bits == 8) signHeads(codes, 0, 0, chunk, 8, e0, d, H, qsh, bh, o, outStride, valid)
        else signHeads(codes, 0, 0, chunk, 1, e0, d, H, qsh, bh, o, outStride, valid)
      }
      h += H
    }
  }
}
