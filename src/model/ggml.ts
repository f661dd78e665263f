/**
 * GGML tensor types that kvkit widens to float32 at load: their block layout, and the dequantization of
 * a run of whole blocks. Layouts and the rounding of the quantizers are ggml's reference ones
 * (ggml/src/ggml-quants.c: dequantize_row_q8_0 / q4_0, quantize_row_q8_0_ref / q4_0_ref; the type ids
 * are `enum ggml_type` in ggml.h).
 */

/** `enum ggml_type` values kvkit reads; other types (K-quants, IQ, ...) are refused by name. */
export const GGML_TYPE = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8, BF16: 30 } as const
export type GgmlTypeName = keyof typeof GGML_TYPE

/** Elements per block and bytes per block of each loadable type. */
export const GGML_BLOCK: Record<number, { name: GgmlTypeName; elements: number; bytes: number }> = {
  [GGML_TYPE.F32]: { name: 'F32', elements: 1, bytes: 4 },
  [GGML_TYPE.F16]: { name: 'F16', elements: 1, bytes: 2 },
  [GGML_TYPE.BF16]: { name: 'BF16', elements: 1, bytes: 2 },
  // block_q8_0: ggml_half d; int8_t qs[32]
  [GGML_TYPE.Q8_0]: { name: 'Q8_0', elements: 32, bytes: 34 },
  // block_q4_0: ggml_half d; uint8_t qs[16] (low nibbles: elements 0..15, high nibbles: 16..31)
  [GGML_TYPE.Q4_0]: { name: 'Q4_0', elements: 32, bytes: 18 },
}

/** The names of ggml types kvkit does not load, for error messages (`enum ggml_type`). */
const OTHER_TYPES: Record<number, string> = {
  3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 9: 'Q8_1', 10: 'Q2_K', 11: 'Q3_K', 12: 'Q4_K', 13: 'Q5_K', 14: 'Q6_K', 15: 'Q8_K',
  16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S', 23: 'IQ4_XS',
  24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M', 34: 'TQ1_0', 35: 'TQ2_0', 39: 'MXFP4',
}

export function ggmlTypeName(type: number): string {
  return GGML_BLOCK[type]?.name ?? OTHER_TYPES[type] ?? `type ${type}`
}

let halfTable: Float32Array | undefined
/** float16 bits -> float32 for all 65536 patterns (subnormals, infinities and NaN included) */
export function f16Table(): Float32Array {
  if (halfTable) return halfTable
  const t = new Float32Array(65536)
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1
    const exp = (h >> 10) & 0x1f
    const frac = h & 0x3ff
    if (exp === 0) t[h] = sign * frac * 2 ** -24
    else if (exp === 31) t[h] = frac ? NaN : sign * Infinity
    else t[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15)
  }
  return (halfTable = t)
}

/**
 * Widens `n` elements of `type` from `src` (whole blocks, little-endian) into `out` from index `at`.
 * `src` holds exactly n / elements-per-block blocks.
 */
export function dequantize(type: number, src: Uint8Array, out: Float32Array, at: number, n: number): void {
  const view = new DataView(src.buffer, src.byteOffset, src.byteLength)
  const half = f16Table()
  switch (type) {
    case GGML_TYPE.F32:
      for (let i = 0; i < n; i++) out[at + i] = view.getFloat32(4 * i, true)
      return
    case GGML_TYPE.F16:
      for (let i = 0; i < n; i++) out[at + i] = half[view.getUint16(2 * i, true)]
      return
    case GGML_TYPE.BF16: {
      const bits = new Uint32Array(out.buffer, out.byteOffset, out.length)
      for (let i = 0; i < n; i++) bits[at + i] = view.getUint16(2 * i, true) << 16
      return
    }
    case GGML_TYPE.Q8_0:
      for (let b = 0, o = at; b < n / 32; b++, o += 32) {
        const base = 34 * b
        const d = half[view.getUint16(base, true)]
        for (let j = 0; j < 32; j++) out[o + j] = view.getInt8(base + 2 + j) * d
      }
      return
    case GGML_TYPE.Q4_0:
      for (let b = 0, o = at; b < n / 32; b++, o += 32) {
        const base = 18 * b
        const d = half[view.getUint16(base, true)]
        for (let j = 0; j < 16; j++) {
          const q = src[base + 2 + j]
          out[o + j] = ((q & 0x0f) - 8) * d
          out[o + j + 16] = ((q >> 4) - 8) * d
        }
      }
      return
    default:
      throw new RangeError(`dequantize: ggml ${ggmlTypeName(type)} is not loadable`)
  }
}

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)
/** float32 -> float16 bits, round to nearest even (what ggml's GGML_FP32_TO_FP16 and numpy give) */
export function toF16(x: number): number {
  f32[0] = x
  const b = u32[0]
  const sign = (b >>> 16) & 0x8000
  const exp = (b >>> 23) & 0xff
  let mant = b & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0)
  let e = exp - 127 + 15
  if (e >= 31) return sign | 0x7c00
  if (e <= 0) {
    if (e < -10) return sign
    mant |= 0x800000
    const shift = 14 - e
    const half = 1 << (shift - 1)
    let m = mant >>> shift
    const rest = mant & ((1 << shift) - 1)
    if (rest > half || (rest === half && m & 1)) m++
    return sign | m
  }
  let m = mant >>> 13
  const rest = mant & 0x1fff
  if (rest > 0x1000 || (rest === 0x1000 && m & 1)) {
    m++
    if (m === 0x400) {
      m = 0
      e++
      if (e >= 31) return sign | 0x7c00
    }
  }
  return sign | (e << 10) | m
}
