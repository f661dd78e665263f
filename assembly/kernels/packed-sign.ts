import { halfToF32, scoreHalf } from './packed'

// VidKV's int2+sign keys (Tao et al. 2025, section 3.2) in token groups of 32, 64 or 128 (layout:
// src/cache/formats.ts PackedLayout): a token group's chunks are the `hi` int2 channels, then the 1-bit
// sign channels; its metadata the hi (scale, min) pairs, then one scale s a sign channel, read as
// 2s * code - s (the released code keeps the sign groups' scale alone; a min would be 2 bytes of -s).
// The scales fold into the query and the mins into a bias per head, as in packed.ts.

// @ts-ignore: decorator
@inline function signHeads(codes: usize, hi: i32, hiChunk: i32, signChunk: i32, e0: i32, d: i32, H: i32, qs: usize, bias: usize, out: usize, outStride: usize, valid: i32): void {
  if (H == 3) scoreHalf(codes, hi, 2, hiChunk, 1, signChunk, e0, d, 3, qs, bias, out, outStride, valid)
  else if (H == 2) scoreHalf(codes, hi, 2, hiChunk, 1, signChunk, e0, d, 2, qs, bias, out, outStride, valid)
  else scoreHalf(codes, hi, 2, hiChunk, 1, signChunk, e0, d, 1, qs, bias, out, outStride, valid)
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
        if (group == 32) signHeads(codes, hi, 8, 4, e0, d, H, qsh, bh, oh, outStride, valid)
        else if (group == 64) signHeads(codes, hi, 16, 8, e0, d, H, qsh, bh, oh, outStride, valid)
        else signHeads(codes, hi, 32, 16, e0, d, H, qsh, bh, oh, outStride, valid)
      }
      h += H
    }
  }
}
