/**
 * Keyformer (Adnan et al., MLSys 2024): keep the "key tokens", scored with Gumbel noise.
 *
 *   k = budget (default 60% of the prompt), of which r = 30% are the most recent tokens
 *   score f(x) = softmax((x + zeta) / tau), x = q.K^T / sqrt(d), zeta ~ Gumbel(0, 1) drawn fresh each time
 *   prompt:  S = sum over observation queries of f(x) (tau = tauStart); keep r recent + (k - r) top-S, per KV head
 *   decode step t: S += f(q_t K^T) with tau = tauStart + (tauEnd - tauStart) * t / steps (then held at
 *           tauEnd); the new token joins; evict back to k: r recent + (k - r) top-S
 *
 * Per KV head, S sums over the query heads that read it. Deviation: the paper accumulates the prompt
 * score over every prompt query; here the prompt score uses the last `window` prompt queries (default 64;
 * raise it to approach the paper) because all n queries cost n^2 per head. The noise is drawn from a
 * seeded generator (mulberry32, reseeded at each prefill), so a run is reproducible: in order layer, KV
 * head, query row (query head of the group, then query), key slot; masked keys draw nothing.
 */
import { budgetOnly, checkBudget, keepCount } from './budget.js'
import { evictionPolicy, protect } from './evict.js'
import { attentionLogits, groupObservationQueries } from './observed-attention.js'
import { mulberry32 } from './seeded-random.js'
import type { BudgetOptions, Policy, PolicyContext } from './types.js'
import type { PolicyDefinition } from './registry.js'

export interface KeyformerOptions extends BudgetOptions {
  /** share of the kept tokens that are the most recent ones (default 0.3) */
  recent?: number
  tauStart?: number
  tauEnd?: number
  /** decode steps over which tau rises from tauStart to tauEnd (default 128) */
  steps?: number
  seed?: number
  /** prompt queries scored at prefill (default 64) */
  window?: number
}

/** Gumbel(0, 1) from a uniform: -log(-log u), with u kept inside (0, 1) */
export function gumbel(u: number): number {
  const x = Math.min(Math.max(u, 1e-12), 1 - 1e-12)
  return -Math.log(-Math.log(x))
}

