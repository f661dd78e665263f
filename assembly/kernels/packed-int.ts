import { GROUP, groupPage, storeHalf } from './packed'
import { RELAXED, UNIT, transposeGroup } from './packed-tile'
import { hmax, hsum, madd, widenHalf4 } from './simd'

// Key scoring on packed pages with integer dot products. The exact kernel (packed.ts) widens every code
// to a float lane and spends more instructions doing so than float32 scoring spends loading floats; here
// the codes stay integers and meet an integer query. KIVI's keys are quantized per channel over groups of
// 32 tokens, so within a group q . k_t = sum_c (q_c s_c) u_tc + sum_c q_c min_c: the scales fold into the
// query q' (per group and head, as the exact kernel does) and q' is rounded to integers Q with one float
// step per group and head, q' ~ step * Q. sum_c Q_c u_tc is then an integer dot product:
// - relaxed-SIMD build: i16x8.relaxed_dot_i8x16_i7x16_s with the codes as the 7-bit operand (int4/2/1
//   codes have their high bit clear, so every engine gives the same result) and Q as int8 (int2, int1) or
//   as a high and a low byte (int4: Q = 128 hi + lo, two dots, ~14 bits), pair sums accumulated in i16
//   lanes for as many channels as cannot overflow, then widened (i32x4.extadd_pairwise_i16x8_s);
// - plain SIMD build: i32x4.dot_i16x8_s on codes widened to i16 and Q as int16 (~15 bits).
// Both need a token's channels side by side: each group is transposed once into a tile that every query
// head of the KV head reuses (packed-tile.ts).

/** The largest |Q| of the integer query: the step is max |q'| / levels (docs: scorePackedKeysInt). */
// @ts-ignore: decorator
@inline export function queryLevels(bits: i32, d: i32): i32 {
  if (RELAXED) return bits == 4 ? 8191 : 127
  // i32 sums of d products of |Q| <= levels and codes <= 2^bits - 1 cannot overflow
  return min(32767, i32.MAX_VALUE / (d * ((1 << bits) - 1)))
}

/**
 * The group's (scale, min) float16 pairs (meta: d pairs) widened once for all heads: sc[c] = scale * s_c,
 * mn[c] = scale * min_c.
 */
// @ts-ignore: decorator
@inline function widenMeta(meta: usize, d: i32, scale: f32, sc: usize, mn: usize): void {
  const vscale = f32x4.splat(scale)
  for (let c = 0; c < d; c += 4) {
    const m8 = v128.load(meta + (<usize>c << 2))
    const a = widenHalf4(i32x4.extend_low_i16x8_s(m8))
    const b = widenHalf4(i32x4.extend_high_i16x8_s(m8))
    v128.store(sc + (<usize>c << 2), f32x4.mul(vscale, v128.shuffle<f32>(a, b, 0, 2, 4, 6)))
    v128.store(mn + (<usize>c << 2), f32x4.mul(vscale, v128.shuffle<f32>(a, b, 1, 3, 5, 7)))
  }
}

/**
 * One head's fold and rounding: q'_c = q_c * sc[c] (written at qs), bias = sum_c q_c * mn[c], then
 * Q_c = round(q'_c / step) with step = max_c |q'_c| / levels (0 for a zero query), written at words as
 * the dot products read them (relaxed: d int8, then for int4 d more, the high bytes first; plain: d
 * int16). Writes step and bias at out[0], out[1].
 */
