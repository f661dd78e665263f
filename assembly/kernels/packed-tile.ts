import { GROUP, codes16 } from './packed'
import { planar16 } from './packed-sign'

// A packed key group keeps each channel's 32 tokens side by side (src/cache/formats.ts: int4 byte e holds
// tokens e and e + 16 in its nibbles, int2 byte e tokens e, e + 8, e + 16, e + 24 in its crumbs); integer
// dot products need a token's channels side by side. transposeGroup rewrites one group once into a tile
// that every query head of the KV head then reads: vector (j, u) holds tokens 4j .. 4j + 3, each with
// the UNIT channels of unit u (u8 codes, four channels, for the relaxed build's int8 dots; u16 codes,
// two channels, for the plain build's i16 dots). The raw bytes are interleaved first and unpacked after,
// so each nibble or crumb is masked once: one `and` and one shift per 16 bytes. The relaxed build's int4
// path with the accumulating dot takes the `raw` tile instead: the interleaved bytes unsplit (half the
// stores), each vector's two nibble planes split in registers by the dot loop that loads it.
// The tile is unit-major (vector (j, u) at u * UNIT_BYTES + 16 j): a unit's eight vectors are stores at
// constant offsets from one pointer, and the dot loops step one pointer through the units, where a
// token-quad-major tile took an address computation per vector in both (V8 cannot fold an i32 add into
// the address, only a wasm load's constant offset).

// @ts-ignore: decorator
@inline export const RELAXED: bool = ASC_FEATURE_RELAXED_SIMD
// @ts-ignore: decorator
@inline export const UNIT: i32 = RELAXED ? 4 : 2
/** bytes of one unit's vectors in the tile: GROUP / 4 token quads of 16 bytes */
// @ts-ignore: decorator
@inline export const UNIT_BYTES: i32 = GROUP * 4
/**
 * bytes of one unit in the relaxed build's raw int4 tile (transposeGroup's `raw`): four vectors whose low
 * nibbles are token quads 0..3 and high nibbles quads 4..7, split by the dot loop in registers
 */
// @ts-ignore: decorator
@inline export const RAW_BYTES: i32 = GROUP * 2

// int4, relaxed: 4 channels' 16 raw bytes -> 4 vectors of 4 tokens x 4 channels (raw bytes), whose low
// nibbles are token quads 0..3 and high nibbles quads 4..7 (16 tokens later)
// @ts-ignore: decorator
@inline function int4Unit(p: usize, t: usize, raw: bool): void {
  const a = v128.load(p), b = v128.load(p, 16), c = v128.load(p, 32), e = v128.load(p, 48)
  const abL = i8x16.shuffle(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23)
  const abH = i8x16.shuffle(a, b, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31)
  const cdL = i8x16.shuffle(c, e, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23)
  const cdH = i8x16.shuffle(c, e, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31)
  const m = i8x16.splat(15)
  const r0 = i8x16.shuffle(abL, cdL, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23)
  const r1 = i8x16.shuffle(abL, cdL, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31)
  const r2 = i8x16.shuffle(abH, cdH, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23)
  const r3 = i8x16.shuffle(abH, cdH, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31)
  if (raw) {
    v128.store(t, r0)
    v128.store(t, r1, 16)
    v128.store(t, r2, 32)
    v128.store(t, r3, 48)
  } else nibbles(t, r0, r1, r2, r3, m)
}

// r0 .. r3 (token quads 0 .. 3 in their low nibbles, 4 .. 7 in their high ones) as the unit's 8 vectors
// @ts-ignore: decorator
@inline function nibbles(t: usize, r0: v128, r1: v128, r2: v128, r3: v128, m: v128): void {
  v128.store(t, v128.and(r0, m))
  v128.store(t, highNibbles(r0, m), 64)
  v128.store(t, v128.and(r1, m), 16)
  v128.store(t, highNibbles(r1, m), 80)
  v128.store(t, v128.and(r2, m), 32)
  v128.store(t, highNibbles(r2, m), 96)
  v128.store(t, v128.and(r3, m), 48)
  v128.store(t, highNibbles(r3, m), 112)
}

// high nibbles by a 16-bit shift and the mask (it drops what crosses in from the next byte; in the plain
// build's u16 lanes nothing does): V8 lowers an 8-bit shift to the 16-bit one plus a byte mask it builds
// each time (five x64 instructions), where the hoisted mask makes it two
// @ts-ignore: decorator
@inline function highNibbles(r: v128, m: v128): v128 {
  return RELAXED ? v128.and(i16x8.shr_u(r, 4), m) : i16x8.shr_u(r, 4)
}

