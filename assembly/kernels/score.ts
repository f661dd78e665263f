import { dot, rowAt } from './simd'
import { tile4x1, tile2x4, tileR, tileS, scoreTile } from './tiles'

/**
 * out[h*n + i] = scale * (q_h . k_i) for the qHeads query heads of one KV head (a GQA group).
 * Keys stream once from memory; every head of the group scores a row while it sits in L1 (register
 * tiles in tiles.ts), so the cost is one pass over the cache whatever the group size.
 */
export function scoreKeys(q: usize, qHeads: i32, d: i32, table: usize, pageTokens: i32, n: i32, scale: f32, out: usize): void {
  const vscale = f32x4.splat(scale)
  const outStride = <usize>n << 2
  const stride = <usize>d << 2
  let i = 0
  if (qHeads <= 2) {
    // one or two heads: four rows at a time, two accumulators per row and head
    for (; i + 4 <= n; i += 4) {
      const k0 = rowAt(table, pageTokens, d, i)
      // rows of one page are contiguous: skip three divisions when the four share a page
      const samePage = (i % pageTokens) + 3 < pageTokens
      const k1 = samePage ? k0 + stride : rowAt(table, pageTokens, d, i + 1)
      const k2 = samePage ? k0 + 2 * stride : rowAt(table, pageTokens, d, i + 2)
      const k3 = samePage ? k0 + 3 * stride : rowAt(table, pageTokens, d, i + 3)
      if (qHeads == 1) tile4x1(q, k0, k1, k2, k3, d, vscale, out + (<usize>i << 2))
      else scoreTile(q, 2, k0, k1, k2, k3, d, vscale, out + (<usize>i << 2), outStride)
    }
  } else {
    // three or more heads: two rows at a time against four heads, each row read front to back
    for (; i + 2 <= n; i += 2) {
      const k0 = rowAt(table, pageTokens, d, i)
      const k1 = (i % pageTokens) + 1 < pageTokens ? k0 + stride : rowAt(table, pageTokens, d, i + 1)
      for (let h = 0; h < qHeads; h += 4) {
        // heads past the group repeat the last one; their lanes are not stored
        const q0 = q + <usize>h * stride
        const q1 = q + <usize>min(h + 1, qHeads - 1) * stride
        const q2 = q + <usize>min(h + 2, qHeads - 1) * stride
        const q3 = q + <usize>min(h + 3, qHeads - 1) * stride
        tile2x4(q0, q1, q2, q3, k0, k1, d, vscale)
        const o = out + <usize>h * outStride + (<usize>i << 2)
        const r = tileR
        const s = tileS
        store<f32>(o, f32x4.extract_lane(r, 0))
        store<f32>(o + 4, f32x4.extract_lane(s, 0))
        if (h + 1 < qHeads) {
          store<f32>(o + outStride, f32x4.extract_lane(r, 1))
          store<f32>(o + outStride + 4, f32x4.extract_lane(s, 1))
        }
        if (h + 2 < qHeads) {
          store<f32>(o + 2 * outStride, f32x4.extract_lane(r, 2))
          store<f32>(o + 2 * outStride + 4, f32x4.extract_lane(s, 2))
        }
        if (h + 3 < qHeads) {
          store<f32>(o + 3 * outStride, f32x4.extract_lane(r, 3))
          store<f32>(o + 3 * outStride + 4, f32x4.extract_lane(s, 3))
        }
      }
    }
  }
  for (; i < n; i++) {
    const k = rowAt(table, pageTokens, d, i)
    for (let h = 0; h < qHeads; h++) {
      store<f32>(out + <usize>h * outStride + (<usize>i << 2), scale * dot(q + (<usize>(h * d) << 2), k, d))
    }
  }
}
