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
 * - int2+sign (keys only; VidKV, Tao et al. 2025, section 3.2): the segment's first `hi` channels as int2
 *   with (scale, min), the others as 1-bit signs x = +-s with one float16 s = mean |x| a group and no
 *   min (the released code's 1-bit quantizer keeps only this scale), read back as 2s * code - s. The
 *   segment's `keyBasis` says which head channels the two parts hold (the sign part after an
 *   orthonormal real DFT: basis.ts). Its token groups may be 32, 64 or 128 tokens (`group`).
 *
 * The packed formats are defined here with their exact byte accounting; the kernels that attend to them
 * come with the quantization work (the store refuses to append to or attend over a format whose kernels
 * are not built: `attendable`).
 */
export type PageFormat = 'float32' | 'float16' | 'int8' | 'int4' | 'int2' | 'int1' | 'ternary' | 'int2+sign'

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
  // bits of the sign part; the segment's `hi` channels take 2 (with a zero point; the signs without)
  'int2+sign': { name: 'int2+sign', bits: 1, scaled: true, zeroPoint: true, attendable: false },
}

/**
 * The code the packed kernels take for a format's bits: 8, 4, 2, 1 for the integer formats (int2+sign:
 * 1, its int2 channels counted apart), 0 for ternary.
 */
export function kernelBits(format: PageFormat): number {
  return format === 'ternary' ? 0 : formatInfo(format).bits
}

/** Values per quantization group unless a segment says otherwise (KIVI's default group size). */
export const DEFAULT_GROUP = 32

/**
 * Token groups of packed keys the kernels read: KIVI's released group sizes (its paper ablates 32, 64
 * and 128; Hugging Face's QuantizedCacheConfig takes q_group_size), for KIVI's integer keys and VidKV's
 * int2+sign keys alike (VidKV's configs use 32). Values group along valueGroupFor(group, vd) channels.
 */
export const KEY_GROUPS: readonly number[] = [32, 64, 128]
/** KEY_GROUPS under its earlier name (the int2+sign kernels read them first) */
export const SIGN_GROUPS = KEY_GROUPS

/**
 * group itself when the packed kernels read key groups of it (KEY_GROUPS); else throws `Err` (CacheError
 * unless given) naming `what` and the value, e.g. "kivi: groupSize must be 32, 64 or 128, got 48".
 */
export function checkKeyGroup(group: unknown, what: string, Err: new (m: string) => Error = CacheError): number {
  if (typeof group !== 'number' || !KEY_GROUPS.includes(group)) throw new Err(`${what} must be ${KEY_GROUPS.slice(0, -1).join(', ')} or ${KEY_GROUPS.at(-1)}, got ${typeof group === 'string' ? JSON.stringify(group) : String(group)}`)
  return group
}

/**
 * Channels per value group of a segment whose keys group `group` tokens (Hugging Face's
 * QuantizedCacheConfig and KIVI's code take one `group_size` for both): the largest of 32, 64 and 128
 * that is at most min(group, vd), or 32 when vd < 32 (a row's last group may be partial). So a 64-channel
 * head with groups of 128 keeps one value group a row rather than a half-empty one.
 */
export function valueGroupFor(group: number, vd: number): number {
  let g = DEFAULT_GROUP
  for (const s of SIGN_GROUPS) if (s <= Math.min(group, vd)) g = s
  return g
}

export function formatInfo(format: PageFormat): FormatInfo {
  const info = PAGE_FORMATS[format]
  if (!info) throw new CacheError(`page format must be one of ${Object.keys(PAGE_FORMATS).join(', ')}, got ${JSON.stringify(format)}`)
  return info
}

/**
 * Where things sit in a packed page (KIVI's grouping, Liu et al. 2024, section 3.2). A chunk is the codes
 * of one group, ceil(group x bits / 8) bytes (ternary: ceil(group / 5)), laid out planar: element e of
 * the group sits in byte e % chunk, slot floor(e / chunk) of it (int: bits [slot*bits, slot*bits+bits);
 * ternary: base-3 digit slot), so one SIMD load and one shift give consecutive elements in lanes.
 * - keys: group `group` tokens of one channel; chunks ordered [token group][channel], then the metadata
 *   [token group][channel][scale, min] (ternary: [scale]). int2+sign: a token group's chunks are the `hi`
 *   int2 chunks, then the int1 chunks of the other channels; its metadata the `hi` (scale, min) pairs,
 *   then one scale per sign channel (lineMeta bytes a token group).
 * - values: group `group` channels of one token; chunks ordered [token][channel group], then the metadata
 *   [token][channel group][scale, min] (ternary: [scale]).
 * Metadata are float16; an int value reads back as scale * code + min, a ternary one as scale * t.
 */
