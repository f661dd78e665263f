import { madd, hsum4, load4, load1, elemOff } from './simd'

// Register tiles of dot products: several keys against one or two query heads at once, so every key
// vector loaded feeds two multiply-adds and every query vector four, with 4 to 8 independent accumulator
// chains to hide the add (or fused multiply-add) latency. Keys are given as row pointers, so the same
// tile serves contiguous pages and gathered index lists.

/** Scalar dot products of channels [c, d) for four keys (the d % 4 tail). */
function tail4<K>(q: usize, k0: usize, k1: usize, k2: usize, k3: usize, c: i32, d: i32): v128 {
  let t0: f32 = 0, t1: f32 = 0, t2: f32 = 0, t3: f32 = 0
  for (; c < d; c++) {
    const o = <usize>c << 2
    const qs = load<f32>(q + o)
    t0 += qs * load1<K>(k0 + elemOff<K>(c))
    t1 += qs * load1<K>(k1 + elemOff<K>(c))
    t2 += qs * load1<K>(k2 + elemOff<K>(c))
    t3 += qs * load1<K>(k3 + elemOff<K>(c))
  }
  let t = f32x4.splat(t0)
  t = f32x4.replace_lane(t, 1, t1)
  t = f32x4.replace_lane(t, 2, t2)
  return f32x4.replace_lane(t, 3, t3)
}

/** out[0..4] = scale * (q . k0..k3) for one query head. Two accumulators per key (c and c+4). */
// @ts-ignore: decorator
@inline export function tile4x1<K>(q: usize, k0: usize, k1: usize, k2: usize, k3: usize, d: i32, scale: v128, out: usize): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0)
  let e0 = f32x4.splat(0), e1 = f32x4.splat(0), e2 = f32x4.splat(0), e3 = f32x4.splat(0)
  let c = 0
  for (; c + 8 <= d; c += 8) {
    const o = <usize>c << 2
    const qa = v128.load(q + o)
    const qb = v128.load(q + o + 16)
    a0 = madd(qa, load4<K>(k0 + elemOff<K>(c)), a0)
    a1 = madd(qa, load4<K>(k1 + elemOff<K>(c)), a1)
    a2 = madd(qa, load4<K>(k2 + elemOff<K>(c)), a2)
    a3 = madd(qa, load4<K>(k3 + elemOff<K>(c)), a3)
    e0 = madd(qb, load4<K>(k0 + elemOff<K>(c + 4)), e0)
    e1 = madd(qb, load4<K>(k1 + elemOff<K>(c + 4)), e1)
    e2 = madd(qb, load4<K>(k2 + elemOff<K>(c + 4)), e2)
    e3 = madd(qb, load4<K>(k3 + elemOff<K>(c + 4)), e3)
  }
  if (c + 4 <= d) {
    const o = <usize>c << 2
    const qa = v128.load(q + o)
    a0 = madd(qa, load4<K>(k0 + elemOff<K>(c)), a0)
    a1 = madd(qa, load4<K>(k1 + elemOff<K>(c)), a1)
    a2 = madd(qa, load4<K>(k2 + elemOff<K>(c)), a2)
    a3 = madd(qa, load4<K>(k3 + elemOff<K>(c)), a3)
    c += 4
  }
  let r = hsum4(f32x4.add(a0, e0), f32x4.add(a1, e1), f32x4.add(a2, e2), f32x4.add(a3, e3))
  if (c < d) r = f32x4.add(r, tail4<K>(q, k0, k1, k2, k3, c, d))
  v128.store(out, f32x4.mul(r, scale))
}

/**
 * out[0..4] and (out + outStride)[0..4] = scale * dots of keys k0..k3 with query heads q and q + qStride:
 * eight accumulators, each key load shared by both heads.
 */
