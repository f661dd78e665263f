/**
 * The prefill's accumulated attention mass per KV head (H2O's heavy-hitter score, `LayerHooks.attentionMass`)
 * and how it follows a composed decision to the next part. Layout: [kvHeads][stride], head g's slot i at
 * g * stride + i, stride = attentionMass.length / kvHeads. As captured, stride is the prompt's token count;
 * after a decision that left the heads of a layer different counts (AdaKV, CriticalAdaKV, KVzip,
 * RazorAttention's retrieval heads, KVMerger's merges) stride is the longest head's count and the shorter
 * heads' rows end in zeros. Kept as one array so a capture needs no per-head allocation.
 */
import type { Decision } from '../cache/types.js'
import type { LayerHooks } from './types.js'

/**
 * Head `head`'s mass over its `n` slots [n], or null where the hooks hold none for that many slots (a
 * part that did not ask for `prefillAttentionMass`, or a decode step: the mass is the prefill's).
 */
export function headMass(hook: LayerHooks | undefined, kvHeads: number, head: number, n: number): Float32Array | null {
  const m = hook?.attentionMass
  if (!m) return null
  const stride = m.length / kvHeads
  if (!Number.isInteger(stride) || stride < n) return null
  return m.subarray(head * stride, head * stride + n)
}

/**
 * The layer's mass after decision `d` (the heads it names; the others keep their slots): each kept slot
 * takes its own mass, a merge pivot also the mass of the members merged into it (the attention they drew
 * is now drawn by the pivot; members that stay in the cache keep theirs and add none), and an added token
 * (an `extra`: a compensation token, rows moved behind the others) none, as it was attended by no prompt
 * query. `before`: the slot count each head held (the layer's counts before the decision). Null where
 * the mass does not cover those counts (it cannot follow: the next part gets none rather than a misaligned one).
 */
export function remapMass(mass: Float32Array, d: Decision, layer: number, kvHeads: number, before: (head: number) => number): Float32Array | null {
  const stride = mass.length / kvHeads
  if (!Number.isInteger(stride) || Array.from({ length: kvHeads }, (_, g) => before(g)).some((n) => n > stride)) return null
  const mine = d.heads.filter((x) => x.layer === layer)
  const rows = Array.from({ length: kvHeads }, (_, g) => {
    const old = mass.subarray(g * stride, g * stride + before(g))
    const hd = mine.find((x) => x.head === g)
    if (!hd) return old
    const row = new Float32Array(hd.keep.length + (hd.extra?.length ?? 0))
    const at = new Map<number, number>()
    hd.keep.forEach((slot, j) => {
      row[j] = old[slot]
      at.set(slot, j)
    })
    for (const mg of hd.merges ?? []) {
      const j = at.get(mg.pivot)
      if (j === undefined) continue
      for (const s of new Set(mg.members)) if (s !== mg.pivot && !at.has(s)) row[j] += old[s]
    }
    return row
  })
  const width = Math.max(0, ...rows.map((r) => r.length))
  const out = new Float32Array(kvHeads * width)
  rows.forEach((r, g) => out.set(r, g * width))
  return out
}
