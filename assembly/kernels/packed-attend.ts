import { GROUP, halfToF32, f0, f1, f2, f3, lane, scorePackedKeysGroupStrided, scorePackedKeysMixed } from './packed'
import { planar16, scoreSignKeys } from './packed-sign'
import { madd } from './simd'
import { expv } from './exp'

// Attention over packed pages: scores from the packed keys (packed.ts, packed-sign.ts), then softmax and
// the values read from their codes in registers; a value group's scale folds into the attention weight
// and its min into one bias per row and group (KIVI, Liu et al. 2024, section 3.3).

// the kernels' code for ternary values (formats.ts kernelBits)
const TERNARY: i32 = 0

/**
 * 16 consecutive ternary codes t + 1 in {0, 1, 2} (elements e0 .. e0 + 15) of a planar chunk of `chunk`
 * bytes (element e is base-3 digit e / chunk of byte e % chunk), as u8 lanes; tmp: 16 bytes of scratch
 */
// @ts-ignore: decorator
@inline function ternary16(p: usize, chunk: i32, e0: i32, tmp: usize): v128 {
  for (let j = 0; j < 16; j++) {
    const e = e0 + j
    let b = <u32>load<u8>(p + <usize>(e % chunk))
    const digit = e / chunk
    if (digit >= 1) b /= 3
    if (digit >= 2) b /= 3
    if (digit >= 3) b /= 3
    if (digit >= 4) b /= 3
    store<u8>(tmp + <usize>j, <u8>(b % 3))
  }
  return v128.load(tmp)
}

/**
 * Attention of `rows` query rows (q: [rows][d], all heads of one KV head's group) over n packed tokens:
 * out[r] = softmax(scale q_r . K^T) V written as [rows][vd] at out with row stride outStride floats, and
 * lse[r] (if lse != 0) the log-sum-exp of the scaled scores. Keys as scorePackedKeys; values int
 * `vBits`, grouped along 32 channels per token (the last group of a row may be partial). Every token is visible (packed
 * tokens are older than any query). vBits 0: ternary values (codes t + 1, one float16 scale a group).
 * kHi: as scorePackedKeys' hi. scratch: rows * n + rows * (d + 1) + rows * ceil(vd / 32) + rows + 4 floats
 * (packedAttendScratch in src/backend/backend.ts).
 */
export function attendPacked(q: usize, rows: i32, d: i32, vd: i32, kTable: usize, vTable: usize, pageTokens: i32, n: i32, kBits: i32, vBits: i32, scale: f32, out: usize, outStride: i32, lse: usize, scratch: usize): void {
  attendPackedMixed(q, rows, d, vd, kTable, vTable, pageTokens, n, kBits, 0, vBits, scale, out, outStride, lse, scratch)
}

/** attendPacked over mixed keys (scorePackedKeysMixed's kHi) and ternary values (vBits 0) too (ABI 1.5) */
export function attendPackedMixed(q: usize, rows: i32, d: i32, vd: i32, kTable: usize, vTable: usize, pageTokens: i32, n: i32, kBits: i32, kHi: i32, vBits: i32, scale: f32, out: usize, outStride: i32, lse: usize, scratch: usize): void {
  const fold = scratch + (<usize>(rows * n) << 2)
  scorePackedKeysMixed(q, rows, d, kTable, pageTokens, n, kBits, kHi, scale, scratch, fold)
  attendScored(scratch, rows, n, vd, vTable, pageTokens, vBits, GROUP, out, outStride, lse, fold + (<usize>(rows * (d + 1)) << 2))
}

/**
 * attendPacked over int2+sign keys in token groups of `group` (scoreSignKeys) and values in groups of
 * vGroup channels (32, 64 or 128: formats.ts valueGroupFor); scratch as attendPacked's. ABI 1.6.
 */
export function attendSign(q: usize, rows: i32, d: i32, vd: i32, kTable: usize, vTable: usize, pageTokens: i32, n: i32, kHi: i32, group: i32, vBits: i32, vGroup: i32, scale: f32, out: usize, outStride: i32, lse: usize, scratch: usize): void {
  const fold = scratch + (<usize>(rows * n) << 2)
  scoreSignKeys(q, rows, d, kTable, pageTokens, n, kHi, group, scale, scratch, fold)
  attendScored(scratch, rows, n, vd, vTable, pageTokens, vBits, vGroup, out, outStride, lse, fold + (<usize>(rows * (d + 1)) << 2))
}

/**
 * attendPacked over KIVI keys of kBits (8, 4, 2, 1) in token groups of `group` (32, 64 or 128;
 * scorePackedKeysGroupStrided) and vBits values (0 ternary) in groups of vGroup channels (32, 64 or 128:
 * formats.ts valueGroupFor); scratch as attendPacked's. ABI 1.15.
 */
export function attendPackedGroup(q: usize, rows: i32, d: i32, vd: i32, kTable: usize, vTable: usize, pageTokens: i32, n: i32, kBits: i32, group: i32, vBits: i32, vGroup: i32, scale: f32, out: usize, outStride: i32, lse: usize, scratch: usize): void {
  const fold = scratch + (<usize>(rows * n) << 2)
  scorePackedKeysGroupStrided(q, rows, d, kTable, pageTokens, n, kBits, group, scale, scratch, n, fold)
  attendScored(scratch, rows, n, vd, vTable, pageTokens, vBits, vGroup, out, outStride, lse, fold + (<usize>(rows * (d + 1)) << 2))
}

