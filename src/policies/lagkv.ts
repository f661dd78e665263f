/**
 * LagKV (Liang et al. 2025, "LagKV: Lag-Relative Information of the KV Cache Tells Which Tokens Are
 * Important", arXiv 2504.04704), as kvpress's `LagKVPress` computes it (kvpress/presses/lagkv_press.py).
 * Query-agnostic: it reads only the cached keys and values, so a context compressed once serves any
 * question. After `sinks` tokens the prompt is cut into partitions of `lag` tokens; each partition is
 * scored against the partition after it (its "lag"):
 *   x' = (x - min_ref) / (max_ref - min_ref)   per channel, min and max over the next partition's tokens
 *   s  = softmax over the partition of std over channels of x'   (keys and values alike; unbiased std)
 *   score = rank of (s_key + s_value) / 2 inside its partition, over lag
 * so every partition keeps about the same share (the top ranks), a budget spread evenly along the text.
 * The sinks, the last full partition (nothing after it to compare with) and the tail are always kept.
 * `cross=true` scores with the softmax values themselves instead of ranks (kvpress's cross_scoring), so
 * partitions compete. A prompt shorter than sinks + 2 x lag keeps the sinks and the most recent tokens.
 * Per KV head, uniform budget; the evicted tokens' memory is freed. Ties (equal ranks in different
 * partitions) go to the earlier partition.
 */
import { budgetFrom, budgetOptions } from './budget.js'
import { evictionPolicy, protect } from './evict.js'
import type { PolicyDefinition } from './registry.js'
import type { PolicyContext } from './types.js'

/** softmax over a partition of the per-token std of x normalised by the next partition's channel ranges */
function lagScores(x: Float32Array, d: number, start: number, lag: number, out: Float32Array): void {
  const lo = new Float32Array(d).fill(Infinity)
  const hi = new Float32Array(d).fill(-Infinity)
  for (let t = start + lag; t < start + 2 * lag; t++) {
    for (let c = 0; c < d; c++) {
      const v = x[t * d + c]
      if (v < lo[c]) lo[c] = v
      if (v > hi[c]) hi[c] = v
    }
  }
  const std = new Float64Array(lag)
  let max = -Infinity
  for (let i = 0; i < lag; i++) {
    const row = (start + i) * d
    let mean = 0
    for (let c = 0; c < d; c++) mean += (x[row + c] - lo[c]) / (hi[c] - lo[c])
    mean /= d
    let v = 0
    for (let c = 0; c < d; c++) v += ((x[row + c] - lo[c]) / (hi[c] - lo[c]) - mean) ** 2
    std[i] = Math.sqrt(v / (d - 1))
    if (std[i] > max) max = std[i]
  }
  let sum = 0
  for (let i = 0; i < lag; i++) sum += (std[i] = Math.exp(std[i] - max))
  for (let i = 0; i < lag; i++) out[i] += std[i] / sum / 2
}

/** LagKV's score of one KV head's slots (keys and values as the cache holds them) */
export function lagkvScore(keys: Float32Array, values: Float32Array, n: number, sinks: number, lag: number, cross: boolean): Float32Array {
  const d = keys.length / n
  const score = new Float32Array(n)
  if (n < sinks + 2 * lag) {
    for (let i = 0; i < n; i++) score[i] = i
    return protect(score, sinks, 0)
  }
  const end = sinks + Math.floor((n - sinks) / lag) * lag
  const part = new Float32Array(lag)
  for (let start = sinks; start + lag < end; start += lag) {
    part.fill(0)
    lagScores(keys, d, start, lag, part)
    lagScores(values, d, start, lag, part)
    if (cross) {
      score.set(part, start)
      continue
    }
    const order = Array.from({ length: lag }, (_, i) => i).sort((a, b) => part[a] - part[b] || a - b)
    order.forEach((i, rank) => (score[start + i] = rank / lag))
  }
  return protect(score, sinks, n - (end - lag))
}

export const lagkv: PolicyDefinition = {
  name: 'lagkv',
  description: 'LagKV: query-agnostic; each partition of lag tokens ranked by how its keys and values stand out against the next partition',
  stage: 'eviction',
  options: [...budgetOptions,
    { name: 'lag', type: 'integer', default: 128, min: 2, description: 'partition size in tokens; each partition is scored against the next' },
    { name: 'sinks', type: 'integer', default: 4, min: 0, description: 'always keep the first N tokens (attention sinks)' },
    { name: 'cross', type: 'boolean', default: false, description: 'score by the softmax values, so partitions compete (kvpress cross_scoring), instead of ranks within each partition' }],
  create(o) {
    const lag = o.lag as number
    const sinks = o.sinks as number
    const cross = o.cross as boolean
    return evictionPolicy(() => ({
      name: 'lagkv', needs: {}, budget: budgetFrom(o), every: o.every as number,
      score(ctx: PolicyContext, layer: number) {
        return Array.from({ length: ctx.model.kvHeads }, (_, h) =>
          lagkvScore(ctx.cache.readKeys(layer, h), ctx.cache.readValues(layer, h), ctx.cache.length(layer, h), sinks, lag, cross))
      },
    }))
  },
}
