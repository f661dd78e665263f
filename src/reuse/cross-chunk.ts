import { attendScratchFloats } from '../backend/model-kernels.js'
import type { PagedKVCache } from '../cache/paged-cache.js'
import type { ModelConfig } from '../model/types.js'
import type { Backend } from '../backend/backend.js'

/** keys this close before a token are not counted as another chunk's (the previous chunk's tail is local context) */
export const CROSS_CHUNK_NEAR = 64
/** a token's score is the largest of its own and the SPREAD tokens before it in its chunk */
export const CROSS_CHUNK_SPREAD = 8

/**
 * CacheBlend's cross-chunk selection score at one layer (kvkit's; Cache-Craft, Agarwal et al., SIGMOD
 * 2025, rates chunk caches by their tokens' inter-chunk attention): per recomputed row, the softmax
 * attention its queries give, at that layer, to keys of the chunks before its own, summed over the query
 * heads; slot 0 (the BOS, an attention sink every chunk had on its own) and the CROSS_CHUNK_NEAR slots
 * just before the row are left out. These are the tokens whose KV read across chunks, which a chunk
 * encoded alone cannot have. Then each row takes the largest score of itself and the CROSS_CHUNK_SPREAD
 * rows before it in its chunk: the tokens right after a cross-chunk reader read it within the chunk.
 * Rows in the first chunk score 0.
 *
 * `rows`: ascending slots, recomputed at this layer (the cache holds their fresh keys); `queries`: their
 * post-RoPE queries [rows][qHeads][headDim] and `lse` the log-sum-exp of each query head's scaled
 * scores over every key up to its row [rows][qHeads] (both from recomputeLayer); `chunkStarts`: each
 * chunk's first slot, ascending, from 0. Returns the scores [rows]. One more flash-attention pass per
 * KV head through the wasm kernel, over the cross-chunk range: the mass is exp(lse_cross - lse), no
 * n x n matrix.
 */
export function crossChunkScores(backend: Backend, cfg: ModelConfig, cache: PagedKVCache, l: number, rows: Int32Array, { queries, lse }: { queries: Float32Array; lse: Float32Array }, chunkStarts: Int32Array): Float64Array {
  const { qHeads, kvHeads, headDim: d, group } = cfg
  const T = rows.length
  const mass = new Float64Array(T)
  const startOf = (slot: number) => {
    let c = 0
    while (c + 1 < chunkStarts.length && chunkStarts[c + 1] <= slot) c++
    return chunkStarts[c]
  }
  const scale = 1 / Math.sqrt(d)
  // runs of consecutive slots in one chunk past its start + NEAR + 1 (earlier rows see only the sink or nothing)
  const runs: { i: number; j: number; start: number }[] = []
  for (let i = 0; i < T; ) {
    const start = startOf(rows[i])
    if (start === 0 || rows[i] - CROSS_CHUNK_NEAR < 2) {
      i++
      continue
    }
    let j = i + 1
    while (j < T && rows[j] === rows[j - 1] + 1 && startOf(rows[j]) === start) j++
    runs.push({ i, j, start })
    i = j
  }
  const heap = backend.heap
  const B = 64
  const qPtr = heap.alloc(B * qHeads * d * 4, 64)
  const outPtr = heap.alloc(B * group * d * 4, 64)
  const lseCross = heap.alloc(B * group * 4, 64)
  const scratch = heap.alloc(attendScratchFloats(d, B * group) * 4, 64)
  try {
    for (let g = 0; g < kvHeads; g++) {
      const v = cache.view(l, g)
      const k0 = cache.readKeyRange(l, g, 0, 1)
      for (const run of runs) {
        for (let a = run.i; a < run.j; a += B) {
          const n = Math.min(B, run.j - a)
          heap.F32.set(queries.subarray(a * qHeads * d, (a + n) * qHeads * d), qPtr >> 2)
          const q = qPtr + g * group * d * 4
          // the keys before min(chunk start, row - NEAR)
          backend.attendCausal(q, qHeads * d, group, n, d, d, v.kTable, v.vTable, v.pageTokens, run.start, rows[a] - CROSS_CHUNK_NEAR, scale, outPtr, group * d, lseCross, scratch)
          const F = heap.F32
          for (let t = 0; t < n; t++) {
            for (let h = 0; h < group; h++) {
              const r = t * group + h
              const all = lse[(a + t) * qHeads + g * group + h]
              let s0 = 0
              const qo = (qPtr >> 2) + (t * qHeads + g * group + h) * d
              for (let c = 0; c < d; c++) s0 += F[qo + c] * k0[c]
              mass[a + t] += Math.max(0, Math.exp(F[(lseCross >> 2) + r] - all) - Math.exp(s0 * scale - all))
            }
          }
        }
      }
    }
  } finally {
    for (const p of [qPtr, outPtr, lseCross, scratch]) heap.release(p)
  }
  const score = new Float64Array(T)
  for (let i = 0; i < T; i++) {
    const start = startOf(rows[i])
    let m = mass[i]
    for (let j = i - 1; j >= 0 && rows[j] >= Math.max(start, rows[i] - CROSS_CHUNK_SPREAD); j--) m = Math.max(m, mass[j])
    score[i] = m
  }
  return score
}
