/**
 * Composition `a+b`: the parts run in order on the same cache (eviction, then channel pruning, then
 * quantization). Each part sees the cache as the parts before it left it: their decisions are applied
 * at once, and the last part's decision is returned for the runtime to apply. Every part hears every
 * applied decision (its own and the others', through `onApplied`), so state that follows the slots
 * stays lined up with the cache, and hook fields indexed by slot (attention mass, hidden states,
 * pre-RoPE keys) are carried through each decision to the next part (see remapHooks).
 *
 * A composition supports what its parts do, or refuses at creation (PolicyCompositionError):
 * - at most one part selects tokens at decode time (`selectTokens`: one selection per step);
 * - a part that prunes key channels runs after every eviction: no other part may decide during decoding,
 *   as scoring pruned keys is undefined (a quantizer may: it packs rows without scoring them);
 * - at most one part quantizes, and no other part then decides during decoding (packed rows cannot be
 *   evicted one by one), moves rows to the host tier (ShadowKV: they cannot be packed there) or stores
 *   keys before RoPE; only parts that select tokens at decode time come after it (packed rows can be
 *   neither evicted nor channel-pruned);
 * - a part that moves the prompt to the host tier (ShadowKV, its state keyed by slot) has no part deciding
 *   during decoding beside it;
 * - channel pruning needs post-RoPE keys: no part may ask for a pre-RoPE cache beside it.
 */
import type { Decision } from '../cache/types.js'
import { PolicyCompositionError } from './errors.js'
import { remapMass } from './head-mass.js'
import type { LayerHooks, Policy, PolicyContext, PolicyNeeds, PolicySession, PolicyTraits } from './types.js'

export function mergeNeeds(parts: readonly Policy[]): PolicyNeeds {
  const out: PolicyNeeds = {}
  for (const p of parts) {
    const n = p.needs
    if (n.observationWindow) out.observationWindow = Math.max(out.observationWindow ?? 0, n.observationWindow)
    for (const k of ['prefillAttentionMass', 'decodeQueries', 'hiddenStates', 'preRopeKeys'] as const) if (n[k]) out[k] = true
    if (n.cacheKeys === 'pre-rope') out.cacheKeys = 'pre-rope'
    if (n.pageTokens) out.pageTokens = Math.max(out.pageTokens ?? 0, n.pageTokens)
  }
  return out
}

/**
 * The hooks after a decision: slot-indexed fields follow the kept slots. Attention mass follows each
 * head's keep list, merges and added tokens (head-mass.ts, also where the heads of a layer keep different
 * counts); per-token fields (hidden states, pre-RoPE keys) follow while every head of the layer keeps the
 * same slots. What cannot follow is dropped, so a part never reads a field misaligned. `before(layer,
 * head)` is the head's token count the hooks describe.
 */
function remapHooks(hooks: LayerHooks[], d: Decision, kvHeads: number, before: (layer: number, head: number) => number): LayerHooks[] {
  return hooks.map((h) => {
    const mine = d.heads.filter((x) => x.layer === h.layer)
    if (mine.length === 0) return h
    const n = before(h.layer, 0)
    const out: LayerHooks = { layer: h.layer, observationQueries: h.observationQueries, observationPositions: h.observationPositions, decodeQuery: h.decodeQuery }
    const mass = h.attentionMass && remapMass(h.attentionMass, d, h.layer, kvHeads, (g) => before(h.layer, g))
    if (mass) out.attentionMass = mass
    const lists = Array.from({ length: kvHeads }, (_, g) => mine.find((x) => x.head === g)?.keep ?? Int32Array.from({ length: n }, (_, i) => i))
    const plain = mine.every((x) => !x.merges?.length)
    const extras = Array.from({ length: kvHeads }, (_, g) => mine.find((x) => x.head === g)?.extra?.length ?? 0)
    const keep = lists[0]
    if (plain && extras.every((e) => e === 0) && lists.every((k) => k.length === keep.length && k.every((v, i) => v === keep[i]))) {
      const rows = (a: Float32Array) => {
        const w = a.length / Math.max(1, n)
        return Float32Array.from({ length: keep.length * w }, (_, i) => a[keep[Math.floor(i / w)] * w + (i % w)])
      }
      if (h.hiddenStates) out.hiddenStates = rows(h.hiddenStates)
      if (h.preRopeKeys) out.preRopeKeys = rows(h.preRopeKeys)
    }
    return out
  })
}

