// The compute core's one module of SIMD helpers, shared by the cache kernels (assembly/kernels) and the
// model kernels (assembly/model). The relaxed build (asc --target relaxed) turns multiply-add into one
// fused relaxed_madd; the plain build keeps mul + add. Both stay within float32 rounding.

/**
 * 1 in a build compiled with relaxed SIMD (asc --target relaxed, relaxed-threads), else 0: the loader
 * checks that a module given for one build is that build, so the build it reports is the one that runs.
 */
export function relaxedSimd(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 1 : 0
}

// @ts-ignore: decorator
@inline export function madd(a: v128, b: v128, acc: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, acc)
  return f32x4.add(f32x4.mul(a, b), acc)
}

/** Sum of the four lanes. */
// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  const t = f32x4.add(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1))
  return f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1)
}

/**
 * Largest of the four lanes (no NaN; of +0 and -0 either may come back) in two pmax steps: compare-selects
 * become branches in V8, which random lanes mispredict
 */
// @ts-ignore: decorator
@inline export function laneMax(m: v128): f32 {
  const a = f32x4.pmax(m, v128.shuffle<f32>(m, m, 2, 3, 0, 1))
  return f32x4.extract_lane(f32x4.pmax(a, v128.shuffle<f32>(a, a, 1, 0, 3, 2)), 0)
}

/** [sum(a), sum(b), sum(c), sum(d)]: four horizontal sums at once (a 4x4 transpose folded into adds). */
// @ts-ignore: decorator
@inline export function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(v128.shuffle<f32>(a, b, 0, 4, 1, 5), v128.shuffle<f32>(a, b, 2, 6, 3, 7))
  const cd = f32x4.add(v128.shuffle<f32>(c, d, 0, 4, 1, 5), v128.shuffle<f32>(c, d, 2, 6, 3, 7))
  return f32x4.add(v128.shuffle<f32>(ab, cd, 0, 1, 4, 5), v128.shuffle<f32>(ab, cd, 2, 3, 6, 7))
}

/** Byte address of row i of a paged [n][d] float stream (table: int32 byte pointers, one per page). */
// @ts-ignore: decorator
@inline export function rowAt(table: usize, pageTokens: i32, d: i32, i: i32): usize {
  const p = i / pageTokens
  return <usize>load<i32>(table + (<usize>p << 2)) + (<usize>((i - p * pageTokens) * d) << 2)
}

/** q . k over d floats: two vector accumulators to halve the add dependency chain, scalar tail. */
// @ts-ignore: decorator
@inline export function dot(q: usize, k: usize, d: i32): f32 {
  let a0 = f32x4.splat(0)
  let a1 = f32x4.splat(0)
  let c = 0
  for (; c + 8 <= d; c += 8) {
    const o = <usize>c << 2
    a0 = madd(v128.load(q + o), v128.load(k + o), a0)
    a1 = madd(v128.load(q + o + 16), v128.load(k + o + 16), a1)
  }
  if (c + 4 <= d) {
    const o = <usize>c << 2
    a0 = madd(v128.load(q + o), v128.load(k + o), a0)
    c += 4
  }
  let s = hsum(f32x4.add(a0, a1))
  for (; c < d; c++) s += load<f32>(q + (<usize>c << 2)) * load<f32>(k + (<usize>c << 2))
  return s
}


/**
 * Reads one word per 64-byte line of the row [p, p + bytes): independent loads that pull the row into
 * L1 with many misses in flight, before arithmetic-heavy loops use it. wasm has no prefetch
 * instruction, and while a multiply-add loop fills the out-of-order window the hardware keeps few
 * misses outstanding, so without this the compute-bound kernels fetch memory about one line at a time.
 * The sum goes to a global so the loads are not optimised away.
 */
export let touchSink: i32 = 0
// @ts-ignore: decorator
@inline export function touch(p: usize, bytes: usize): void {
  let s: i32 = load<i32>(p + bytes - 4)
  for (let o: usize = 0; o < bytes; o += 64) s |= load<i32>(p + o)
  touchSink |= s
}

// ---- Element types of KV rows: f32, or u16 holding IEEE 754 binary16 (float16 pages, widened here) ----
// Kernels over KV rows are generic in K (f32 or u16); every read of a key or value row goes through
// load4<K>/load1<K>, so a float16 page is read in place at half the bytes, never copied to float32.

/** byte offset of element c of a row of K */
// @ts-ignore: decorator
@inline export function elemOff<K>(c: i32): usize {
  return <usize>c << alignof<K>()
}

/** Byte address of row i of a paged [n][d] stream of K (table: int32 byte pointers, one per page). */
// @ts-ignore: decorator
@inline export function rowAtK<K>(table: usize, pageTokens: i32, d: i32, i: i32): usize {
  const p = i / pageTokens
  return <usize>load<i32>(table + (<usize>p << 2)) + (<usize>((i - p * pageTokens) * d) << alignof<K>())
}

