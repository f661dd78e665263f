/**
 * SnapKV (Li et al. 2024, "SnapKV: LLM Knows What You are Looking for Before Generation").
 *   1. A = softmax(Qobs K^T / sqrt(d)) for the last w prompt queries, causal inside the window
 *   2. vote_i = sum over the window's queries of A[., i]
 *   3. pool the votes over positions (max, kernel 7; or avg, kernel 5) so neighbours of a hit survive
 *   4. keep the top (C - w) tokens per head, plus the window itself
 * GQA: the official code repeats the cache per query head before compressing (no memory saved under
 * GQA); here the votes of a KV head's query heads are combined (mean or max) and each KV head stores
 * one keep list. Options `sinks` (always keep the first tokens) is an addition, 0 by default.
 * kvkit's own method, one selection for the whole model from these votes, is `unionkv` (unionkv.ts).
 */
import { budgetFrom, budgetOptions } from './budget.js'
import { compensateOption, evictionPolicy, protect, type EvictionMethod } from './evict.js'
import { checkObservationOptions, DecodeObserver, observationFromHooks, observationOptions, voteOptionsFrom, windowVotes, type VoteOptions } from './observe.js'
import type { OptionSpec, PolicyDefinition } from './registry.js'
import type { OptionValue } from './spec.js'
import type { ModelShape, PolicyContext } from './types.js'
import type { Phase } from './evict.js'

export const sinkOption: OptionSpec = { name: 'sinks', type: 'integer', default: 0, min: 0, description: 'always keep the first N tokens (attention sinks)' }

/** SnapKV's scorer, shared by PyramidKV and AdaKV: window votes, with decode-time windows for every=N. */
export function snapScorer(o: Record<string, OptionValue>, model: ModelShape): Pick<EvictionMethod, 'needs' | 'score' | 'step'> {
  const vote: VoteOptions = voteOptionsFrom(o)
  const sinks = (o.sinks as number | undefined) ?? 0
  const decoded = new DecodeObserver(model, vote.window)
  return {
    needs: { observationWindow: vote.window },
    score(ctx: PolicyContext, layer: number, phase: Phase) {
      const obs = phase === 'prefill' ? observationFromHooks(ctx, layer, vote.window) : decoded.current(layer)
      if (!obs) throw new Error(`${layer}: no decode queries captured yet`)
      return windowVotes(ctx, layer, obs, vote).map((s) => protect(s, sinks, 0))
    },
    // decode-time windows only feed every=N's compressions
    step: o.every
      ? (ctx: PolicyContext) => {
          for (let layer = 0; layer < model.layers; layer++) {
            const q = ctx.hooks[layer]?.decodeQuery
            if (!q) continue
            const pos = ctx.cache.positions(layer, 0)
            decoded.push(layer, q, pos[pos.length - 1])
          }
        }
      : undefined,
  }
}

export const snapkv: PolicyDefinition = {
  name: 'snapkv',
  description: 'SnapKV: keep the tokens the last w prompt queries attend to (pooled vote, GQA-aware), plus the window',
  stage: 'eviction',
  options: [...budgetOptions, compensateOption, ...observationOptions, sinkOption],
  movedOptions: Object.fromEntries(['share', 'combine', 'local', 'rest'].map((k) => [k, "kvkit's model-wide selection is its own method now: unionkv (window=16,pooling=avg,kernel=9 and local=0.25 by default)"])),
  check: checkObservationOptions,
  create(o, model) {
    return evictionPolicy(() => ({
      name: 'snapkv', budget: budgetFrom(o), every: o.every as number, compensate: o.compensate as boolean, ...snapScorer(o, model),
    }))
  },
}
