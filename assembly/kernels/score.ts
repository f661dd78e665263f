import { dot, hsum, madd, load1, load4, rowAtK, elemOff, touch, HALF_SCALE } from './simd'
import { tile4x1, tile2x3, tile2x3d128, tile2x4d128, scoreTile, scorePairTile } from './tiles'

/**
 * out[h*n + i] = scale * (q_h . k_i) for the qHeads query heads of one KV head (a GQA group).
 * Keys stream once from memory; every head of the group scores a row while it sits in L1 (register
 * tiles in tiles.ts), so the cost is one pass over the cache whatever the group size.
 */
function scoreKeysOf<K>(q: usize, qHeads: i32, d: i32, table: usize, pageTokens: i32, n: i32, scale: f32, out: usize, outRow: i32): void {
  const vscale = f32x4.splat(scale)
  const outStride = <usize>outRow << 2
  const stride = <usize>d << alignof<K>()
  // query rows are float32 whatever the keys' element type (a float16 key row is half as long)
  const qRow = <usize>d << 2
  let i = 0
  if (qHeads <= 2) {
    // one or two heads: four rows at a time, two accumulators per row and head
    for (; i + 4 <= n; i += 4) {
      const k0 = rowAtK<K>(table, pageTokens, d, i)
      // rows of one page are contiguous: skip three divisions when the four share a page
      const samePage = (i % pageTokens) + 3 < pageTokens
      const k1 = samePage ? k0 + stride : rowAtK<K>(table, pageTokens, d, i + 1)
      const k2 = samePage ? k0 + 2 * stride : rowAtK<K>(table, pageTokens, d, i + 2)
      const k3 = samePage ? k0 + 3 * stride : rowAtK<K>(table, pageTokens, d, i + 3)
      if (qHeads == 1) tile4x1<K>(q, k0, k1, k2, k3, d, vscale, out + (<usize>i << 2))
      else scoreTile<K>(q, 2, k0, k1, k2, k3, d, vscale, out + (<usize>i << 2), outStride)
    }
  } else if (qHeads == 3) {
    // A group of three: two rows at a time against the three heads, each row read front to back.
    // The group's arithmetic is slower than memory: touch() first issues one load per line of both
    // rows, so all their misses are in flight at once before the multiply-adds need them. Measured on
    // the 2-core EPYC: touching just the two rows in use beats touching 4 to 64 rows, in use or ahead
    // (group of 3: 0.69 of memory.copy with blocks of 16 rows, about 1.0 with the pair).
    for (; i + 2 <= n; i += 2) {
      const k0 = rowAtK<K>(table, pageTokens, d, i)
      const k1 = (i % pageTokens) + 1 < pageTokens ? k0 + stride : rowAtK<K>(table, pageTokens, d, i + 1)
      touch(k0, stride)
      touch(k1, stride)
      // head size 128 (the common one) has tiles with constant query offsets: fewer address computations
      if (d == 128) tile2x3d128<K>(q, k0, k1, scale, out + (<usize>i << 2), outStride)
      else tile2x3<K>(q, q + qRow, q + 2 * qRow, k0, k1, d, scale, out + (<usize>i << 2), outStride)
    }
  } else {
    // four or more heads: two rows at a time against four heads, touched as above
    for (; i + 2 <= n; i += 2) {
      const k0 = rowAtK<K>(table, pageTokens, d, i)
      const k1 = (i % pageTokens) + 1 < pageTokens ? k0 + stride : rowAtK<K>(table, pageTokens, d, i + 1)
      touch(k0, stride)
      touch(k1, stride)
      if (qHeads == 4 && d == 128) tile2x4d128<K>(q, k0, k1, scale, out + (<usize>i << 2), outStride)
      else scorePairTile<K>(q, qHeads, k0, k1, d, scale, out + (<usize>i << 2), outStride)
    }
  }
  for (; i < n; i++) {
    const k = rowAtK<K>(table, pageTokens, d, i)
    for (let h = 0; h < qHeads; h++) {
      store<f32>(out + <usize>h * outStride + (<usize>i << 2), scale * dotK<K>(q + (<usize>(h * d) << 2), k, d))
    }
  }
}

export function scoreKeys(q: usize, qHeads: i32, d: i32, table: usize, pageTokens: i32, n: i32, scale: f32, out: usize): void {
  scoreKeysOf<f32>(q, qHeads, d, table, pageTokens, n, scale, out, n)
}

