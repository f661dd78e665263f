import type { PagedKVCache } from '../cache/paged-cache.js'
import type { LlamaModel } from '../model/model.js'
import { seededRandom } from '../model/sampling.js'
import { shownValue } from '../model/errors.js'
import { crossChunkScores } from './cross-chunk.js'
import { checkOptionNames, ReuseError } from './errors.js'

/** What a selective recompute redoes over a context whose cache already holds (approximate) KV. */
export interface RecomputePlan {
  /** layers up to and including it recompute every row from `from` on; at it the other rows are chosen */
  checkLayer: number
  /** slots before it hold exact KV (the same tokens at the same positions as when computed) and are left alone */
  from: number
  /** slots >= from whose cached KV is no reuse at all (edited tokens): recomputed in every layer, ascending */
  always: Int32Array
  /** the other slots >= from recomputed after the check layer, as a share of `candidates` (0..1) */
  ratio: number
  /**
   * how many slots `ratio` is a share of (default: the slots >= from not in `always`). CacheBlend counts
   * its first chunk, which is exact and left alone, so that ratio stays a share of the context; the
   * rows chosen are at most those there are.
   */
  candidates?: number
  /**
   * by deviation at the check layer (the method), at random (its ablation), or by cross-chunk attention
   * at the check layer (crossChunkScores; needs chunkStarts)
   */
  selection: RecomputeSelection
  /** each chunk's first slot, ascending from 0 (the 'cross-chunk' selection's chunks) */
  chunkStarts?: Int32Array
  /** what deviation measures: the keys (LMCache's) or keys and values (the paper's KV deviation, section 4.2) */
  deviation: 'key' | 'kv'
  /**
   * gradual filtering (the paper, section 4.3): the share of the candidates kept at the check layer,
   * >= ratio; each later layer but the last keeps, of the rows it recomputed, those deviating most at
   * that layer, the share shrinking linearly to `ratio` for the last layer. Equal to `ratio`: one choice.
   */
  gradualFrom: number
  seed: number
}

/** how the tokens recomputed after the check layer are chosen */
export type RecomputeSelection = 'deviation' | 'random' | 'cross-chunk'

/**
 * The share of the candidates kept after layer l (l from the check layer to the second-to-last): the
 * plan's ratio, or under gradual filtering gradualFrom at the check layer shrinking linearly to ratio
 * at the second-to-last layer (the rows entering the last layer).
 */
export function keptShare(plan: Pick<RecomputePlan, 'checkLayer' | 'ratio' | 'gradualFrom'>, l: number, layers: number): number {
  const span = layers - 2 - plan.checkLayer
  if (span <= 0) return plan.ratio
  return plan.gradualFrom + ((plan.ratio - plan.gradualFrom) * (l - plan.checkLayer)) / span
}

/** a layer's keys (and values, for KV deviation) per KV head, copied out of the cache */
const readRows = (cache: PagedKVCache, l: number, kvHeads: number, values: boolean): Float32Array[] =>
  Array.from({ length: kvHeads }, (_, h) => cache.readKeys(l, h)).concat(values ? Array.from({ length: kvHeads }, (_, h) => cache.readValues(l, h)) : [])

/**
 * CacheBlend's selective KV recompute (Yao et al., EuroSys 2025, sections 4-5; LMCache's blender),
 * shared by CacheBlend and KVShare. The cache holds N slots of ids (post-RoPE, at their final
 * positions); rows from `plan.from` on run through the layers up to `checkLayer`; there the rows whose
 * fresh keys (or keys and values) deviate most from the reused ones (squared L2 over the KV heads,
 * LMCache's measure; or, for selection 'cross-chunk', whose attention over the chunks before their own
 * is largest, crossChunkScores) are chosen, round(ratio x candidates) of them, and they plus `always` alone run
 * through the later layers, attending over the mix of fresh and reused KV. Under gradual filtering
 * (gradualFrom > ratio) the check layer keeps more and each later layer but the last keeps fewer, by
 * the deviation measured at that layer. Every row recomputed in order is a prefill, bit for bit.
 * Returns the slots recomputed in the layer after the check layer (every later layer's are among
 * them), ascending; `perLayer`, when given, receives each layer's count of recomputed rows.
 */
