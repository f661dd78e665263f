import { CacheError } from './errors.js'
import { formatInfo, type PackedLayout } from './formats.js'
import { floatToHalf, halfToFloat } from '../backend/half.js'
import { PACKABLE_MAX, halfDown, halfUp } from './half.js'

/**
 * Quantizing float rows into packed pages and reading them back: the plain TypeScript twin of the fused
 * kernels and of the packing kernels (assembly/kernels/packed-quantize.ts, which write these functions'
 * bytes exactly; the store packs through them, and through these where a backend lacks them).
 * Layout: formats.ts (PackedLayout).
 *
 * Integer formats (KIVI, Liu et al. 2024, section 3.1): asymmetric min-max over a group, levels L = 2^bits - 1.
 * The group's min is rounded down and its scale (max - min) / L rounded up to float16, so every code
 * round((x - min) / scale) lies in [0, L] and |x - x_hat| <= scale / 2.
 * Ternary (VidKV, Tao et al. 2025, section 3.3; BitNet b1.58's absmean): s = mean |x| over the group,
 * t = sign(x) where |x| > s / 2 else 0, read back as s * t (the released VidKV code reads it wrongly:
 * methods.md).
 */

/** the byte offset of a group's codes and of its metadata inside a page */
export function keyGroupAt(lay: PackedLayout, tokenGroup: number, channel: number): { codes: number; meta: number } {
  const inLine = channel < lay.hi ? channel * hiChunk(lay) : lay.hi * hiChunk(lay) + (channel - lay.hi) * lay.chunk
  // int2+sign: the hi channels' (scale, min) pairs, then a scale per sign channel
  const metaIn = lay.format !== 'int2+sign' ? channel * lay.metaPerGroup * 2 : channel < lay.hi ? channel * 4 : lay.hi * 4 + (channel - lay.hi) * 2
  return { codes: tokenGroup * lay.lineBytes + inLine, meta: lay.metaOffset + tokenGroup * lay.lineMeta + metaIn }
}

function hiChunk(lay: PackedLayout): number {
  return Math.ceil((lay.group * 2) / 8)
}

/**
 * The layout one key channel's chunks follow: int2+sign's first `hi` channels read as int2, the others as
 * symmetric int1 signs (one scale, no min: metaPerGroup 1); any other format's channels as the page's own.
 */
export function channelLayout(lay: PackedLayout, channel: number): PackedLayout {
  if (lay.format !== 'int2+sign') return lay
  return channel < lay.hi ? { ...lay, format: 'int2', chunk: hiChunk(lay), metaPerGroup: 2 } : { ...lay, format: 'int1', metaPerGroup: 1 }
}

/**
 * VidKV's 1-bit key quantizer (Tao et al. 2025, section 3.2): s = mean |x| over the group, each x read
 * back as +s (x >= 0) or -s; stored as an int1 chunk and s alone (float16), as the released code keeps
 * it (whose dequantizer reads the codes back as {0, s}: methods.md).
 */
export function quantizeSignGroup(x: ArrayLike<number>, count: number, lay: PackedLayout, bytes: Uint8Array, codes: number, meta: number): void {
  const B = lay.chunk
  let sum = 0
  for (let e = 0; e < count; e++) sum += Math.abs(x[e])
  new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setUint16(meta, floatToHalf(count ? sum / count : 0), true)
  for (let e = 0; e < count; e++) if (x[e] >= 0) bytes[codes + (e % B)] |= 1 << Math.floor(e / B)
}

export function valueGroupAt(lay: PackedLayout, row: number, channelGroup: number): { codes: number; meta: number } {
  const g = row * lay.perLine + channelGroup
  return { codes: g * lay.chunk, meta: lay.metaOffset + g * lay.metaPerGroup * 2 }
}

/**
 * Quantizes x[0..count) (one group; count <= group, the rest of the chunk stays 0) into the chunk at
 * bytes[codes] and its metadata at bytes[meta]. The chunk must be zeroed first.
 */
export function quantizeGroup(x: ArrayLike<number>, count: number, lay: PackedLayout, bytes: Uint8Array, codes: number, meta: number): void {
  const B = lay.chunk
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (lay.format === 'ternary') {
    let sum = 0
    for (let e = 0; e < count; e++) sum += Math.abs(x[e])
    const sH = floatToHalf(count ? sum / count : 0)
    dv.setUint16(meta, sH, true)
    const s = halfToFloat(sH)
    let pow = 1
    for (let e = 0; e < count; e++) {
      if (e > 0 && e % B === 0) pow *= 3
      const t = Math.abs(x[e]) > s / 2 ? Math.sign(x[e]) : 0
      bytes[codes + (e % B)] += (t + 1) * pow
    }
    // digits of elements past count decode as t = 1 - 1 = 0 only if written: fill them
    for (let e = count; e < lay.group; e++) {
      bytes[codes + (e % B)] += 3 ** Math.floor(e / B)
    }
    return
  }
  const bits = formatInfo(lay.format).bits
  const L = (1 << bits) - 1
  let mn = Infinity
  let mx = -Infinity
  for (let e = 0; e < count; e++) {
    mn = Math.min(mn, x[e])
    mx = Math.max(mx, x[e])
  }
  const minH = halfDown(mn)
  const min = halfToFloat(minH)
  const scaleH = halfUp((mx - min) / L)
  const scale = halfToFloat(scaleH)
  dv.setUint16(meta, scaleH, true)
  dv.setUint16(meta + 2, minH, true)
  for (let e = 0; e < count; e++) {
    const code = scale > 0 ? Math.min(L, Math.max(0, Math.round((x[e] - min) / scale))) : 0
    bytes[codes + (e % B)] |= code << (bits * Math.floor(e / B))
  }
}

