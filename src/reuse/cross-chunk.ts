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
 * scores over every key up to its row [rows][qHeads] (LlamaForward's recomputeKeysValues and attentionLse); `chunkStarts`: each
 * chunk's first slot, ascending, from 0. Returns the scores [rows].
 *
 * Computed from the complement: the row's keys are [0, row], its attention over them sums to 1, so the
 * mass on the counted keys [1, min(start, row - NEAR)) is 1 - exp(lse_w - lse) - exp(s_0 - lse), lse_w
 * the log-sum-exp over the window [min(start, row - NEAR), row] (the row's own chunk up to it, or the
 * NEAR slots before it) and s_0 the sink's scaled score. The window is ~1/6 of the keys at six chunks;
 * it is attended through attendCausal without values (vd 0: the log-sum-exps alone) over a table of one
 * row pointer a slot (pageTokens 1), so a window starting anywhere is a key sequence from 0. The same scores as attending over the counted keys
 * themselves to float32 rounding of the log-sum-exps (~1e-6 of mass; test/reuse-cross-chunk-complement.test.ts
 * pins it against a plain TypeScript twin).
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
  // batches of consecutive slots sharing a window start: one attendCausal each. A row within NEAR of its
  // chunk's start has a window of its own (it slides with the row); rows in the first chunk, or too close
  // to slot 0 to have a counted key, are left at 0.
  const batches: { i: number; j: number; from: number }[] = []
  for (let i = 0; i < T; ) {
    const start = startOf(rows[i])
    if (start === 0 || rows[i] - CROSS_CHUNK_NEAR < 2) {
      i++
      continue
    }
    if (rows[i] - CROSS_CHUNK_NEAR < start) {
      batches.push({ i, j: i + 1, from: rows[i] - CROSS_CHUNK_NEAR })
      i++
      continue
    }
    let j = i + 1
    while (j < T && j - i < CROSS_BATCH && rows[j] === rows[j - 1] + 1 && startOf(rows[j]) === start) j++
    batches.push({ i, j, from: start })
    i = j
  }
  if (batches.length === 0) return spread(rows, mass, startOf)
  const heap = backend.heap
  const B = CROSS_BATCH
  const N = rows[T - 1] + 1
  const qPtr = heap.alloc(B * qHeads * d * 4, 64)
  const outPtr = heap.alloc(64, 64)
  const lseWin = heap.alloc(B * group * 4, 64)
  const scratch = heap.alloc(attendScratchFloats(0, B * group) * 4, 64)
  const kRows = heap.alloc(N * 4, 64)
  try {
    for (let g = 0; g < kvHeads; g++) {
      const v = cache.view(l, g)
      rowPointers(heap.I32, v.kTable, v.pageTokens, d, N, kRows)
      const k0 = cache.readKeyRange(l, g, 0, 1)
      for (const { i: a, j, from } of batches) {
        const n = j - a
        heap.F32.set(queries.subarray(a * qHeads * d, j * qHeads * d), qPtr >> 2)
        const q = qPtr + g * group * d * 4
        // the window [from, row]: keys from..rows[j-1], the first row seeing rows[a] - from + 1 of them
        // its log-sum-exps alone: no values (vd 0), no output
        backend.attendCausal(q, qHeads * d, group, n, d, 0, kRows + from * 4, 0, 1, rows[j - 1] - from + 1, rows[a] - from + 1, scale, outPtr, group * d, lseWin, scratch)
        const F = heap.F32
        for (let t = 0; t < n; t++) {
          for (let h = 0; h < group; h++) {
            const all = lse[(a + t) * qHeads + g * group + h]
            let s0 = 0
            const qo = (qPtr >> 2) + (t * qHeads + g * group + h) * d
            for (let c = 0; c < d; c++) s0 += F[qo + c] * k0[c]
            mass[a + t] += Math.max(0, 1 - Math.exp(F[(lseWin >> 2) + t * group + h] - all) - Math.exp(s0 * scale - all))
          }
        }
      }
    }
  } finally {
    for (const p of [qPtr, outPtr, lseWin, scratch, kRows]) heap.release(p)
  }
  return spread(rows, mass, startOf)
}

/** rows a batch of crossChunkScores' attention takes */
const CROSS_BATCH = 64

/** int32 byte pointers of rows 0..n-1 of a paged head (table: page pointers, float32 rows of d) to dst: a table of pageTokens 1 */
function rowPointers(I32: Int32Array, table: number, pageTokens: number, d: number, n: number, dst: number): void {
  const o = dst >> 2
  for (let p = 0; p * pageTokens < n; p++) {
    const page = I32[(table >> 2) + p]
    for (let r = 0; r < pageTokens && p * pageTokens + r < n; r++) I32[o + p * pageTokens + r] = page + r * d * 4
  }
}

/** each row's score: the largest mass of itself and the CROSS_CHUNK_SPREAD rows before it in its chunk */
function spread(rows: Int32Array, mass: Float64Array, startOf: (slot: number) => number): Float64Array {
  const score = new Float64Array(rows.length)
  for (let i = 0; i < rows.length; i++) {
    const start = startOf(rows[i])
    let m = mass[i]
    for (let j = i - 1; j >= 0 && rows[j] >= Math.max(start, rows[i] - CROSS_CHUNK_SPREAD); j--) m = Math.max(m, mass[j])
    score[i] = m
  }
  return score
}
