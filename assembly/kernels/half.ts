import { floatToHalf, halfToFloat, widenHalf4 } from './simd'

// Conversion between float32 rows and float16 (IEEE binary16) rows: the KV store narrows on append and
// widens when a caller asks for float32 copies (readKeys, tier fetches into float32 buffers). The
// attention kernels never call these: they widen float16 rows in registers as they read them.

/**
 * dst[i] = the half nearest src[i], ties to even, saturating at +-65504 (simd.ts floatToHalf), for i < n.
 * src f32, dst u16. Returns how many src values were NaN (the caller refuses the rows when it is not 0).
 */
export function toFloat16(src: usize, dst: usize, n: i32): i32 {
  let nan = 0
  for (let i = 0; i < n; i++) {
    const x = load<f32>(src + (<usize>i << 2))
    if (x != x) nan++
    store<u16>(dst + (<usize>i << 1), floatToHalf(x))
  }
  return nan
}

/** dst[i] = src[i] widened exactly, for i < n. src u16, dst f32. */
export function fromFloat16(src: usize, dst: usize, n: i32): void {
  let i = 0
  for (; i + 4 <= n; i += 4) v128.store(dst + (<usize>i << 2), widenHalf4(v128.load16x4_s(src + (<usize>i << 1))))
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), halfToFloat(load<u16>(src + (<usize>i << 1))))
}
