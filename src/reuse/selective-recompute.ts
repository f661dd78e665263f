import type { PagedKVCache } from '../cache/paged-cache.js'
import type { LlamaModel } from '../model/model.js'
import { seededRandom } from '../model/sampling.js'
import { ReuseError } from './errors.js'

/** What a selective recompute redoes over a context whose cache already holds (approximate) KV. */
export interface RecomputePlan {
  /** layers up to and including it recompute every row from `from` on; at it the other rows are chosen */
  checkLayer: number
  /** slots before it hold exact KV (the same tokens at the same positions as when computed) and are left alone */
  from: number
  /** slots >= from whose cached KV is no reuse at all (edited tokens): recomputed in every layer, ascending */
  always: Int32Array
  /** the other slots >= from recomputed after the check layer, as a share of them (0..1) */
  ratio: number
  /** by key deviation at the check layer (the method) or at random (its ablation) */
  selection: 'deviation' | 'random'
  seed: number
}

/**
 * CacheBlend's selective KV recompute (Yao et al., EuroSys 2025, sections 4-5; LMCache's blender),
 * shared by CacheBlend and KVShare. The cache holds N slots of ids (post-RoPE, at their final
 * positions); rows from `plan.from` on run through the layers up to `checkLayer`; there the rows whose
 * fresh keys deviate most from the reused ones (squared L2 over the KV heads, LMCache's measure) are
 * chosen, round(ratio x candidates) of them, and they plus `always` alone run through the later
 * layers, attending over the mix of fresh and reused KV. Every row recomputed in order is a prefill,
 * bit for bit. Returns the slots recomputed after the check layer, ascending.
 */
export function selectiveRecompute(model: LlamaModel, ids: readonly number[], cache: PagedKVCache, plan: RecomputePlan): Int32Array {
  const { layers, kvHeads, hidden: H } = model.config
  const N = ids.length
  if (plan.from >= N) return new Int32Array(0)
  let rows: Int32Array = Int32Array.from({ length: N - plan.from }, (_, i) => plan.from + i)
  let hidden = model.forward.embedRows(ids.slice(plan.from))
  for (let l = 0; l < layers; l++) {
    const before = l === plan.checkLayer ? Array.from({ length: kvHeads }, (_, h) => cache.readKeys(l, h)) : null
    layerRows(model, l, hidden, rows, cache)
    if (!before) continue
    const keep = choose(model, plan, rows, before, (h) => cache.readKeys(l, h))
    const at = new Map(Array.from(rows, (r, i) => [r, i]))
    const next = new Float32Array(keep.length * H)
    keep.forEach((r, i) => next.set(hidden.subarray(at.get(r)! * H, (at.get(r)! + 1) * H), i * H))
    rows = keep
    hidden = next
  }
  return rows
}

/** rows [T] (ascending slots, positions = slots) through layer l: hidden [T][hidden] in, updated in place; their K/V rewritten */
function layerRows(model: LlamaModel, l: number, hidden: Float32Array, rows: Int32Array, cache: PagedKVCache): void {
  const fwd = model.forward
  const H = model.config.hidden
  // at most a chunk of rows at a time through the layer
  for (let i = 0; i < rows.length; i += fwd.chunk) {
    const at = rows.slice(i, i + fwd.chunk)
    fwd.recomputeLayer(l, hidden.subarray(i * H, (i + at.length) * H), at, at, cache)
  }
}

/**
 * Rebuilds the K/V of `rows` (ascending slots; positions = slots) in every layer by a forward pass over
 * them alone, each attending causally over the cache as it is (KVShare's decode-time recompute). The
 * other slots are left alone. `ids` holds the token of every slot up to the last row at least.
 * @throws ReuseError when rows are not ascending slots inside ids
 */