/** whether a part selects tokens at decode time (its sessions have selectTokens): it changes no slots */
function selectsTokens(p: Policy): boolean {
  return p.start().selectTokens !== undefined
}

/** Refuses parts that cannot work together (see the module comment), naming them. */
export function checkComposition(parts: readonly Policy[], advise = true): void {
  const names = parts.map((p) => p.name).join('+')
  const selecting = parts.filter(selectsTokens)
  if (selecting.length > 1)
    throw new PolicyCompositionError(`${names}: ${selecting.map((p) => p.name).join(' and ')} both select tokens at decode time; a composition can hold one such part`)
  const quantizing = parts.filter((p) => p.traits?.quantizes)
  if (quantizing.length) {
    const q = quantizing[0].name
    if (quantizing.length > 1) throw new PolicyCompositionError(`${names}: ${quantizing.map((p) => p.name).join(' and ')} both quantize; a composition can hold one quantizer`)
    const decoding = parts.filter((p) => p.traits?.decodes && !p.traits?.quantizes)
    if (decoding.length) throw new PolicyCompositionError(`${names}: ${decoding[0].name} decides during decoding, but ${q}'s packed rows cannot be evicted one by one; compose quantization with prefill-time eviction (every=0)`)
    // a quantizer packs rows as they leave its float window, in the arena: rows moved to the host tier cannot be
    const offloading = parts.find((p) => p.traits?.offloads)
    if (offloading) throw new PolicyCompositionError(`${names}: ${offloading.name} moves the prompt's rows to the host tier, where ${q} cannot pack them as they leave its float window`)
    // refused by the store after the prefill otherwise (a CacheError on the first channel-pruned head)
    const pruner = quantizing[0].traits?.packsWholeKeys && parts.find((p) => p.traits?.prunesChannels)
    if (pruner) throw new PolicyCompositionError(`${names}: ${pruner.name} prunes key channels, and ${q} packs whole key rows only (its spectral key codes mix every channel)`)
    const other = parts.find((p) => p.needs.cacheKeys === 'pre-rope')
    if (other) throw new PolicyCompositionError(`${names}: ${other.name} stores keys before RoPE, which ${q}'s packed pages cannot hold (they are rotated at attention time)`)
    // a spec sorts quantizers last, but a part may hold its own (UnionKV with bits): a part after it that
    // evicts or prunes was refused by the store after the prefill (a CacheError, or ThinK's plain Error)
    const late = parts.slice(parts.indexOf(quantizing[0]) + 1).find((p) => !selectsTokens(p) || p.traits?.decodes)
    if (late) throw new PolicyCompositionError(late.traits?.prunesChannels
      ? `${names}: ${late.name} prunes key channels after ${q} packed the rows, which cannot be pruned; channel pruning runs before the quantizer`
      : `${names}: ${late.name} evicts after ${q} packed the rows, which cannot be evicted; ${orderAdvice(moveBefore(parts, late, quantizing[0]), `put ${late.name} before ${q}`, `nor can ${late.name} run before it`, advise)}`)
  }
  // the offloading part (ShadowKV) keys its factored prompt by slot: a decode-time decision would move those
  // slots (refused by ShadowKV after tokens had streamed, or by the store on the host-tier pages it scored)
  const offloader = parts.find((p) => p.traits?.offloads)
  const evicting = offloader && parts.find((p) => p.traits?.decodes && !p.traits?.quantizes)
  if (evicting) throw new PolicyCompositionError(`${names}: ${evicting.name} decides during decoding, after ${offloader.name} factored the prompt and moved it to the host tier by slot; compose ${offloader.name} only with prefill-time eviction (every=0)`)
  checkPromptReaders(parts, names, advise)
  const pruning = parts.filter((p) => p.traits?.prunesChannels)
  if (pruning.length === 0) return
  // a quantizer's decode steps only pack rows that left its window: they score no keys
  const decoding = parts.filter((p) => p.traits?.decodes && !p.traits?.quantizes)
  if (decoding.length)
    throw new PolicyCompositionError(`${names}: ${decoding.map((p) => p.name).join(', ')} decides during decoding, after ${pruning[0].name} pruned key channels; compose channel pruning only with prefill-time eviction (every=0)`)
  const preRope = parts.filter((p) => p.needs.cacheKeys === 'pre-rope')
  if (preRope.length)
    throw new PolicyCompositionError(`${names}: ${preRope[0].name} stores keys before RoPE, ${pruning[0].name} prunes post-RoPE key channels; they cannot share a cache`)
}