// int2, relaxed: 4 channels' 8 raw bytes (two loads) -> 8 vectors of 4 tokens x 4 channels
// @ts-ignore: decorator
@inline function int2Unit(p: usize, t: usize): void {
  const ab = v128.load(p), cd = v128.load(p, 16)
  // two rounds of byte unpacks (one instruction each, where a four-way gather is a few):
  // a c and b d interleaved, then those: bytes 0..3 and 4..7 of the four channels, a b c d per byte
  const ac = i8x16.shuffle(ab, cd, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23)
  const bd = i8x16.shuffle(ab, cd, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31)
  const r0 = i8x16.shuffle(ac, bd, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23)
  const r1 = i8x16.shuffle(ac, bd, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31)
  crumbs(t, r0, r1, i8x16.splat(3))
}

// crumb s of raw bytes 0..3 (r0) and 4..7 (r1): tokens 8s + 0..3 and 8s + 4..7, token quads 2s and 2s + 1.
// A 16-bit shift for byte lanes too: the mask drops what crosses in from the next byte, where an 8-bit
// shift is two x86 instructions (no byte shifts there) before the mask's third.
// @ts-ignore: decorator
@inline function crumbs(t: usize, r0: v128, r1: v128, m: v128): void {
  v128.store(t, v128.and(r0, m))
  v128.store(t, v128.and(r1, m), 16)
  v128.store(t, v128.and(i16x8.shr_u(r0, 2), m), 32)
  v128.store(t, v128.and(i16x8.shr_u(r1, 2), m), 48)
  v128.store(t, v128.and(i16x8.shr_u(r0, 4), m), 64)
  v128.store(t, v128.and(i16x8.shr_u(r1, 4), m), 80)
  v128.store(t, v128.and(i16x8.shr_u(r0, 6), m), 96)
  v128.store(t, v128.and(i16x8.shr_u(r1, 6), m), 112)
}

// int4, plain: 2 channels' raw bytes -> i16 pairs of raw bytes -> 8 vectors of 4 tokens x 2 channels
// @ts-ignore: decorator
@inline function int4Pair(p: usize, t: usize): void {
  const a = v128.load(p), b = v128.load(p, 16)
  const abL = i8x16.shuffle(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23)
  const abH = i8x16.shuffle(a, b, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31)
  const m = i16x8.splat(15)
  const r0 = i16x8.extend_low_i8x16_u(abL), r1 = i16x8.extend_high_i8x16_u(abL)
  const r2 = i16x8.extend_low_i8x16_u(abH), r3 = i16x8.extend_high_i8x16_u(abH)
  nibbles(t, r0, r1, r2, r3, m)
}

// int2, plain: 2 channels' 8 raw bytes (one load) -> 8 vectors of 4 tokens x 2 channels
// @ts-ignore: decorator
@inline function int2Pair(p: usize, t: usize): void {
  const ab = i8x16.swizzle(v128.load(p), i8x16(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15))
  const r0 = i16x8.extend_low_i8x16_u(ab)
  crumbs(t, r0, i16x8.extend_high_i8x16_u(ab), i16x8.splat(3))
}

/**
 * 16 bytes each of four channels (a, b, c, e) interleaved token-major as four vectors at t: byte i of the
 * four, then byte i + 1 ... (vector x: bytes 4x .. 4x + 3 of each channel)
 */
// @ts-ignore: decorator
@inline function interleave4(a: v128, b: v128, c: v128, e: v128, t: usize): void {
  const abL = i8x16.shuffle(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23)
  const abH = i8x16.shuffle(a, b, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31)
  const cdL = i8x16.shuffle(c, e, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23)
  const cdH = i8x16.shuffle(c, e, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31)
  v128.store(t, i8x16.shuffle(abL, cdL, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23))
  v128.store(t, i8x16.shuffle(abL, cdL, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31), 16)
  v128.store(t, i8x16.shuffle(abH, cdH, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23), 32)
  v128.store(t, i8x16.shuffle(abH, cdH, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31), 48)
}

/**
 * 16 codes (u8 lanes) each of UNIT channels as token quads at t: the relaxed build's four channels as
 * bytes (interleave4), the plain build's two (a, b) as u16 lanes
 */
// @ts-ignore: decorator
@inline function storeCodes(a: v128, b: v128, c: v128, e: v128, t: usize): void {
  if (RELAXED) return interleave4(a, b, c, e, t)
  const abL = i8x16.shuffle(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23)
  const abH = i8x16.shuffle(a, b, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31)
  v128.store(t, i16x8.extend_low_i8x16_u(abL))
  v128.store(t, i16x8.extend_high_i8x16_u(abL), 16)
  v128.store(t, i16x8.extend_low_i8x16_u(abH), 32)
  v128.store(t, i16x8.extend_high_i8x16_u(abH), 48)
}

