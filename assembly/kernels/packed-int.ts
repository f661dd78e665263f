import { GROUP, groupPage, lane, storeHalf } from './packed'
import { RAW_BYTES, RELAXED, UNIT, UNIT_BYTES, interleaveGroup, transposeGroup, transposeTile } from './packed-tile'
import { HALF_SCALE, evenHalfBits4, hsum, laneMax, madd, oddHalfBits4 } from './simd'

// Key scoring on packed pages with integer dot products. The exact kernel (packed.ts) widens every code
// to a float lane and spends more instructions doing so than float32 scoring spends loading floats; here
// the codes stay integers and meet an integer query. KIVI's keys are quantized per channel over groups of
// 32 tokens, so within a group q . k_t = sum_c (q_c s_c) u_tc + sum_c q_c min_c: the scales fold into the
// query q' (per group and head, as the exact kernel does) and q' is rounded to integers Q with one float
// step per group and head, q' ~ step * Q. sum_c Q_c u_tc is then an integer dot product:
// - relaxed-SIMD build: Q as int8 for every code width, as ggml's q4_0 x q8_0 and q2_K x q8_K dot products
//   round the activations to int8 per block of 32 (ggml-quants.c, ggml_vec_dot_q4_0_q8_0). Where the
//   engine computes it correctly, i32x4.relaxed_dot_i8x16_i7x16_add_s (16 multiply-adds into i32 lanes)
//   with the codes as the 7-bit operand (int4/2/1 codes have their high bit clear, so every engine gives
//   the same sums); elsewhere i16x8.relaxed_dot_i8x16_i7x16_s, pair sums accumulated in i16 lanes for as
//   many channels as cannot overflow, then widened (i32x4.extadd_pairwise_i16x8_s);
// - plain SIMD build: i32x4.dot_i16x8_s on codes widened to i16 and Q as int16 (~15 bits).
// Both need a token's channels side by side: each group is transposed once into a tile that every query
// head of the KV head reuses (packed-tile.ts); the accumulating path reads each tile vector once for a
// block of up to BLOCK heads. The integer queries of a block of H heads are interleaved by unit (unit u's
// 4 bytes of head k at u * 4S + 4k, S = slots(H): H, or four for three heads in the relaxed build), so
// the dot loop reads them at constant offsets from one pointer, as it reads the tile.

/**
 * Query heads folded and scored together: four in the relaxed build (its tile takes half the scratch's
 * tile space, so the fold's rows go there), three in the plain one (its scratch holds three rows).
 */
// @ts-ignore: decorator
@inline const BLOCK: i32 = RELAXED ? 4 : 3

/** The largest |Q| of the integer query: the step is max |q'| / levels (docs: scorePackedKeysInt). */
// @ts-ignore: decorator
@inline export function queryLevels(bits: i32, d: i32): i32 {
  if (RELAXED) return 127
  // i32 sums of d products of |Q| <= levels and codes <= 2^bits - 1 cannot overflow
  return min(32767, i32.MAX_VALUE / (d * ((1 << bits) - 1)))
}

/**
 * A group's fold and rounding for query heads h0 .. h0 + H - 1 (H <= BLOCK, a constant after inlining; q, words
 * and stepBias point at head h0's): the group's (scale, min) float16 pairs (meta: d pairs) are widened once
 * for the H heads, with `scale` folded in (sc_c = scale * s_c, mn_c = scale * min_c); then per head
 * q'_c = q_c * sc_c (rows at qs), bias = sum_c q_c * mn_c, and Q_c = round(q'_c / step) with
 * step = max_c |q'_c| / levels (0 for a zero query), written as the dot products read them (relaxed: d
 * int8; plain: d int16; unit u of head k at words + u * 4 slots(H) + 4k), step and bias at stepBias + 8k.
 * folded (a constant): scale * 2^112 is finite (|scale| < 2^16), so one multiply by it widens a half and
 * applies the scale (the half's bits read as 2^-112 times its value, exactly, so the product is the one
 * rounding of s_c * scale that widening then scaling gives); otherwise the two multiplies.
 */