export function selectiveRecompute(model: LlamaModel, ids: readonly number[], cache: PagedKVCache, plan: RecomputePlan, perLayer?: number[]): Int32Array {
  const { layers, kvHeads, hidden: H } = model.config
  const N = ids.length
  if (plan.from >= N) return new Int32Array(0)
  let rows: Int32Array = Int32Array.from({ length: N - plan.from }, (_, i) => plan.from + i)
  let hidden = model.forward.embedRows(ids.slice(plan.from))
  let afterCheck = rows
  const candidates = plan.candidates ?? rows.length - plan.always.length
  const kv = plan.deviation === 'kv'
  const { qHeads, headDim } = model.config
  for (let l = 0; l < layers; l++) {
    const choosing = l === plan.checkLayer || (plan.gradualFrom > plan.ratio && l > plan.checkLayer && l < layers - 1)
    perLayer?.push(rows.length)
    if (!choosing) {
      layerRows(model, l, hidden, rows, cache)
      continue
    }
    // a choosing layer: every row's keys and values (what deviation compares, what later rows read),
    // then the attention and MLP of the rows kept alone (the others' hidden states are not used again)
    const before = plan.selection === 'deviation' ? readRows(cache, l, kvHeads, kv) : null
    const queries = new Float32Array(rows.length * qHeads * headDim)
    chunked(model, rows, (i, at) => model.forward.recomputeKeysValues(l, hidden.subarray(i * H, (i + at.length) * H), at, at, cache, queries.subarray(i * qHeads * headDim, (i + at.length) * qHeads * headDim)))
    const k = Math.min(Math.round(keptShare(plan, l, layers) * candidates), rows.length - plan.always.length)
    const score =
      plan.selection === 'cross-chunk'
        ? () => {
            // each row's log-sum-exp over the slots up to its own: the attention without values
            const lse = new Float32Array(rows.length * qHeads)
            chunked(model, rows, (i, at) => model.forward.attentionLse(l, queries.subarray(i * qHeads * headDim, (i + at.length) * qHeads * headDim), at, cache, lse.subarray(i * qHeads, (i + at.length) * qHeads)))
            return crossChunkScores(model.backend, model.config, cache, l, rows, { queries, lse }, plan.chunkStarts!)
          }
        : () => deviationScores(model, rows, before!, readRows(cache, l, kvHeads, kv))
    const keep = choose(plan, rows, k, score)
    const at = new Map(Array.from(rows, (r, i) => [r, i]))
    const next = new Float32Array(keep.length * H)
    const nextQueries = new Float32Array(keep.length * qHeads * headDim)
    keep.forEach((r, i) => {
      const j = at.get(r)!
      next.set(hidden.subarray(j * H, (j + 1) * H), i * H)
      nextQueries.set(queries.subarray(j * qHeads * headDim, (j + 1) * qHeads * headDim), i * qHeads * headDim)
    })
    chunked(model, keep, (i, slots) => model.forward.recomputeAttention(l, next.subarray(i * H, (i + slots.length) * H), nextQueries.subarray(i * qHeads * headDim, (i + slots.length) * qHeads * headDim), slots, cache))
    rows = keep
    hidden = next
    if (l === plan.checkLayer) afterCheck = keep
  }
  return afterCheck
}

/** rows [T] (ascending slots, positions = slots) through layer l: hidden [T][hidden] in, updated in place; their K/V rewritten */
function layerRows(model: LlamaModel, l: number, hidden: Float32Array, rows: Int32Array, cache: PagedKVCache): void {
  const H = model.config.hidden
  chunked(model, rows, (i, at) => model.forward.recomputeLayer(l, hidden.subarray(i * H, (i + at.length) * H), at, at, cache))
}

