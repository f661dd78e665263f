/**
 * How many tokens a head keeps from a budget option: `tokens` (a count) wins over `budget` (a ratio of the
 * tokens the head holds). Checks the option values and names the bad one.
 */
import type { BudgetOptions } from './types.js'

export function checkBudget(policy: string, o: BudgetOptions): void {
  if (o.budget !== undefined && !(o.budget > 0 && o.budget <= 1)) throw new RangeError(`${policy}: budget must be a ratio in (0, 1], got ${o.budget}`)
  if (o.tokens !== undefined && !(Number.isInteger(o.tokens) && o.tokens >= 1)) throw new RangeError(`${policy}: tokens must be a positive integer, got ${o.tokens}`)
}

/** tokens to keep out of n; null when neither option is set (the policy's own rule decides) */
export function keepCount(o: BudgetOptions, n: number): number | null {
  if (o.tokens !== undefined) return Math.min(n, o.tokens)
  if (o.budget !== undefined) return Math.min(n, Math.max(1, Math.round(o.budget * n)))
  return null
}

/** indices of the k largest scores (ties to the lower index), ascending */
export function topIndices(score: ArrayLike<number>, k: number, from = 0, to = score.length): number[] {
  const idx: number[] = []
  for (let i = from; i < to; i++) idx.push(i)
  idx.sort((a, b) => score[b] - score[a] || a - b)
  return idx.slice(0, Math.max(0, k)).sort((a, b) => a - b)
}
