/**
 * How many tokens a head keeps from a budget option, counted as the rest of kvkit counts (budget.ts:
 * floor(ratio x n), at least 1): `tokens` (a count) wins over `budget` (a ratio of the tokens the head
 * holds). Also the option lists the second policy family shares.
 */
import { tokensPerHead } from './budget.js'
import type { OptionSpec } from './registry.js'
import type { BudgetOptions } from './types.js'

export function checkBudget(policy: string, o: BudgetOptions): void {
  if (o.budget !== undefined && !(o.budget > 0 && o.budget <= 1)) throw new RangeError(`${policy}: budget must be a ratio in (0, 1], got ${o.budget}`)
  if (o.tokens !== undefined && !(Number.isInteger(o.tokens) && o.tokens >= 1)) throw new RangeError(`${policy}: tokens must be a positive integer, got ${o.tokens}`)
}

/** tokens to keep out of n; null when neither option is set (the policy's own rule decides) */
export function keepCount(o: BudgetOptions, n: number): number | null {
  if (o.tokens !== undefined) return tokensPerHead({ tokens: o.tokens }, n)
  if (o.budget !== undefined) return tokensPerHead({ ratio: o.budget }, n)
  return null
}

/** indices of the k largest scores in [from, to) (ties to the lower index), ascending */
export function topIndices(score: ArrayLike<number>, k: number, from = 0, to = score.length): number[] {
  const idx: number[] = []
  for (let i = from; i < to; i++) idx.push(i)
  idx.sort((a, b) => score[b] - score[a] || a - b)
  return idx.slice(0, Math.max(0, k)).sort((a, b) => a - b)
}

/** budget | tokens options with a given default ratio (null: no budget unless given) */
export function budgetOnly(defaultRatio: number | null): OptionSpec[] {
  return [
    { name: 'budget', type: 'number', default: defaultRatio, min: 0, minExclusive: true, max: 1, unlessGiven: 'tokens', conflictsWith: 'tokens',
      description: 'tokens kept per head as a ratio of the prompt (0 < budget <= 1)' },
    { name: 'tokens', type: 'integer', default: null, min: 1, conflictsWith: 'budget', description: 'tokens kept per head, as a count (instead of budget)' },
  ]
}