/** `each(i, rows[i..i + n))` for pieces of at most the forward's chunk of rows (what one forward call takes) */
function chunked(model: LlamaModel, rows: Int32Array, each: (i: number, at: Int32Array) => void): void {
  for (let i = 0; i < rows.length; i += model.forward.chunk) each(i, rows.slice(i, i + model.forward.chunk))
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

/** per row of `rows`, the squared L2 between the cached rows `before` and `after` the layer's recompute, over the heads */
function deviationScores(model: LlamaModel, rows: Int32Array, before: Float32Array[], after: Float32Array[]): Float64Array {
  const d = model.config.headDim
  const dev = new Float64Array(rows.length)
  before.forEach((b, h) => {
    const a = after[h]
    rows.forEach((t, i) => {
      for (let c = 0; c < d; c++) dev[i] += (a[t * d + c] - b[t * d + c]) ** 2
    })
  })
  return dev
}

/** `always` plus k of the other rows: at random, or by `score` per row of `rows`, highest first (ties to the earlier slot) */
function choose(plan: RecomputePlan, rows: Int32Array, k: number, score: () => Float64Array): Int32Array {
  const always = new Set(plan.always)
  const order = Array.from(rows).filter((r) => !always.has(r))
  if (plan.selection === 'random') {
    const rand = seededRandom(plan.seed)
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1))
      ;[order[i], order[j]] = [order[j], order[i]]
    }
  } else {
    const s = score()
    const at = new Map(Array.from(rows, (r, i) => [r, s[i]]))
    order.sort((x, y) => at.get(y)! - at.get(x)! || x - y)
  }
  return Int32Array.from([...order.slice(0, k), ...always]).sort()
}

/** The options CacheBlend and KVShare share: how much is recomputed and how it is chosen. */
export interface RecomputeOptions {
  /** share of the candidate tokens recomputed after the check layer (default 0.15, CacheBlend's) */
  ratio?: number
  /** layers below it are recomputed for every candidate token; at it the tokens are chosen (default 1, LMCache's) */
  checkLayer?: number
  /**
   * how tokens are chosen: by deviation (default, the method), at random (its ablation), or
   * 'cross-chunk' (CacheBlend only): by their attention over earlier chunks at the check layer
   * (crossChunkScores), which finds the tokens that link facts across chunks where deviation does not
   */
  selection?: RecomputeSelection
  /**
   * what deviation measures: 'key' (default, LMCache's) or 'kv' (keys and values, the paper's KV
   * deviation); a ReuseError with selection 'random' or 'cross-chunk', which do not read it
   */
  deviation?: 'key' | 'kv'
  /**
   * gradual filtering (the paper, section 4.3): the share kept at the check layer (>= ratio, default
   * ratio: one choice), shrinking linearly over the later layers to `ratio`, each layer's rows chosen by
   * their deviation at that layer
   */
  gradualFrom?: number
  /** seed of the random selection; a ReuseError with selection 'deviation' (the default) or 'cross-chunk', which do not read it */
  seed?: number
}

const RECOMPUTE_OPTIONS: Record<keyof RecomputeOptions, true> = { ratio: true, checkLayer: true, selection: true, deviation: true, gradualFrom: true, seed: true }

/** per selection, the options it never reads (refused where given) and why */
const UNREAD: Record<RecomputeSelection, { names: readonly ('deviation' | 'seed')[]; why: string }> = {
  deviation: { names: ['seed'], why: 'chooses by deviation, deterministically, and reads no seed' },
  random: { names: ['deviation'], why: 'chooses at random (by seed) and measures no deviation' },
  'cross-chunk': { names: ['deviation', 'seed'], why: 'chooses by attention at the check layer and reads neither deviation nor seed' },
}

/**
 * What CacheBlend and KVShare share: the recompute options, checked at construction (a ReuseError
 * naming the bad one; `where` names the class), and the selective recompute run with them.
 */
export abstract class SelectiveReuse {
  readonly ratio: number
  readonly checkLayer: number
  readonly selection: RecomputeSelection
  readonly deviation: 'key' | 'kv'
  readonly gradualFrom: number
  readonly seed: number

