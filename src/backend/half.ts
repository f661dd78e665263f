/**
 * IEEE 754 binary16 ("float16", llama.cpp's f16, PyTorch's torch.float16) in plain TypeScript, written
 * from the format's definition rather than bit tricks: the independent twin of the compute core's
 * conversions (assembly/kernels/simd.ts floatToHalf and widenHalf4), and the converter for the KV store's
 * single-row writes (overwrite, merges). Node 20 has neither Math.f16round nor Float16Array.
 *
 * Float16 KV in kvkit: a float32 value is rounded to the nearest half, ties to even, as PyTorch's
 * `.half()`; what would round to +-inf (magnitudes from 65520 up) saturates to +-65504 instead, so every
 * stored half is finite (an inf key would turn every score of its token into inf or NaN). NaN has no
 * place in a float16 page: the store refuses it (`HALF_NAN` is what the conversion returns for it).
 */

/** bits of the largest finite half, 65504 */
export const HALF_MAX_BITS = 0x7bff
/** bits of the quiet NaN the conversion gives for NaN (sign aside) */
export const HALF_NAN_BITS = 0x7e00

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

/** A half's bits (0..65535) as the number they encode: (-1)^s x 2^(e-15) x 1.m, subnormals 2^-14 x 0.m. */
export function halfToFloat(bits: number): number {
  const s = bits & 0x8000 ? -1 : 1
  const e = (bits >> 10) & 0x1f
  const m = bits & 0x3ff
  if (e === 0) return s * m * 2 ** -24
  if (e === 31) return m ? NaN : s * Infinity
  return s * (1024 + m) * 2 ** (e - 25)
}

/**
 * The half nearest Math.fround(x), ties to even, saturating at +-65504 (see above); -0 keeps its sign,
 * as does NaN (HALF_NAN_BITS with the sign bit). Returns the 16 bits.
 */
export function floatToHalf(x: number): number {
  const f = Math.fround(x)
  f32[0] = f
  const sign = (u32[0] >>> 16) & 0x8000
  if (Number.isNaN(f)) return sign | HALF_NAN_BITS
  const a = Math.abs(f)
  if (a >= 65520) return sign | HALF_MAX_BITS
  // exponent field e: a in [2^(e-15), 2^(e-14)) for normals (e >= 1); quantum 2^(e-25), 2^-24 below 2^-14
  let e = 0
  if (a >= 2 ** -14) {
    e = 1
    while (a >= 2 ** (e - 14)) e++
  }
  const quantum = e === 0 ? 2 ** -24 : 2 ** (e - 25)
  const k = a / quantum // exact: a power-of-two scaling
  let r = Math.floor(k)
  const frac = k - r
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r++
  // a subnormal that rounds up to 1024 quanta is the smallest normal, which 1024 also encodes
  if (e === 0) return sign | r
  if (r === 2048) {
    e++
    r = 1024
  }
  return sign | (e << 10) | (r - 1024)
}
