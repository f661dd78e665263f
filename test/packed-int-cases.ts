import type { CreatedBackend } from '../src/backend/index.js'
import { intQueryLevels, packedIntScratch } from '../src/backend/backend.js'
import { referencePackedKernels } from '../src/backend/reference/packed-kernels.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { packedLayout, type PageFormat } from '../src/cache/formats.js'
import { codeAt, groupMeta, keyGroupAt } from '../src/cache/packing.js'
import type { HeadSegment } from '../src/cache/types.js'

// One case of scorePackedKeysInt (assembly/kernels/packed-int.ts) against its float64 dequantize-then-dot
// twin and the exact fused kernel, with the error bound the kernel states. No Node or vitest imports: the
// Node tests (test/packed-int.test.ts) and the Chromium one (test/packed-int-dot-add-in-chromium.test.ts,
// through a browser bundle) run the same code.

export const BITS: Record<string, number> = { int4: 4, int2: 2, int1: 1 }
export const FORMATS = ['int4', 'int2', 'int1'] as const
export const SCALE = 0.125

/** pages of 64 tokens, or of the key group where it is longer (a page holds whole groups) */
export const pageFor = (group: number) => Math.max(64, group)

/** a cache of one KV head holding `keys` ([n][d]) packed in `format` in key groups of `group` tokens; its one segment */
export function packed(b: CreatedBackend, keys: Float32Array, n: number, d: number, format: PageFormat, group = 32): { cache: PagedKVCache; seg: HeadSegment } {
  const cache = new PagedKVCache(b, { layers: 1, kvHeads: 1, headDim: d, pageTokens: pageFor(group) })
  cache.append(0, keys, new Float32Array(n * d), Int32Array.from({ length: n }, (_, i) => i))
  cache.apply({ heads: [], quantize: [{ layer: 0, head: 0, upto: n, keys: format, values: 'int8', ...(group !== 32 ? { group } : {}) }] })
  const seg = cache.segments(0, 0)[0]
  if (seg.format !== format) throw new Error(`packed: the segment is ${seg.format}, not ${format}`)
  return { cache, seg }
}

/**
 * The kernel's error bound for each score (h, i), computed from the page bytes: the group's folded
 * query q'_c = scale * q_c * s_c, step = max_c |q'_c| / levels, bound = step / 2 * sum_c u_ic (with 0.1%
 * for the float32 step and its reciprocal) + float32 rounding (1e-5 of scale * sum_c |q_c k_ic|, as the
 * exact kernel's test allows 4e-6 for its own fold and sum)
 */
function bounds(b: CreatedBackend, level: number, seg: HeadSegment, q: Float32Array, qHeads: number, d: number, n: number, format: PageFormat, keys: Float32Array, group: number): { bound: Float64Array; rounding: Float64Array; keyBound: Float64Array } {
  const pt = pageFor(group)
  const per = pt / group
  const lay = packedLayout(format, 'key', pt, d, group)
  const out = new Float64Array(qHeads * n)
  // the query's rounding part of the bound alone, and the keys' own quantization bound on the same
  // score (sum_c |q'_c| / 2), to compare
  const rounding = new Float64Array(qHeads * n)
  const keyBound = new Float64Array(qHeads * n)
  for (let g = 0; g * group < n; g++) {
    const bytes = b.heap.U8.subarray(b.heap.I32[(seg.kTable >> 2) + Math.floor(g / per)])
    const at = Array.from({ length: d }, (_, c) => keyGroupAt(lay, g % per, c))
    const s = at.map((x) => groupMeta(bytes, x.meta, lay).scale)
    for (let h = 0; h < qHeads; h++) {
      let mx = 0
      let sum = 0
      for (let c = 0; c < d; c++) mx = Math.max(mx, Math.abs(SCALE * q[h * d + c] * s[c]))
      for (let c = 0; c < d; c++) sum += Math.abs(SCALE * q[h * d + c] * s[c]) / 2
      const step = mx / level
      for (let i = g * group; i < Math.min(n, g * group + group); i++) {
        let codes = 0
        let mag = 0
        for (let c = 0; c < d; c++) {
          codes += codeAt(bytes, at[c].codes, i % group, lay)
          mag += Math.abs(q[h * d + c] * keys[i * d + c])
        }
        out[h * n + i] = step * 0.501 * codes + SCALE * mag * 1e-5 + 1e-30
        rounding[h * n + i] = (step / 2) * codes
        keyBound[h * n + i] = sum
      }
    }
  }
  return { bound: out, rounding, keyBound }
}

/** one case's scores [qHeads][n]: the integer kernel's, the float64 twin's, the exact fused kernel's, and the bounds */
export interface IntScores {
  out: Float32Array
  ref: Float32Array
  exact: Float32Array
  bound: Float64Array
  rounding: Float64Array
  keyBound: Float64Array
}

/**
 * scorePackedKeysInt's, the twin's and the exact kernel's scores, and the bound, for keys in `format` in
 * key groups of `group` tokens on backend b (a wasm build)
 */
export function scoreBoth(b: CreatedBackend, keys: Float32Array, n: number, d: number, format: PageFormat, q: Float32Array, qHeads: number, group = 32): IntScores {
  const { cache, seg } = packed(b, keys, n, d, format, group)
  const pt = pageFor(group)
  const qb = b.heap.f32From(q)
  const out = b.heap.allocF32(qHeads * n)
  const ref = b.heap.allocF32(qHeads * n)
  const exact = b.heap.allocF32(qHeads * n)
  const scratch = b.heap.allocF32(packedIntScratch(qHeads, d, group))
  b.scorePackedKeysInt!(qb.ptr, qHeads, d, seg.kTable, pt, n, BITS[format], SCALE, out.ptr, scratch.ptr, group)
  referencePackedKernels(b.heap).scorePackedKeys(qb.ptr, qHeads, d, seg.kTable, pt, n, BITS[format], 0, SCALE, ref.ptr, 0, group)
  b.scorePackedKeys!(qb.ptr, qHeads, d, seg.kTable, pt, n, BITS[format], 0, SCALE, exact.ptr, scratch.ptr, group)
  const level = intQueryLevels(b.build === 'relaxed' ? 'relaxed' : 'simd', BITS[format], d)
  const { bound, rounding, keyBound } = bounds(b, level, seg, q, qHeads, d, n, format, cache.readKeys(0, 0), group)
  const res = { out: out.view.slice(), ref: ref.view.slice(), exact: exact.view.slice(), bound, rounding, keyBound }
  for (const x of [qb, out, ref, exact, scratch]) x.free()
  cache.dispose()
  return res
}

/** the largest |out - twin| - bound over a case's scores: <= 0 where every score is within its bound */
export function worstExcess(r: { out: ArrayLike<number>; ref: ArrayLike<number>; bound: ArrayLike<number> }): number {
  let worst = -Infinity
  for (let i = 0; i < r.out.length; i++) worst = Math.max(worst, Math.abs(r.out[i] - r.ref[i]) - r.bound[i])
  return worst
}

/** indices of the k largest scores */
export function topK(x: ArrayLike<number>, k: number): Set<number> {
  return new Set(Array.from(x, (v, i) => [v, i]).sort((a, b) => b[0] - a[0]).slice(0, k).map((p) => p[1]))
}
