/**
 * Dynamic selection: the cache keeps every token (or what eviction kept), and at each decode step, per
 * layer, a selector picks the slots each KV head attends to. The runtime hands that selection to the one
 * attention path (`attendCache`'s `select`: the gathered kernel over the chosen slots, so a selection of
 * every slot is dense decode bit for bit). A selecting policy composes after eviction (`snapkv+quest`):
 * it selects over the slots eviction kept, and hears every applied decision, so state keyed by slot
 * (a cached selection) is rebuilt when the slots move; page bounds follow the cache's record of changed
 * rows (KVCache.changes).
 *
 * This module is the shared machinery: the Selector interface each method implements, the policy
 * wrapper, the budget options and the window helpers (first tokens + chosen + last tokens).
 */
import type { Decision, HeadView, TokenSelection } from '../cache/types.js'
import { F32Buf } from '../backend/heap.js'
import { contiguousView } from '../backend/views.js'
import { budgetOptions, tokensPerHead } from './budget.js'
import type { OptionSpec } from './registry.js'
import type { OptionValue } from './spec.js'
import type { Policy, PolicyContext, PolicyNeeds, PolicySession, PolicyTraits, SoftVotePlan } from './types.js'

/**
 * Per KV head: the cache slots to attend to (strictly ascending), or null for all of the head's slots;
 * `rebuiltKeys` when the selector supplies keys of its own for the slots outside the arena (ShadowKV).
 */
export type Selection = TokenSelection

/**
 * One request's selection state. `select` runs per decode step and layer, after the step's token is in
 * the cache and before the layer's attention; null means the whole layer attends densely.
 */
export interface Selector {
  /** once, after the prompt is in the cache (and after any eviction of a composition ran) */
  onPrefillEnd?(ctx: PolicyContext): void
  /**
   * query: the step's query [qHeads][headDim], as the cache stores keys (post-RoPE, or pre-RoPE for a
   * cache that keeps pre-RoPE keys), so q . k is the attention logit the kernels would compute.
   */
  select(ctx: PolicyContext, layer: number, query: Float32Array): Selection | null
  /** the selection as a plan the runtime may carry out itself (PolicySession.selectionPlan) */
  plan?(ctx: PolicyContext): SoftVotePlan | null
  /** a decision (an eviction of a composition) moved slots: state keyed by slot must be rebuilt */
  onApplied?(decision: Decision, ctx: PolicyContext): void
  /** counters for the generation's stats (Selection Cache hits, tokens moved between tiers, ...) */
  report?(): Record<string, number>
  /** the request ended: free arena buffers */
  dispose?(): void
}

export interface SelectionPolicySpec {
  name: string
  needs?: PolicyNeeds
  traits?: PolicyTraits
  /** a fresh selector for one request */
  selector(): Selector
}

/** A policy that only selects: it never evicts, so the cache it runs on stays whole (or as eviction left it). */
export function selectionPolicy(p: SelectionPolicySpec): Policy {
  return {
    name: p.name,
    needs: p.needs ?? {},
    ...(p.traits ? { traits: p.traits } : {}),
    start(): PolicySession {
      const s = p.selector()
      return {
        onPrefillEnd: (ctx) => {
          s.onPrefillEnd?.(ctx)
          return null
        },
        selectTokens: (ctx, layer, query) => s.select(ctx, layer, query),
        selectionPlan: s.plan ? (ctx) => s.plan!(ctx) : undefined,
        onApplied: (d, ctx) => s.onApplied?.(d, ctx),
        report: s.report ? () => s.report!() : undefined,
        dispose: () => s.dispose?.(),
      }
    },
  }
}

/** `budget` (a ratio of the prompt) or `tokens` (a count): how many slots each KV head attends to per step. */
export const selectionBudgetOptions: OptionSpec[] = budgetOptions
  .filter((o) => o.name !== 'every')
  .map((o) => (o.name === 'budget' ? { ...o, description: 'tokens attended per head and step, as a ratio of the prompt (0 < budget <= 1)' }
    : { ...o, description: 'tokens attended per head and step, as a count (instead of budget)' }))