// any width through codes16 (int1): 16 tokens of UNIT channels at a time, token quads from e0 / 4 at t4
// @ts-ignore: decorator
@inline function anyUnit(p: usize, chunk: i32, bits: i32, t: usize): void {
  for (let e0 = 0; e0 < GROUP; e0 += 16) {
    const a = codes16(p, bits, e0)
    const b = codes16(p + <usize>chunk, bits, e0)
    const c = RELAXED ? codes16(p + <usize>(2 * chunk), bits, e0) : a
    const e = RELAXED ? codes16(p + <usize>(3 * chunk), bits, e0) : a
    storeCodes(a, b, c, e, t + (<usize>e0 << 2))
  }
}

/**
 * One group's codes (`bits`-bit chunks of `chunk` bytes per channel at `codes`, d channels) as the tile
 * (d / UNIT units of UNIT_BYTES); raw (relaxed int4 only, a constant): units of RAW_BYTES, nibbles unsplit.
 */
// @ts-ignore: decorator
@inline export function transposeGroup(codes: usize, chunk: i32, bits: i32, d: i32, tile: usize, raw: bool): void {
  // one pointer each through the codes and the tile (V8 multiplied u by the strides every unit)
  let p = codes
  let t = tile
  const end = codes + <usize>(d * chunk)
  for (; p < end; p += <usize>(UNIT * chunk), t += <usize>(raw ? RAW_BYTES : UNIT_BYTES)) {
    if (bits == 4) {
      if (RELAXED) int4Unit(p, t, raw)
      else int4Pair(p, t)
    } else if (bits == 2) {
      if (RELAXED) int2Unit(p, t)
      else int2Pair(p, t)
    } else anyUnit(p, chunk, bits, t)
  }
}

/**
 * Tokens e0 .. e0 + 31 (e0 a multiple of 32) of a group of any size (`bits`-bit planar chunks of `chunk`
 * bytes a channel at `codes`, d channels) as the tile transposeGroup writes for a 32-token group (not
 * raw): each 16 tokens of UNIT channels through planar16, then interleaved as anyUnit does. The path for
 * groups of 64 and 128 where interleaveGroup's is not taken (the plain build, int1, an engine without the
 * accumulating dot).
 */
// @ts-ignore: decorator
@inline export function transposeTile(codes: usize, chunk: i32, bits: i32, d: i32, tile: usize, e0: i32): void {
  let p = codes
  let t = tile
  const end = codes + <usize>(d * chunk)
  for (; p < end; p += <usize>(UNIT * chunk), t += <usize>UNIT_BYTES) {
    for (let h = 0; h < GROUP; h += 16) {
      const a = planar16(p, bits, chunk, e0 + h)
      const b = planar16(p + <usize>chunk, bits, chunk, e0 + h)
      const c = RELAXED ? planar16(p + <usize>(2 * chunk), bits, chunk, e0 + h) : a
      const e = RELAXED ? planar16(p + <usize>(3 * chunk), bits, chunk, e0 + h) : a
      storeCodes(a, b, c, e, t + (<usize>h << 2))
    }
  }
}

/**
 * The relaxed build's raw tile of a whole group of 64 or 128 tokens (chunk bytes a channel, a multiple
 * of 16; d channels at `codes`): vector (x, u) at graw + u * 4 chunk + 16 x holds byte positions
 * 4x .. 4x + 3 of unit u's four channels, unsplit. A byte of a planar chunk holds one token of each
 * 32-token tile of the group (int2 in a group of 128: tiles 0 .. 3 in its four slots), so the bytes are
 * interleaved once a group and each tile's codes are split out of them by the dot loop (packed-int.ts
 * dotSubPair), where a tile's own transpose interleaved the same bytes once a tile.
 */
// @ts-ignore: decorator
@inline export function interleaveGroup(codes: usize, chunk: i32, d: i32, graw: usize): void {
  let p = codes
  let t = graw
  const end = codes + <usize>(d * chunk)
  const c2 = <usize>(2 * chunk)
  const c3 = <usize>(3 * chunk)
  for (; p < end; p += <usize>(4 * chunk)) {
    for (let x = 0; x < chunk; x += 16, t += 64) {
      const q = p + <usize>x
      interleave4(v128.load(q), v128.load(q + <usize>chunk), v128.load(q + c2), v128.load(q + c3), t)
    }
  }
}
