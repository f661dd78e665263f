/**
 * CriticalKV and CriticalAdaKV (Feng et al. 2025, "Identify Critical KV Cache in LLM Inference from an
 * Output Perturbation Perspective", arXiv 2502.03805), as kvpress's `CriticalKVPress` and
 * `CriticalAdaKVPress` compute them (kvpress/presses/criticalkv_press.py), over SnapKV's scores.
 * Attention weight alone misjudges a token whose value barely moves the output; the second stage
 * weighs the score by how much the value writes through the output projection:
 *   stage 1: each head keeps the top floor(first x its budget) tokens by the SnapKV score
 *   stage 2: the rest of its budget goes to the top (score + eps) x mean_g ||W_o,g^T v||_1
 * (mean over the query heads g of the KV head's group). CriticalAdaKV first splits each layer's budget
 * over its KV heads as AdaKV does (every head keeps at least floor(alpha x even share) of its top scores,
 * the rest goes to the top scores across the layer), then runs both stages inside each head's share.
 * kvpress masks CriticalAdaKV's evicted entries; here the per-head keep lists are stored ragged and the
 * memory is freed. The SnapKV options default to kvpress's SnapKVPress (window 64, average pooling,
 * kernel 5).
 */
import { budgetFrom, budgetOptions, keepAdaptive, topKIndices } from './budget.js'
import { evictionPolicy } from './evict.js'
import { checkObservationOptions, observationOptions } from './observe.js'
import type { OptionSpec, PolicyDefinition } from './registry.js'
import { sinkOption, snapScorer } from './snapkv.js'
import type { PolicyContext } from './types.js'

const KVPRESS_SNAPKV: Record<string, number | string> = { window: 64, pooling: 'avg', kernel: 5 }
const snapOptions: OptionSpec[] = observationOptions.map((o) => (o.name in KVPRESS_SNAPKV ? { ...o, default: KVPRESS_SNAPKV[o.name] } : o))

const criticalOptions: OptionSpec[] = [
  { name: 'first', type: 'number', default: 0.5, min: 0, max: 1, description: 'share of each head\'s budget chosen by the attention score alone (stage 1)' },
  { name: 'epsilon', type: 'number', default: 1e-4, min: 0, description: 'added to the score before it is weighted by the value\'s output norm (stage 2)' },
]

/** per KV head of a layer: mean over its query heads of ||W_o,g^T v_i||_1 for every cached value */
function outputNorms(ctx: PolicyContext, layer: number): Float32Array[] {
  const rt = ctx.runtime
  if (!rt) throw new Error('CriticalKV needs the runtime\'s output projection (PolicyContext.runtime), which this context lacks')
  const { group } = ctx.model
  return Array.from({ length: ctx.model.kvHeads }, (_, h) => {
    const n = ctx.cache.length(layer, h)
    const per = rt.valueOutputNorms(layer, h, ctx.cache.readValues(layer, h), 1)
    const mean = new Float32Array(n)
    for (let g = 0; g < group; g++) for (let i = 0; i < n; i++) mean[i] += per[g * n + i] / group
    return mean
  })
}

/** both stages in one head: its top floor(first x budget) by score, the rest by (score + eps) x norm */
function twoStage(ctx: PolicyContext, score: Float32Array, norm: Float32Array, budget: number, first: number, eps: number): Int32Array {
  const s = new Float32Array(score.length)
  for (let i = 0; i < s.length; i++) s[i] = (score[i] + eps) * norm[i]
  for (const i of topKIndices(ctx.ops, score, Math.floor(budget * first))) s[i] = Infinity
  return topKIndices(ctx.ops, s, budget)
}

function create(adaptive: boolean): PolicyDefinition['create'] {
  return (o, model) => {
    const first = o.first as number
    const eps = o.epsilon as number
    const alpha = o.alpha as number
    return evictionPolicy(() => ({
      name: adaptive ? 'criticaladakv' : 'criticalkv', budget: budgetFrom(o), every: o.every as number, ...snapScorer(o, model),
      keep(ctx, scores, perHead, layer) {
        const norms = outputNorms(ctx, layer)
        // AdaKV's split of the layer's budget; each head's share is then filled in two stages
        const budgets = adaptive ? keepAdaptive(ctx.ops, scores, perHead * scores.length, alpha).map((k) => k.length) : scores.map((s) => Math.min(perHead, s.length))
        return scores.map((s, h) => {
          if (!adaptive) return twoStage(ctx, s, norms[h], budgets[h], first, eps)
          const safe = s.slice()
          for (const i of topKIndices(ctx.ops, s, Math.floor(alpha * perHead))) safe[i] = Infinity
          return twoStage(ctx, safe, norms[h], budgets[h], first, eps)
        })
      },
    }))
  }
}

export const criticalkv: PolicyDefinition = {
  name: 'criticalkv',
  description: 'CriticalKV: SnapKV scores, half of each head\'s budget by score, the rest by score x the value\'s output-projection norm',
  stage: 'eviction',
  options: [...budgetOptions, ...snapOptions, sinkOption, ...criticalOptions],
  check: checkObservationOptions,
  create: create(false),
}

export const criticaladakv: PolicyDefinition = {
  name: 'criticaladakv',
  description: 'CriticalAdaKV: CriticalKV\'s two stages inside AdaKV\'s per-head split of each layer\'s budget (ragged, memory freed)',
  stage: 'eviction',
  options: [...budgetOptions, ...snapOptions, sinkOption, ...criticalOptions,
    { name: 'alpha', type: 'number', default: 0.2, min: 0, max: 1, description: 'floor of each head, as a share of the even per-head budget' }],
  check: checkObservationOptions,
  create: create(true),
}