// @ts-ignore: decorator
@inline function foldHeads(q: usize, d: i32, meta: usize, scale: f32, folded: bool, qs: usize, H: i32, levels: i32, words: usize, stepBias: usize): void {
  const vscale = f32x4.splat(folded ? scale * HALF_SCALE : scale)
  const rebias = f32x4.splat(HALF_SCALE)
  // |x| as an and with a mask held in a register (V8 builds f32x4.abs's mask each time: three instructions)
  const absMask = i32x4.splat(0x7FFFFFFF)
  const row = <usize>d << 2
  let m0 = f32x4.splat(0), m1 = f32x4.splat(0), m2 = f32x4.splat(0), m3 = f32x4.splat(0)
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0)
  for (let c = 0; c < d; c += 4) {
    const o = <usize>c << 2
    // four (scale, min) pairs: scales in the even halves, mins in the odd ones (no widen-then-shuffle)
    const m8 = v128.load(meta + o)
    const sc = folded ? f32x4.mul(evenHalfBits4(m8), vscale) : f32x4.mul(vscale, f32x4.mul(evenHalfBits4(m8), rebias))
    const mn = folded ? f32x4.mul(oddHalfBits4(m8), vscale) : f32x4.mul(vscale, f32x4.mul(oddHalfBits4(m8), rebias))
    // pmax: one instruction (no NaN in a folded query), where max's NaN rules cost several
    const x0 = v128.load(q + o)
    const y0 = f32x4.mul(x0, sc)
    v128.store(qs + o, y0)
    m0 = f32x4.pmax(m0, v128.and(y0, absMask))
    b0 = madd(x0, mn, b0)
    if (H > 1) {
      const x1 = v128.load(q + row + o)
      const y1 = f32x4.mul(x1, sc)
      v128.store(qs + row + o, y1)
      m1 = f32x4.pmax(m1, v128.and(y1, absMask))
      b1 = madd(x1, mn, b1)
    }
    if (H > 2) {
      const x2 = v128.load(q + 2 * row + o)
      const y2 = f32x4.mul(x2, sc)
      v128.store(qs + 2 * row + o, y2)
      m2 = f32x4.pmax(m2, v128.and(y2, absMask))
      b2 = madd(x2, mn, b2)
    }
    if (H > 3) {
      const x3 = v128.load(q + 3 * row + o)
      const y3 = f32x4.mul(x3, sc)
      v128.store(qs + 3 * row + o, y3)
      m3 = f32x4.pmax(m3, v128.and(y3, absMask))
      b3 = madd(x3, mn, b3)
    }
  }
  if (RELAXED) {
    // the block's heads rounded in one pass, their int8 vectors interleaved by unit in registers
    const i0 = headStep(m0, b0, levels, stepBias)
    const i1 = H > 1 ? headStep(m1, b1, levels, stepBias + 8) : i0
    const i2 = H > 2 ? headStep(m2, b2, levels, stepBias + 16) : i0
    const i3 = H > 3 ? headStep(m3, b3, levels, stepBias + 24) : i0
    roundBlock(qs, row, d, i0, i1, i2, i3, H, words)
    return
  }
  roundQuery(qs, d, m0, b0, levels, words, H, stepBias)
  if (H > 1) roundQuery(qs + row, d, m1, b1, levels, words + 4, H, stepBias + 8)
  if (H > 2) roundQuery(qs + 2 * row, d, m2, b2, levels, words + 8, H, stepBias + 16)
  if (H > 3) roundQuery(qs + 3 * row, d, m3, b3, levels, words + 12, H, stepBias + 24)
}

/**
 * i32 slots a unit of a block of H query heads takes in the integer queries: H, but four for three heads
 * in the relaxed build (roundBlock writes four heads' units at once, the fourth a copy of the third's)
 */
// @ts-ignore: decorator
@inline function slots(H: i32): i32 {
  return RELAXED && H == 3 ? 4 : H
}

/** one head's step and bias to stepBias from its lanes' max |q'| and bias sums; 1 / step splatted */
// @ts-ignore: decorator
@inline function headStep(m: v128, bias: v128, levels: i32, stepBias: usize): v128 {
  const mx = laneMax(m)
  store<f32>(stepBias, mx / <f32>levels)
  store<f32>(stepBias, hsum(bias), 4)
  return f32x4.splat(mx > 0 ? <f32>levels / mx : 0)
}

/** 16 channels of a folded row at p as int8 Q_c = round(q'_c * inv) */
// @ts-ignore: decorator
@inline function int8x16(p: usize, inv: v128): v128 {
  const a = i16x8.narrow_i32x4_s(roundScaled(v128.load(p), inv), roundScaled(v128.load(p, 16), inv))
  const b = i16x8.narrow_i32x4_s(roundScaled(v128.load(p, 32), inv), roundScaled(v128.load(p, 48), inv))
  return i8x16.narrow_i16x8_s(a, b)
}

/**
 * The relaxed build's rounding of a block of H heads (rows at qs, row bytes apart; inverse steps i0 .. i3)
 * to int8, unit u of head k at words + u * 4 slots(H) + 4k: 16 channels of every head a step, the four
 * units of up to four heads put together by a 4x4 transpose of i32 lanes and written as four vectors,
 * where a lane store a unit and head took two instructions each
 */
