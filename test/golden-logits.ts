import { expect } from 'vitest'

/** What tools/trained and the fixture's train.py record of PyTorch's logits, per position. */
export interface GoldenLogits {
  logits_first8_per_pos: number[][]
  logits_sum_per_pos: number[]
}

// PyTorch and kvkit agree to about 1e-5 per logit on these models (float32 weights and RoPE frequencies;
// measured: 8e-6 at most on the first 8 logits, 5e-3 on a sum of 4096 logits): the tolerances are a few
// times that, so a change in any kernel, in RoPE or in the attention shows.
const ABS = 3e-5
const ABS_SUM = 2e-2

/** the first 8 logits and the logit sum of each of the first `positions` rows of logits [positions][V] */
export function expectGoldenRows(logits: Float32Array, V: number, golden: GoldenLogits, positions: number): void {
  for (let p = 0; p < positions; p++) {
    const row = logits.subarray(p * V, (p + 1) * V)
    for (let i = 0; i < 8; i++) expect(Math.abs(row[i] - golden.logits_first8_per_pos[p][i]), `pos ${p} logit ${i}`).toBeLessThan(ABS)
    let sum = 0
    for (let i = 0; i < V; i++) sum += row[i]
    const want = golden.logits_sum_per_pos[p]
    expect(Math.abs(sum - want), `pos ${p} logit sum ${sum} vs ${want}`).toBeLessThan(ABS_SUM)
  }
}

/** the indices of the 10 largest values of a row, ties to the lower index */
export function top10(row: ArrayLike<number>): number[] {
  return Array.from(row).map((v, i) => [v, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, 10).map((x) => x[1])
}