export function createKeyformer(options: KeyformerOptions = {}): Policy {
  const recentShare = options.recent ?? 0.3
  const tauStart = options.tauStart ?? 1
  const tauEnd = options.tauEnd ?? 2
  const steps = options.steps ?? 128
  const seed = options.seed ?? 0
  const window = options.window ?? 64
  checkBudget('keyformer', options)
  if (!(recentShare >= 0 && recentShare <= 1)) throw new RangeError(`keyformer: recent must be in [0, 1], got ${recentShare}`)
  if (!(tauStart > 0 && tauEnd > 0)) throw new RangeError(`keyformer: tauStart and tauEnd must be > 0, got ${tauStart}, ${tauEnd}`)
  if (!(Number.isInteger(steps) && steps >= 1)) throw new RangeError(`keyformer: steps must be a positive integer, got ${steps}`)
  if (!(Number.isInteger(window) && window >= 1)) throw new RangeError(`keyformer: window must be a positive integer, got ${window}`)

  return evictionPolicy(() => {
    let random = mulberry32(seed)
    /** accumulated score per (layer * kvHeads + head), by token position */
    let scores: Map<number, number>[] = []
    /** the latest accumulated scores per (layer * kvHeads + head), in slot order */
    let latest: Float64Array[] = []
    /** k: tokens each head keeps, fixed at prefill end */
    let k = 0

    /** adds f(x) = softmax((x + zeta) / tau) of `rows` queries to the head's scores */
    function accumulate(ctx: PolicyContext, layer: number, h: number, q: Float32Array, rows: number, qPos: ArrayLike<number>, tau: number): void {
      const { cache, model } = ctx
      const positions = cache.positions(layer, h)
      const n = positions.length
      const x = attentionLogits(ctx.ops, cache.view(layer, h), positions, q, rows, qPos, 1 / Math.sqrt(model.headDim))
      const S = scores[layer * model.kvHeads + h]
      const total = Float64Array.from(positions, (p) => S.get(p) ?? 0)
      const f = new Float64Array(n)
      for (let r = 0; r < rows; r++) {
        let m = -Infinity
        for (let j = 0; j < n; j++) {
          const v = x[r * n + j]
          f[j] = v === -Infinity ? -Infinity : (v + gumbel(random())) / tau
          if (f[j] > m) m = f[j]
        }
        let z = 0
        for (let j = 0; j < n; j++) z += f[j] = Math.exp(f[j] - m)
        for (let j = 0; j < n; j++) total[j] += f[j] / z
      }
      S.clear()
      positions.forEach((p, j) => S.set(p, total[j]))
      latest[layer * model.kvHeads + h] = total
    }

    return {
      name: 'keyformer', budget: {}, every: 1,
      needs: { observationWindow: window, decodeQueries: true },
      // k is fixed here, at prefill end, and read by score()
      perHead: (n) => (k = keepCount(options, n) ?? Math.max(1, Math.round(0.6 * n))),
      // prompt: S = sum over the observation queries of f(x), tau = tauStart
      prefill(ctx) {
        const { model } = ctx
        random = mulberry32(seed)
        scores = Array.from({ length: model.layers * model.kvHeads }, () => new Map())
        latest = []
        for (let layer = 0; layer < model.layers; layer++) {
          for (let h = 0; h < model.kvHeads; h++) {
            const { queries, positions, rows } = groupObservationQueries(ctx.hooks[layer], h, model.group, model.headDim, window)
            accumulate(ctx, layer, h, queries, rows, positions, tauStart)
          }
        }
      },
      // decode step t: S += f(q_t K^T), tau rising from tauStart to tauEnd over `steps` steps
      step(ctx) {
        const { model, step } = ctx
        const tau = tauStart + (tauEnd - tauStart) * Math.min(1, step / steps)
        for (let layer = 0; layer < model.layers; layer++) {
          const dq = ctx.hooks[layer].decodeQuery
          if (!dq) throw new Error(`keyformer: layer ${layer}: the runtime supplied no decode query`)
          for (let h = 0; h < model.kvHeads; h++) {
            const q = dq.slice(h * model.group * model.headDim, (h + 1) * model.group * model.headDim)
            // the decode query sees every cached token
            accumulate(ctx, layer, h, q, model.group, new Array(model.group).fill(Infinity), tau)
          }
        }
      },
      // keep r = recent x k most recent tokens and the top (k - r) scores of the others
      score(ctx, layer) {
        const r = Math.round(recentShare * k)
        return Array.from({ length: ctx.model.kvHeads }, (_, h) => protect(Float32Array.from(latest[layer * ctx.model.kvHeads + h]), 0, r))
      },
      applied(decision, ctx) {
        // forget the evicted tokens' scores
        for (const { layer, head } of decision.heads) {
          const S = scores[layer * ctx.model.kvHeads + head]
          if (!S) continue
          const held = new Set(ctx.cache.positions(layer, head))
          for (const p of [...S.keys()]) if (!held.has(p)) S.delete(p)
        }
      },
    }
  })
}

export const keyformer: PolicyDefinition = {
  name: 'keyformer',
  description: 'Keyformer: Gumbel-noised accumulated attention, k = 60% of the prompt (30% of it recent), fixed size while decoding',
  stage: 'eviction',
  options: [
    ...budgetOnly(0.6),
    { name: 'recent', type: 'number', default: 0.3, min: 0, max: 1, description: 'share of the kept tokens that are the most recent' },
    { name: 'tauStart', type: 'number', default: 1, min: 0, minExclusive: true, description: 'Gumbel softmax temperature at the start' },
    { name: 'tauEnd', type: 'number', default: 2, min: 0, minExclusive: true, description: 'temperature reached after `steps` decode steps' },
    { name: 'steps', type: 'integer', default: 128, min: 1, description: 'decode steps over which tau rises linearly' },
    { name: 'seed', type: 'integer', default: 0, min: 0, description: 'seed of the Gumbel noise' },
    { name: 'window', type: 'integer', default: 64, min: 1, description: 'prompt queries scored at prefill end' },
  ],
  create: (o) => createKeyformer(o as KeyformerOptions),
}