// @ts-ignore: decorator
@inline function roundBlock(qs: usize, row: usize, d: i32, i0: v128, i1: v128, i2: v128, i3: v128, H: i32, words: usize): void {
  const unitStride = <usize>(4 * slots(H))
  let c = 0
  let w = words
  for (; c + 16 <= d; c += 16) {
    const o = qs + (<usize>c << 2)
    const A = int8x16(o, i0)
    if (H == 1) v128.store(w, A)
    else {
      const B = int8x16(o + row, i1)
      const abL = v128.shuffle<i32>(A, B, 0, 4, 1, 5)
      const abH = v128.shuffle<i32>(A, B, 2, 6, 3, 7)
      if (H == 2) {
        v128.store(w, abL)
        v128.store(w, abH, 16)
      } else {
        const C = int8x16(o + 2 * row, i2)
        const D = H > 3 ? int8x16(o + 3 * row, i3) : C
        const cdL = v128.shuffle<i32>(C, D, 0, 4, 1, 5)
        const cdH = v128.shuffle<i32>(C, D, 2, 6, 3, 7)
        v128.store(w, v128.shuffle<i64>(abL, cdL, 0, 2))
        v128.store(w, v128.shuffle<i64>(abL, cdL, 1, 3), 16)
        v128.store(w, v128.shuffle<i64>(abH, cdH, 0, 2), 32)
        v128.store(w, v128.shuffle<i64>(abH, cdH, 1, 3), 48)
      }
    }
    w += 4 * unitStride
  }
  // the last d % 16 channels a unit at a time
  for (; c < d; c += 4) {
    const o = qs + (<usize>c << 2)
    v128.store32_lane(w, bytes4(roundScaled(v128.load(o), i0)), 0)
    if (H > 1) v128.store32_lane(w, bytes4(roundScaled(v128.load(o + row), i1)), 0, 4)
    if (H > 2) v128.store32_lane(w, bytes4(roundScaled(v128.load(o + 2 * row), i2)), 0, 8)
    if (H > 3) v128.store32_lane(w, bytes4(roundScaled(v128.load(o + 3 * row), i3)), 0, 12)
    w += unitStride
  }
}

/**
 * one head's Q_c = round(q'_c / step) from its folded row qs and its lanes' max |q'| and bias sums; unit u
 * of it to words + u * 4H (its block of H heads interleaved by unit)
 */
// @ts-ignore: decorator
@inline function roundQuery(qs: usize, d: i32, m: v128, bias: v128, levels: i32, words: usize, H: i32, stepBias: usize): void {
  const mx = laneMax(m)
  const inv = f32x4.splat(mx > 0 ? <f32>levels / mx : 0)
  const stride = <usize>(4 * H)
  let c = 0
  let w = words
  if (RELAXED) {
    // 16 channels (four units) a vector: two narrowing steps for four vectors, then a lane store a unit
    for (; c + 16 <= d; c += 16) {
      const o = qs + (<usize>c << 2)
      const a = i16x8.narrow_i32x4_s(roundScaled(v128.load(o), inv), roundScaled(v128.load(o, 16), inv))
      const b = i16x8.narrow_i32x4_s(roundScaled(v128.load(o, 32), inv), roundScaled(v128.load(o, 48), inv))
      storeUnits(w, i8x16.narrow_i16x8_s(a, b), 4, H)
      w += 4 * stride
    }
  }
  for (; c < d; c += 4) {
    const Q = roundScaled(v128.load(qs + (<usize>c << 2)), inv)
    // relaxed: one unit of four int8; plain: two units of two int16
    if (RELAXED) storeUnits(w, bytes4(Q), 1, H)
    else storeUnits(w, i16x8.narrow_i32x4_s(Q, Q), 2, H)
    w += (RELAXED ? 1 : 2) * stride
  }
  store<f32>(stepBias, mx / <f32>levels)
  store<f32>(stepBias, hsum(bias), 4)
}

/** i32 lanes 0 .. n - 1 of v to p + i * 4H (H <= 4 a constant after inlining: the offsets are constants) */
// @ts-ignore: decorator
@inline function storeUnits(p: usize, v: v128, n: i32, H: i32): void {
  v128.store32_lane(p, v, 0)
  if (H == 1) {
    if (n > 1) v128.store32_lane(p, v, 1, 4)
    if (n > 2) v128.store32_lane(p, v, 2, 8)
    if (n > 3) v128.store32_lane(p, v, 3, 12)
  } else if (H == 2) {
    if (n > 1) v128.store32_lane(p, v, 1, 8)
    if (n > 2) v128.store32_lane(p, v, 2, 16)
    if (n > 3) v128.store32_lane(p, v, 3, 24)
  } else if (H == 3) {
    if (n > 1) v128.store32_lane(p, v, 1, 12)
    if (n > 2) v128.store32_lane(p, v, 2, 24)
    if (n > 3) v128.store32_lane(p, v, 3, 36)
  } else {
    if (n > 1) v128.store32_lane(p, v, 1, 16)
    if (n > 2) v128.store32_lane(p, v, 2, 32)
    if (n > 3) v128.store32_lane(p, v, 3, 48)
  }
}

/**
 * round-to-nearest-even of |x| <= 2^22 as i32 lanes: x + 1.5 * 2^23 leaves the integer in the low
 * mantissa bits (two instructions, where nearest + trunc_sat take about eight on x86)
 */
// @ts-ignore: decorator
@inline function roundToInt(x: v128): v128 {
  return i32x4.sub(f32x4.add(x, f32x4.splat(12582912)), i32x4.splat(0x4b400000))
}

