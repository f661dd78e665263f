/**
 * LagKV's query-agnostic token score (Liang et al. 2025, "LagKV: Lag-Relative Information of the KV
 * Cache Tells Which Tokens Are Important", arXiv 2504.04704; kvpress `LagKVPress`, lag 128, 4 sinks).
 * After the sinks, the slots split into partitions of `lag` tokens; each partition is judged against the
 * next one (its "lag"): every channel of a key (and of a value) is min-max normalized by the next
 * partition's range, the token's score is the standard deviation of those normalized channels, softmaxed
 * inside the partition; key and value scores are averaged. Tokens unlike what follows them score high.
 * kvpress then ranks each partition separately (rank / lag), so every partition gets the same share.
 * The sinks and the tail (the last full partition and the remainder, which have no lag) are not scored
 * here: they get `unscored` and the caller decides.
 */
import { rankRange } from './block-scores.js'

/**
 * kvpress's per-partition score of a [n][d] block of keys or values, added into `out` x `weight`; each
 * partition is normalised by the `refLen` tokens after it (kvpress: a whole partition, lag)
 */
function lagRelative(x: Float32Array, d: number, start: number, parts: number, lag: number, out: Float32Array, weight: number, refLen = lag): void {
  const lo = new Float32Array(d)
  const hi = new Float32Array(d)
  const s = new Float32Array(lag)
  for (let p = 0; p < parts; p++) {
    const from = start + p * lag
    const ref = from + lag
    lo.fill(Infinity)
    hi.fill(-Infinity)
    for (let t = ref; t < ref + refLen; t++) {
      for (let c = 0; c < d; c++) {
        const v = x[t * d + c]
        if (v < lo[c]) lo[c] = v
        if (v > hi[c]) hi[c] = v
      }
    }
    let max = -Infinity
    for (let t = 0; t < lag; t++) {
      let sum = 0
      let sq = 0
      for (let c = 0; c < d; c++) {
        const z = (x[(from + t) * d + c] - lo[c]) / (hi[c] - lo[c])
        sum += z
        sq += z * z
      }
      // torch's std: unbiased
      const mean = sum / d
      s[t] = Math.sqrt(Math.max(0, (sq - d * mean * mean) / (d - 1)))
      if (s[t] > max) max = s[t]
    }
    let z = 0
    for (let t = 0; t < lag; t++) z += (s[t] = Math.exp(s[t] - max))
    for (let t = 0; t < lag; t++) out[from + t] += (weight * s[t]) / z
  }
}

/**
 * LagKV scores of one head's slots (keys and values [n][d]): each scored token's rank inside its
 * partition over lag, in [0, 1) (kvpress's default, without cross_scoring); sinks and tail get `unscored`.
 * `tail` (kvkit's, not kvpress's) ranks the last full partition too, against the remainder after it
 * when that holds at least TAIL_REF tokens; the remainder stays unscored.
 */
export function lagScores(keys: Float32Array, values: Float32Array, n: number, d: number, lag: number, sinks: number, unscored: number, tail = false): Float32Array {
  const out = new Float32Array(n).fill(unscored)
  if (n < sinks + 2 * lag) return out
  const parts = Math.floor((n - sinks) / lag) - 1
  const score = new Float32Array(n)
  lagRelative(keys, d, sinks, parts, lag, score, 0.5)
  lagRelative(values, d, sinks, parts, lag, score, 0.5)
  for (let p = 0; p < parts; p++) rankRange(score, sinks + p * lag, sinks + (p + 1) * lag, out)
  // tail: the last full partition against the shorter text after it (the remainder), where there are
  // at least TAIL_REF tokens to take a channel's range from; kvpress leaves it unscored (kept whole)
  const last = sinks + parts * lag
  const rest = n - last - lag
  if (tail && rest >= TAIL_REF) {
    lagRelative(keys, d, last, 1, lag, score, 0.5, rest)
    lagRelative(values, d, last, 1, lag, score, 0.5, rest)
    rankRange(score, last, last + lag, out)
  }
  return out
}

/** the fewest tokens after LagKV's last full partition that `lagScores(..., tail=true)` ranks it against */
export const TAIL_REF = 16