// 2^112: rebiases a half's exponent (bias 15) shifted into a float's exponent field (bias 127). Multiplying
// (not adding to the bits) also makes half subnormals exact normals and keeps zero zero.
const HALF_REBIAS: f32 = 5.192296858534828e33

/**
 * Four halves (sign-extended to i32 lanes) as four floats, exactly for every finite half (each binary16
 * value is a binary32 value): sign, exponent and mantissa shifted into place (the sign extension fills
 * bits 28-31 with the sign; the mask keeps bit 31), then scaled by 2^112. Three operations: the KV
 * store never writes inf or NaN into float16 pages (floatToHalf saturates, the store refuses NaN), so
 * exponent 31 needs no path here; such a code would read as a finite 65536..131008.
 */
// @ts-ignore: decorator
@inline export function widenHalf4(h: v128): v128 {
  return f32x4.mul(v128.and(i32x4.shl(h, 13), i32x4.splat(0x8FFFE000)), f32x4.splat(HALF_REBIAS))
}

/**
 * Four halves as floats scaled by 2^-112 (exact, subnormal below 2^-126): widenHalf4 without its multiply,
 * for a kernel that scales its queries by 2^112 instead (every product q * k is then the same real
 * number, so the same float: scoreKeysF16 with queries below 2^15).
 */
// @ts-ignore: decorator
@inline export function halfBits4(h: v128): v128 {
  return v128.and(i32x4.shl(h, 13), i32x4.splat(0x8FFFE000))
}

/**
 * The halves in the even (low) i16 lanes of h, as halfBits4 reads them (2^-112 times their value, exact):
 * a (scale, min) float16 pair's first half, split from the pair without widening and shuffling both.
 */
// @ts-ignore: decorator
@inline export function evenHalfBits4(h: v128): v128 {
  return v128.and(i32x4.shr_s(i32x4.shl(h, 16), 3), i32x4.splat(0x8FFFE000))
}

/** The halves in the odd (high) i16 lanes of h, as halfBits4 reads them (the pair's second half). */
// @ts-ignore: decorator
@inline export function oddHalfBits4(h: v128): v128 {
  return v128.and(i32x4.shr_s(h, 3), i32x4.splat(0x8FFFE000))
}

/** 2^112, the factor halfBits4 leaves out */
export const HALF_SCALE: f32 = HALF_REBIAS

/**
 * Four consecutive elements of K at p as f32x4. K: f32; u16 (halves, widened); i16 (halves as
 * halfBits4 reads them, 2^-112 times their value: the caller's queries carry the 2^112).
 */
// @ts-ignore: decorator
@inline export function load4<K>(p: usize): v128 {
  if (sizeof<K>() == 4) return v128.load(p)
  if (isSigned<K>()) return halfBits4(v128.load16x4_s(p))
  return widenHalf4(v128.load16x4_s(p))
}

/** One half as a float (the scalar twin of widenHalf4). */
// @ts-ignore: decorator
@inline export function halfToFloat(h: u16): f32 {
  return reinterpret<f32>(((<i32><i16>h) << 13) & 0x8FFFE000) * HALF_REBIAS
}

/** One element of K at p as a float (as load4<K>: i16 halves come 2^-112 times their value). */
// @ts-ignore: decorator
@inline export function load1<K>(p: usize): f32 {
  if (sizeof<K>() == 4) return load<f32>(p)
  if (isSigned<K>()) return reinterpret<f32>(((<i32>load<i16>(p)) << 13) & 0x8FFFE000)
  return halfToFloat(load<u16>(p))
}

/** the largest finite half, 65504, and the quiet NaN */
export const HALF_MAX: u16 = 0x7BFF
export const HALF_NAN: u16 = 0x7E00

/**
 * A float as the nearest half, ties to even (IEEE 754 roundTiesToEven, as PyTorch's .half() and
 * llama.cpp's ggml_fp32_to_fp16), with one difference: what would round to +-inf (magnitudes from 65520
 * up, inf included) saturates to +-65504, so every stored half is finite and widenHalf4 stays three
 * operations. NaN gives HALF_NAN with the sign (the store refuses it before writing). Magnitudes below
 * 2^-14 become half subnormals (or zero). After F. Giesen's float_to_half_fast3_rtne.
 */
// @ts-ignore: decorator
@inline export function floatToHalf(f: f32): u16 {
  const u = reinterpret<u32>(f)
  const sign = (u >> 16) & 0x8000
  const a = u & 0x7FFFFFFF
  let o: u32
  if (a > 0x7F800000) o = HALF_NAN
  else if (a >= 0x477FF000) o = HALF_MAX
  else if (a < 0x38800000) {
    // below the smallest normal half: adding 0.5 leaves the rounded half subnormal (units of 2^-24) in the low bits
    o = reinterpret<u32>(reinterpret<f32>(a) + 0.5) - 0x3F000000
  } else {
    // rebias the exponent, then round the 13 dropped mantissa bits to nearest, ties to even
    o = (a + 0xC8000FFF + ((a >> 13) & 1)) >> 13
  }
  return <u16>(o | sign)
}