// @ts-ignore: decorator
@inline export function tile4x2<K>(q: usize, qStride: usize, k0: usize, k1: usize, k2: usize, k3: usize, d: i32, scale: v128, out: usize, outStride: usize): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0)
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0)
  const p = q + qStride
  let c = 0
  for (; c + 4 <= d; c += 4) {
    const o = <usize>c << 2
    const qa = v128.load(q + o)
    const qb = v128.load(p + o)
    const x0 = load4<K>(k0 + elemOff<K>(c))
    a0 = madd(qa, x0, a0)
    b0 = madd(qb, x0, b0)
    const x1 = load4<K>(k1 + elemOff<K>(c))
    a1 = madd(qa, x1, a1)
    b1 = madd(qb, x1, b1)
    const x2 = load4<K>(k2 + elemOff<K>(c))
    a2 = madd(qa, x2, a2)
    b2 = madd(qb, x2, b2)
    const x3 = load4<K>(k3 + elemOff<K>(c))
    a3 = madd(qa, x3, a3)
    b3 = madd(qb, x3, b3)
  }
  let r = hsum4(a0, a1, a2, a3)
  let s = hsum4(b0, b1, b2, b3)
  if (c < d) {
    r = f32x4.add(r, tail4<K>(q, k0, k1, k2, k3, c, d))
    s = f32x4.add(s, tail4<K>(p, k0, k1, k2, k3, c, d))
  }
  v128.store(out, f32x4.mul(r, scale))
  v128.store(out + outStride, f32x4.mul(s, scale))
}

/**
 * Scores of four key rows for qHeads heads: pairs of heads through tile4x2, an odd last head through
 * tile4x1. q rows are d floats apart; out rows (one per head) are outStride bytes apart.
 */
// @ts-ignore: decorator
@inline export function scoreTile<K>(q: usize, qHeads: i32, k0: usize, k1: usize, k2: usize, k3: usize, d: i32, scale: v128, out: usize, outStride: usize): void {
  const qStride = <usize>d << 2
  let h = 0
  for (; h + 2 <= qHeads; h += 2) {
    tile4x2<K>(q + <usize>h * qStride, qStride, k0, k1, k2, k3, d, scale, out + <usize>h * outStride, outStride)
  }
  if (h < qHeads) tile4x1<K>(q + <usize>h * qStride, k0, k1, k2, k3, d, scale, out + <usize>h * outStride)
}

/** Scalar dot products of channels [c, d) of one key with four query rows. */
function tailQ4<K>(q0: usize, q1: usize, q2: usize, q3: usize, k: usize, c: i32, d: i32): v128 {
  let t0: f32 = 0, t1: f32 = 0, t2: f32 = 0, t3: f32 = 0
  for (; c < d; c++) {
    const o = <usize>c << 2
    const ks = load1<K>(k + elemOff<K>(c))
    t0 += ks * load<f32>(q0 + o)
    t1 += ks * load<f32>(q1 + o)
    t2 += ks * load<f32>(q2 + o)
    t3 += ks * load<f32>(q3 + o)
  }
  let t = f32x4.splat(t0)
  t = f32x4.replace_lane(t, 1, t1)
  t = f32x4.replace_lane(t, 2, t2)
  return f32x4.replace_lane(t, 3, t3)
}

// The group tiles below are real (not inlined) functions on purpose: inlined into scoreKeys' large body,
// V8's register allocator kept their accumulators in stack slots (a load and a store per multiply-add);
// as small functions of their own, all accumulators stay in xmm registers. One call per 2 or 4 keys.

/**
 * Two keys against four query rows (q0..q3; repeat a row when fewer heads remain): eight accumulators.
 * Reads each key row front to back, one row after the other. Four channels a step: unrolled to eight,
 * V8 hoisted all loads to the top of the step and spilled accumulators. Stores lane h of the results
 * into head row h (rows outStride bytes apart, key 0 at out, key 1 at out + 4) for h < count.
 */
