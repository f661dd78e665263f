/**
 * WindowKV (Zuo et al., 2025): keep whole windows of consecutive tokens, one selection per layer group.
 *
 *   w = 32 suffix queries for QA tasks, 16 otherwise (the paper picks the task with a small classifier;
 *       here the `task` option says it)
 *   layers split into groups of 8; group g gets budget C_g, decreasing linearly over the groups with mean C
 *   for the first layer of each group:
 *     s_i = sum over the w suffix queries and every query head of the layer of softmax(Qobs K^T / sqrt(d))[., i]
 *     windows of 8 consecutive tokens over the prefix before the suffix (the last one may be shorter)
 *     window score = mean of its s_i (other) or mean of its top half (QA)
 *     keep the suffix + the top floor((C_g - w) / 8) windows
 *   every layer of the group and every KV head keeps those indices
 *
 * The methods note gives no slope for the group budgets: C_g runs linearly from (1 + spread) C down to
 * (1 - spread) C (spread 0.5 by default), clamped to [w, n]. With 8 layers there is one group and C_g = C.
 */
import type { Decision, HeadDecision } from '../cache/types.js'
import { budgetOnly, checkBudget, keepCount } from './budget.js'
import { observedProbs, sharedPositions } from './observed-attention.js'
import type { BudgetOptions, Policy, PolicyContext } from './types.js'
import type { PolicyDefinition } from './registry.js'
import { statelessPolicy } from './stateless.js'

export interface WindowKVOptions extends BudgetOptions {
  task?: 'qa' | 'other'
  /** tokens per window (default 8) */
  windowTokens?: number
  /** layers per group sharing indices (default 8) */
  groupLayers?: number
  /** how far group budgets spread around the mean, in [0, 1) (default 0.5) */
  spread?: number
}

export function createWindowKV(options: WindowKVOptions = {}): Policy {
  const task = options.task ?? 'other'
  const windowTokens = options.windowTokens ?? 8
  const groupLayers = options.groupLayers ?? 8
  const spread = options.spread ?? 0.5
  if (task !== 'qa' && task !== 'other') throw new RangeError(`windowkv: task must be 'qa' or 'other', got ${String(task)}`)
  if (!(Number.isInteger(windowTokens) && windowTokens >= 1)) throw new RangeError(`windowkv: windowTokens must be a positive integer, got ${windowTokens}`)
  if (!(Number.isInteger(groupLayers) && groupLayers >= 1)) throw new RangeError(`windowkv: groupLayers must be a positive integer, got ${groupLayers}`)
  if (!(spread >= 0 && spread < 1)) throw new RangeError(`windowkv: spread must be in [0, 1), got ${spread}`)
  checkBudget('windowkv', options)
  const w = task === 'qa' ? 32 : 16

  return statelessPolicy({
    name: 'windowkv',
    needs: { observationWindow: w },
    traits: { sharedSlots: true, readsPrompt: 'shared-slots' },
    onPrefillEnd(ctx: PolicyContext): Decision | null {
      const { cache, model } = ctx
      const groups = Math.ceil(model.layers / groupLayers)
      const heads: HeadDecision[] = []
      for (let g = 0; g < groups; g++) {
        const first = g * groupLayers
        const n = sharedPositions(cache, first, model.kvHeads).length
        const mean = keepCount(options, n) ?? Math.round(0.25 * n)
        const budget = groupBudget(mean, g, groups, spread, Math.min(1, n), n)
        const keep = Int32Array.from(selectWindows(tokenScores(ctx, first, w), Math.min(w, n), budget, windowTokens, task === 'qa'))
        for (let layer = first; layer < Math.min(model.layers, first + groupLayers); layer++) {
          if (cache.length(layer, 0) !== n) throw new Error(`windowkv: layer ${layer} holds ${cache.length(layer, 0)} tokens, its group's first layer ${n}`)
          for (let h = 0; h < model.kvHeads; h++) heads.push({ layer, head: h, keep })
        }
      }
      return { heads }
    },
  })
}

/** C_g linear from (1 + spread) C to (1 - spread) C over the groups, clamped to [lo, n] */
export function groupBudget(mean: number, g: number, groups: number, spread: number, lo: number, n: number): number {
  const t = groups === 1 ? 0 : 1 - (2 * g) / (groups - 1)
  return Math.min(n, Math.max(lo, Math.round(mean * (1 + spread * t))))
}

/** s_i summed over every query head of the layer and the suffix queries */
function tokenScores(ctx: PolicyContext, layer: number, w: number): Float64Array {
  const n = ctx.cache.length(layer, 0)
  const s = new Float64Array(n)
  for (let h = 0; h < ctx.model.kvHeads; h++) {
    const { probs, rows } = observedProbs(ctx, layer, h, w)
    for (let r = 0; r < rows; r++) for (let j = 0; j < n; j++) s[j] += probs[r * n + j]
  }
  return s
}

/** the suffix w tokens plus the best whole windows that fit in the budget */
export function selectWindows(s: ArrayLike<number>, w: number, budget: number, size: number, topHalf: boolean): number[] {
  const n = s.length
  const prefix = n - w
  if (budget <= w) return Array.from({ length: budget }, (_, i) => n - budget + i)
  const windows = Math.ceil(prefix / size)
  const score = new Float64Array(windows)
  for (let b = 0; b < windows; b++) {
    const vals = Array.from({ length: Math.min(size, prefix - b * size) }, (_, i) => s[b * size + i])
    if (topHalf) vals.sort((a, c) => c - a).splice(Math.max(1, Math.ceil(vals.length / 2)))
    score[b] = vals.reduce((a, c) => a + c, 0) / vals.length
  }
  // whole windows only: a short last window costs its own length, so pick greedily by score within the budget
  const room = budget - w
  const keep: number[] = []
  let used = 0
  for (const b of Array.from(score.keys()).sort((a, c) => score[c] - score[a] || a - c)) {
    const len = Math.min(size, prefix - b * size)
    if (used + len > room) continue
    used += len
    for (let i = 0; i < len; i++) keep.push(b * size + i)
  }
  for (let i = prefix; i < n; i++) keep.push(i)
  return keep.sort((a, c) => a - c)
}

export const windowkv: PolicyDefinition = {
  name: 'windowkv',
  description: 'WindowKV: SnapKV-style scores, whole windows of 8 tokens kept, one selection per layer group (groups of 8 layers), linearly decreasing group budgets',
  stage: 'eviction',
  options: [
    ...budgetOnly(0.25),
    { name: 'task', type: 'string', default: 'other', choices: ['qa', 'other'], description: 'qa: suffix window 32, window score = mean of its top half; other: window 16, mean' },
    { name: 'windowTokens', type: 'integer', default: 8, min: 1, description: 'tokens per window' },
    { name: 'groupLayers', type: 'integer', default: 8, min: 1, description: 'layers per group sharing the first layer\'s indices' },
    { name: 'spread', type: 'number', default: 0.5, min: 0, max: 1, maxExclusive: true, description: 'group budgets run from (1 + spread) to (1 - spread) times the mean' },
  ],
  create: (o) => createWindowKV(o as WindowKVOptions),
}
