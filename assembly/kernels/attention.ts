import { madd, dot, rowAt } from './simd'

// Decode attention for one query step: the qHeads query heads of a GQA group against one KV head,
// densely or over a gathered list of token indices (selection policies attend to b of n tokens).
//
// Online softmax (one pass over K and V): per head a running max m, running sum l and an unnormalised
// output o; a new score s > m rescales l and o by exp(m - s). Heads go through in groups of GROUP so
// each key/value row is read once for the whole group while it sits in L1; the running m and l live in
// a small static block because kernels allocate nothing.

const GROUP = 8
const runMax = memory.data(GROUP * 4, 16)
const runSum = memory.data(GROUP * 4, 16)

/** o = o * a + p * v over d floats. */
// @ts-ignore: decorator
@inline function scaleAdd(o: usize, a: f32, p: f32, v: usize, d: i32): void {
  const va = f32x4.splat(a)
  const vp = f32x4.splat(p)
  let c = 0
  for (; c + 4 <= d; c += 4) {
    const at = o + (<usize>c << 2)
    v128.store(at, madd(vp, v128.load(v + (<usize>c << 2)), f32x4.mul(v128.load(at), va)))
  }
  for (; c < d; c++) {
    const at = o + (<usize>c << 2)
    store<f32>(at, load<f32>(at) * a + p * load<f32>(v + (<usize>c << 2)))
  }
}

/** o += p * v over d floats. */
// @ts-ignore: decorator
@inline function addScaled(o: usize, p: f32, v: usize, d: i32): void {
  const vp = f32x4.splat(p)
  let c = 0
  for (; c + 4 <= d; c += 4) {
    const at = o + (<usize>c << 2)
    v128.store(at, madd(vp, v128.load(v + (<usize>c << 2)), v128.load(at)))
  }
  for (; c < d; c++) {
    const at = o + (<usize>c << 2)
    store<f32>(at, load<f32>(at) + p * load<f32>(v + (<usize>c << 2)))
  }
}

/** Folds token row (k, v) into the running state of heads h0 .. h0+g. */
// @ts-ignore: decorator
@inline function accumulate(q: usize, h0: i32, g: i32, d: i32, k: usize, v: usize, scale: f32, out: usize): void {
  for (let h = 0; h < g; h++) {
    const s = scale * dot(q + (<usize>((h0 + h) * d) << 2), k, d)
    const mp = runMax + (<usize>h << 2)
    const lp = runSum + (<usize>h << 2)
    const m = load<f32>(mp)
    const o = out + (<usize>((h0 + h) * d) << 2)
    if (s > m) {
      const corr = Mathf.exp(m - s) // 0 for the first token (m = -inf)
      store<f32>(lp, load<f32>(lp) * corr + 1)
      store<f32>(mp, s)
      scaleAdd(o, corr, 1, v, d)
    } else {
      const p = Mathf.exp(s - m)
      store<f32>(lp, load<f32>(lp) + p)
      addScaled(o, p, v, d)
    }
  }
}

export function attend(
  q: usize, qHeads: i32, d: i32,
  kTable: usize, vTable: usize, pageTokens: i32, n: i32,
  idx: usize, nIdx: i32, scale: f32, out: usize, lse: usize,
): void {
  const stride = <usize>d << 2
  for (let h0 = 0; h0 < qHeads; h0 += GROUP) {
    const g = min(GROUP, qHeads - h0)
    for (let h = 0; h < g; h++) {
      store<f32>(runMax + (<usize>h << 2), -Infinity)
      store<f32>(runSum + (<usize>h << 2), 0)
    }
    memory.fill(out + (<usize>(h0 * d) << 2), 0, <usize>(g * d) << 2)
    if (idx == 0) {
      // dense: walk the pages in order, rows contiguous inside a page
      const pages = (n + pageTokens - 1) / pageTokens
      for (let p = 0; p < pages; p++) {
        const kp = <usize>load<i32>(kTable + (<usize>p << 2))
        const vp = <usize>load<i32>(vTable + (<usize>p << 2))
        const count = min(pageTokens, n - p * pageTokens)
        for (let j = 0; j < count; j++) accumulate(q, h0, g, d, kp + <usize>j * stride, vp + <usize>j * stride, scale, out)
      }
    } else {
      for (let j = 0; j < nIdx; j++) {
        const t = load<i32>(idx + (<usize>j << 2))
        accumulate(q, h0, g, d, rowAt(kTable, pageTokens, d, t), rowAt(vTable, pageTokens, d, t), scale, out)
      }
    }
    for (let h = 0; h < g; h++) {
      const l = load<f32>(runSum + (<usize>h << 2))
      const o = out + (<usize>((h0 + h) * d) << 2)
      scaleAdd(o, 1 / l, 0, o, d)
      store<f32>(lse + (<usize>(h0 + h) << 2), load<f32>(runMax + (<usize>h << 2)) + Mathf.log(l))
    }
  }
}
