// The compute core's one module of SIMD helpers, shared by the cache kernels (assembly/kernels) and the
// model kernels (assembly/model). The relaxed build (asc --target relaxed) turns multiply-add into one
// fused relaxed_madd; the plain build keeps mul + add. Both stay within float32 rounding.

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

/** Largest of the four lanes (compare-selects: scores carry no NaN, so max's NaN rules are not needed). */
// @ts-ignore: decorator
@inline export function hmax(v: v128): f32 {
  const a = f32x4.extract_lane(v, 0), b = f32x4.extract_lane(v, 1), c = f32x4.extract_lane(v, 2), d = f32x4.extract_lane(v, 3)
  const ab = a > b ? a : b
  const cd = c > d ? c : d
  return ab > cd ? ab : cd
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
