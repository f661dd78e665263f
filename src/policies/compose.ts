/**
 * Composition `a+b`: the parts run in order on the same cache (eviction, then channel pruning, then
 * quantization). Each part sees the cache as the parts before it left it: their decisions are applied
 * at once, and the last part's decision is returned for the runtime to apply. Hook fields indexed by
 * slot (attention mass, hidden states, pre-RoPE keys) describe the cache before the first decision, so
 * later parts get them only while no earlier part has changed the cache.
 */
import type { Decision } from '../cache/types.js'
import type { LayerHooks, Policy, PolicyContext, PolicyNeeds } from './types.js'

export function mergeNeeds(parts: readonly Policy[]): PolicyNeeds {
  const out: PolicyNeeds = {}
  for (const p of parts) {
    const n = p.needs
    if (n.observationWindow) out.observationWindow = Math.max(out.observationWindow ?? 0, n.observationWindow)
    for (const k of ['prefillAttentionMass', 'decodeQueries', 'hiddenStates', 'preRopeKeys'] as const) if (n[k]) out[k] = true
    if (n.cacheKeys === 'pre-rope') out.cacheKeys = 'pre-rope'
  }
  return out
}

function withoutSlotHooks(ctx: PolicyContext): PolicyContext {
  const hooks: LayerHooks[] = ctx.hooks.map((h) => ({ layer: h.layer, observationQueries: h.observationQueries, observationPositions: h.observationPositions, decodeQuery: h.decodeQuery }))
  return { ...ctx, hooks }
}

function runChain(parts: readonly Policy[], ctx: PolicyContext, call: (p: Policy, c: PolicyContext) => Decision | null | undefined): Decision | null {
  let current = ctx
  let pending: Decision | null = null
  for (const p of parts) {
    if (pending) {
      ctx.cache.apply(pending)
      current = withoutSlotHooks(ctx)
    }
    pending = call(p, current) ?? null
  }
  return pending
}

export function composePolicies(parts: readonly Policy[]): Policy {
  if (parts.length === 0) throw new Error('composePolicies: nothing to compose')
  return {
    name: parts.map((p) => p.name).join('+'),
    needs: mergeNeeds(parts),
    prepare: async (model) => {
      for (const p of parts) await p.prepare?.(model)
    },
    onPrefillEnd: (ctx) => runChain(parts, ctx, (p, c) => p.onPrefillEnd?.(c)),
    onDecodeStep: (ctx) => runChain(parts, ctx, (p, c) => p.onDecodeStep?.(c)),
  }
}
