/**
 * MPCache's dynamic part (Zeng et al. 2025, "MPCache", the hierarchical query-aware selection) as a
 * selection policy on the plain cache: clusters of 32 tokens scored by the MPC-friendly similarity
 * sum_c q_c (alpha kmax_c + (1 - alpha) kmin_c) (no max, no sign), the top half of the clusters split into
 * 16-token blocks of which the top 20% of the cache's blocks stay, the first and last cluster always kept;
 * one selection serves `share` adjacent layers (index sharing). The selection itself is the cleartext
 * reference of the secret-shared protocol (`mpcacheDynamicSelect`, kvkit/mpc), reused here, not a copy.
 *
 * Per KV head the group's query heads are summed first: the similarity is linear in q, so this is the
 * sum of the heads' similarities. Selecting per step reads each head's keys (the reference function
 * takes plain arrays); the fast page-bound path is Quest's.
 */
import { mpcacheDynamicSelect } from '../mpc/mpcache-select.js'
import type { PolicyDefinition } from './registry.js'
import { headsAligned, selectionPolicy, type Selection } from './selection.js'

export const mpcacheSelect: PolicyDefinition = {
  name: 'mpcache_select',
  description: "MPCache's dynamic part: hierarchical cluster/block selection with the MPC-friendly similarity, shared by adjacent layers",
  stage: 'selection',
  options: [
    { name: 'alpha', type: 'number', default: 0.6, min: 0, max: 1, description: 'weight of kmax in the similarity (0.6)' },
    { name: 'cluster', type: 'integer', default: 32, min: 2, description: 'tokens per level-1 cluster (32)' },
    { name: 'clusters', type: 'number', default: 0.5, min: 0, minExclusive: true, max: 1, description: 'share of clusters kept at level 1, first and last included (0.5)' },
    { name: 'block', type: 'integer', default: 16, min: 1, description: 'tokens per level-2 block, dividing cluster (16)' },
    { name: 'blocks', type: 'number', default: 0.2, min: 0, minExclusive: true, max: 1, description: "share of the cache's blocks kept at level 2 (0.2)" },
    { name: 'share', type: 'integer', default: 2, min: 1, description: 'adjacent layers that share one selection (index sharing)' },
  ],
  check(o) {
    if ((o.cluster as number) % (o.block as number) !== 0) throw new Error(`mpcache_select: block=${o.block} must divide cluster=${o.cluster}`)
  },
  create(o, model) {
    const options = { alpha: o.alpha as number, clusterTokens: o.cluster as number, keepClusters: o.clusters as number, blockTokens: o.block as number, keepBlocks: o.blocks as number }
    const share = o.share as number
    const { kvHeads, group, headDim: d } = model
    return selectionPolicy({
      name: 'mpcache_select',
      selector() {
        let aligned = true
        let last: { layer: number; lengths: number[]; sel: Selection } | null = null
        return {
          onApplied(dec, ctx) {
            aligned = aligned && headsAligned(dec, kvHeads) && new Set(Array.from({ length: ctx.model.layers }, (_, l) => ctx.cache.length(l, 0))).size === 1
            last = null
          },
          select(ctx, layer, query): Selection | null {
            const lengths = Array.from({ length: kvHeads }, (_, g) => ctx.cache.length(layer, g))
            // a layer of a shared pair reuses the first one's lists while it holds the same slots
            if (aligned && last && layer % share !== 0 && last.layer === layer - (layer % share) && lengths.every((n, g) => n === last!.lengths[g])) return last.sel
            const sel: Selection = lengths.map((n, g) => {
              if (n <= options.clusterTokens * 2) return null
              const q = new Float32Array(d)
              for (let h = 0; h < group; h++) for (let c = 0; c < d; c++) q[c] += query[(g * group + h) * d + c]
              return mpcacheDynamicSelect(q, ctx.cache.readKeys(layer, g), n, d, options)
            })
            last = { layer, lengths, sel }
            return sel
          },
        }
      },
    })
  },
}