  protected constructor(
    readonly model: LlamaModel,
    where: string,
    options: RecomputeOptions,
    /** the subclass's own option names, beside RecomputeOptions' */
    own: Readonly<Record<string, true>>,
    /** whether the subclass's contexts are chunks (selection 'cross-chunk' needs them) */
    chunked = false,
  ) {
    checkOptionNames(where, options, { ...RECOMPUTE_OPTIONS, ...own })
    const ratio = options.ratio ?? 0.15
    const checkLayer = options.checkLayer ?? 1
    const selection = options.selection ?? 'deviation'
    const seed = options.seed ?? 0
    const deviation = options.deviation ?? 'key'
    const gradualFrom = options.gradualFrom ?? ratio
    const L = model.config.layers
    if (!(typeof ratio === 'number' && ratio >= 0 && ratio <= 1)) throw new ReuseError(`${where}: ratio must be a number in [0, 1], got ${shownValue(ratio)}`)
    if (!(Number.isInteger(checkLayer) && checkLayer >= 0 && checkLayer < L)) throw new ReuseError(`${where}: checkLayer must be an integer in [0, ${L - 1}], got ${shownValue(checkLayer)}`)
    const selections: RecomputeSelection[] = chunked ? ['deviation', 'random', 'cross-chunk'] : ['deviation', 'random']
    // the message said only which selections are allowed, not why this one is not
    if (!chunked && selection === 'cross-chunk') throw new ReuseError(`${where}: selection 'cross-chunk' scores each token's attention on the chunks before its own, and ${where}'s context has no chunks (one prompt, edited); use 'deviation' or 'random'`)
    if (!selections.includes(selection)) throw new ReuseError(`${where}: selection must be ${selections.map((x) => `'${x}'`).join(', ')}, got ${JSON.stringify(selection)}`)
    if (deviation !== 'key' && deviation !== 'kv') throw new ReuseError(`${where}: deviation must be 'key' or 'kv', got ${JSON.stringify(deviation)}`)
    if (!(typeof gradualFrom === 'number' && gradualFrom >= ratio && gradualFrom <= 1)) throw new ReuseError(`${where}: gradualFrom must be a number in [ratio, 1] = [${ratio}, 1], got ${shownValue(gradualFrom)}`)
    if (!Number.isFinite(seed)) throw new ReuseError(`${where}: seed must be a finite number, got ${shownValue(seed)}`)
    // an option the chosen selection never reads was taken and ignored (a seed under 'deviation', a KV deviation under 'random')
    const unread = UNREAD[selection].names.filter((o) => options[o] !== undefined)
    if (unread.length) throw new ReuseError(`${where}: selection '${selection}' ${UNREAD[selection].why}; got ${unread.map((o) => `${o} ${shownValue(options[o])}`).join(' and ')}`)
    if (selection === 'cross-chunk' && gradualFrom > ratio) throw new ReuseError(`${where}: gradualFrom (${gradualFrom}) above ratio (${ratio}) filters by deviation; selection 'cross-chunk' chooses once, at the check layer`)
    this.ratio = ratio
    this.checkLayer = checkLayer
    this.selection = selection
    this.deviation = deviation
    this.gradualFrom = gradualFrom
    this.seed = seed
  }

  /** selectiveRecompute with these options, from slot `from`, `always` recomputed in every layer; `chunkStarts` for 'cross-chunk'; `candidates` as RecomputePlan's */
  protected recompute(ids: readonly number[], cache: PagedKVCache, from: number, always: Int32Array, perLayer?: number[], chunkStarts?: Int32Array, candidates?: number): Int32Array {
    const { checkLayer, ratio, selection, deviation, gradualFrom, seed } = this
    return selectiveRecompute(this.model, ids, cache, { checkLayer, from, always, ratio, selection, deviation, gradualFrom, seed, chunkStarts, candidates }, perLayer)
  }
}
