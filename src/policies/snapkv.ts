/**
 * SnapKV (Li et al. 2024, "SnapKV: LLM Knows What You are Looking for Before Generation").
 *   1. A = softmax(Qobs K^T / sqrt(d)) for the last w prompt queries, causal inside the window
 *   2. vote_i = sum over the window's queries of A[., i]
 *   3. pool the votes over positions (max, kernel 7; or avg, kernel 5) so neighbours of a hit survive
 *   4. keep the top (C - w) tokens per head, plus the window itself
 * GQA: the official code repeats the cache per query head before compressing (no memory saved under
 * GQA); here the votes of a KV head's query heads are combined (mean or max) and each KV head stores
 * one keep list. Options `sinks` (always keep the first tokens) is an addition, 0 by default.
 */
import type { Ops } from '../backend/ops.js'
import { budgetFrom, budgetOptions, keepShared, topKIndices } from './budget.js'
import { compensateOption, evictionPolicy, protect, type EvictionMethod } from './evict.js'
import { DecodeObserver, observationFromHooks, observationOptions, voteOptionsFrom, windowVotes, type VoteOptions } from './observe.js'
import type { OptionSpec, PolicyDefinition } from './registry.js'
import type { OptionValue } from './spec.js'
import type { ModelShape, PolicyContext } from './types.js'
import type { Phase } from './evict.js'

export const shareOption: OptionSpec = {
  name: 'share', type: 'string', default: 'head', choices: ['head', 'layer', 'model'],
  description: 'each KV head keeps its own top tokens (head), or one selection from the combined votes serves a layer or the whole model',
}
export const combineOption: OptionSpec = {
  name: 'combine', type: 'string', default: 'sum', choices: ['sum', 'max'],
  description: 'with share=layer|model: combine the heads\' votes by sum, or by max (a token any head votes for)',
}

/** the keep rule for `share`: own top per head, or one shared selection per layer or for the model */
export function sharedSelection(share: string, combine: 'sum' | 'max', local: number, rest: string, kvHeads: number): Pick<EvictionMethod, 'keep' | 'keepModel'> {
  // the shared part first, then the rest of each head's budget from its own votes (rest=head) or from
  // the summed votes of its layer (rest=layer)
  const topUp = (ops: Ops, scores: Float32Array[], shared: Int32Array[], perHead: number): Int32Array[] =>
    scores.map((s, h) => {
      const own = s.slice()
      for (const i of shared[h]) own[i] = Infinity
      return topKIndices(ops, own, Math.min(perHead, s.length))
    })
  const pick = (ops: Ops, scores: Float32Array[], perHead: number) => {
    const shared = keepShared(ops, scores, Math.round((1 - local) * perHead), combine)
    if (local === 0) return shared
    if (rest === 'head' || share === 'layer') return topUp(ops, scores, shared, perHead)
    // rest=layer: each layer tops up with one selection from its heads' summed votes
    const out: Int32Array[] = []
    for (let l = 0; l < scores.length; l += kvHeads) {
      const layer = scores.slice(l, l + kvHeads)
      const sum = new Float32Array(layer[0].length)
      for (const x of layer) for (let i = 0; i < sum.length; i++) sum[i] += x[i]
      out.push(...topUp(ops, layer.map(() => sum), shared.slice(l, l + kvHeads), perHead))
    }
    return out
  }
  if (share === 'layer') return { keep: (ctx, scores, perHead) => pick(ctx.ops, scores, perHead) }
  if (share === 'model') {
    return {
      keepModel: (ctx, scores, perHead) => {
        const keep = pick(ctx.ops, scores.flat(), perHead)
        return scores.map((_, l) => keep.slice(l * kvHeads, (l + 1) * kvHeads))
      },
    }
  }
  return {}
}

export const localOption: OptionSpec = {
  name: 'local', type: 'number', default: 0, min: 0, max: 1,
  description: 'with share=layer|model: the share of each head\'s budget filled after the shared selection, from its own votes (see rest)',
}
export const restOption: OptionSpec = {
  name: 'rest', type: 'string', default: 'head', choices: ['head', 'layer'],
  description: 'with share=model and local > 0: the rest comes from each head\'s own votes or from its layer\'s summed votes',
}

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
    step(ctx: PolicyContext) {
      for (let layer = 0; layer < model.layers; layer++) {
        const q = ctx.hooks[layer]?.decodeQuery
        if (!q) continue
        const pos = ctx.cache.positions(layer, 0)
        decoded.push(layer, q, pos[pos.length - 1])
      }
    },
  }
}

export const snapkv: PolicyDefinition = {
  name: 'snapkv',
  description: 'SnapKV: keep the tokens the last w prompt queries attend to (pooled vote, GQA-aware), plus the window',
  stage: 'eviction',
  options: [...budgetOptions, compensateOption, ...observationOptions, sinkOption, shareOption, combineOption, localOption, restOption],
  create(o, model) {
    return evictionPolicy(() => ({
      name: 'snapkv', budget: budgetFrom(o), every: o.every as number, compensate: o.compensate as boolean, ...snapScorer(o, model),
      ...sharedSelection(o.share as string, o.combine as 'sum' | 'max', o.local as number, o.rest as string, model.kvHeads),
    }))
  },
}
