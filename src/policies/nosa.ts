/**
 * NOSA-style locality (NOSA: native and offloadable sparse attention): the selection of blocks of `block`
 * tokens (64) is split into a query-agnostic part, which changes slowly, and a query-aware part, so that
 * from one step to the next only the difference has to move between memory tiers; what moved is
 * counted (`blocksMoved`, against `blocksSelected`).
 *
 * - query-aware: the top blocks by a pooled q.k, here Quest's bound over the block (per-block key
 *   bounds, summed over the KV head's query group);
 * - query-agnostic: NOSA learns a per-token score from V. With `scoresFile` (the fixture's:
 *   models/fixture-14m-nosa/scores.safetensors, format in nosa-scores.ts) a block scores the largest
 *   learned score of its tokens; without it, a stand-in: the mean L2 norm of the block's values. Either is
 *   fixed once the block is complete. `agnostic` (0.5) is its share of the blocks; the block with the
 *   newest tokens is always attended.
 */
import { PageBounds } from './page-bounds.js'
import { questPageScores } from './quest.js'
import { topKIndices } from './budget.js'
import type { PolicyDefinition } from './registry.js'
import { pageSlots, selectionBudget, selectionBudgetOptions, selectionPolicy, type Selection } from './selection.js'
import type { ModelShape, PolicyContext } from './types.js'
import { PolicyOptionValueError } from './errors.js'
import { learnedValueScores, readNosaScoresFile } from './nosa-scores.js'
import type { LayerLinears } from './layer-linears.js'

/** mean value-row L2 norm of every complete block of a head (the query-agnostic stand-in) */
function valueNormScores(ctx: PolicyContext, layer: number, head: number, block: number): Float32Array {
  const n = ctx.cache.length(layer, head)
  const d = ctx.model.headDim
  const v = ctx.cache.readValues(layer, head)
  const out = new Float32Array(Math.floor(n / block))
  for (let b = 0; b < out.length; b++) {
    let s = 0
    for (let i = b * block; i < (b + 1) * block; i++) {
      let r = 0
      for (let c = 0; c < d; c++) r += v[i * d + c] * v[i * d + c]
      s += Math.sqrt(r)
    }
    out[b] = s / block
  }
  return out
}

/** the largest learned score of each complete block's tokens */
function learnedBlockScores(scores: LayerLinears, ctx: PolicyContext, layer: number, head: number, block: number): Float32Array {
  const complete = Math.floor(ctx.cache.length(layer, head) / block)
  const s = learnedValueScores(scores, layer, head, ctx.cache.readValues(layer, head), complete * block)
  const out = new Float32Array(complete)
  for (let b = 0; b < complete; b++) {
    let m = -Infinity
    for (let i = b * block; i < (b + 1) * block; i++) m = Math.max(m, s[i])
    out[b] = m
  }
  return out
}

/** scores made for another model shape are refused (typed, naming both shapes) */
function checkScores(scores: LayerLinears, model: ModelShape): void {
  if (scores.layers.length !== model.layers || scores.outputs !== model.kvHeads || scores.inputs !== model.headDim) {
    throw new PolicyOptionValueError(`nosa: scores are for ${scores.layers.length} layers x ${scores.outputs} KV heads x head_dim ${scores.inputs}, the model has ${model.layers} x ${model.kvHeads} x ${model.headDim}`)
  }
}

export const nosa: PolicyDefinition = {
  name: 'nosa',
  description: 'NOSA-style locality: query-aware + slowly changing query-agnostic blocks (learned value scores, or a value-norm stand-in); tier transfers counted',
  stage: 'selection',
  options: [
    ...selectionBudgetOptions,
    { name: 'block', type: 'integer', default: 64, min: 1, description: 'tokens per block (64)' },
    { name: 'agnostic', type: 'number', default: 0.5, min: 0, max: 1, description: 'share of the blocks chosen query-agnostically' },
    { name: 'scoresFile', type: 'string', default: null, readsFile: true, description: 'learned query-agnostic value scores, .safetensors (format in nosa-scores.ts); the value-norm stand-in without it' },
  ],
  create(o, model) {
    const block = o.block as number
    const share = o.agnostic as number
    const scores = o.scoresFile ? readNosaScoresFile(o.scoresFile as string) : undefined
    if (scores) checkScores(scores, model)
    return selectionPolicy({
      name: 'nosa',
      selector() {
        let bounds: PageBounds | null = null
        // per (layer, head): the agnostic scores of complete blocks, and the blocks selected last step
        const agnosticScores = new Map<number, Float32Array>()
        const previous = new Map<number, Set<number>>()
        let moved = 0
        let selected = 0
        return {
          onApplied() {
            // the page bounds follow the cache's changed rows themselves (KVCache.changes)
            agnosticScores.clear()
            previous.clear()
          },
          select(ctx, layer, query): Selection | null {
            bounds ??= new PageBounds(ctx.ops.heap, block)
            const B = selectionBudget(o, ctx.promptLength)
            const kBlocks = Math.max(1, Math.floor(B / block))
            return Array.from({ length: ctx.model.kvHeads }, (_, g) => {
              const n = ctx.cache.length(layer, g)
              const blocks = Math.ceil(n / block)
              if (blocks <= kBlocks) return null
              const key = layer * ctx.model.kvHeads + g
              let agn = agnosticScores.get(key)
              if (!agn || agn.length !== Math.floor(n / block)) {
                agn = scores ? learnedBlockScores(scores, ctx, layer, g, block) : valueNormScores(ctx, layer, g, block)
                agnosticScores.set(key, agn)
              }
              const last = blocks - 1
              const nAgn = Math.min(Math.round(share * (kBlocks - 1)), last)
              const chosen = new Set<number>([last, ...topKIndices(ctx.ops, agn.subarray(0, last), nAgn)])
              // the query-aware part fills the rest from the blocks the agnostic part left
              const aware = questPageScores(ctx, bounds!, layer, g, query)
              for (const b of chosen) aware[b] = -Infinity
              for (const b of topKIndices(ctx.ops, aware.subarray(0, last), kBlocks - chosen.size)) chosen.add(b)
              const before = previous.get(key)
              for (const b of chosen) if (!before?.has(b)) moved++
              selected += chosen.size
              previous.set(key, chosen)
              return pageSlots([...chosen], block, n)
            })
          },
          report: () => ({ blocksSelected: selected, blocksMoved: moved, movedShare: selected ? moved / selected : 0 }),
          dispose: () => bounds?.free(),
        }
      },
    })
  },
}
