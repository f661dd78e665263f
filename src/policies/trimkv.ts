/**
 * TRIM-KV (token retention for memory-bounded KV caches): a learned gate predicts, when a token is
 * created, how long it stays useful.
 *
 *   at creation of token i in layer l:  beta_i = sigmoid(W_l h_i + b_l)   one value per KV head
 *                                       (h_i: the hidden state entering layer l)
 *   at prefill end, and every `every` decode steps (default 128), per KV head:
 *     if more than M tokens are cached: keep the M with the largest (t - pos_i) * log beta_i
 *     (t: the position after the newest cached token; log beta_i < 0, so a token loses retention as it ages,
 *      the faster the lower its beta)
 *
 * M comes from `tokens` or `budget` (ratio of the prompt, default 0.5). Gates: pass `gates` (parsed), or
 * `gatesFile` (.json or .safetensors, format in trimkv-gates.ts). Between evictions the cache may exceed
 * M by up to `every` - 1 tokens: the paper's amortized schedule.
 */
import { budgetOnly, checkBudget, keepCount } from './budget.js'
import { evictionPolicy } from './evict.js'
import { logRetention, readGatesFile, type TrimKVGates } from './trimkv-gates.js'
import type { BudgetOptions, ModelShape, Policy, PolicyContext } from './types.js'
import { PolicyOptionValueError } from './errors.js'
import type { PolicyDefinition } from './registry.js'

export interface TrimKVOptions extends BudgetOptions {
  gates?: TrimKVGates
  gatesFile?: string
  /** decode steps between evictions (default 128) */
  every?: number
}

/** gates made for another model shape are refused (typed, naming both shapes) */
export function checkGates(gates: TrimKVGates, model: ModelShape, who = 'trimkv'): void {
  if (gates.kvHeads !== model.kvHeads) throw new PolicyOptionValueError(`${who}: gates predict ${gates.kvHeads} KV heads, the model has ${model.kvHeads}`)
  if (gates.layers.length !== model.layers) throw new PolicyOptionValueError(`${who}: gates cover ${gates.layers.length} layers, the model has ${model.layers}`)
  // a gate reads the hidden state entering its layer: another width would be read as several rows
  if (model.hidden !== undefined && gates.hidden !== model.hidden) throw new PolicyOptionValueError(`${who}: gates read hidden states of ${gates.hidden} values, the model's hidden size is ${model.hidden}`)
}

export function createTrimKV(options: TrimKVOptions): Policy & { readonly gates?: TrimKVGates } {
  const every = options.every ?? 128
  if (!(Number.isInteger(every) && every >= 1)) throw new RangeError(`trimkv: every must be a positive integer, got ${every}`)
  checkBudget('trimkv', options)
  // without gates the policy can be listed and described, and says what is missing at first use
  const gates = options.gates ?? (options.gatesFile ? readGatesFile(options.gatesFile) : undefined)

  const policy = evictionPolicy(() => {
    /** log beta per (layer * kvHeads + head), by token position */
    let logBeta: Map<number, number>[] = []

    /** gives the tokens not seen yet (the newest slots) their log beta from the hidden states at creation */
    function scoreNewTokens(ctx: PolicyContext, layer: number): void {
      const hs = ctx.hooks[layer].hiddenStates
      const H = gates!.hidden
      const out = new Float64Array(gates!.kvHeads)
      for (let h = 0; h < ctx.model.kvHeads; h++) {
        const pos = ctx.cache.positions(layer, h)
        const known = logBeta[layer * ctx.model.kvHeads + h]
        let fresh = 0
        while (fresh < pos.length && !known.has(pos[pos.length - 1 - fresh])) fresh++
        if (fresh === 0) continue
        if (!hs || hs.length % H !== 0) throw new Error(`trimkv: layer ${layer}: hidden states missing or not a multiple of hidden size ${H}`)
        const rows = hs.length / H
        if (rows < fresh) throw new Error(`trimkv: layer ${layer}: ${rows} hidden states for ${fresh} new tokens`)
        for (let j = 0; j < fresh; j++) {
          const r = rows - fresh + j
          logRetention(gates!, layer, hs.subarray(r * H, (r + 1) * H), out)
          known.set(pos[pos.length - fresh + j], out[h])
        }
      }
    }

    const scoreAll = (ctx: PolicyContext) => {
      for (let layer = 0; layer < ctx.model.layers; layer++) scoreNewTokens(ctx, layer)
    }

    return {
      name: 'trimkv', needs: { hiddenStates: true }, budget: {}, every,
      // the gates read each token's hidden state, which follows only slots every head shares
      traits: { readsPrompt: 'shared-slots' },
      // the gates score each token at its creation, by position: the cache may reorder slots
      orderFree: true,
      perHead: (n) => keepCount(options, n) ?? Math.max(1, Math.round(0.5 * n)),
      prefill(ctx) {
        if (!gates) throw new PolicyOptionValueError('trimkv: needs retention gates: option gatesFile (a .json or .safetensors file of per-layer gates) or gates')
        checkGates(gates, ctx.model)
        logBeta = Array.from({ length: ctx.model.layers * ctx.model.kvHeads }, () => new Map())
        scoreAll(ctx)
      },
      // each new token is scored while its hidden state is at hand
      step: scoreAll,
      // retention of token i at time t: (t - pos_i) log beta_i, t the position after the newest token
      score(ctx, layer) {
        return Array.from({ length: ctx.model.kvHeads }, (_, h) => {
          const pos = ctx.cache.positions(layer, h)
          const known = logBeta[layer * ctx.model.kvHeads + h]
          const next = Math.max(...pos) + 1
          return Float32Array.from(pos, (p) => (next - p) * known.get(p)!)
        })
      },
      applied(decision, ctx) {
        // forget the evicted tokens' gates (the heads a decision touched, by what they still hold)
        const touched = [...decision.heads, ...(decision.evictions ?? [])]
        for (const { layer, head } of touched) {
          const known = logBeta[layer * ctx.model.kvHeads + head]
          if (!known) continue
          const held = new Set(ctx.cache.positions(layer, head))
          for (const p of [...known.keys()]) if (!held.has(p)) known.delete(p)
        }
      },
    }
  })
  return { ...policy, gates }
}

export const trimkv: PolicyDefinition = {
  name: 'trimkv',
  description: 'TRIM-KV: learned per-layer gates give each token a retention beta at creation; keep the top M by (t - pos) log beta every 128 tokens',
  stage: 'eviction',
  options: [
    ...budgetOnly(0.25),
    { name: 'gatesFile', type: 'string', default: null, readsFile: true, description: 'gate weights, .json or .safetensors (format in trimkv-gates.ts)' },
    { name: 'every', type: 'integer', default: 128, min: 1, description: 'decode steps between evictions' },
  ],
  check(o) {
    // without gates the policy cannot act: refused with the setting, not at the first request
    if (o.gatesFile === undefined) throw new PolicyOptionValueError('trimkv: needs retention gates: option gatesFile (a .json or .safetensors file of per-layer gates)')
  },
  create(o, model) {
    const policy = createTrimKV(o as TrimKVOptions)
    checkGates(policy.gates!, model)
    return policy
  },
}
