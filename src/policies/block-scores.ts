/**
 * Query-agnostic token scores ranked inside blocks, as LagKV ranks inside its partitions (lag-score.ts):
 * every block of `block` tokens after the sinks gets the same share of a head's picks, so the picks
 * spread along the text whatever the score's scale does with distance. The last block takes the
 * remainder (it is `block` to 2 x block - 1 tokens long); the sinks get `unscored`. A rank is in [0, 1):
 * rank inside the block over the block's length, ties to the lower slot.
 *
 *   keydiff  -cos(k_i, mean key of the block): keys unlike their block's (KeyDiff, Park et al. 2025,
 *            arXiv 2504.15364, sec. 3, which takes the mean over the whole cache; here the block's)
 *   mass     the attention token i receives from the prompt's queries over the n - i queries that can
 *            see it (H2O's heavy-hitter score, Zhang et al. 2023, normalized as kvpress does)
 */

/** [start, end) of each block of `block` tokens after `sinks` in n slots, the remainder joined to the last */
export function blocks(n: number, sinks: number, block: number): [number, number][] {
  const out: [number, number][] = []
  const count = Math.floor((n - sinks) / block)
  for (let b = 0; b < count; b++) out.push([sinks + b * block, sinks + (b + 1) * block])
  if (count > 0) out[count - 1][1] = n
  else if (n > sinks) out.push([sinks, n])
  return out
}

/** out[i] = the rank of slot i among slots [a, b) by score over b - a (ascending, ties to the lower slot); kvpress's per-partition rank */
export function rankRange(score: Float32Array, a: number, b: number, out: Float32Array): void {
  const idx = Array.from({ length: b - a }, (_, t) => a + t).sort((x, y) => score[x] - score[y] || x - y)
  idx.forEach((i, r) => (out[i] = r / (b - a)))
}

/** each slot's rank inside its block over the block's length (rankRange); others `unscored` */
export function rankInBlocks(score: Float32Array, n: number, sinks: number, block: number, unscored: number): Float32Array {
  const out = new Float32Array(n).fill(unscored)
  for (const [a, b] of blocks(n, sinks, block)) rankRange(score, a, b, out)
  return out
}

/**
 * KeyDiff's score of keys [n][d] per block: minus the cosine similarity of each key to its block's mean
 * key, ranked per block; with `ranked` false the raw score in [-1, 1] (sinks `unscored`), comparable
 * across blocks, so a block holding several distinct keys may give them more than its share.
 */
export function keyDiffScores(keys: Float32Array, n: number, d: number, sinks: number, block: number, unscored: number, ranked = true): Float32Array {
  const raw = new Float32Array(n)
  const mean = new Float64Array(d)
  for (const [a, b] of blocks(n, sinks, block)) {
    mean.fill(0)
    for (let t = a; t < b; t++) for (let c = 0; c < d; c++) mean[c] += keys[t * d + c]
    let mm = 0
    for (let c = 0; c < d; c++) mm += mean[c] * mean[c]
    for (let t = a; t < b; t++) {
      let dot = 0
      let kk = 0
      for (let c = 0; c < d; c++) {
        const k = keys[t * d + c]
        dot += k * mean[c]
        kk += k * k
      }
      raw[t] = -dot / (Math.sqrt(kk * mm) + 1e-12)
    }
  }
  if (!ranked) return raw.fill(unscored, 0, Math.min(sinks, n))
  return rankInBlocks(raw, n, sinks, block, unscored)
}

/** H2O's accumulated attention of one head's n slots ([n], summed over the prompt's queries), per query that sees it, ranked per block */
export function massScores(mass: Float32Array, n: number, sinks: number, block: number, unscored: number): Float32Array {
  const raw = new Float32Array(n)
  for (let i = 0; i < n; i++) raw[i] = mass[i] / (n - i)
  return rankInBlocks(raw, n, sinks, block, unscored)
}

/**
 * Max-pooling of a score over `span` slots centred on each (odd span), over the scored neighbours only
 * (unscored stays unscored): a token next to a distinctive one ranks as high, so a short statement is
 * kept as a run, not as its few outlying tokens (SnapKV's pooling, Li et al. 2024, sec. 4.3).
 */
export function maxPoolScored(s: Float32Array, span: number, unscored: number): Float32Array {
  const out = s.slice()
  const half = span >> 1
  for (let i = 0; i < s.length; i++) {
    if (s[i] === unscored) continue
    for (let j = Math.max(0, i - half); j <= Math.min(s.length - 1, i + half); j++) if (s[j] !== unscored && s[j] > out[i]) out[i] = s[j]
  }
  return out
}
