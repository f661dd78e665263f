/**
 * Budgets: how many tokens each (layer, KV head) keeps. A budget is a ratio of the prompt (`budget`,
 * 0 < b <= 1) or a token count (`tokens`), the average per head. Schedules split it over layers (uniform,
 * pyramid) and heads (even, adaptive); the per-head keep lists they produce have different lengths and
 * the cache stores them ragged, so a smaller share is really less memory.
 */
import type { Ops } from '../backend/ops.js'
import type { OptionSpec } from './registry.js'
import type { OptionValue } from './spec.js'
import type { BudgetOptions } from './types.js'

export const DEFAULT_BUDGET = 0.25

/** budget | tokens options with a given default ratio (null: no budget unless given) */
export function budgetOnly(defaultRatio: number | null): OptionSpec[] {
  return [
    { name: 'budget', type: 'number', default: defaultRatio, min: 0, minExclusive: true, max: 1, unlessGiven: 'tokens', conflictsWith: 'tokens',
      description: 'tokens kept per head as a ratio of the prompt (0 < budget <= 1)' },
    { name: 'tokens', type: 'integer', default: null, min: 1, conflictsWith: 'budget', description: 'tokens kept per head, as a count (instead of budget)' },
  ]
}

export const budgetOptions: OptionSpec[] = [
  ...budgetOnly(DEFAULT_BUDGET),
  { name: 'every', type: 'integer', default: 0, min: 0, description: 'also compress back to the budget every N decode steps (0: only at prefill end)' },
]

export interface Budget {
  ratio?: number
  tokens?: number
}

export function budgetFrom(options: Record<string, OptionValue>): Budget {
  return options.tokens !== undefined ? { tokens: options.tokens as number } : { ratio: (options.budget as number | undefined) ?? DEFAULT_BUDGET }
}

/** Tokens one head keeps out of n: floor(ratio * n) (as kvpress counts it), at least 1, at most n. */
export function tokensPerHead(b: Budget, n: number): number {
  const c = b.tokens !== undefined ? b.tokens : Math.floor((b.ratio ?? DEFAULT_BUDGET) * n)
  return Math.max(1, Math.min(n, c))
}

/** The budget options of a policy built without a spec (createKeyformer(options)), checked as the spec parser checks them. */
export function checkBudget(policy: string, o: BudgetOptions): void {
  if (o.budget !== undefined && !(o.budget > 0 && o.budget <= 1)) throw new RangeError(`${policy}: budget must be a ratio in (0, 1], got ${o.budget}`)
  if (o.tokens !== undefined && !(Number.isInteger(o.tokens) && o.tokens >= 1)) throw new RangeError(`${policy}: tokens must be a positive integer, got ${o.tokens}`)
}

/**
 * Tokens to keep out of the n a head holds, for the methods whose budget is fixed by the prompt (a count
 * above n keeps n); null when neither option is set (the method's own default decides).
 */
export function keepCount(o: BudgetOptions, n: number): number | null {
  if (o.tokens !== undefined) return tokensPerHead({ tokens: o.tokens }, n)
  if (o.budget !== undefined) return tokensPerHead({ ratio: o.budget }, n)
  return null
}

/**
 * PyramidKV's layer schedule: the budget above the protected window falls linearly from the lowest layer
 * to the highest, the top layer getting 1/beta of the average; the sum over layers stays layers x perLayer.
 */
export function pyramidLayerBudgets(layers: number, perLayer: number, window: number, beta: number): number[] {
  const extra = perLayer - window
  if (layers === 1 || extra <= 0) return new Array(layers).fill(perLayer)
  const low = extra / beta
  const high = 2 * extra - low
  const share = (l: number) => high - ((high - low) * l) / (layers - 1)
  // round the running sum so the total is exact
  const out: number[] = []
  let cum = 0
  for (let l = 0; l < layers; l++) {
    const next = cum + share(l)
    out.push(window + Math.round(next) - Math.round(cum))
    cum = next
  }
  return out
}

/**
 * Indices of the k highest scores, ascending (ties to the lower index), through the topK kernel.
 * +Infinity marks a token that must stay (observation window, sinks); when more are marked than fit,
 * the newest marked ones stay (the window before the sinks).
 */
export function topKIndices(ops: Ops, scores: Float32Array, k: number): Int32Array {
  const n = scores.length
  if (k >= n) return Int32Array.from({ length: n }, (_, i) => i)
  if (k <= 0) return new Int32Array(0)
  let marked = 0
  for (let i = 0; i < n; i++) if (scores[i] === Infinity) marked++
  if (marked >= k) {
    const out = new Int32Array(k)
    for (let i = n - 1, j = k - 1; j >= 0; i--) if (scores[i] === Infinity) out[j--] = i
    return out
  }
  const heap = ops.heap
  const x = heap.f32From(scores)
  const idx = heap.allocI32(k)
  const scratch = heap.allocI32(n)
  try {
    ops.topK(x, n, k, idx, scratch)
    return idx.view.slice()
  } finally {
    scratch.free()
    idx.free()
    x.free()
  }
}

/** Each head keeps its own top `counts[h]` slots. */
export function keepTopPerHead(ops: Ops, scores: Float32Array[], counts: number[]): Int32Array[] {
  return scores.map((s, h) => topKIndices(ops, s, Math.min(counts[h], s.length)))
}

/**
 * AdaKV's allocation: the heads of a layer share one budget `total`; each head first gets its own top
 * floor(alpha x total / heads) slots, the rest go to the highest scores across all heads of the layer,
 * so heads whose attention is concentrated give budget to heads whose attention is spread.
 */
export function keepAdaptive(ops: Ops, scores: Float32Array[], total: number, alpha: number): Int32Array[] {
  const heads = scores.length
  // every head keeps at least one token, where the total allows it
  const floor = Math.max(total >= heads ? 1 : 0, Math.floor((alpha * total) / heads))
  const keep: Set<number>[] = scores.map((s) => new Set(topKIndices(ops, s, Math.min(floor, s.length))))
  // the rest of the budget goes to the highest scores among the slots no floor took
  const owner: number[] = []
  const slot: number[] = []
  const rest: number[] = []
  scores.forEach((s, h) => s.forEach((x, i) => {
    if (keep[h].has(i)) return
    owner.push(h)
    slot.push(i)
    rest.push(x)
  }))
  const taken = keep.reduce((a, k) => a + k.size, 0)
  for (const j of topKIndices(ops, Float32Array.from(rest), Math.max(0, Math.min(total - taken, rest.length)))) keep[owner[j]].add(slot[j])
  return keep.map((k) => Int32Array.from(k).sort())
}