/**
 * round(x * inv) as i32 lanes (|x * inv| <= 2^22): the relaxed build adds roundToInt's 1.5 * 2^23 in the
 * multiply's fused add (one instruction fewer a vector; the exact product is rounded once, so
 * |x * inv - Q| <= 1/2 as with the rounded product); the plain build multiplies, then rounds
 */
// @ts-ignore: decorator
@inline function roundScaled(x: v128, inv: v128): v128 {
  if (RELAXED) return i32x4.sub(f32x4.relaxed_madd(x, inv, f32x4.splat(12582912)), i32x4.splat(0x4b400000))
  return roundToInt(f32x4.mul(x, inv))
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
 * order) through `sums` (4 vectors), for one head (its unit u's word at words + u * stride): the paths
 * without the accumulating dot (the plain build, and the relaxed one where the engine gets it wrong).
 * flush: channel units summed in i16 lanes before widening.
 */
// @ts-ignore: decorator
@inline function dotHalf(tile: usize, units: i32, j0: i32, words: usize, stride: usize, flush: i32, sums: usize): void {
  const base = tile + (<usize>j0 << 4)
  let s0 = i32x4.splat(0), s1 = i32x4.splat(0), s2 = i32x4.splat(0), s3 = i32x4.splat(0)
  if (RELAXED) {
    // i16x8 dots, widened: where i32x4.relaxed_dot_i8x16_i7x16_add_s is wrong (Node 20.20's V8 returns
    // twice the dot and drops the accumulator on x86) or not yet checked
    for (let u0 = 0; u0 < units; u0 += flush) {
      const u1 = min(units, u0 + flush)
      let a0 = i16x8.splat(0), a1 = i16x8.splat(0), a2 = i16x8.splat(0), a3 = i16x8.splat(0)
      for (let u = u0; u < u1; u++) {
        const t = base + <usize>(u * UNIT_BYTES)
        const qh = v128.load32_splat(words + <usize>u * stride)
        a0 = i16x8.add(a0, i16x8.relaxed_dot_i8x16_i7x16_s(qh, v128.load(t)))
        a1 = i16x8.add(a1, i16x8.relaxed_dot_i8x16_i7x16_s(qh, v128.load(t, 16)))
        a2 = i16x8.add(a2, i16x8.relaxed_dot_i8x16_i7x16_s(qh, v128.load(t, 32)))
        a3 = i16x8.add(a3, i16x8.relaxed_dot_i8x16_i7x16_s(qh, v128.load(t, 48)))
      }
      s0 = i32x4.add(s0, i32x4.extadd_pairwise_i16x8_s(a0))
      s1 = i32x4.add(s1, i32x4.extadd_pairwise_i16x8_s(a1))
      s2 = i32x4.add(s2, i32x4.extadd_pairwise_i16x8_s(a2))
      s3 = i32x4.add(s3, i32x4.extadd_pairwise_i16x8_s(a3))
    }
  } else {
    for (let u = 0; u < units; u++) {
      const t = base + <usize>(u * UNIT_BYTES)
      const qw = v128.load32_splat(words + <usize>u * stride)
      s0 = i32x4.add(s0, i32x4.dot_i16x8_s(v128.load(t), qw))
      s1 = i32x4.add(s1, i32x4.dot_i16x8_s(v128.load(t, 16), qw))
      s2 = i32x4.add(s2, i32x4.dot_i16x8_s(v128.load(t, 32), qw))
      s3 = i32x4.add(s3, i32x4.dot_i16x8_s(v128.load(t, 48), qw))
    }
  }
  v128.store(sums, s0)
  v128.store(sums, s1, 16)
  v128.store(sums, s2, 32)
  v128.store(sums, s3, 48)
}

/**
 * The accumulating path (one i32x4.relaxed_dot_i8x16_i7x16_add_s a vector: 16 multiply-adds into i32
 * lanes, one VNNI vpdpbusd where the engine has it): the H heads of a block (H <= 4, a constant after
 * inlining; their int8 queries interleaved by unit from words) over token quads j and j + 1 of the tile
 * (raw: j and j + 4), each tile vector read once for all H heads (eight i32x4 sums at most, so they stay
 * in registers); one
 * pointer each steps through the tile's units and the query words, every load at a constant offset.
 * raw (a constant; int4's raw tile, packed-tile.ts): quads j and j + 4 are the low and high nibbles of one
 * vector, split here with an and and a 16-bit shift where the split tile took a second load.
 * sub (a constant; a 32-token tile of a group of 64 or 128, packed-tile.ts interleaveGroup): the two
 * quads' vectors at t0 and t0 + 16 hold raw bytes whose `bits`-bit slot at bit sh (a constant) is the
 * quad's codes; units unitBytes apart. Otherwise t0 is the tile's quad j and units are UNIT_BYTES (raw:
 * RAW_BYTES) apart.
 * Scores go out as step * sum + bias for `valid` tokens.
 */
// @ts-ignore: decorator
@inline function dotQuadPair(t0: usize, unitBytes: i32, units: i32, j: i32, words: usize, H: i32, raw: bool, sub: bool, bits: i32, sh: i32, stepBias: usize, out: usize, outStride: usize, valid: i32): void {
  let t = t0
  const end = t + <usize>(units * unitBytes)
  let w = words
  let a0 = i32x4.splat(0), a1 = i32x4.splat(0), b0 = i32x4.splat(0), b1 = i32x4.splat(0)
  let c0 = i32x4.splat(0), c1 = i32x4.splat(0), e0 = i32x4.splat(0), e1 = i32x4.splat(0)
  const mb: i32 = sub ? (1 << bits) - 1 : 15
  const m = i8x16.splat(<i8>mb)
  while (t < end) {
    // raw: quads j (low nibbles) and j + 4 (high) of one vector, split here (a load for an and and a shift)
    const R = v128.load(t)
    let T0 = R, T1 = R
    if (sub) {
      // a 16-bit shift, masked after (what crosses in from the next byte lies above the slot)
      T0 = v128.and(sh ? i16x8.shr_u(R, sh) : R, m)
      const S = v128.load(t, 16)
      T1 = v128.and(sh ? i16x8.shr_u(S, sh) : S, m)
    } else if (raw) {
      T0 = v128.and(R, m)
      T1 = v128.and(i16x8.shr_u(R, 4), m)
    } else T1 = v128.load(t, 16)
    const qa = v128.load32_splat(w)
    a0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(qa, T0, a0)
    a1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(qa, T1, a1)
    if (H > 1) {
      const qb = v128.load32_splat(w, 4)
      b0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(qb, T0, b0)
      b1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(qb, T1, b1)
    }
    if (H > 2) {
      const qc = v128.load32_splat(w, 8)
      c0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(qc, T0, c0)
      c1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(qc, T1, c1)
    }
    if (H > 3) {
      const qe = v128.load32_splat(w, 12)
      e0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(qe, T0, e0)
      e1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(qe, T1, e1)
    }
    t += <usize>unitBytes
    w += <usize>(4 * slots(H))
  }
  // raw: the second quad's tokens are 16 after the first's, else 4
  const gap = raw ? 16 : 4
  const o = out + (<usize>j << 4)
  storeSums(o, a0, a1, gap, stepBias, valid)
  if (H > 1) storeSums(o + outStride, b0, b1, gap, stepBias + 8, valid)
  if (H > 2) storeSums(o + 2 * outStride, c0, c1, gap, stepBias + 16, valid)
  if (H > 3) storeSums(o + 3 * outStride, e0, e1, gap, stepBias + 24, valid)
}

// dotQuadPair for H heads of a block (a constant after this branch)
// @ts-ignore: decorator
@inline function dotHeads(t0: usize, unitBytes: i32, units: i32, j: i32, w: usize, H: i32, raw: bool, sub: bool, bits: i32, sh: i32, sb: usize, o: usize, outStride: usize, valid: i32): void {
  if (H == 4) dotQuadPair(t0, unitBytes, units, j, w, 4, raw, sub, bits, sh, sb, o, outStride, valid)
  else if (H == 3) dotQuadPair(t0, unitBytes, units, j, w, 3, raw, sub, bits, sh, sb, o, outStride, valid)
  else if (H == 2) dotQuadPair(t0, unitBytes, units, j, w, 2, raw, sub, bits, sh, sb, o, outStride, valid)
  else dotQuadPair(t0, unitBytes, units, j, w, 1, raw, sub, bits, sh, sb, o, outStride, valid)
}

/**
 * Token quads j and j + 1 of tile k (tokens 32k .. 32k + 31) of a group of 64 or 128 tokens whose raw
 * bytes interleaveGroup wrote at graw (chunk bytes a channel, units 4 * chunk bytes apart): token quad q
 * of the tile is position quad ((32k + 4q) % chunk) / 4 of the raw tile, in slot (32k + 4q) / chunk of
 * its bytes (both quads of a pair share the slot: chunk is a multiple of 16). The slot's shift is made a
 * constant (a variable 16-bit shift is three x64 instructions in V8, a constant one).
 */
// @ts-ignore: decorator
@inline function dotSubPair(graw: usize, chunk: i32, bits: i32, k: i32, j: i32, units: i32, w: usize, H: i32, sb: usize, o: usize, outStride: usize, valid: i32): void {
  const unitBytes = 4 * chunk
  const e = 32 * k + 4 * j
  const t0 = graw + (<usize>(e % chunk) << 2)
  const slot = e / chunk
  if (bits == 4) {
    if (slot == 0) dotHeads(t0, unitBytes, units, j, w, H, false, true, 4, 0, sb, o, outStride, valid)
    else dotHeads(t0, unitBytes, units, j, w, H, false, true, 4, 4, sb, o, outStride, valid)
  } else if (slot == 0) dotHeads(t0, unitBytes, units, j, w, H, false, true, 2, 0, sb, o, outStride, valid)
  else if (slot == 1) dotHeads(t0, unitBytes, units, j, w, H, false, true, 2, 2, sb, o, outStride, valid)
  else if (slot == 2) dotHeads(t0, unitBytes, units, j, w, H, false, true, 2, 4, sb, o, outStride, valid)
  else dotHeads(t0, unitBytes, units, j, w, H, false, true, 2, 6, sb, o, outStride, valid)
}

/**
 * A 32-token tile's scores through the accumulating path: every head block over the tile's four pairs of
 * token quads (raw, a constant: quads j and j + 4, else 2j and 2j + 1); out at the tile's first token,
 * `left` tokens of the stream from there. sub (a constant): tile k of a group of 64 or 128 tokens, read
 * from the group's raw tile at `tile` (dotSubPair; chunk and bits the group's).
 */
function dotGroup(tile: usize, units: i32, words: usize, d: i32, qHeads: i32, raw: bool, sub: bool, chunk: i32, bits: i32, k: i32, stepBias: usize, out: usize, outStride: usize, left: i32): void {
  for (let h0 = 0; h0 < qHeads; h0 += BLOCK) {
    const H = min(BLOCK, qHeads - h0)
    const w = words + <usize>(h0 * d)
    const sb = stepBias + (<usize>h0 << 3)
    const o = out + <usize>h0 * outStride
    for (let i = 0; i < 4; i++) {
      const j = raw ? i : 2 * i
      const valid = left - 4 * j
      if (valid <= 0) break
      // (raw and sub made constants for dotQuadPair's bodies: one call a tile, so dotGroup is not inlined)
      if (sub) dotSubPair(tile, chunk, bits, k, j, units, w, H, sb, o, outStride, valid)
      else if (raw) dotHeads(tile + (<usize>j << 4), RAW_BYTES, units, j, w, H, true, false, 0, 0, sb, o, outStride, valid)
      else dotHeads(tile + (<usize>j << 4), UNIT_BYTES, units, j, w, H, false, false, 0, 0, sb, o, outStride, valid)
    }
  }
}

/**
 * two token quads' integer sums as step * sum + bias (stepBias: the head's step, bias): s0's tokens from
 * out, s1's `gap` tokens later (a constant), the first `valid` tokens from out of those
 */
// @ts-ignore: decorator
@inline function storeSums(out: usize, s0: v128, s1: v128, gap: i32, stepBias: usize, valid: i32): void {
  const step = v128.load32_splat(stepBias)
  const bias = v128.load32_splat(stepBias + 4)
  const r0 = f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(s0), step), bias)
  const r1 = f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(s1), step), bias)
  const o1 = out + (<usize>gap << 2)
  if (valid >= gap + 4) {
    v128.store(out, r0)
    v128.store(o1, r1)
    return
  }
  for (let t = 0; t < min(4, valid); t++) store<f32>(out + (<usize>t << 2), lane(r0, t))
  for (let t = 0; t < valid - gap; t++) store<f32>(o1 + (<usize>t << 2), lane(r1, t))
}