export function tile2x4<K>(q0: usize, q1: usize, q2: usize, q3: usize, k0: usize, k1: usize, d: i32, scale: f32, out: usize, outStride: usize, count: i32): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0)
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0)
  let c = 0
  for (; c + 4 <= d; c += 4) {
    const o = <usize>c << 2
    const x = load4<K>(k0 + elemOff<K>(c)), y = load4<K>(k1 + elemOff<K>(c))
    let qv = v128.load(q0 + o)
    a0 = madd(qv, x, a0); b0 = madd(qv, y, b0)
    qv = v128.load(q1 + o)
    a1 = madd(qv, x, a1); b1 = madd(qv, y, b1)
    qv = v128.load(q2 + o)
    a2 = madd(qv, x, a2); b2 = madd(qv, y, b2)
    qv = v128.load(q3 + o)
    a3 = madd(qv, x, a3); b3 = madd(qv, y, b3)
  }
  let r = hsum4(a0, a1, a2, a3)
  let s = hsum4(b0, b1, b2, b3)
  if (c < d) {
    r = f32x4.add(r, tailQ4<K>(q0, q1, q2, q3, k0, c, d))
    s = f32x4.add(s, tailQ4<K>(q0, q1, q2, q3, k1, c, d))
  }
  const vscale = f32x4.splat(scale)
  r = f32x4.mul(r, vscale)
  s = f32x4.mul(s, vscale)
  store<f32>(out, f32x4.extract_lane(r, 0))
  store<f32>(out + 4, f32x4.extract_lane(s, 0))
  if (count > 1) {
    store<f32>(out + outStride, f32x4.extract_lane(r, 1))
    store<f32>(out + outStride + 4, f32x4.extract_lane(s, 1))
  }
  if (count > 2) {
    store<f32>(out + 2 * outStride, f32x4.extract_lane(r, 2))
    store<f32>(out + 2 * outStride + 4, f32x4.extract_lane(s, 2))
  }
  if (count > 3) {
    store<f32>(out + 3 * outStride, f32x4.extract_lane(r, 3))
    store<f32>(out + 3 * outStride + 4, f32x4.extract_lane(s, 3))
  }
}

/**
 * tile2x4 for four consecutive heads of 128 channels (q rows 512 bytes apart): the query loads take
 * constant offsets from one address, so a step computes three addresses instead of six.
 */
export function tile2x4d128<K>(q: usize, k0: usize, k1: usize, scale: f32, out: usize, outStride: usize): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0)
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0)
  for (let o: usize = 0; o < 512; o += 16) {
    // key bytes advance at the element size's rate: half the query's for float16 rows
    const ko = o >> (2 - alignof<K>())
    const x = load4<K>(k0 + ko), y = load4<K>(k1 + ko)
    const qo = q + o
    let qv = v128.load(qo)
    a0 = madd(qv, x, a0); b0 = madd(qv, y, b0)
    qv = v128.load(qo, 512)
    a1 = madd(qv, x, a1); b1 = madd(qv, y, b1)
    qv = v128.load(qo, 1024)
    a2 = madd(qv, x, a2); b2 = madd(qv, y, b2)
    qv = v128.load(qo, 1536)
    a3 = madd(qv, x, a3); b3 = madd(qv, y, b3)
  }
  const vscale = f32x4.splat(scale)
  const r = f32x4.mul(hsum4(a0, a1, a2, a3), vscale)
  const s = f32x4.mul(hsum4(b0, b1, b2, b3), vscale)
  // [r0, s0, r1, s1] and [r2, s2, r3, s3]: key pairs per head, one 8-byte store each
  const lo = v128.shuffle<f32>(r, s, 0, 4, 1, 5)
  const hi = v128.shuffle<f32>(r, s, 2, 6, 3, 7)
  v128.store64_lane(out, lo, 0)
  v128.store64_lane(out + outStride, lo, 1)
  v128.store64_lane(out + 2 * outStride, hi, 0)
  v128.store64_lane(out + 3 * outStride, hi, 1)
}