/** `parts` with `part` moved just before `anchor` */
function moveBefore(parts: readonly Policy[], part: Policy, anchor: Policy): Policy[] {
  const rest = parts.filter((p) => p !== part)
  return [...rest.slice(0, rest.indexOf(anchor)), part, ...rest.slice(rest.indexOf(anchor))]
}

/**
 * The advice of a refusal (another order, `moved`) where that order composes; else why it does not
 * either: UnionKV with bits reads the prompt as prefilled and packs its rows, so a per-head eviction can
 * run neither before nor after it, and advising each order led to the other's refusal
 */
function orderAdvice(moved: readonly Policy[], advice: string, whyNot: string, advise: boolean): string {
  if (!advise) return advice
  try {
    checkComposition(moved, false)
    return advice
  } catch (e) {
    const names = moved.map((p) => p.name).join('+')
    // the reason alone: that refusal's own advice is the order just refused
    return `${whyNot} (${(e as Error).message.replace(`${names}: `, '').replace(/; put [^;]*$/, '')})`
  }
}

/**
 * A part that reads the prompt as prefilled (`traits.readsPrompt`) after a part that changed its slots
 * failed after the prefill, inside the method (KVzip's reconstruction picked slots past a head's end, a
 * CacheError; TOVA averaged the scores of different tokens slot by slot, silently): refused here. Parts
 * that only select at decode time change no slots.
 */
function checkPromptReaders(parts: readonly Policy[], names: string, advise: boolean): void {
  parts.forEach((p, i) => {
    const reads = p.traits?.readsPrompt
    if (!reads) return
    const before = parts.slice(0, i).filter((e) => !(selectsTokens(e) && !e.traits?.decodes))
    const bad = reads === 'whole' ? before[0] : before.find((e) => !e.traits?.sharedSlots)
    if (!bad) return
    const advice = orderAdvice(moveBefore(parts, p, parts[0]), `put ${p.name} first`, `nor can ${p.name} run first`, advise)
    throw new PolicyCompositionError(reads === 'whole'
      ? `${names}: ${p.name} reads the whole prompt as prefilled (slot i is token i in every head), which ${bad.name} changed before it; ${advice}`
      : `${names}: ${p.name} needs every KV head of a layer to hold the same tokens, and ${bad.name} leaves each head its own; ${advice}`)
  })
}

/**
 * What a composition reads of the prompt as prefilled: the most any part reads ('whole' over
 * 'shared-slots'), not only its first part's (a decode-time selector before KVzip hid KVzip's, and the
 * composition was taken after SnapKV, failing after the prefill with a CacheError)
 */
function promptReading(parts: readonly Policy[]): Pick<PolicyTraits, 'readsPrompt'> {
  const reads = parts.map((p) => p.traits?.readsPrompt)
  return reads.includes('whole') ? { readsPrompt: 'whole' } : reads.includes('shared-slots') ? { readsPrompt: 'shared-slots' } : {}
}