// @ts-ignore: decorator
@inline function foldQuantize(q: usize, d: i32, sc: usize, mn: usize, qs: usize, levels: i32, twoBytes: bool, words: usize, out: usize): void {
  let m = f32x4.splat(0)
  let bias = f32x4.splat(0)
  for (let c = 0; c < d; c += 4) {
    const o = <usize>c << 2
    const x = v128.load(q + o)
    const y = f32x4.mul(x, v128.load(sc + o))
    v128.store(qs + o, y)
    // pmax: one instruction (no NaN in a folded query), where max's NaN rules cost several
    m = f32x4.pmax(m, f32x4.abs(y))
    bias = madd(x, v128.load(mn + o), bias)
  }
  const mx = hmax(m)
  const inv = f32x4.splat(mx > 0 ? <f32>levels / mx : 0)
  for (let c = 0; c < d; c += 4) {
    const Q = roundToInt(f32x4.mul(v128.load(qs + (<usize>c << 2)), inv))
    if (RELAXED) {
      if (twoBytes) {
        // Q = 128 hi + lo with hi, lo in [-64, 64]: both fit int8 and keep the i16 pair sums small
        const hi = i32x4.shr_s(i32x4.add(Q, i32x4.splat(64)), 7)
        const lo = i32x4.sub(Q, i32x4.shl(hi, 7))
        v128.store32_lane(words + <usize>c, bytes4(hi), 0)
        v128.store32_lane(words + <usize>(d + c), bytes4(lo), 0)
      } else v128.store32_lane(words + <usize>c, bytes4(Q), 0)
    } else v128.store64_lane(words + (<usize>c << 1), i16x8.narrow_i32x4_s(Q, Q), 0)
  }
  store<f32>(out, mx / <f32>levels)
  store<f32>(out, hsum(bias), 4)
}

/**
 * round-to-nearest-even of |x| <= 2^22 as i32 lanes: x + 1.5 * 2^23 leaves the integer in the low
 * mantissa bits (two instructions, where nearest + trunc_sat take about eight on x86)
 */
// @ts-ignore: decorator
@inline function roundToInt(x: v128): v128 {
  return i32x4.sub(f32x4.add(x, f32x4.splat(12582912)), i32x4.splat(0x4b400000))
}

// four i32 lanes (each within int8) as four bytes in lane 0
// @ts-ignore: decorator
@inline function bytes4(x: v128): v128 {
  const w = i16x8.narrow_i32x4_s(x, x)
  return i8x16.narrow_i16x8_s(w, w)
}

/**
 * Whether this engine computes i32x4.relaxed_dot_i8x16_i7x16_add_s as the relaxed-SIMD spec says (an
 * i8 x i7 dot of each 4 bytes plus the accumulator lane), checked once an instance on signed query bytes,
 * codes up to 127 and a non-zero accumulator against scalar arithmetic; 0 unchecked, 1 correct, -1 not.
 * The inputs go through memory (the kernel's scratch) so no optimiser folds the check away.
 */
let dotAdd: i32 = 0

// @ts-ignore: decorator
@inline function checkDotAdd(scratch: usize): void {
  if (!RELAXED || dotAdd != 0) return
  for (let i = 0; i < 16; i++) {
    store<i8>(scratch + <usize>i, <i8>(i * 37 - 128))
    store<u8>(scratch + 16 + <usize>i, <u8>((i * 53 + 7) & 127))
  }
  for (let l = 0; l < 4; l++) store<i32>(scratch + 32 + (<usize>l << 2), l * 100003 - 7)
  const got = i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(scratch), v128.load(scratch, 16), v128.load(scratch, 32))
  let ok = true
  for (let l = 0; l < 4; l++) {
    let want = load<i32>(scratch + 32 + (<usize>l << 2))
    for (let j = 0; j < 4; j++) want += <i32>load<i8>(scratch + <usize>(4 * l + j)) * <i32>load<u8>(scratch + 16 + <usize>(4 * l + j))
    v128.store(scratch + 48, got)
    if (load<i32>(scratch + 48 + (<usize>l << 2)) != want) ok = false
  }
  dotAdd = ok ? 1 : -1
}

/**
 * 1 when this instance's scorePackedKeysInt accumulates with i32x4.relaxed_dot_i8x16_i7x16_add_s (the
 * relaxed build on an engine that computes it correctly, checked at the first call), 0 otherwise
 * (plain build, not yet called, or an engine that gets it wrong: i16x8 dots then, the same sums).
 */
export function packedIntDotAdd(): i32 {
  return dotAdd > 0 ? 1 : 0
}

/**
 * sum_c Q_c u_tc for the 16 tokens of token quads j0 .. j0 + 3 of the tile, as four i32x4 (tokens in
 * order) through `sums` (4 vectors). flush: channel units summed in i16 lanes before widening.
 */
