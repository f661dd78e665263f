/**
 * MPCache, static eviction (Zeng et al., 2025): "look once" at prefill end.
 *
 *   Qobs = the last 20% of the prompt's queries (capped, see below)
 *   for each layer l:
 *     A = softmax(Qobs K^T / sqrt(d))            per query head, causal
 *     keep token i if max over every head and observation query of A[., i] >= tau
 *     the same tokens stay in every KV head of the layer
 *
 * Follows the paper's 1/sqrt(d); the official code omits it (sharper attention, more tokens pass tau).
 * Cost cap: the runtime keeps at most `maxQueries` (default 256) observation queries, so scoring costs at
 * most maxQueries x n per query head instead of 0.2 n^2; with longer prompts the observation set is the
 * last 256 queries rather than the last 20%.
 * `budget`/`tokens` replace tau by the threshold that keeps that many tokens (the top-k by max attention),
 * which is the same rule with tau chosen per prompt. At least the most attended token is always kept.
 */
import type { Decision, HeadDecision } from '../cache/types.js'
import type { Ops } from '../backend/ops.js'
import { budgetOnly, checkBudget, keepCount, topKIndices } from './budget.js'
import { observedProbs, sharedPositions } from './observed-attention.js'
import type { BudgetOptions, Policy, PolicyContext } from './types.js'
import type { PolicyDefinition } from './registry.js'
import { statelessPolicy } from './stateless.js'

export interface MPCacheOptions extends BudgetOptions {
  /** attention threshold (default 1e-3; the paper picks per task from 1e-3 to 1e-8) */
  tau?: number
  /** share of the prompt's last queries that observe (default 0.2) */
  observe?: number
  /** cap on observation queries (default 256) */
  maxQueries?: number
}

export function createMPCache(options: MPCacheOptions = {}): Policy {
  const tau = options.tau ?? 1e-3
  const observe = options.observe ?? 0.2
  const maxQueries = options.maxQueries ?? 256
  if (!(tau > 0 && tau <= 1)) throw new RangeError(`mpcache: tau must be in (0, 1], got ${tau}`)
  if (!(observe > 0 && observe <= 1)) throw new RangeError(`mpcache: observe must be in (0, 1], got ${observe}`)
  if (!(Number.isInteger(maxQueries) && maxQueries >= 1)) throw new RangeError(`mpcache: maxQueries must be a positive integer, got ${maxQueries}`)
  checkBudget('mpcache', options)

  return statelessPolicy({
    name: 'mpcache',
    needs: { observationWindow: maxQueries },
    traits: { sharedSlots: true, readsPrompt: 'shared-slots' },
    onPrefillEnd(ctx: PolicyContext): Decision | null {
      const { cache, model } = ctx
      const w = Math.min(maxQueries, Math.max(1, Math.ceil(observe * ctx.promptLength)))
      const heads: HeadDecision[] = []
      for (let layer = 0; layer < model.layers; layer++) {
        sharedPositions(cache, layer, model.kvHeads)
        const maxA = maxAttention(ctx, layer, w)
        const keep = selectTokens(ctx.ops, maxA, tau, keepCount(options, maxA.length))
        for (let h = 0; h < model.kvHeads; h++) heads.push({ layer, head: h, keep })
      }
      return { heads }
    },
  })
}

/** per token: the largest attention any observation query of any head of the layer gives it */
export function maxAttention(ctx: PolicyContext, layer: number, w: number): Float32Array {
  const n = ctx.cache.length(layer, 0)
  const maxA = new Float32Array(n)
  for (let h = 0; h < ctx.model.kvHeads; h++) {
    const { probs, rows } = observedProbs(ctx, layer, h, w)
    for (let r = 0; r < rows; r++) for (let j = 0; j < n; j++) if (probs[r * n + j] > maxA[j]) maxA[j] = probs[r * n + j]
  }
  return maxA
}

function selectTokens(ops: Ops, maxA: Float32Array, tau: number, k: number | null): Int32Array {
  if (k !== null) return topKIndices(ops, maxA, k)
  const keep: number[] = []
  for (let i = 0; i < maxA.length; i++) if (maxA[i] >= tau) keep.push(i)
  return keep.length ? Int32Array.from(keep) : topKIndices(ops, maxA, 1)
}

export const mpcache: PolicyDefinition = {
  name: 'mpcache',
  description: 'MPCache static eviction: keep tokens that some of the last 20% of prompt queries attend to with A >= tau, shared across heads',
  stage: 'eviction',
  options: [
    { name: 'tau', type: 'number', default: 1e-3, min: 0, minExclusive: true, max: 1, description: 'attention threshold (ignored when budget or tokens is given)' },
    { name: 'observe', type: 'number', default: 0.2, min: 0, minExclusive: true, max: 1, description: 'share of the prompt\'s last queries that observe' },
    { name: 'maxQueries', type: 'integer', default: 256, min: 1, description: 'cap on observation queries (bounds the scoring cost)' },
    ...budgetOnly(null),
  ],
  create: (o) => createMPCache(o as MPCacheOptions),
}
