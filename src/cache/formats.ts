import { CacheError } from './errors.js'

/**
 * Page formats of the KV store: how one page of `pageTokens` rows of one (layer, KV head) stream is laid
 * out in bytes. Every page of a segment has one format.
 *
 * - float32: rows of `width` floats.
 * - float16: rows of `width` IEEE half floats (16 bits), widened inside the kernels (src/backend/half.ts
 *   says how values are rounded into them).
 * - int8 / int4 / int2 / int1: asymmetric integer codes packed little-endian into bytes, with one
 *   (scale, zero point) pair of float16 per group, x = scale * (code - zero) (KIVI, Liu et al. 2024,
 *   section 3: keys quantized per channel in groups along tokens, values per token in groups along channels).
 * - ternary: codes in {-1, 0, +1}, five to a byte (3^5 = 243 <= 256), one float16 scale per group and no
 *   zero point (symmetric, as BitNet b1.58's absmean quantizer).
 *
 * The packed formats are defined here with their exact byte accounting; the kernels that attend to them
 * come with the quantization work (the store refuses to append to or attend over a format whose kernels
 * are not built: `attendable`).
 */
export type PageFormat = 'float32' | 'float16' | 'int8' | 'int4' | 'int2' | 'int1' | 'ternary'

/**
 * The element type of the KV rows a cache appends: `kvDtype`, named as Hugging Face's `torch_dtype`
 * values and llama.cpp's `--cache-type-k/-v` (`f32`, `f16`) name it. Either is a page format that
 * stores rows unscaled, one value per element.
 */
export type KVDtype = 'float32' | 'float16'
export const KV_DTYPES: readonly KVDtype[] = ['float32', 'float16']

/** bytes of one stored value of a float format (float32 4, float16 2) */
export function elementBytes(format: KVDtype): number {
  return format === 'float16' ? 2 : 4
}

/** Which stream a page holds: keys group along tokens per channel, values along channels per token. */
export type StreamRole = 'key' | 'value'

export interface FormatInfo {
  readonly name: PageFormat
  /** bits of one stored value, before group metadata (ternary: 8/5) */
  readonly bits: number
  /** whether groups carry a scale (and `zeroPoint` whether they carry a zero point too) */
  readonly scaled: boolean
  readonly zeroPoint: boolean
  /** whether the kernels of this build read the format */
  readonly attendable: boolean
}

export const PAGE_FORMATS: Readonly<Record<PageFormat, FormatInfo>> = {
  float32: { name: 'float32', bits: 32, scaled: false, zeroPoint: false, attendable: true },
  float16: { name: 'float16', bits: 16, scaled: false, zeroPoint: false, attendable: true },
  int8: { name: 'int8', bits: 8, scaled: true, zeroPoint: true, attendable: false },
  int4: { name: 'int4', bits: 4, scaled: true, zeroPoint: true, attendable: false },
  int2: { name: 'int2', bits: 2, scaled: true, zeroPoint: true, attendable: false },
  int1: { name: 'int1', bits: 1, scaled: true, zeroPoint: true, attendable: false },
  ternary: { name: 'ternary', bits: 8 / 5, scaled: true, zeroPoint: false, attendable: false },
}

/** Values per quantization group unless a segment says otherwise (KIVI's default group size). */
export const DEFAULT_GROUP = 32

export function formatInfo(format: PageFormat): FormatInfo {
  const info = PAGE_FORMATS[format]
  if (!info) throw new CacheError(`page format must be one of ${Object.keys(PAGE_FORMATS).join(', ')}, got ${JSON.stringify(format)}`)
  return info
}

/**
 * Bytes of one page: codes (packed to whole bytes) plus the group metadata (float16 scale, and float16
 * zero point where the format has one), rounded up to 16 bytes so pages stay SIMD-aligned.
 * Keys group `group` tokens of one channel; values group `group` channels of one token.
 */
export function pageBytes(format: PageFormat, role: StreamRole, pageTokens: number, width: number, group = DEFAULT_GROUP): number {
  const info = formatInfo(format)
  if (!(Number.isInteger(pageTokens) && pageTokens > 0)) throw new CacheError(`pageBytes: pageTokens must be a positive integer, got ${pageTokens}`)
  if (!(Number.isInteger(width) && width > 0)) throw new CacheError(`pageBytes: width must be a positive integer, got ${width}`)
  if (!(Number.isInteger(group) && group > 0)) throw new CacheError(`pageBytes: group must be a positive integer, got ${group}`)
  const values = pageTokens * width
  const codes = format === 'ternary' ? Math.ceil(values / 5) : Math.ceil((values * info.bits) / 8)
  let meta = 0
  if (info.scaled) {
    const groups = role === 'key' ? width * Math.ceil(pageTokens / group) : pageTokens * Math.ceil(width / group)
    meta = groups * 2 * (info.zeroPoint ? 2 : 1)
  }
  return Math.ceil((codes + meta) / 16) * 16
}