export function composePolicies(parts: readonly Policy[]): Policy {
  if (parts.length === 0) throw new PolicyCompositionError('composePolicies: nothing to compose')
  checkComposition(parts)
  const traits: PolicyTraits = {
    decodes: parts.some((p) => p.traits?.decodes), prunesChannels: parts.some((p) => p.traits?.prunesChannels), quantizes: parts.some((p) => p.traits?.quantizes), offloads: parts.some((p) => p.traits?.offloads), packsWholeKeys: parts.some((p) => p.traits?.packsWholeKeys),
    sharedSlots: parts.every((p) => p.traits?.sharedSlots || selectsTokens(p)), ...promptReading(parts),
  }
  return {
    name: parts.map((p) => p.name).join('+'),
    needs: mergeNeeds(parts),
    traits,
    prepare: async (model) => {
      for (const p of parts) await p.prepare?.(model)
    },
    start: () => composedSession(parts.map((p) => p.start())),
  }
}

function composedSession(sessions: PolicySession[]): PolicySession {
  const tell = (d: Decision, ctx: PolicyContext) => {
    for (const s of sessions) s.onApplied?.(d, ctx)
  }
  /**
   * each session's call on the cache as the previous one's decision left it; a call that returns a
   * promise (KVzip's onPrefillEndAsync) is awaited before the next, and the chain then resolves to the last
   * decision: a chain of synchronous calls stays synchronous
   */
  function runChain(ctx: PolicyContext, call: (s: PolicySession, c: PolicyContext) => Decision | null | undefined | Promise<Decision | null>, from = 0, start = ctx, before: Decision | null = null): Decision | null | Promise<Decision | null> {
    let current = start
    let pending = before
    for (let i = from; i < sessions.length; i++) {
      if (pending) {
        const { layers, kvHeads } = ctx.model
        const lengths = Array.from({ length: layers * kvHeads }, (_, i) => ctx.cache.length(Math.floor(i / kvHeads), i % kvHeads))
        ctx.cache.apply(pending)
        tell(pending, ctx)
        current = { ...current, hooks: remapHooks(current.hooks, pending, kvHeads, (l, g) => lengths[l * kvHeads + g]) }
      }
      const out = call(sessions[i], current) ?? null
      // any thenable, not only this realm's Promise (a part's own promise library or another realm's)
      if (typeof (out as PromiseLike<unknown> | null)?.then === 'function') {
        const at = current
        return Promise.resolve(out as PromiseLike<Decision | null>).then((d) => runChain(ctx, call, i + 1, at, d ?? null))
      }
      pending = out as Decision | null
    }
    return pending
  }
  const prefillEnd = (ctx: PolicyContext) => runChain(ctx, (s, c) => s.onPrefillEndAsync?.(c) ?? s.onPrefillEnd?.(c))
  const selector = sessions.find((s) => s.selectTokens)
  return {
    // asynchronous where a part is (KVzip's reconstruction), else synchronous as every part
    ...(sessions.some((s) => s.onPrefillEndAsync)
      ? { onPrefillEndAsync: async (ctx: PolicyContext) => prefillEnd(ctx) }
      : { onPrefillEnd: (ctx: PolicyContext) => prefillEnd(ctx) as Decision | null }),
    // onDecodeStep is synchronous in every part, so its chain is
    onDecodeStep: sessions.some((s) => s.onDecodeStep) ? (ctx) => runChain(ctx, (s, c) => s.onDecodeStep?.(c)) as Decision | null : undefined,
    selectTokens: selector ? (ctx, layer, q) => selector.selectTokens!(ctx, layer, q) : undefined,
    onApplied: tell,
    report: () => Object.assign({}, ...sessions.map((s) => s.report?.() ?? {})),
    dispose: () => {
      for (const s of sessions) s.dispose?.()
    },
  }
}
