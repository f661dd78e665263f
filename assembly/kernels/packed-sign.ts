import { halfToF32, f0, f1, f2, f3, storeHalf } from './packed'
import { madd } from './simd'

// VidKV's int2+sign keys (Tao et al. 2025, section 3.2) in token groups of 32, 64 or 128 (layout:
// src/cache/formats.ts PackedLayout): a token group's chunks are the `hi` int2 channels, then the 1-bit
// sign channels; its metadata the hi (scale, min) pairs, then one scale s a sign channel, read as
// 2s * code - s (the released code keeps the sign groups' scale alone; a min would be 2 bytes of -s).
// The scales fold into the query and the mins into a bias per head, as in packed.ts.

/**
 * 16 consecutive codes (elements e0 .. e0 + 15, e0 a multiple of 16) of a planar chunk of `chunk` bytes
 * of `bits`-bit codes (element e in byte e % chunk, slot e / chunk), as u8 lanes. chunk: 4 (1 bit, 32
 * elements), 8, or a multiple of 16 (then the 16 elements are 16 bytes of one slot: one load). 16-bit
 * shifts, each masked after, as codes16 (packed.ts) and for the same reason.
 */
// @ts-ignore: decorator
@inline export function planar16(p: usize, bits: i32, chunk: i32, e0: i32): v128 {
  const ones: i32 = (1 << bits) - 1
  const mask = i8x16.splat(<i8>ones)
  if (chunk >= 16) return v128.and(i16x8.shr_u(v128.load(p + <usize>(e0 % chunk)), bits * (e0 / chunk)), mask)
  if (chunk == 8) {
    // 8 bytes, two slots: elements e0 .. e0 + 7 in slot e0 / 8, the next 8 in the slot after
    const v = v128.load64_zero(p)
    const s = bits * (e0 >> 3)
    const a = v128.and(i16x8.shr_u(v, s), mask)
    const b = v128.and(i16x8.shr_u(v, s + bits), mask)
    return i8x16.shuffle(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23)
  }
  // 1 bit in 4 bytes: element e in byte e % 4, bit e / 4
  const v = v128.load32_zero(p)
  const r = i16x8.shr_u(i8x16.swizzle(v, i8x16(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3)), e0 >> 2)
  return i8x16.min_u(v128.and(r, i8x16(1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 8, 8, 8, 8)), i8x16.splat(1))
}

/**
 * Scores of 16 tokens (e0 .. e0 + 15 of the token group at `codes`) for H <= 3 heads whose folded
 * queries sit at qs (rows of d floats) with biases at bias: out[h * outStride + e0 + j], `valid` tokens.
 * The first hi channels are int2 chunks of hiChunk bytes, the rest `bits`-bit chunks of `chunk` bytes
 * (int2+sign: 1-bit signs; KIVI's keys in groups of 64 or 128: hi 0, packed.ts).
 */
// @ts-ignore: decorator
@inline function signHalf(codes: usize, hi: i32, hiChunk: i32, chunk: i32, bits: i32, e0: i32, d: i32, H: i32, qs: usize, bias: usize, out: usize, outStride: usize, valid: i32): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0)
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0)
  let c0 = f32x4.splat(0), c1 = f32x4.splat(0), c2 = f32x4.splat(0), c3 = f32x4.splat(0)
  const qStride = <usize>d << 2
  let p = codes
  for (let c = 0; c < d; c++) {
    // the int2 channels' chunks, then the sign channels'
    const k = c < hi ? planar16(p, 2, hiChunk, e0) : planar16(p, bits, chunk, e0)
    p += <usize>(c < hi ? hiChunk : chunk)
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

/** signHalf for H heads (a constant after this branch) */
// @ts-ignore: decorator
@inline export function signHeads(codes: usize, hi: i32, hiChunk: i32, chunk: i32, bits: i32, e0: i32, d: i32, H: i32, qs: usize, bias: usize, out: usize, outStride: usize, valid: i32): void {
  if (H == 3) signHalf(codes, hi, hiChunk, chunk, bits, e0, d, 3, qs, bias, out, outStride, valid)
  else if (H == 2) signHalf(codes, hi, hiChunk, chunk, bits, e0, d, 2, qs, bias, out, outStride, valid)
  else signHalf(codes, hi, hiChunk, chunk, bits, e0, d, 1, qs, bias, out, outStride, valid)
}

/**
 * out[h*n + i] = scale * (q_h . k_i) for qHeads query heads over n int2+sign keys of d channels (the
 * first `hi` int2, the rest 1-bit signs) in token groups of `group` (32, 64 or 128; pageTokens a
 * multiple of it). Equal to dequantizing the keys and scoring in float32, within float32 rounding.
 * scratch: qHeads * (d + 1) floats (the group's folded queries and biases). ABI 1.6.
 */
export function scoreSignKeys(q: usize, qHeads: i32, d: i32, table: usize, pageTokens: i32, n: i32, hi: i32, group: i32, scale: f32, out: usize, scratch: usize): void {
  const hiChunk = group >> 2
  const signChunk = group >> 3
  const lineBytes = hi * hiChunk + (d - hi) * signChunk
  const lineMeta = hi * 4 + (d - hi) * 2
  const groupsPerPage = pageTokens / group
  const metaOffset = <usize>(groupsPerPage * lineBytes)
  const qs = scratch
  const bias = scratch + (<usize>(qHeads * d) << 2)
  const groups = (n + group - 1) / group
  const outStride = <usize>n << 2
  for (let g = 0; g < groups; g++) {
    const page = <usize>load<u32>(table + (<usize>(g / groupsPerPage) << 2))
    const tg = g % groupsPerPage
    const codes = page + <usize>(tg * lineBytes)
    const meta = page + metaOffset + <usize>(tg * lineMeta)
    memory.fill(bias, 0, <usize>qHeads << 2)
    for (let c = 0; c < d; c++) {
      let sc: f32, mn: f32
      if (c < hi) {
        sc = scale * halfToF32(load<u16>(meta + (<usize>c << 2)))
        mn = scale * halfToF32(load<u16>(meta + (<usize>c << 2), 2))
      } else {
        const s = scale * halfToF32(load<u16>(meta + <usize>(hi * 4 + (c - hi) * 2)))
        sc = s + s
        mn = -s
      }
      for (let h = 0; h < qHeads; h++) {
        const x = load<f32>(q + (<usize>(h * d + c) << 2))
        store<f32>(qs + (<usize>(h * d + c) << 2), x * sc)
        const b = bias + (<usize>h << 2)
        store<f32>(b, load<f32>(b) + x * mn)
      }
    }
    const first = g * group
    const o = out + (<usize>first << 2)
    for (let h = 0; h < qHeads; ) {
      // up to 3 heads share each widened block of codes (12 accumulators stay in registers)
      const H = qHeads - h == 3 ? 3 : qHeads - h >= 2 ? 2 : 1
      const qsh = qs + (<usize>(h * d) << 2)
      const bh = bias + (<usize>h << 2)
      const oh = o + <usize>h * outStride
      for (let e0 = 0; e0 < group; e0 += 16) {
        const valid = min(16, n - first - e0)
        if (valid <= 0) break
        // constant chunk sizes let planar16's branches fold away in each variant
        if (group == 32) signHeads(codes, hi, 8, 4, 1, e0, d, H, qsh, bh, oh, outStride, valid)
        else if (group == 64) signHeads(codes, hi, 16, 8, 1, e0, d, H, qsh, bh, oh, outStride, valid)
        else signHeads(codes, hi, 32, 16, 1, e0, d, H, qsh, bh, oh, outStride, valid)
      }
      h += H
    }
  }
}
