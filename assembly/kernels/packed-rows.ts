import { halfToF32, f0, f1, f2, f3, lane } from './packed'
import { planar16 } from './packed-sign'

// Gathered rows of packed pages read back as float32 (ggml's get_rows over a quantized tensor): the rows a
// selection keeps (Quest, TokenSelect) over KIVI's pages, dequantized into a contiguous buffer that the
// float attention kernels then read. Each value is scale * code + min in float32, a multiply and an add
// (never fused), which is what src/cache/packing.ts's dequantize computes: the rows equal its TypeScript
// twin bit for bit. Layouts: src/cache/formats.ts PackedLayout.

// the kernels' code for ternary values (formats.ts kernelBits)
const TERNARY: i32 = 0

/**
 * `count` channels of one key row: channel c's code is element e of the chunk at codes + c * chunk
 * (byte e % chunk, bits [s, s + bits) with s = bits * (e / chunk)); out[c] = code * sc[c] + mn[c], four
 * channels a step (their bytes lie chunk apart).
 */
// @ts-ignore: decorator
@inline function keyChannels(codes: usize, chunk: i32, bits: i32, e: i32, count: i32, sc: usize, mn: usize, out: usize): void {
  const sh = bits * (e / chunk)
  const mask = (1 << bits) - 1
  const vmask = i32x4.splat(mask)
  const step = <usize>chunk
  let p = codes + <usize>(e % chunk)
  let c = 0
  for (; c + 4 <= count; c += 4) {
    let v = i32x4.splat(<i32>load<u8>(p))
    v = i32x4.replace_lane(v, 1, <i32>load<u8>(p + step))
    v = i32x4.replace_lane(v, 2, <i32>load<u8>(p + 2 * step))
    v = i32x4.replace_lane(v, 3, <i32>load<u8>(p + 3 * step))
    const code = f32x4.convert_i32x4_s(v128.and(i32x4.shr_u(v, sh), vmask))
    const at = <usize>c << 2
    v128.store(out + at, f32x4.add(f32x4.mul(code, v128.load(sc + at)), v128.load(mn + at)))
    p += 4 * step
  }
  for (; c < count; c++) {
    const code = <f32>((<i32>load<u8>(p) >> sh) & mask)
    const at = <usize>c << 2
    store<f32>(out + at, code * load<f32>(sc + at) + load<f32>(mn + at))
    p += step
  }
}

/**
 * Key rows idx[0 .. nIdx) (int32 token indices, any order) of n packed keys of d channels, as float32 rows
 * [nIdx][d] at out. Keys group `group` tokens per channel. sign 0: every channel `bits`-bit with a
 * (scale, min) (int8/4/2/1); sign 1: int2+sign, the first hi channels int2 with (scale, min),
 * the rest 1-bit signs with one scale s, read as 2s * code - s. Rows in the same token group reuse its
 * metadata, widened once into scratch: 2 * d floats.
 */
function keyRows(table: usize, pageTokens: i32, idx: usize, nIdx: i32, d: i32, bits: i32, hi: i32, group: i32, sign: bool, out: usize, scratch: usize): void {
  const chunk = sign ? (group + 7) >> 3 : (group * bits + 7) >> 3
  const hiChunk = (group * 2 + 7) >> 3
  const lineBytes = hi * hiChunk + (d - hi) * chunk
  const lineMeta = sign ? hi * 4 + (d - hi) * 2 : d * 4
  const metaOffset = <usize>((pageTokens / group) * lineBytes)
  const sc = scratch
  const mn = scratch + (<usize>d << 2)
  let r = 0
  while (r < nIdx) {
    const t0 = load<i32>(idx + (<usize>r << 2))
    const pageNo = t0 / pageTokens
    const tg = (t0 - pageNo * pageTokens) / group
    const page = <usize>load<u32>(table + (<usize>pageNo << 2))
    // the token group's metadata as floats: (scale, min), or (2s, -s) for a sign channel
    const meta = page + metaOffset + <usize>(tg * lineMeta)
    for (let c = 0; c < d; c++) {
      let s: f32, m: f32
      if (!sign || c < hi) {
        s = halfToF32(load<u16>(meta + (<usize>c << 2)))
        m = halfToF32(load<u16>(meta + (<usize>c << 2), 2))
      } else {
        const h = halfToF32(load<u16>(meta + <usize>(hi * 4 + (c - hi) * 2)))
        s = 2 * h
        m = -h
      }
      store<f32>(sc + (<usize>c << 2), s)
      store<f32>(mn + (<usize>c << 2), m)
    }
    const line = page + <usize>(tg * lineBytes)
    const first = pageNo * pageTokens + tg * group
    // every row of the run in this token group
    for (; r < nIdx; r++) {
      const t = load<i32>(idx + (<usize>r << 2))
      const e = t - first
      if (e < 0 || e >= group) break
      const o = out + (<usize>(r * d) << 2)
      if (sign) {
        keyChannels(line, hiChunk, 2, e, hi, sc, mn, o)
        const at = <usize>hi << 2
        keyChannels(line + <usize>(hi * hiChunk), chunk, 1, e, d - hi, sc + at, mn + at, o + at)
      } else keyChannels(line, chunk, bits, e, d, sc, mn, o)
    }
  }
}