/**
 * out[h*n + i] ~ scale * (q_h . k_i) for qHeads query heads over n packed keys of d channels (d a multiple
 * of 4; int `bits` = 4, 2 or 1 codes grouped along 32 tokens per channel; pages of pageTokens rows, a
 * multiple of 32), with integer dot products (see the top of this file).
 *
 * Error: against dequantizing the keys (k = s * u + min) and scoring in float64, for token t of group g
 * and head h, |out - exact| <= step_gh / 2 * sum_c u_tc + r, where step_gh = max_c |q'_c| / L (q' the
 * folded query scale * q_c * s_c of the group, L = queryLevels: 127 in the relaxed build,
 * min(32767, (2^31 - 1) / (d (2^bits - 1))) in the plain one) and r the float32 rounding
 * of the fold, of step * sum and of the bias (a few ulps of scale * sum_c |q_c k_tc|, as the exact kernel).
 *
 * Why that is fine for selection: the keys' own quantization error is up to s_c / 2 a channel, i.e. up
 * to sum_c |q'_c| / 2 = d mean|q'| / 2 in the score. The query's is at most step / 2 a channel, i.e.
 * step / 2 * sum_c u_tc = d mean(u) max|q'| / (2 L): the ratio of the two bounds is
 * (mean(u) / L) * (max|q'| / mean|q'|), and both errors have the same shape (a sum of d independent
 * roundings), so their typical sizes keep that ratio. With mean codes of about half the range and a
 * crest max/mean of a few, with the relaxed build's int8 query (L = 127): int2 ~0.02 to 0.1, int4 ~0.1
 * to 0.4 (its codes are 5x larger on average); with the plain build's int16 below 0.005. Added in
 * quadrature to the keys' own error, int4's 0.1-0.4 makes the score noise 0.5-8% larger, the price
 * ggml's q4_0 x q8_0 pays too; an int4 query of two bytes (L = 8191, until 2026-12-02) took a second
 * dot product a vector, about a third of the kernel's time. The ranking the integer scores give differs
 * from the exact kernel's only where two keys' scores are nearer than the keys' quantization already
 * blurs them: on the fixture model's keys (16 heads, 3 queries each, top 1/8) the int8 query reorders
 * far fewer keys than the keys' own quantization does against float32 keys (test/packed-int.test.ts).
 *
 * scratch: qHeads * d / 2 + 2 * qHeads + 19 * d + 16 floats, 16-byte aligned (the tile, the integer
 * queries, three heads' folded query rows (the relaxed build folds four in the tile's unused half), steps
 * and biases, four vectors of sums; src/backend/backend.ts packedIntScratch).
 */
