/**
 * The one policy family: a method is a scorer (per-slot scores of each head, computed from hook data, with
 * any state it keeps by token position) plus this shared keep step: at prefill end (and, with `every=N`,
 * every N decode steps) split the budget over layers and heads (budget.ts), keep each head's top slots
 * through the wasm top-k kernel, and, with `compensate`, add the evicted tokens' mean as one token. A
 * method whose state follows positions (`orderFree`) hands a decode step that drops a few tokens to the
 * store as order-free evictions, O(b) row moves for b tokens. Methods whose selection is not a per-token
 * top-k (WindowKV's windows, KVMerger's merges, MPCache's threshold, RazorAttention's head split, ThinK's
 * channels) use the same budget module, top-k and compensation builder directly.
 */
import type { Decision, ExtraToken, HeadDecision, HeadEviction } from '../cache/types.js'
import type { OptionSpec } from './registry.js'
import type { Ops } from '../backend/ops.js'
import { keepTopPerHead, tokensPerHead, topKIndices, type Budget } from './budget.js'
import type { Policy, PolicyContext, PolicyNeeds, PolicySession, PolicyTraits } from './types.js'

export type Phase = 'prefill' | 'decode'

export interface EvictionMethod {
  name: string
  needs: PolicyNeeds
  budget: Budget
  /** compress again every N decode steps (0: only at prefill end) */
  every: number
  /** replace the evicted tokens of each head by one token holding their mean key and value (counted in the budget) */
  compensate?: boolean
  /**
   * The scores and any state follow tokens by position, never by slot: a decode step that drops a few
   * tokens of a head may then hand the store an order-free eviction (`Decision.evictions`, O(b) row moves
   * for b tokens; the slots after the holes change order) instead of a keep list (order kept, O(n)).
   */
  orderFree?: boolean
  /** what a composition needs to know of the method's slots and inputs (PolicyTraits) */
  traits?: Pick<PolicyTraits, 'sharedSlots' | 'readsPrompt'>
  /** per KV head scores over the slots of a layer: higher is kept, +Infinity always kept */
  score(ctx: PolicyContext, layer: number, phase: Phase): Float32Array[]
  /**
   * Tokens per head from the n tokens the cache holds at prefill end, for a method whose budget the prompt
   * caps (a count above n keeps n; TRIM-KV's M; a byte budget over packed rows, packed-budget.ts).
   * Default: from `budget`, a count holding also beyond n.
   */
  perHead?(n: number, ctx: PolicyContext): number
  /** the budget of each layer, given the average per head (default: the same for all layers) */
  layerBudgets?(perHead: number, ctx: PolicyContext): number[]
  /** which slots each head keeps, given the layer's per-head budget (default: each head its own top) */
  keep?(ctx: PolicyContext, scores: Float32Array[], perHead: number, layer: number): Int32Array[]
  /** one allocation across every layer and head (instead of per layer): scores [layer][head], the average per head */
  keepModel?(ctx: PolicyContext, scores: Float32Array[][], perHead: number): Int32Array[][]
  /** state that follows the slots (H2O's accumulated attention) learns of every decision applied to the cache */
  applied?(decision: Decision, ctx: PolicyContext): void
  /** at prefill end, before scoring (state that starts from the prompt's hook data) */
  prefill?(ctx: PolicyContext): void
  /** each decode step, before any periodic compression (score accumulation, query capture) */
  step?(ctx: PolicyContext): void
}

/**
 * A policy from a method factory. The factory runs once here (for the name and needs) and once per
 * request in `start()`: whatever state a method holds in its closure belongs to one request.
 */
export function evictionPolicy(method: () => EvictionMethod): Policy {
  const m0 = method()
  return {
    name: m0.name,
    needs: m0.every > 0 && m0.needs.observationWindow ? { ...m0.needs, decodeQueries: true } : m0.needs,
    traits: { ...m0.traits, decodes: m0.every > 0 },
    start: () => evictionSession(method()),
  }
}