/** code of element e of a chunk (ternary: t + 1 in {0, 1, 2}) */
export function codeAt(bytes: Uint8Array, codes: number, e: number, lay: PackedLayout): number {
  const B = lay.chunk
  const byte = bytes[codes + (e % B)]
  if (lay.format === 'ternary') return Math.floor(byte / 3 ** Math.floor(e / B)) % 3
  const bits = formatInfo(lay.format).bits
  return (byte >> (bits * Math.floor(e / B))) & ((1 << bits) - 1)
}

/**
 * (scale, min) of a group as floats (ternary: min = -scale, codes t + 1: scale * code + min = scale * t;
 * int2+sign's signs, int1 with one scale s: (2s, -s), codes {0, 1} read as -s, +s; both exact in float32)
 */
export function groupMeta(bytes: Uint8Array, meta: number, lay: PackedLayout): { scale: number; min: number } {
  const scale = halfToFloat(bytes[meta] | (bytes[meta + 1] << 8))
  if (lay.format === 'ternary') return { scale, min: -scale }
  if (lay.metaPerGroup === 1) return { scale: 2 * scale, min: -scale }
  return { scale, min: halfToFloat(bytes[meta + 2] | (bytes[meta + 3] << 8)) }
}

/** the float32 value a code reads back as (the dequantize-then-float32 reference: fround at each step) */
export function dequantize(code: number, m: { scale: number; min: number }): number {
  return Math.fround(Math.fround(m.scale * code) + m.min)
}

/** refuses values the float16 metadata cannot hold, naming the first (before any page is written) */
export function checkPackable(x: Float32Array, from: number, to: number, what: string): void {
  for (let i = from; i < to; i++) {
    if (!(Math.abs(x[i]) <= PACKABLE_MAX)) throw new CacheError(`${what}: value ${x[i]} at [${i - from}] cannot be packed (float16 group metadata hold |x| <= ${PACKABLE_MAX})`)
  }
}

/**
 * Packs `count` key rows (count <= group, starting a token group at row `row0` of the page) from
 * x[xOff + t * stride + c] into a zeroed key page.
 */
export function packKeyGroup(x: Float32Array, xOff: number, stride: number, count: number, lay: PackedLayout, page: Uint8Array, row0: number): void {
  const tg = row0 / lay.group
  const col = new Float32Array(lay.group)
  for (let c = 0; c < lay.width; c++) {
    for (let t = 0; t < count; t++) col[t] = x[xOff + t * stride + c]
    const at = keyGroupAt(lay, tg, c)
    const cl = channelLayout(lay, c)
    if (lay.format === 'int2+sign' && c >= lay.hi) quantizeSignGroup(col, count, cl, page, at.codes, at.meta)
    else quantizeGroup(col, count, cl, page, at.codes, at.meta)
  }
}

/** Packs one value row x[xOff .. xOff + width) into row `row` of a zeroed value page. */
export function packValueRow(x: Float32Array, xOff: number, lay: PackedLayout, page: Uint8Array, row: number): void {
  for (let cg = 0; cg < lay.perLine; cg++) {
    const c0 = cg * lay.group
    const count = Math.min(lay.group, lay.width - c0)
    const at = valueGroupAt(lay, row, cg)
    quantizeGroup(x.subarray(xOff + c0, xOff + c0 + count), count, lay, page, at.codes, at.meta)
  }
}

/** Reads key row `row` of a page back as floats into out[outOff ..] */
export function unpackKeyRow(page: Uint8Array, lay: PackedLayout, row: number, out: Float32Array, outOff: number): void {
  const tg = Math.floor(row / lay.group)
  const e = row - tg * lay.group
  for (let c = 0; c < lay.width; c++) {
    const at = keyGroupAt(lay, tg, c)
    const cl = channelLayout(lay, c)
    out[outOff + c] = dequantize(codeAt(page, at.codes, e, cl), groupMeta(page, at.meta, cl))
  }
}

/** Reads value row `row` of a page back as floats into out[outOff ..] */
export function unpackValueRow(page: Uint8Array, lay: PackedLayout, row: number, out: Float32Array, outOff: number): void {
  for (let cg = 0; cg < lay.perLine; cg++) {
    const at = valueGroupAt(lay, row, cg)
    const m = groupMeta(page, at.meta, lay)
    const c0 = cg * lay.group
    for (let c = c0; c < Math.min(lay.width, c0 + lay.group); c++) out[outOff + c] = dequantize(codeAt(page, at.codes, c - c0, lay), m)
  }
}