export function scorePackedKeysInt(q: usize, qHeads: i32, d: i32, table: usize, pageTokens: i32, n: i32, bits: i32, scale: f32, out: usize, scratch: usize): void {
  scorePackedKeysIntStrided(q, qHeads, d, table, pageTokens, n, bits, scale, out, n, scratch)
}

/**
 * scorePackedKeysInt with head h's scores at out + h * outStride floats (ABI 1.11): a thread scoring a
 * range of the keys writes its part of each head's row in place.
 */
export function scorePackedKeysIntStrided(q: usize, qHeads: i32, d: i32, table: usize, pageTokens: i32, n: i32, bits: i32, scale: f32, out: usize, outStride: i32, scratch: usize): void {
  scorePackedKeysIntGroupStrided(q, qHeads, d, table, pageTokens, n, bits, GROUP, scale, out, outStride, scratch)
}

/**
 * scorePackedKeysIntStrided over keys in token groups of `group` = 32, 64 or 128 (KIVI's group_size;
 * pageTokens a multiple of it; layout src/cache/formats.ts PackedLayout). The fold and the rounding of
 * the query to integers (above) happen once a group, so with one step per group the error bound is
 * scorePackedKeysInt's with that group's step; the transpose and the dot products go by 32-token tiles
 * as before. A group of 128 folds a quarter as often as one of 32: the fold was 39% of int2's time at 32.
 * scratch: packedIntScratch(qHeads, d) + d * group / 8 floats (src/backend/backend.ts
 * packedIntScratch with the group), 16-byte aligned. ABI 1.15.
 */