// @ts-ignore: decorator
@inline function dotHalf(tile: usize, units: i32, j0: i32, words: usize, d: i32, twoBytes: bool, flush: i32, sums: usize): void {
  const row = <usize>units << 4
  const base = tile + (<usize>(j0 * units) << 4)
  let s0 = i32x4.splat(0), s1 = i32x4.splat(0), s2 = i32x4.splat(0), s3 = i32x4.splat(0)
  if (RELAXED && dotAdd > 0) {
    // one accumulating dot a vector (16 multiply-adds into i32 lanes: one VNNI vpdpbusd where the engine
    // has it), where the engine computes it correctly (checkDotAdd); int4: the low bytes' dots beside,
    // then Q = 128 hi + lo
    let l0 = i32x4.splat(0), l1 = i32x4.splat(0), l2 = i32x4.splat(0), l3 = i32x4.splat(0)
    for (let u = 0; u < units; u++) {
      const t = base + (<usize>u << 4)
      const T0 = v128.load(t), T1 = v128.load(t + row), T2 = v128.load(t + 2 * row), T3 = v128.load(t + 3 * row)
      const qh = v128.load32_splat(words + (<usize>u << 2))
      s0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(qh, T0, s0)
      s1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(qh, T1, s1)
      s2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(qh, T2, s2)
      s3 = i32x4.relaxed_dot_i8x16_i7x16_add_s(qh, T3, s3)
      if (twoBytes) {
        const ql = v128.load32_splat(words + <usize>d + (<usize>u << 2))
        l0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(ql, T0, l0)
        l1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(ql, T1, l1)
        l2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(ql, T2, l2)
        l3 = i32x4.relaxed_dot_i8x16_i7x16_add_s(ql, T3, l3)
      }
    }
    if (twoBytes) {
      s0 = i32x4.add(i32x4.shl(s0, 7), l0)
      s1 = i32x4.add(i32x4.shl(s1, 7), l1)
      s2 = i32x4.add(i32x4.shl(s2, 7), l2)
      s3 = i32x4.add(i32x4.shl(s3, 7), l3)
    }
  } else if (RELAXED) {
    // i16x8 dots, widened: where i32x4.relaxed_dot_i8x16_i7x16_add_s is wrong (Node 20.20's V8 returns
    // twice the dot and drops the accumulator on x86) or not yet checked
    for (let u0 = 0; u0 < units; u0 += flush) {
      const u1 = min(units, u0 + flush)
      let a0 = i16x8.splat(0), a1 = i16x8.splat(0), a2 = i16x8.splat(0), a3 = i16x8.splat(0)
      let l0 = i16x8.splat(0), l1 = i16x8.splat(0), l2 = i16x8.splat(0), l3 = i16x8.splat(0)
      for (let u = u0; u < u1; u++) {
        const t = base + (<usize>u << 4)
        const T0 = v128.load(t), T1 = v128.load(t + row), T2 = v128.load(t + 2 * row), T3 = v128.load(t + 3 * row)
        const qh = v128.load32_splat(words + (<usize>u << 2))
        a0 = i16x8.add(a0, i16x8.relaxed_dot_i8x16_i7x16_s(qh, T0))
        a1 = i16x8.add(a1, i16x8.relaxed_dot_i8x16_i7x16_s(qh, T1))
        a2 = i16x8.add(a2, i16x8.relaxed_dot_i8x16_i7x16_s(qh, T2))
        a3 = i16x8.add(a3, i16x8.relaxed_dot_i8x16_i7x16_s(qh, T3))
        if (twoBytes) {
          const ql = v128.load32_splat(words + <usize>d + (<usize>u << 2))
          l0 = i16x8.add(l0, i16x8.relaxed_dot_i8x16_i7x16_s(ql, T0))
          l1 = i16x8.add(l1, i16x8.relaxed_dot_i8x16_i7x16_s(ql, T1))
          l2 = i16x8.add(l2, i16x8.relaxed_dot_i8x16_i7x16_s(ql, T2))
          l3 = i16x8.add(l3, i16x8.relaxed_dot_i8x16_i7x16_s(ql, T3))
        }
      }
      if (twoBytes) {
        s0 = i32x4.add(s0, i32x4.add(i32x4.shl(i32x4.extadd_pairwise_i16x8_s(a0), 7), i32x4.extadd_pairwise_i16x8_s(l0)))
        s1 = i32x4.add(s1, i32x4.add(i32x4.shl(i32x4.extadd_pairwise_i16x8_s(a1), 7), i32x4.extadd_pairwise_i16x8_s(l1)))
        s2 = i32x4.add(s2, i32x4.add(i32x4.shl(i32x4.extadd_pairwise_i16x8_s(a2), 7), i32x4.extadd_pairwise_i16x8_s(l2)))
        s3 = i32x4.add(s3, i32x4.add(i32x4.shl(i32x4.extadd_pairwise_i16x8_s(a3), 7), i32x4.extadd_pairwise_i16x8_s(l3)))
      } else {
        s0 = i32x4.add(s0, i32x4.extadd_pairwise_i16x8_s(a0))
        s1 = i32x4.add(s1, i32x4.extadd_pairwise_i16x8_s(a1))
        s2 = i32x4.add(s2, i32x4.extadd_pairwise_i16x8_s(a2))
        s3 = i32x4.add(s3, i32x4.extadd_pairwise_i16x8_s(a3))
      }
    }
  } else {
    for (let u = 0; u < units; u++) {
      const t = base + (<usize>u << 4)
      const qw = v128.load32_splat(words + (<usize>u << 2))
      s0 = i32x4.add(s0, i32x4.dot_i16x8_s(v128.load(t), qw))
      s1 = i32x4.add(s1, i32x4.dot_i16x8_s(v128.load(t + row), qw))
      s2 = i32x4.add(s2, i32x4.dot_i16x8_s(v128.load(t + 2 * row), qw))
      s3 = i32x4.add(s3, i32x4.dot_i16x8_s(v128.load(t + 3 * row), qw))
    }
  }
  v128.store(sums, s0)
  v128.store(sums, s1, 16)
  v128.store(sums, s2, 32)
  v128.store(sums, s3, 48)
}