/**
 * Key rows idx[0 .. nIdx) (int32 token indices, any order) of packed keys of d channels with `bits`-bit
 * codes (8, 4, 2 or 1) in groups of 32 tokens per channel, read back as float32 rows [nIdx][d] at out:
 * scale * code + min (float32 multiply, then add). scratch: 2 * d floats. ABI 1.9.
 */
export function getPackedKeyRows(table: usize, pageTokens: i32, idx: usize, nIdx: i32, d: i32, bits: i32, out: usize, scratch: usize): void {
  keyRows(table, pageTokens, idx, nIdx, d, bits, 0, 32, false, out, scratch)
}

/**
 * getPackedKeyRows over keys in token groups of `group` (32, 64 or 128; KIVI's group_size). ABI 1.15.
 */
export function getPackedKeyRowsGroup(table: usize, pageTokens: i32, idx: usize, nIdx: i32, d: i32, bits: i32, group: i32, out: usize, scratch: usize): void {
  keyRows(table, pageTokens, idx, nIdx, d, bits, 0, group, false, out, scratch)
}

/**
 * getPackedKeyRows over int2+sign keys as scoreSignKeys reads them (the first hi channels int2 with
 * (scale, min), the rest signs with one scale s, read as 2s * code - s; token groups of `group` = 32, 64
 * or 128). The rows stay in the keys' stored basis. scratch: 2 * d floats. ABI 1.9.
 */
export function getSignKeyRows(table: usize, pageTokens: i32, idx: usize, nIdx: i32, d: i32, hi: i32, group: i32, out: usize, scratch: usize): void {
  keyRows(table, pageTokens, idx, nIdx, d, 1, hi, group, true, out, scratch)
}

/**
 * Value rows idx[0 .. nIdx) (int32 token indices, any order) of packed values of vd channels, `bits`-bit
 * (8, 4, 2, 1; 0 ternary: one float16 scale s a group, codes t + 1 read as s * code - s) in groups of
 * vGroup channels per token (32, 64 or 128; a row's last group may be partial), as float32 rows
 * [nIdx][vd] at out. ABI 1.9.
 */
export function getPackedValueRows(table: usize, pageTokens: i32, idx: usize, nIdx: i32, vd: i32, bits: i32, vGroup: i32, out: usize): void {
  const ternary = bits == TERNARY
  const cgs = (vd + vGroup - 1) / vGroup
  const chunk = ternary ? (vGroup + 4) / 5 : (vGroup * bits) >> 3
  const metaBytes: i32 = ternary ? 2 : 4
  const metaOffset = <usize>(pageTokens * cgs * chunk)
  for (let r = 0; r < nIdx; r++) {
    const t = load<i32>(idx + (<usize>r << 2))
    const pageNo = t / pageTokens
    const page = <usize>load<u32>(table + (<usize>pageNo << 2))
    const local = t - pageNo * pageTokens
    const row = out + (<usize>(r * vd) << 2)
    for (let cg = 0; cg < cgs; cg++) {
      const g = local * cgs + cg
      const codes = page + <usize>(g * chunk)
      const meta = page + metaOffset + <usize>(g * metaBytes)
      const s = halfToF32(load<u16>(meta))
      const m = ternary ? -s : halfToF32(load<u16>(meta, 2))
      const o = row + (<usize>(cg * vGroup) << 2)
      const width = min(vGroup, vd - cg * vGroup)
      if (ternary) {
        // five base-3 digits a byte: element e is digit e / chunk of byte e % chunk
        for (let e = 0; e < width; e++) {
          let b = <u32>load<u8>(codes + <usize>(e % chunk))
          for (let j = e / chunk; j > 0; j--) b /= 3
          store<f32>(o + (<usize>e << 2), <f32>(b % 3) * s + m)
        }
        continue
      }
      const vs = f32x4.splat(s)
      const vm = f32x4.splat(m)
      for (let e0 = 0; e0 < width; e0 += 16) {
        const k = planar16(codes, bits, chunk, e0)
        const x0 = f32x4.add(f32x4.mul(f0(k), vs), vm)
        const x1 = f32x4.add(f32x4.mul(f1(k), vs), vm)
        const x2 = f32x4.add(f32x4.mul(f2(k), vs), vm)
        const x3 = f32x4.add(f32x4.mul(f3(k), vs), vm)
        const p = o + (<usize>e0 << 2)
        const valid = min(16, width - e0)
        if (valid == 16) {
          v128.store(p, x0)
          v128.store(p, x1, 16)
          v128.store(p, x2, 32)
          v128.store(p, x3, 48)
        } else {
          for (let j = 0; j < valid; j++) store<f32>(p + (<usize>j << 2), lane(j < 4 ? x0 : j < 8 ? x1 : j < 12 ? x2 : x3, j & 3))
        }
      }
    }
  }
}
