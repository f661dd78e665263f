import { madd, hsum4, dot } from './simd'

/**
 * Scores of four consecutive keys (rows at k, k+stride, ..) against one query: one vector accumulator per
 * key so the query is loaded once for four keys, then a single transpose-add gives the four dot products.
 */
// @ts-ignore: decorator
@inline function score4(q: usize, k: usize, stride: usize, d: i32): v128 {
  let a0 = f32x4.splat(0)
  let a1 = f32x4.splat(0)
  let a2 = f32x4.splat(0)
  let a3 = f32x4.splat(0)
  let c = 0
  for (; c + 4 <= d; c += 4) {
    const o = <usize>c << 2
    const qv = v128.load(q + o)
    a0 = madd(qv, v128.load(k + o), a0)
    a1 = madd(qv, v128.load(k + stride + o), a1)
    a2 = madd(qv, v128.load(k + 2 * stride + o), a2)
    a3 = madd(qv, v128.load(k + 3 * stride + o), a3)
  }
  let r = hsum4(a0, a1, a2, a3)
  if (c < d) {
    let t0: f32 = 0, t1: f32 = 0, t2: f32 = 0, t3: f32 = 0
    for (; c < d; c++) {
      const o = <usize>c << 2
      const qs = load<f32>(q + o)
      t0 += qs * load<f32>(k + o)
      t1 += qs * load<f32>(k + stride + o)
      t2 += qs * load<f32>(k + 2 * stride + o)
      t3 += qs * load<f32>(k + 3 * stride + o)
    }
    let t = f32x4.splat(t0)
    t = f32x4.replace_lane(t, 1, t1)
    t = f32x4.replace_lane(t, 2, t2)
    t = f32x4.replace_lane(t, 3, t3)
    r = f32x4.add(r, t)
  }
  return r
}

/**
 * out[h*n + i] = scale * (q_h . k_i) for the qHeads query heads of one KV head (a GQA group).
 * Keys are read once, in page order, four at a time; every head of the group scores them while they
 * are in L1, so the cache is streamed from memory once whatever the group size.
 */
export function scoreKeys(q: usize, qHeads: i32, d: i32, table: usize, pageTokens: i32, n: i32, scale: f32, out: usize): void {
  const stride = <usize>d << 2
  const vscale = f32x4.splat(scale)
  const pages = (n + pageTokens - 1) / pageTokens
  for (let p = 0; p < pages; p++) {
    const page = <usize>load<i32>(table + (<usize>p << 2))
    const first = p * pageTokens
    const count = min(pageTokens, n - first)
    let j = 0
    for (; j + 4 <= count; j += 4) {
      const k = page + <usize>j * stride
      for (let h = 0; h < qHeads; h++) {
        const s = score4(q + <usize>(h * d) * 4, k, stride, d)
        v128.store(out + (<usize>(h * n + first + j) << 2), f32x4.mul(s, vscale))
      }
    }
    for (; j < count; j++) {
      const k = page + <usize>j * stride
      for (let h = 0; h < qHeads; h++) {
        store<f32>(out + (<usize>(h * n + first + j) << 2), scale * dot(q + <usize>(h * d) * 4, k, d))
      }
    }
  }
}