/**
 * scoreKeys with head h's scores at out + h * outStride floats (ABI 1.11): a thread scoring a range of
 * the keys writes its part of each head's row in place.
 */
export function scoreKeysStrided(q: usize, qHeads: i32, d: i32, table: usize, pageTokens: i32, n: i32, scale: f32, out: usize, outStride: i32): void {
  scoreKeysOf<f32>(q, qHeads, d, table, pageTokens, n, scale, out, outStride)
}

// Queries scaled by 2^112 for scoreKeysF16 (static: kernels allocate nothing); up to qMax floats.
// Globals are per instance, memory is shared: each worker instance of the threads build points these at
// its own arena block (useThreadQueryScratch), so concurrent calls never share the buffer.
const QMAX = 16384
let qScaled: usize = memory.data(QMAX * 4, 16)
let qMax: i32 = QMAX

/**
 * Points this instance's scaled-query buffer of scoreKeysF16 at `ptr` (`floats` floats, 16-aligned, owned
 * by the caller): each worker instance of the threads build calls it once. Queries of more floats take
 * the widening path, with the same scores.
 */
export function useThreadQueryScratch(ptr: usize, floats: i32): void {
  qScaled = ptr
  qMax = floats
}

/**
 * scoreKeys over float16 key pages, read in place at half the bytes. The halves' exponent rebias (a
 * multiply by 2^112 per key value) moves to the queries, once per call: keys are read as halfBits4's
 * 2^-112-scaled floats and the queries, copied to a static buffer, carry 2^112. Each product is the
 * same real number as with widened keys, so the scores are scoreKeys' over the widened rows, bit for
 * bit. Queries of 2^15 or more (2^112 times them could overflow) or more than qMax floats (QMAX, or
 * a worker's block) take the widening path instead, with the same result.
 */
export function scoreKeysF16(q: usize, qHeads: i32, d: i32, table: usize, pageTokens: i32, n: i32, scale: f32, out: usize): void {
  scoreKeysF16Strided(q, qHeads, d, table, pageTokens, n, scale, out, n)
}

/** scoreKeysF16 with head h's scores at out + h * outStride floats (ABI 1.11), as scoreKeysStrided */
export function scoreKeysF16Strided(q: usize, qHeads: i32, d: i32, table: usize, pageTokens: i32, n: i32, scale: f32, out: usize, outStride: i32): void {
  const len = qHeads * d
  let fits = len <= qMax
  if (fits) {
    const vs = f32x4.splat(HALF_SCALE)
    let c = 0
    let big = f32x4.splat(0)
    for (; c + 4 <= len; c += 4) {
      const x = v128.load(q + (<usize>c << 2))
      big = v128.or(big, f32x4.ge(f32x4.abs(x), f32x4.splat(32768)))
      v128.store(qScaled + (<usize>c << 2), f32x4.mul(x, vs))
    }
    for (; c < len; c++) {
      const x = load<f32>(q + (<usize>c << 2))
      if (!(Mathf.abs(x) < 32768)) fits = false
      store<f32>(qScaled + (<usize>c << 2), x * HALF_SCALE)
    }
    if (v128.any_true(big)) fits = false
  }
  if (fits) scoreKeysOf<i16>(qScaled, qHeads, d, table, pageTokens, n, scale, out, outStride)
  else scoreKeysOf<u16>(q, qHeads, d, table, pageTokens, n, scale, out, outStride)
}

/** q . k over d elements (the rows left over after the tiles), k of K */
// @ts-ignore: decorator
@inline function dotK<K>(q: usize, k: usize, d: i32): f32 {
  if (sizeof<K>() == 4) return dot(q, k, d)
  // dot's accumulators and order, over widened rows: the same sum as float32 rows holding these values
  let a0 = f32x4.splat(0)
  let a1 = f32x4.splat(0)
  let c = 0
  for (; c + 8 <= d; c += 8) {
    const o = <usize>c << 2
    a0 = madd(v128.load(q + o), load4<K>(k + elemOff<K>(c)), a0)
    a1 = madd(v128.load(q + o + 16), load4<K>(k + elemOff<K>(c + 4)), a1)
  }
  if (c + 4 <= d) {
    a0 = madd(v128.load(q + (<usize>c << 2)), load4<K>(k + elemOff<K>(c)), a0)
    c += 4
  }
  let s = hsum(f32x4.add(a0, a1))
  for (; c < d; c++) s += load<f32>(q + (<usize>c << 2)) * load1<K>(k + elemOff<K>(c))
  return s
}
