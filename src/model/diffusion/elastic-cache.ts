import type { Backend } from '../../backend/backend.js'
import type { PagedKVCache } from '../../cache/paged-cache.js'
import type { LlamaForward } from '../llama.js'
import type { ModelConfig } from '../types.js'

/*
 * Elastic-Cache's two signals (Nguyen-Tri et al. 2025, arXiv 2510.14973, Sec. 4 and Algorithm 1; the
 * released code's DreamSdpaAttention): per layer, the most-attended decoded token (attention from the
 * masked positions' query rows summed over heads and rows, masked keys excluded), and the drift of
 * that token's attention between the step its query was cached and now.
 */

/**
 * Softmax attention of the tracked tokens' queries (taken from Q, [N][qHeads * d], post-RoPE) over the
 * N keys layer l's cache holds now: [tracked][qHeads][N]. Called before a step writes its keys (the
 * cached attention) and after (the attention now). scratch: group * N + qHeads * d floats.
 */
export function trackedAttention(k: Backend, cfg: ModelConfig, cache: PagedKVCache, l: number, Q: Float32Array, track: Int32Array, scratch: number): Float32Array {
  const { qHeads, kvHeads, headDim: d, group } = cfg
  const scale = 1 / Math.sqrt(d)
  const N = cache.view(l, 0).n
  const out = new Float32Array(track.length * qHeads * N)
  const scores = scratch
  const qPtr = scratch + group * N * 4
  const row = qHeads * d
  for (let i = 0; i < track.length; i++) {
    k.heap.F32.set(Q.subarray(track[i] * row, (track[i] + 1) * row), qPtr >> 2)
    for (let g = 0; g < kvHeads; g++) {
      const v = cache.view(l, g)
      k.scoreKeys(qPtr + g * group * d * 4, group, d, v.kTable, v.pageTokens, v.n, scale, scores)
      const F = k.heap.F32
      for (let h = 0; h < group; h++) {
        const s = F.subarray((scores >> 2) + h * N, (scores >> 2) + (h + 1) * N)
        let m = -Infinity
        for (let j = 0; j < N; j++) if (s[j] > m) m = s[j]
        const o = (i * qHeads + g * group + h) * N
        let z = 0
        for (let j = 0; j < N; j++) z += out[o + j] = Math.exp(s[j] - m)
        for (let j = 0; j < N; j++) out[o + j] /= z
      }
    }
  }
  return out
}

/**
 * The drift test's similarity: cosine similarity between the cached and current attention rows of each
 * (tracked token, query head), averaged. In [0, 1] (probabilities are non-negative); the layer drifts
 * when it is at most gamma. (The released code takes the cosine across heads for each key and then
 * averages; the paper's text compares attention vectors, which is what this does.)
 */
export function cosineDrift(before: Float32Array, now: Float32Array, N: number): number {
  const rows = before.length / N
  let sum = 0
  for (let r = 0; r < rows; r++) {
    let ab = 0, aa = 0, bb = 0
    for (let j = r * N; j < (r + 1) * N; j++) {
      ab += before[j] * now[j]
      aa += before[j] * before[j]
      bb += now[j] * now[j]
    }
    sum += aa > 0 && bb > 0 ? ab / Math.sqrt(aa * bb) : 1
  }
  return Math.min(1, sum / rows)
}

/**
 * The `trackNum` most-attended decoded positions of layer l: attention probabilities from the last
 * `tail` of the T query rows (the masked positions' rows; their lse from this layer's attention) summed
 * per key over rows and heads, masked keys excluded; ties to the lower position. mass: N floats.
 */
export function mostAttended(
  k: Backend, cfg: ModelConfig, cache: PagedKVCache, l: number, p: LlamaForward['p'], T: number, tail: number,
  masked: Uint8Array, trackNum: number, mass: number,
): number[] {
  const { qHeads, kvHeads, headDim: d, group } = cfg
  const N = masked.length
  k.heap.F32.fill(0, mass >> 2, (mass >> 2) + N)
  const first = T - tail
  for (let g = 0; g < kvHeads; g++) {
    const v = cache.view(l, g)
    const q = p.q + (first * qHeads * d + g * group * d) * 4
    const lse = p.lse + (g * T * group + first * group) * 4
    k.attentionMass(q, qHeads * d, group, tail, d, v.kTable, v.pageTokens, v.n, v.n, 1 / Math.sqrt(d), lse, mass, p.scratch)
  }
  const m = k.heap.F32.subarray(mass >> 2, (mass >> 2) + N)
  const order: number[] = []
  for (let j = 0; j < N; j++) if (!masked[j]) order.push(j)
  order.sort((a, b) => m[b] - m[a] || a - b)
  return order.slice(0, trackNum)
}