export interface PackedLayout {
  readonly format: PageFormat
  readonly role: StreamRole
  readonly pageTokens: number
  readonly width: number
  readonly group: number
  /** bytes of one group's codes */
  readonly chunk: number
  /** groups per page (keys: token groups x width; values: pageTokens x channel groups) */
  readonly groups: number
  /** channel groups per value row (values), token groups per page (keys) */
  readonly perLine: number
  /** byte offset of the metadata (after the codes) */
  readonly metaOffset: number
  /** float16 metadata per group: 2 (scale, min) or 1 (scale) */
  readonly metaPerGroup: number
  /** keys of int2+sign: the leading channels held as int2 (chunks of 2 * group / 8 bytes); else 0 */
  readonly hi: number
  /** keys: bytes of one token group's codes (all channels) */
  readonly lineBytes: number
  /** keys: bytes of one token group's metadata (all channels) */
  readonly lineMeta: number
  readonly bytes: number
}

export function packedLayout(format: PageFormat, role: StreamRole, pageTokens: number, width: number, group = DEFAULT_GROUP, hi = 0): PackedLayout {
  const info = formatInfo(format)
  // every argument before `hi`, whose range is the width: anything but 'key' laid a page out as values
  if (role !== 'key' && role !== 'value') throw new CacheError(`pageBytes: role must be 'key' or 'value', got ${typeof role === 'string' ? JSON.stringify(role) : String(role)}`)
  if (format === 'int2+sign' && role !== 'key') throw new CacheError('pageBytes: int2+sign is a key format')
  if (!(Number.isInteger(pageTokens) && pageTokens > 0)) throw new CacheError(`pageBytes: pageTokens must be a positive integer, got ${pageTokens}`)
  if (!(Number.isInteger(width) && width > 0)) throw new CacheError(`pageBytes: width must be a positive integer, got ${width}`)
  if (!(Number.isInteger(group) && group > 0)) throw new CacheError(`pageBytes: group must be a positive integer, got ${group}`)
  if (!(Number.isInteger(hi) && hi >= 0 && hi <= width) || (hi && format !== 'int2+sign')) throw new CacheError(`pageBytes: hi must be an integer in [0, ${width}] and only with int2+sign keys, got ${hi} for ${format}`)
  if (!info.scaled) {
    const bytes = Math.ceil((pageTokens * width * info.bits) / 8 / 16) * 16
    return { format, role, pageTokens, width, group, chunk: 0, groups: 0, perLine: 0, metaOffset: bytes, metaPerGroup: 0, hi: 0, lineBytes: 0, lineMeta: 0, bytes }
  }
  const chunk = format === 'ternary' ? Math.ceil(group / 5) : Math.ceil((group * info.bits) / 8)
  const perLine = role === 'key' ? Math.ceil(pageTokens / group) : Math.ceil(width / group)
  const groups = role === 'key' ? perLine * width : pageTokens * perLine
  const metaPerGroup = info.zeroPoint ? 2 : 1
  const lineBytes = hi * Math.ceil((group * 2) / 8) + (width - hi) * chunk
  // int2+sign: (scale, min) for the int2 channels, a scale alone for the sign channels
  const lineMeta = format === 'int2+sign' ? hi * 4 + (width - hi) * 2 : width * metaPerGroup * 2
  const metaOffset = role === 'key' ? perLine * lineBytes : groups * chunk
  const metaBytes = role === 'key' ? perLine * lineMeta : groups * metaPerGroup * 2
  return { format, role, pageTokens, width, group, chunk, groups, perLine, metaOffset, metaPerGroup, hi, lineBytes, lineMeta, bytes: Math.ceil((metaOffset + metaBytes) / 16) * 16 }
}

/**
 * Bytes of one page: codes (packed chunks, see PackedLayout) plus the group metadata (float16 scale, and
 * float16 min where the format has a zero point), rounded up to 16 bytes so pages stay SIMD-aligned.
 * Keys group `group` tokens of one channel; values group `group` channels of one token.
 */
export function pageBytes(format: PageFormat, role: StreamRole, pageTokens: number, width: number, group = DEFAULT_GROUP, hi = 0): number {
  return packedLayout(format, role, pageTokens, width, group, hi).bytes
}