export function recomputeRows(model: LlamaModel, ids: readonly number[], cache: PagedKVCache, rows: Int32Array): void {
  rows.forEach((r, i) => {
    if (!(Number.isInteger(r) && r >= 0 && r < ids.length && (i === 0 || r > rows[i - 1]))) throw new ReuseError(`recomputeRows: rows must be ascending slots in [0, ${ids.length - 1}], got ${r} at ${i}`)
  })
  if (rows.length === 0) return
  const hidden = model.forward.embedRows(Array.from(rows, (r) => ids[r]))
  for (let l = 0; l < model.config.layers; l++) layerRows(model, l, hidden, rows, cache)
}

/** `always` plus round(ratio x the other rows) of the other rows, by key deviation (ties to the earlier slot) or at random */
function choose(model: LlamaModel, plan: RecomputePlan, rows: Int32Array, before: Float32Array[], after: (h: number) => Float32Array): Int32Array {
  const always = new Set(plan.always)
  const order = Array.from(rows).filter((r) => !always.has(r))
  const k = Math.round(plan.ratio * order.length)
  if (plan.selection === 'random') {
    const rand = seededRandom(plan.seed)
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1))
      ;[order[i], order[j]] = [order[j], order[i]]
    }
  } else {
    const dev = new Float64Array(before[0].length / model.config.headDim)
    const d = model.config.headDim
    before.forEach((b, h) => {
      const a = after(h)
      for (const t of order) for (let c = 0; c < d; c++) dev[t] += (a[t * d + c] - b[t * d + c]) ** 2
    })
    order.sort((x, y) => dev[y] - dev[x] || x - y)
  }
  return Int32Array.from([...order.slice(0, k), ...always]).sort()
}

/** The options CacheBlend and KVShare share: how much is recomputed and how it is chosen. */
export interface RecomputeOptions {
  /** share of the candidate tokens recomputed after the check layer (default 0.15, CacheBlend's) */
  ratio?: number
  /** layers below it are recomputed for every candidate token; at it the tokens are chosen (default 1, LMCache's) */
  checkLayer?: number
  /** how tokens are chosen: by key deviation (the method) or at random (its ablation) */
  selection?: 'deviation' | 'random'
  /** seed of the random selection */
  seed?: number
}

/**
 * What CacheBlend and KVShare share: the recompute options, checked at construction (a ReuseError
 * naming the bad one; `where` names the class), and the selective recompute run with them.
 */
export abstract class SelectiveReuse {
  readonly ratio: number
  readonly checkLayer: number
  readonly selection: 'deviation' | 'random'
  readonly seed: number

  protected constructor(
    readonly model: LlamaModel,
    where: string,
    options: RecomputeOptions,
  ) {
    const ratio = options.ratio ?? 0.15
    const checkLayer = options.checkLayer ?? 1
    const selection = options.selection ?? 'deviation'
    const seed = options.seed ?? 0
    const L = model.config.layers
    if (!(typeof ratio === 'number' && ratio >= 0 && ratio <= 1)) throw new ReuseError(`${where}: ratio must be a number in [0, 1], got ${ratio}`)
    if (!(Number.isInteger(checkLayer) && checkLayer >= 0 && checkLayer < L)) throw new ReuseError(`${where}: checkLayer must be an integer in [0, ${L - 1}], got ${checkLayer}`)
    if (selection !== 'deviation' && selection !== 'random') throw new ReuseError(`${where}: selection must be 'deviation' or 'random', got ${JSON.stringify(selection)}`)
    if (!Number.isFinite(seed)) throw new ReuseError(`${where}: seed must be a finite number, got ${seed}`)
    this.ratio = ratio
    this.checkLayer = checkLayer
    this.selection = selection
    this.seed = seed
  }

  /** selectiveRecompute with these options, from slot `from`, `always` recomputed in every layer */
  protected recompute(ids: readonly number[], cache: PagedKVCache, from: number, always: Int32Array): Int32Array {
    return selectiveRecompute(this.model, ids, cache, { checkLayer: this.checkLayer, from, always, ratio: this.ratio, selection: this.selection, seed: this.seed })
  }
}
