/**
 * ThinK (Xu et al., 2024): prune key *channels* instead of tokens.
 *
 *   for each layer l, KV head h (at prefill end, after any token eviction composed before it):
 *     Qobs  = the last w post-RoPE queries of the query heads reading h        [g*w][d]
 *     K     = the cached keys except the most recent `recent` tokens           [n-recent][d]
 *     s[c]  = ||Qobs[:, c]|| * ||K[:, c]||
 *     drop the floor(d * ratio) channels with the smallest s; the cache stores only those for
 *     slots [0, n-recent); recent and generated keys stay whole.
 *
 * Scoring keeps q.k over the kept channels closest to the full q.k (the dropped channels have the smallest
 * norm products). Under GQA the query norms pool the whole query group, since the pruned keys serve all of
 * it (the released code repeats KV per query head instead). Keys must be stored after RoPE: pruning single
 * channels of pre-RoPE keys would break the rotation pairs applied at attention time.
 */
import type { Decision, HeadDecision } from '../cache/types.js'
import { topKIndices } from './budget.js'
import { groupObservationQueries } from './observed-attention.js'
import type { Policy, PolicyContext } from './types.js'
import type { PolicyDefinition } from './registry.js'
import { statelessPolicy } from './stateless.js'

export interface ThinKOptions {
  /** share of key channels dropped (default 0.4) */
  ratio?: number
  /** observation queries (default 32) */
  window?: number
  /** most recent tokens left whole (default 32) */
  recent?: number
}

export function createThinK(options: ThinKOptions = {}): Policy {
  const ratio = options.ratio ?? 0.4
  const window = options.window ?? 32
  const recent = options.recent ?? 32
  if (!(ratio >= 0 && ratio < 1)) throw new RangeError(`think: ratio must be in [0, 1), got ${ratio}`)
  if (!(Number.isInteger(window) && window >= 1)) throw new RangeError(`think: window must be a positive integer, got ${window}`)
  if (!(Number.isInteger(recent) && recent >= 0)) throw new RangeError(`think: recent must be a non-negative integer, got ${recent}`)

  return statelessPolicy({
    name: 'think',
    traits: { prunesChannels: true },
    needs: { observationWindow: window },
    onPrefillEnd(ctx: PolicyContext): Decision | null {
      const { cache, model } = ctx
      if (cache.options.keys === 'pre-rope') throw new Error('think: keys are stored before RoPE; channel pruning needs post-RoPE keys')
      const d = model.headDim
      // floor(d * ratio) channels go, as in the released code (64 x 0.4: 25 pruned, 39 kept)
      const kept = Math.max(1, d - Math.floor(d * ratio + 1e-9))
      if (kept === d) return null
      const heads: HeadDecision[] = []
      for (let layer = 0; layer < model.layers; layer++) {
        for (let h = 0; h < model.kvHeads; h++) {
          const n = cache.length(layer, h)
          const upto = n - recent
          if (upto <= 0) continue
          if (cache.segments(layer, h).length > 1) throw new Error(`think: layer ${layer} head ${h} is already channel-pruned`)
          const { queries, rows } = groupObservationQueries(ctx.hooks[layer], h, model.group, d, window)
          const score = channelScores(queries, rows, cache.readKeys(layer, h), upto, d)
          heads.push({
            layer,
            head: h,
            keep: Int32Array.from({ length: n }, (_, i) => i),
            keyChannels: { channels: topKIndices(ctx.ops, Float32Array.from(score), kept), upto },
          })
        }
      }
      return { heads }
    },
  })
}

/** s[c] = ||Q[:, c]|| * ||K[0:upto, c]|| */
export function channelScores(q: Float32Array, rows: number, keys: Float32Array, upto: number, d: number): Float64Array {
  const qn = new Float64Array(d)
  const kn = new Float64Array(d)
  for (let r = 0; r < rows; r++) for (let c = 0; c < d; c++) qn[c] += q[r * d + c] ** 2
  for (let i = 0; i < upto; i++) for (let c = 0; c < d; c++) kn[c] += keys[i * d + c] ** 2
  return qn.map((x, c) => Math.sqrt(x) * Math.sqrt(kn[c]))
}

export const think: PolicyDefinition = {
  name: 'think',
  description: 'ThinK: drop the key channels with the smallest ||Qobs[:,c]|| x ||K[:,c]|| (the cache stores fewer floats); composes after eviction',
  stage: 'channels',
  options: [
    { name: 'ratio', type: 'number', default: 0.4, min: 0, max: 1, maxExclusive: true, description: 'share of key channels dropped' },
    { name: 'window', type: 'integer', default: 32, min: 1, description: 'observation queries scoring the channels' },
    { name: 'recent', type: 'integer', default: 32, min: 0, description: 'most recent tokens whose keys stay whole' },
  ],
  create: (o) => createThinK(o as ThinKOptions),
}