export function scorePackedKeysIntGroupStrided(q: usize, qHeads: i32, d: i32, table: usize, pageTokens: i32, n: i32, bits: i32, group: i32, scale: f32, out: usize, outStride: i32, scratch: usize): void {
  // one specialised body per code width (the unpacking and the i16 flush period are constants there)
  if (bits == 4) scoreInt(q, qHeads, d, table, pageTokens, n, 4, group, scale, out, outStride, scratch)
  else if (bits == 2) scoreInt(q, qHeads, d, table, pageTokens, n, 2, group, scale, out, outStride, scratch)
  else scoreInt(q, qHeads, d, table, pageTokens, n, 1, group, scale, out, outStride, scratch)
}

// @ts-ignore: decorator
@inline function scoreInt(q: usize, qHeads: i32, d: i32, table: usize, pageTokens: i32, n: i32, bits: i32, group: i32, scale: f32, out: usize, outRow: i32, scratch: usize): void {
  const chunk = (group * bits) >> 3
  const lineBytes = d * chunk
  const groupsPerPage = pageTokens / group
  const metaOffset = <usize>(groupsPerPage * lineBytes)
  const units = d / UNIT
  const levels = queryLevels(bits, d)
  // i16 pair sums per unit: at most 2 * 128 * max code; units summed before 32767 could be passed
  const flush = 32767 / (2 * 128 * ((1 << bits) - 1))
  const tile = scratch
  const words = tile + (<usize>(16 * d) << 2)
  // the integer queries (int8 relaxed, int16 plain; wordBytes a head) in blocks of BLOCK heads from
  // words + h0 * wordBytes, interleaved by unit within a block
  const wordBytes = RELAXED ? d : 2 * d
  // room for three folded query rows, then (step, bias) per head, then four vectors of sums; the relaxed
  // build's rows (four) go in the tile's second half (its tile is 8d floats, written after the fold)
  const rows = words + (<usize>(qHeads * d) << 1)
  const qs = RELAXED ? tile + (<usize>(8 * d) << 2) : rows
  const stepBias = rows + (<usize>(3 * d) << 2)
  const sums = stepBias + (<usize>qHeads << 3)
  // a group of 64 or 128's raw tile (interleaveGroup: d * chunk bytes) after the sums
  const graw = sums + 64
  const outStride = <usize>outRow << 2
  checkDotAdd(scratch)
  // scale * 2^112 finite: the fold widens and scales the float16 pairs in one multiply
  const folded = isFinite<f32>(scale * HALF_SCALE)
  // groups of 64 and 128 on the accumulating path: raw bytes interleaved once a group (int1 and the
  // other paths transpose each 32-token tile through planar16)
  const whole = RELAXED && dotAdd > 0 && bits != 1
  for (let g = 0; g * group < n; g++) {
    // the group's line of codes and its (scale, min) pairs in its page (no touch() of the next group's
    // lines as scoreKeys does: it made the whole-cache int2 run slower here, the stream is sequential)
    const tg = g % groupsPerPage
    const page = groupPage(table, g, groupsPerPage)
    const meta = page + metaOffset + (<usize>(tg * d) << 2)
    for (let h0 = 0; h0 < qHeads; h0 += BLOCK) {
      const H = min(BLOCK, qHeads - h0)
      const qh = q + (<usize>(h0 * d) << 2)
      const w = words + <usize>(h0 * wordBytes)
      const sb = stepBias + (<usize>h0 << 3)
      if (BLOCK > 3 && H == 4) {
        if (folded) foldHeads(qh, d, meta, scale, true, qs, 4, levels, w, sb)
        else foldHeads(qh, d, meta, scale, false, qs, 4, levels, w, sb)
      } else if (H == 3) {
        if (folded) foldHeads(qh, d, meta, scale, true, qs, 3, levels, w, sb)
        else foldHeads(qh, d, meta, scale, false, qs, 3, levels, w, sb)
      } else if (H == 2) {
        if (folded) foldHeads(qh, d, meta, scale, true, qs, 2, levels, w, sb)
        else foldHeads(qh, d, meta, scale, false, qs, 2, levels, w, sb)
      } else if (folded) foldHeads(qh, d, meta, scale, true, qs, 1, levels, w, sb)
      else foldHeads(qh, d, meta, scale, false, qs, 1, levels, w, sb)
    }
    const first = g * group
    const codes = page + <usize>(tg * lineBytes)
    if (group == GROUP) {
      if (RELAXED && dotAdd > 0) {
        // int4: the raw tile, each vector's nibbles split in the dot loop
        if (bits == 4) {
          transposeGroup(codes, chunk, bits, d, tile, true)
          dotGroup(tile, units, words, d, qHeads, true, false, 0, 0, 0, stepBias, out + (<usize>first << 2), outStride, n - first)
        } else {
          transposeGroup(codes, chunk, bits, d, tile, false)
          dotGroup(tile, units, words, d, qHeads, false, false, 0, 0, 0, stepBias, out + (<usize>first << 2), outStride, n - first)
        }
        continue
      }
      transposeGroup(codes, chunk, bits, d, tile, false)
      dotTile(tile, units, words, wordBytes, qHeads, stepBias, flush, sums, out + (<usize>first << 2), outStride, n - first)
      continue
    }
    if (whole) interleaveGroup(codes, chunk, d, graw)
    // the group's 32-token tiles that hold keys
    for (let k = 0; k * GROUP < group && first + k * GROUP < n; k++) {
      const f = first + k * GROUP
      const o = out + (<usize>f << 2)
      if (whole) dotGroup(graw, units, words, d, qHeads, false, true, chunk, bits, k, stepBias, o, outStride, n - f)
      else {
        transposeTile(codes, chunk, bits, d, tile, k * GROUP)
        if (RELAXED && dotAdd > 0) dotGroup(tile, units, words, d, qHeads, false, false, 0, 0, 0, stepBias, o, outStride, n - f)
        else dotTile(tile, units, words, wordBytes, qHeads, stepBias, flush, sums, o, outStride, n - f)
      }
    }
  }
}