/**
 * out[h*n + i] ~ scale * (q_h . k_i) for qHeads query heads over n packed keys of d channels (d a multiple
 * of 4; int `bits` = 4, 2 or 1 codes grouped along 32 tokens per channel; pages of pageTokens rows, a
 * multiple of 32), with integer dot products (see the top of this file).
 *
 * Error: against dequantizing the keys (k = s * u + min) and scoring in float64, for token t of group g
 * and head h, |out - exact| <= step_gh / 2 * sum_c u_tc + r, where step_gh = max_c |q'_c| / L (q' the
 * folded query scale * q_c * s_c of the group, L = queryLevels: 8191 for int4 and 127 for int2/int1 in the
 * relaxed build, min(32767, (2^31 - 1) / (d (2^bits - 1))) in the plain one) and r the float32 rounding
 * of the fold, of step * sum and of the bias (a few ulps of scale * sum_c |q_c k_tc|, as the exact kernel).
 *
 * Why that is fine for selection: the keys' own quantization error is up to s_c / 2 a channel, i.e. up
 * to sum_c |q'_c| / 2 = d mean|q'| / 2 in the score. The query's is at most step / 2 a channel, i.e.
 * step / 2 * sum_c u_tc = d mean(u) max|q'| / (2 L): the ratio of the two bounds is
 * (mean(u) / L) * (max|q'| / mean|q'|), and both errors have the same shape (a sum of d independent
 * roundings), so their typical sizes keep that ratio. With mean codes of about half the range and a
 * crest max/mean of a few: int4 (L = 8191 relaxed, 32767 plain) ~0.001 to 0.005, int2 with an int8
 * query (L = 127) ~0.02 to 0.1, below 0.001 with the plain build's int16. The ranking the integer
 * scores give differs from the exact kernel's only where two keys' scores are nearer than the keys'
 * quantization already blurs them: on the fixture model's keys (16 heads, 3 queries each, top 1/8)
 * int4 gives the exact kernel's top-k and int2's int8 query changes 13 of 1200 picks, where the keys'
 * own 2-bit quantization changes 178 against float32 keys (test/packed-int.test.ts).
 *
 * scratch: qHeads * d / 2 + 2 * qHeads + 19 * d + 16 floats, 16-byte aligned (the tile, the integer
 * queries, the group's scales and mins, a folded query, steps and biases, four vectors of sums;
 * src/backend/backend.ts packedIntScratch).
 */
export function scorePackedKeysInt(q: usize, qHeads: i32, d: i32, table: usize, pageTokens: i32, n: i32, bits: i32, scale: f32, out: usize, scratch: usize): void {
  scorePackedKeysIntStrided(q, qHeads, d, table, pageTokens, n, bits, scale, out, n, scratch)
}