/**
 * The values' half: softmax of the scores s [rows][n] in place, then out[r] = sum_i p_ri v_i / sum_i p_ri
 * over values of vBits (0 ternary) in groups of vGroup channels. tail: rows * ceil(vd / vGroup) + rows + 4
 * floats (the value biases, the sums, the ternary digits).
 */
function attendScored(s: usize, rows: i32, n: i32, vd: i32, vTable: usize, pageTokens: i32, vBits: i32, vGroup: i32, out: usize, outStride: i32, lse: usize, tail: usize): void {
  const cgs = (vd + vGroup - 1) / vGroup
  const vbias = tail
  const sums = vbias + (<usize>(rows * cgs) << 2)
  const digits = sums + (<usize>rows << 2)
  // softmax numerators in place, each row's max subtracted
  for (let r = 0; r < rows; r++) {
    const row = s + (<usize>(r * n) << 2)
    let m: f32 = -Infinity
    for (let i = 0; i < n; i++) m = max(m, load<f32>(row + (<usize>i << 2)))
    const vm = f32x4.splat(m)
    let acc = f32x4.splat(0)
    let i = 0
    for (; i + 4 <= n; i += 4) {
      const p = expv(f32x4.sub(v128.load(row + (<usize>i << 2)), vm))
      v128.store(row + (<usize>i << 2), p)
      acc = f32x4.add(acc, p)
    }
    let sum = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3)
    for (; i < n; i++) {
      const p = f32x4.extract_lane(expv(f32x4.splat(load<f32>(row + (<usize>i << 2)) - m)), 0)
      store<f32>(row + (<usize>i << 2), p)
      sum += p
    }
    store<f32>(sums + (<usize>r << 2), sum)
    if (lse) store<f32>(lse + (<usize>r << 2), m + <f32>Math.log(<f64>sum))
    const o = out + (<usize>(r * outStride) << 2)
    memory.fill(o, 0, <usize>vd << 2)
  }
  memory.fill(vbias, 0, <usize>(rows * cgs) << 2)
  // ternary values: codes t + 1 with one float16 scale s a group, read as s * code - s
  const ternary = vBits == TERNARY
  const chunk = ternary ? (vGroup + 4) / 5 : (vGroup * vBits) >> 3
  const metaBytes: i32 = ternary ? 2 : 4
  const metaOffset = <usize>(pageTokens * cgs * chunk)
  for (let i = 0; i < n; i++) {
    const page = <usize>load<u32>(vTable + (<usize>(i / pageTokens) << 2))
    const local = i % pageTokens
    for (let cg = 0; cg < cgs; cg++) {
      const codes = page + <usize>((local * cgs + cg) * chunk)
      const meta = page + metaOffset + <usize>((local * cgs + cg) * metaBytes)
      const sc = halfToF32(load<u16>(meta))
      const mn = ternary ? -sc : halfToF32(load<u16>(meta, 2))
      for (let e0 = 0; e0 < vGroup; e0 += 16) {
        // channels of this block that exist (the last group of a row may be partial)
        const valid = min(16, vd - cg * vGroup - e0)
        if (valid <= 0) break
        const k = ternary ? ternary16(codes, chunk, e0, digits) : planar16(codes, vBits, chunk, e0)
        const k0 = f0(k), k1 = f1(k), k2 = f2(k), k3 = f3(k)
        for (let r = 0; r < rows; r++) {
          const p = load<f32>(s + (<usize>(r * n + i) << 2))
          const w = f32x4.splat(p * sc)
          const o = out + (<usize>(r * outStride + cg * vGroup + e0) << 2)
          if (valid == 16) {
            v128.store(o, madd(w, k0, v128.load(o)))
            v128.store(o, madd(w, k1, v128.load(o, 16)), 16)
            v128.store(o, madd(w, k2, v128.load(o, 32)), 32)
            v128.store(o, madd(w, k3, v128.load(o, 48)), 48)
          } else {
            const ws = p * sc
            for (let j = 0; j < valid; j++) {
              const kj = j < 4 ? k0 : j < 8 ? k1 : j < 12 ? k2 : k3
              store<f32>(o + (<usize>j << 2), ws * lane(kj, j & 3) + load<f32>(o + (<usize>j << 2)))
            }
          }
          if (e0 == 0) {
            const b = vbias + (<usize>(r * cgs + cg) << 2)
            store<f32>(b, load<f32>(b) + p * mn)
          }
        }
      }
    }
  }
  // the mins' share, then the softmax denominator
  for (let r = 0; r < rows; r++) {
    const inv = f32x4.splat(1 / load<f32>(sums + (<usize>r << 2)))
    for (let cg = 0; cg < cgs; cg++) {
      const b = f32x4.splat(load<f32>(vbias + (<usize>(r * cgs + cg) << 2)))
      const o = out + (<usize>(r * outStride + cg * vGroup) << 2)
      const valid = min(vGroup, vd - cg * vGroup)
      let j = 0
      for (; j + 4 <= valid; j += 4) v128.store(o + (<usize>j << 2), f32x4.mul(f32x4.add(v128.load(o + (<usize>j << 2)), b), inv))
      for (; j < valid; j++) store<f32>(o + (<usize>j << 2), (load<f32>(o + (<usize>j << 2)) + f32x4.extract_lane(b, 0)) * f32x4.extract_lane(inv, 0))
    }
  }
}