/**
 * A 32-token tile's scores without the accumulating dot (dotHalf: the plain build, and the relaxed one
 * where the engine gets it wrong): every head, 16 tokens at a time, `left` tokens of the stream from out.
 */
// @ts-ignore: decorator
@inline function dotTile(tile: usize, units: i32, words: usize, wordBytes: i32, qHeads: i32, stepBias: usize, flush: i32, sums: usize, out: usize, outStride: usize, left: i32): void {
  for (let h = 0; h < qHeads; h++) {
    const o = out + <usize>h * outStride
    const vstep = v128.load32_splat(stepBias + (<usize>h << 3))
    const vbias = v128.load32_splat(stepBias + (<usize>h << 3) + 4)
    for (let e0 = 0; e0 < GROUP; e0 += 16) {
      const valid = min(16, left - e0)
      if (valid <= 0) break
      // head h is head h % BLOCK of the block from h - h % BLOCK
      const k = h % BLOCK
      const hb = <usize>(4 * slots(min(BLOCK, qHeads - (h - k))))
      dotHalf(tile, units, e0 >> 2, words + <usize>((h - k) * wordBytes + 4 * k), hb, flush, sums)
      const r0 = f32x4.mul(f32x4.convert_i32x4_s(v128.load(sums)), vstep)
      const r1 = f32x4.mul(f32x4.convert_i32x4_s(v128.load(sums, 16)), vstep)
      const r2 = f32x4.mul(f32x4.convert_i32x4_s(v128.load(sums, 32)), vstep)
      const r3 = f32x4.mul(f32x4.convert_i32x4_s(v128.load(sums, 48)), vstep)
      storeHalf(o + (<usize>e0 << 2), r0, r1, r2, r3, vbias, valid)
    }
  }
}