/** tile2x3 for three consecutive heads of 128 channels: query loads at constant offsets, as tile2x4d128. */
export function tile2x3d128<K>(q: usize, k0: usize, k1: usize, scale: f32, out: usize, outStride: usize): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0)
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0)
  for (let o: usize = 0; o < 512; o += 16) {
    // key bytes advance at the element size's rate: half the query's for float16 rows
    const ko = o >> (2 - alignof<K>())
    const x = load4<K>(k0 + ko), y = load4<K>(k1 + ko)
    const qo = q + o
    let qv = v128.load(qo)
    a0 = madd(qv, x, a0); b0 = madd(qv, y, b0)
    qv = v128.load(qo, 512)
    a1 = madd(qv, x, a1); b1 = madd(qv, y, b1)
    qv = v128.load(qo, 1024)
    a2 = madd(qv, x, a2); b2 = madd(qv, y, b2)
  }
  const vscale = f32x4.splat(scale)
  const r = f32x4.mul(hsum4(a0, b0, a1, b1), vscale)
  const s = f32x4.mul(hsum4(a2, b2, a2, b2), vscale)
  v128.store64_lane(out, r, 0)
  v128.store64_lane(out + outStride, r, 1)
  v128.store64_lane(out + 2 * outStride, s, 0)
}

/**
 * Two keys against three query rows (a GQA group of 3): six accumulators, no wasted fourth head.
 * (Four keys by three heads needs twelve accumulators plus seven loaded vectors: V8 spills.)
 * Stores head h's two scores at out + h * outStride.
 */
export function tile2x3<K>(q0: usize, q1: usize, q2: usize, k0: usize, k1: usize, d: i32, scale: f32, out: usize, outStride: usize): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0)
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0)
  let c = 0
  for (; c + 4 <= d; c += 4) {
    const o = <usize>c << 2
    const x = load4<K>(k0 + elemOff<K>(c)), y = load4<K>(k1 + elemOff<K>(c))
    let qv = v128.load(q0 + o)
    a0 = madd(qv, x, a0); b0 = madd(qv, y, b0)
    qv = v128.load(q1 + o)
    a1 = madd(qv, x, a1); b1 = madd(qv, y, b1)
    qv = v128.load(q2 + o)
    a2 = madd(qv, x, a2); b2 = madd(qv, y, b2)
  }
  // lanes: [k0 q0, k1 q0, k0 q1, k1 q1] and [k0 q2, k1 q2, -, -]
  let r = hsum4(a0, b0, a1, b1)
  let s = hsum4(a2, b2, a2, b2)
  if (c < d) {
    const t0 = tailQ4<K>(q0, q1, q2, q2, k0, c, d) // [k0 q0, k0 q1, k0 q2, -]
    const t1 = tailQ4<K>(q0, q1, q2, q2, k1, c, d)
    r = f32x4.add(r, v128.shuffle<f32>(t0, t1, 0, 4, 1, 5))
    s = f32x4.add(s, v128.shuffle<f32>(t0, t1, 2, 6, 2, 6))
  }
  const vscale = f32x4.splat(scale)
  r = f32x4.mul(r, vscale)
  s = f32x4.mul(s, vscale)
  v128.store64_lane(out, r, 0)
  v128.store64_lane(out + outStride, r, 1)
  v128.store64_lane(out + 2 * outStride, s, 0)
}

/**
 * Scores of two key rows for qHeads heads, four heads per tile2x4; in the last tile, heads past the
 * group repeat the last head and their lanes are not stored.
 */
// @ts-ignore: decorator
@inline export function scorePairTile<K>(q: usize, qHeads: i32, k0: usize, k1: usize, d: i32, scale: f32, out: usize, outStride: usize): void {
  const qStride = <usize>d << 2
  const last = qHeads - 1
  for (let h = 0; h < qHeads; h += 4) {
    tile2x4<K>(
      q + <usize>h * qStride, q + <usize>min(h + 1, last) * qStride,
      q + <usize>min(h + 2, last) * qStride, q + <usize>min(h + 3, last) * qStride,
      k0, k1, d, scale, out + <usize>h * outStride, outStride, qHeads - h,
    )
  }
}