/**
 * scorePackedKeysInt with head h's scores at out + h * outStride floats (ABI 1.11): a thread scoring a
 * range of the keys writes its part of each head's row in place.
 */
export function scorePackedKeysIntStrided(q: usize, qHeads: i32, d: i32, table: usize, pageTokens: i32, n: i32, bits: i32, scale: f32, out: usize, outStride: i32, scratch: usize): void {
  // one specialised body per code width (the unpacking and the i16 flush period are constants there)
  if (bits == 4) scoreInt(q, qHeads, d, table, pageTokens, n, 4, scale, out, outStride, scratch)
  else if (bits == 2) scoreInt(q, qHeads, d, table, pageTokens, n, 2, scale, out, outStride, scratch)
  else scoreInt(q, qHeads, d, table, pageTokens, n, 1, scale, out, outStride, scratch)
}

// @ts-ignore: decorator
@inline function scoreInt(q: usize, qHeads: i32, d: i32, table: usize, pageTokens: i32, n: i32, bits: i32, scale: f32, out: usize, outRow: i32, scratch: usize): void {
  const chunk = bits * 4
  const lineBytes = d * chunk
  const groupsPerPage = pageTokens / GROUP
  const metaOffset = <usize>(groupsPerPage * lineBytes)
  const units = d / UNIT
  const levels = queryLevels(bits, d)
  const twoBytes = RELAXED && bits == 4
  // i16 pair sums per unit: at most 2 * |Q byte| * max code; units summed before 32767 could be passed
  const flush = 32767 / (2 * (twoBytes ? 64 : 128) * ((1 << bits) - 1))
  const tile = scratch
  const words = tile + (<usize>(16 * d) << 2)
  // the group's scales and mins, then one folded query row (reused by each head in turn)
  const sc = words + (<usize>(qHeads * d) << 1)
  const mn = sc + (<usize>d << 2)
  const qs = mn + (<usize>d << 2)
  // (step, bias) per head, then four vectors of sums
  const stepBias = qs + (<usize>d << 2)
  const sums = stepBias + (<usize>qHeads << 3)
  const outStride = <usize>outRow << 2
  checkDotAdd(scratch)
  for (let g = 0; g * GROUP < n; g++) {
    // the group's line of codes and its (scale, min) pairs in its page (no touch() of the next group's
    // lines as scoreKeys does: it made the whole-cache int2 run slower here, the stream is sequential)
    const tg = g % groupsPerPage
    const page = groupPage(table, g, groupsPerPage)
    widenMeta(page + metaOffset + (<usize>(tg * d) << 2), d, scale, sc, mn)
    for (let h = 0; h < qHeads; h++) {
      foldQuantize(q + (<usize>(h * d) << 2), d, sc, mn, qs, levels, twoBytes, words + (<usize>(h * d) << 1), stepBias + (<usize>h << 3))
    }
    transposeGroup(page + <usize>(tg * lineBytes), chunk, bits, d, tile)
    const first = g * GROUP
    for (let h = 0; h < qHeads; h++) {
      const o = out + <usize>h * outStride + (<usize>first << 2)
      const vstep = v128.load32_splat(stepBias + (<usize>h << 3))
      const vbias = v128.load32_splat(stepBias + (<usize>h << 3) + 4)
      for (let e0 = 0; e0 < GROUP; e0 += 16) {
        const valid = min(16, n - first - e0)
        if (valid <= 0) break
        dotHalf(tile, units, e0 >> 2, words + (<usize>(h * d) << 1), d, twoBytes, flush, sums)
        const r0 = f32x4.mul(f32x4.convert_i32x4_s(v128.load(sums)), vstep)
        const r1 = f32x4.mul(f32x4.convert_i32x4_s(v128.load(sums, 16)), vstep)
        const r2 = f32x4.mul(f32x4.convert_i32x4_s(v128.load(sums, 32)), vstep)
        const r3 = f32x4.mul(f32x4.convert_i32x4_s(v128.load(sums, 48)), vstep)
        storeHalf(o + (<usize>e0 << 2), r0, r1, r2, r3, vbias, valid)
      }
    }
  }
}