function evictionSession(m: EvictionMethod): PolicySession {
  let targets: number[] | null = null
  let compensate = false

  /** the budget counts from the tokens in the cache at prefill end (at least one: a one-token prompt) */
  function setTargets(ctx: PolicyContext): void {
    const n = Math.max(1, ctx.cache.length(0, 0))
    // a token count holds also where it exceeds the prompt (the cache grows to it while decoding)
    const budget = m.perHead ? m.perHead(n, ctx) : (m.budget.tokens ?? tokensPerHead(m.budget, n))
    // a compensation token takes one slot of the budget; a budget of one slot, or one that keeps the
    // whole prompt, has no room for it
    compensate = !!m.compensate && budget >= 2 && budget < n
    const perHead = budget - (compensate ? 1 : 0)
    // a budget that holds the whole prompt is not redistributed over layers: the prompt stays whole
    targets = m.layerBudgets && budget < n ? m.layerBudgets(perHead, ctx) : new Array(ctx.model.layers).fill(perHead)
  }

  function compress(ctx: PolicyContext, phase: Phase): Decision | null {
    const { cache, model } = ctx
    if (!targets) throw new Error(`${m.name}: decode step before prefill end`)
    const heads: HeadDecision[] = []
    const evictions: HeadEviction[] = []
    const decide = (layer: number, keep: Int32Array[]) =>
      keep.forEach((k, h) => {
        const n = cache.length(layer, h)
        if (k.length === n) return
        if (m.orderFree && phase === 'decode' && !compensate && (n - k.length) * FEW <= n) {
          evictions.push({ layer, head: h, evict: complement(k, n) })
          return
        }
        const hd: HeadDecision = { layer, head: h, keep: k }
        if (compensate) hd.extra = [meanOfEvicted(ctx, layer, h, k)]
        heads.push(hd)
      })
    if (m.keepModel) {
      let held = 0
      for (let layer = 0; layer < model.layers; layer++) for (let h = 0; h < model.kvHeads; h++) held += cache.length(layer, h)
      if (held <= targets[0] * model.layers * model.kvHeads) return null
      const scores = Array.from({ length: model.layers }, (_, layer) => m.score(ctx, layer, phase))
      m.keepModel(ctx, scores, targets[0]).forEach((keep, layer) => decide(layer, keep))
      return decision(heads, evictions)
    }
    for (let layer = 0; layer < model.layers; layer++) {
      let over = false
      for (let h = 0; h < model.kvHeads; h++) if (cache.length(layer, h) > targets[layer]) over = true
      if (!over) continue
      const scores = m.score(ctx, layer, phase)
      decide(layer, m.keep ? m.keep(ctx, scores, targets[layer], layer) : keepTopPerHead(ctx.ops, scores, scores.map(() => targets![layer])))
    }
    return decision(heads, evictions)
  }

  return {
    onPrefillEnd(ctx) {
      m.prefill?.(ctx)
      setTargets(ctx)
      // a one-token prompt leaves the cache empty: nothing to score, the state above is set up all the same
      if (ctx.cache.length(0, 0) === 0) return null
      return compress(ctx, 'prefill')
    },
    // defined only when it does something: a runtime keeps the cache where the decode runs (the GPU)
    // unless a policy looks at it every step
    onDecodeStep:
      m.step || m.every > 0
        ? (ctx) => {
            m.step?.(ctx)
            if (m.every > 0 && ctx.step > 0 && ctx.step % m.every === 0) return compress(ctx, 'decode')
            return null
          }
        : undefined,
    onApplied: m.applied ? (d, ctx) => m.applied!(d, ctx) : undefined,
  }
}

/** a head drops "a few" tokens, and takes the order-free path, when it drops at most 1/FEW of what it holds */
const FEW = 8

function decision(heads: HeadDecision[], evictions: HeadEviction[]): Decision | null {
  if (evictions.length) return { heads, evictions }
  return heads.length ? { heads } : null
}

/** the slots of [0, n) not in `keep` (ascending) */
function complement(keep: Int32Array, n: number): Int32Array {
  const out = new Int32Array(n - keep.length)
  for (let i = 0, j = 0, o = 0; i < n; i++) {
    if (j < keep.length && keep[j] === i) j++
    else out[o++] = i
  }
  return out
}

/**
 * Marks the `recent` newest tokens of a head (by position, wherever their slots are) +Infinity. Positions
 * are distinct integers below 2^24, exact in float32, so the top-k kernel finds them.
 */
export function protectRecent(ops: Ops, score: Float32Array, positions: Int32Array, recent: number): Float32Array {
  const n = score.length
  if (recent <= 0 || n === 0) return score
  if (recent >= n) return score.fill(Infinity)
  for (const i of topKIndices(ops, Float32Array.from(positions), recent)) score[i] = Infinity
  return score
}

/** Marks slots that must stay: the first `sinks` and the last `recent` of a score array. */
export function protect(score: Float32Array, sinks: number, recent: number): Float32Array {
  const n = score.length
  for (let i = 0; i < Math.min(sinks, n); i++) score[i] = Infinity
  for (let i = Math.max(0, n - recent); i < n; i++) score[i] = Infinity
  return score
}

export const compensateOption: OptionSpec = {
  name: 'compensate', type: 'boolean', default: false,
  description: 'keep one extra token per head with the mean key and value of the evicted ones (within the budget)',
}

/** RazorAttention's compensation token: the mean key and value of the slots a head drops. */
export function meanOfEvicted(ctx: PolicyContext, layer: number, head: number, keep: Int32Array): ExtraToken {
  const { cache } = ctx
  const n = cache.length(layer, head)
  const keys = cache.readKeys(layer, head)
  const values = cache.readValues(layer, head)
  const positions = cache.positions(layer, head)
  const d = keys.length / n
  const key = new Float32Array(d)
  const value = new Float32Array(d)
  let dropped = 0
  let pos = 0
  for (let i = 0, j = 0; i < n; i++) {
    if (j < keep.length && keep[j] === i) {
      j++
      continue
    }
    dropped++
    pos += positions[i]
    for (let c = 0; c < d; c++) {
      key[c] += keys[i * d + c]
      value[c] += values[i * d + c]
    }
  }
  for (let c = 0; c < d; c++) {
    key[c] /= dropped
    value[c] /= dropped
  }
  return { key, value, position: Math.round(pos / dropped) }
}