/** The per-step token budget of a selection: `tokens`, or floor(budget x prompt length), at least 1. */
export function selectionBudget(o: Record<string, OptionValue>, promptLength: number): number {
  if (o.tokens !== undefined) return o.tokens as number
  return tokensPerHead({ ratio: o.budget as number }, Math.max(1, promptLength))
}

/**
 * The slots [0, first) + `chosen` + [n - last, n), ascending and without repeats. `chosen` holds slots in
 * [first, n - last) in any order.
 */
export function windowedSelection(n: number, first: number, last: number, chosen: ArrayLike<number>): Int32Array {
  first = Math.min(first, n)
  const tail = Math.max(first, n - last)
  const mid = Int32Array.from(chosen).sort()
  const out = new Int32Array(first + mid.length + (n - tail))
  let j = 0
  for (let i = 0; i < first; i++) out[j++] = i
  let prev = first - 1
  for (const s of mid) {
    if (s <= prev || s >= tail) continue
    out[j++] = s
    prev = s
  }
  for (let i = tail; i < n; i++) out[j++] = i
  return out.subarray(0, j)
}

/** Every slot of pages listed (ascending page indices of `page` tokens), clipped to n slots. */
export function pageSlots(pages: ArrayLike<number>, page: number, n: number): Int32Array {
  const sorted = Int32Array.from(pages).sort()
  let count = 0
  for (const p of sorted) count += Math.max(0, Math.min(page, n - p * page))
  const out = new Int32Array(count)
  let j = 0
  for (const p of sorted) for (let i = p * page; i < Math.min(n, (p + 1) * page); i++) out[j++] = i
  return out
}

/**
 * A kernel-ready view of a head's keys: its own pages when the head is one whole-row float32 segment in
 * wasm memory (or float16, with `opts.float16`), else a contiguous float32 copy of its keys (host tier,
 * channel-pruned prefix: pruned channels read as 0). `done()` frees the copy. `opts.float16`: the caller
 * reads the view only through Ops.scoreKeys, whose scoreKeysF16 scores float16 pages in place with the
 * bits of scoreKeys over the widened copy, so a float16 cache's scoring reads half the bytes and skips a
 * copy of every key each call (and splits across the worker pool as float32 scoring does).
 */
export function keyView(ctx: PolicyContext, layer: number, head: number, opts: { float16?: boolean } = {}): { view: HeadView; done(): void } {
  const segs = ctx.cache.segments(layer, head)
  const s = segs[0]
  const inPlace = s?.format === 'float32' || (opts.float16 === true && s?.format === 'float16')
  if (segs.length === 1 && s.tier === 'wasm' && inPlace && s.channels === null) return { view: s, done: () => {} }
  const n = ctx.cache.length(layer, head)
  const buf = ctx.ops.heap.allocF32(Math.max(1, n * ctx.model.headDim))
  ctx.cache.readKeysInto(layer, head, 0, n, buf.ptr)
  const v = contiguousView(buf, n, ctx.model.headDim)
  return { view: v, done: () => { v.free(); buf.free() } }
}

/** floats [offset, offset + length) of an arena buffer, as a buffer the Ops checks accept (not to be freed) */
export function subBuf(b: F32Buf, offset: number, length: number): F32Buf {
  return new F32Buf(b.heap, b.ptr + offset * 4, length)
}

/** cos(a, b) over all entries (0 when either is all zeros) */
export function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0
  let aa = 0
  let bb = 0
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i]
    aa += a[i] * a[i]
    bb += b[i] * b[i]
  }
  return aa > 0 && bb > 0 ? ab / Math.sqrt(aa * bb) : 0
}

/** true when every KV head of every layer holds the same slots as head 0 (a decision kept them alike) */
export function headsAligned(d: Decision | null, kvHeads: number): boolean {
  if (!d) return true
  if (d.evictions?.length || d.heads.some((h) => h.merges?.length || h.extra?.length)) return false
  const byLayer = new Map<number, Int32Array[]>()
  for (const h of d.heads) byLayer.set(h.layer, [...(byLayer.get(h.layer) ?? []), h.keep])
  for (const lists of byLayer.values()) {
    if (lists.length !== kvHeads) return false
    const a = lists[0]
    if (!lists.every((b) => b.length === a.length && b.every((v, i) => v === a[i]))) return false
  }
  return true
}
