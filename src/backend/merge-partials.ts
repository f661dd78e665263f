/**
 * The combine step of split attention: partial results of one query row over disjoint key sets, each
 * its normalised output o_i and log-sum-exp lse_i = m_i + log l_i (running max m_i, sum of exponentials
 * l_i), merged into the row's attention over the union of the keys:
 *
 *   M = max_i lse_i,  w_i = exp(lse_i - M),  o = sum_i w_i o_i / sum_i w_i,  lse = M + log sum_i w_i
 *
 * which is the online-softmax rescaling of the partial (m, l, sum p v) triples, written with each o_i
 * already divided by its l_i (o_i l_i = the partial weighted value sum). Sources: Milakov & Gimelshein,
 * "Online normalizer calculation for softmax" (2018) section 3; Dao et al., Flash-Decoding (2023), the
 * reduction after the split-K kernel (flash-attention's combine_attn_seqk_parallel).
 *
 * Used for a cache head whose parts are attended separately (channel-pruned, packed, host-tier segments)
 * and for decode attention split across threads by keys (threads/kernels.ts). Arithmetic in float64 from
 * the float32 partials, so the merge itself adds one rounding, when the result is stored.
 */

/**
 * Merges `outs.length` partials of `rows` query rows. Partial i: outputs at byte pointer outs[i], rows
 * [rows][d] floats; lses[i] at byte pointer lses[i], [rows] floats (-Infinity for a part that saw no key).
 * Row r = t * group + h goes to out + (t * outStride + h * d) floats; its lse to lseOut[r] when lseOut
 * != 0. A row with no key in any part becomes zeros with lse -Infinity. F: the arena's float32 view.
 */
export function mergePartials(F: Float32Array, outs: readonly number[], lses: readonly number[], rows: number, d: number, group: number, outStride: number, out: number, lseOut: number): void {
  for (let r = 0; r < rows; r++) {
    let m = -Infinity
    for (const l of lses) m = Math.max(m, F[(l >> 2) + r])
    const t = Math.floor(r / group)
    const h = r - t * group
    const dst = (out >> 2) + t * outStride + h * d
    let total = 0
    const w = lses.map((l) => {
      const x = m === -Infinity ? 0 : Math.exp(F[(l >> 2) + r] - m)
      total += x
      return x
    })
    for (let c = 0; c < d; c++) {
      let acc = 0
      for (let i = 0; i < outs.length; i++) acc += w[i] * F[(outs[i] >> 2) + r * d + c]
      F[dst + c] = total > 0 ? acc / total : 0
    }
    if (lseOut) F[(lseOut >> 2) + r] = total > 0 ? m + Math.log(total) : -Infinity
  }
}
