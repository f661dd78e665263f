/**
 * The observation-window scorer shared by SnapKV, PyramidKV and AdaKV: how much the last w queries of
 * the prompt (or, with `every=N`, the last w decode queries) attend to each cached token.
 */
import { F32Buf } from '../backend/heap.js'
import { PolicyOptionValueError } from './errors.js'
import type { OptionSpec } from './registry.js'
import type { ModelShape, PolicyContext } from './types.js'

/** The last w queries of a layer: [qHeads][w][headDim] and their positions. */
export interface Observation {
  queries: Float32Array
  positions: Int32Array
  w: number
}

export interface VoteOptions {
  window: number
  pooling: 'max' | 'avg' | 'none'
  kernel: number
  /** how the query heads of a KV head's group combine their votes */
  group: 'mean' | 'max'
}

export const observationOptions: OptionSpec[] = [
  { name: 'window', type: 'integer', default: 32, min: 1, description: 'observation window: the last w prompt queries vote; their own tokens are always kept' },
  { name: 'pooling', type: 'string', default: 'max', choices: ['max', 'avg', 'none'], description: '1-D pooling of the votes over positions (keeps neighbours of voted tokens)' },
  { name: 'kernel', type: 'integer', default: 7, min: 1, description: 'pooling kernel (odd)' },
  { name: 'group', type: 'string', default: 'mean', choices: ['mean', 'max'], description: 'GQA: combine the votes of a KV head\'s query heads by mean or max' },
]

/** A definition's check for observationOptions: the pooling kernel must be odd (PolicyOptionValueError). */
export function checkObservationOptions(o: Record<string, unknown>): void {
  voteOptionsFrom(o)
}

export function voteOptionsFrom(o: Record<string, unknown>): VoteOptions {
  const kernel = o.kernel as number
  if (kernel % 2 !== 1) throw new PolicyOptionValueError(`option kernel=${kernel} must be odd (centered pooling)`)
  return { window: o.window as number, pooling: o.pooling as VoteOptions['pooling'], kernel, group: o.group as VoteOptions['group'] }
}

/** The last w observation queries of a layer from the hook data (the runtime may capture more). */
export function observationFromHooks(ctx: PolicyContext, layer: number, w: number): Observation {
  const hook = ctx.hooks[layer]
  const q = hook?.observationQueries
  const pos = hook?.observationPositions
  if (!q || !pos) throw new Error(`layer ${layer}: no observation queries captured (the policy asked for needs.observationWindow = ${w})`)
  const { qHeads, headDim } = ctx.model
  const have = pos.length
  if (q.length !== qHeads * have * headDim) throw new Error(`layer ${layer}: observationQueries holds ${q.length} floats, expected ${qHeads} x ${have} x ${headDim}`)
  const take = Math.min(w, have)
  if (take === have) return { queries: q, positions: pos, w: have }
  const out = new Float32Array(qHeads * take * headDim)
  for (let h = 0; h < qHeads; h++) out.set(q.subarray((h * have + have - take) * headDim, (h * have + have) * headDim), h * take * headDim)
  return { queries: out, positions: pos.slice(have - take), w: take }
}

/** Keeps the last w decode queries of each layer, for periodic compression during decoding. */
export class DecodeObserver {
  private readonly rows: { q: Float32Array; pos: number }[][]
  constructor(private readonly model: ModelShape, private readonly w: number) {
    this.rows = Array.from({ length: model.layers }, () => [])
  }
  push(layer: number, q: Float32Array, position: number): void {
    const r = this.rows[layer]
    r.push({ q: q.slice(), pos: position })
    if (r.length > this.w) r.shift()
  }
  current(layer: number): Observation | null {
    const r = this.rows[layer]
    if (r.length === 0) return null
    const { qHeads, headDim } = this.model
    const w = r.length
    const queries = new Float32Array(qHeads * w * headDim)
    r.forEach((row, i) => {
      for (let h = 0; h < qHeads; h++) queries.set(row.q.subarray(h * headDim, (h + 1) * headDim), (h * w + i) * headDim)
    })
    return { queries, positions: Int32Array.from(r, (x) => x.pos), w }
  }
}

/**
 * SnapKV's vote per KV head: A = softmax(Qobs K^T / sqrt(d)) (causal inside the window), summed over the
 * window's queries, pooled over the positions before the window, combined over the group's query heads.
 * The window's own tokens score +Infinity (always kept). Returns one score array per KV head.
 */
export function windowVotes(ctx: PolicyContext, layer: number, obs: Observation, opt: VoteOptions): Float32Array[] {
  const { ops, cache, model } = ctx
  const { group, headDim } = model
  const heap = ops.heap
  const rows = group * obs.w
  const firstObserved = Math.min(...obs.positions)
  const out: Float32Array[] = []
  for (let h = 0; h < model.kvHeads; h++) {
    const view = cache.view(layer, h)
    const n = view.n
    if (view.d !== headDim) throw new Error(`layer ${layer} head ${h}: keys hold ${view.d} of ${headDim} channels; evict before pruning channels`)
    const positions = cache.positions(layer, h)
    // the window's own tokens are the tail of the slots (slots stay in position order)
    let prefix = n
    while (prefix > 0 && positions[prefix - 1] >= firstObserved) prefix--
    const score = new Float32Array(n).fill(Infinity)
    out.push(score)
    if (prefix === 0) continue
    const q = heap.f32From(obs.queries.subarray(h * rows * headDim, (h + 1) * rows * headDim))
    const logits = heap.allocF32(rows * n)
    const vote = heap.allocF32(n)
    const pooled = heap.allocF32(n)
    try {
      ops.scoreKeys(q, rows, view, 1 / Math.sqrt(headDim), logits)
      const L = logits.view
      for (let r = 0; r < rows; r++) {
        const p = obs.positions[r % obs.w]
        for (let j = prefix; j < n; j++) if (positions[j] > p) L[r * n + j] = -Infinity
      }
      const combined = new Float32Array(prefix)
      for (let g = 0; g < group; g++) {
        ops.softVote(new F32Buf(heap, logits.ptr + g * obs.w * n * 4, obs.w * n), obs.w, n, vote)
        let v = vote
        if (opt.pooling !== 'none' && opt.kernel > 1) {
          ops.pool1d(opt.pooling, vote, prefix, opt.kernel, pooled)
          v = pooled
        }
        const vv = v.view
        for (let j = 0; j < prefix; j++) {
          const x = vv[j] / obs.w
          combined[j] = opt.group === 'max' ? (g === 0 ? x : Math.max(combined[j], x)) : combined[j] + x / group
        }
      }
      score.set(combined)
    } finally {
      pooled.free()
      vote.free()
      logits.free()
      q.free()
    }
  }
  return out
}

/**
 * The attention of one query per query head (q: [qHeads][headDim]) over each KV head's slots, summed
 * over the KV head's query group: per KV head, sum over g of softmax(q_g K^T / sqrt(d)).
 */
export function queryAttention(ctx: PolicyContext, layer: number, q: Float32Array): Float32Array[] {
  const { ops, cache, model } = ctx
  const { group, headDim } = model
  if (q.length !== model.qHeads * headDim) throw new Error(`layer ${layer}: query holds ${q.length} floats, expected ${model.qHeads} x ${headDim}`)
  const heap = ops.heap
  const out: Float32Array[] = []
  for (let h = 0; h < model.kvHeads; h++) {
    const view = cache.view(layer, h)
    const n = view.n
    if (n === 0) {
      out.push(new Float32Array(0))
      continue
    }
    if (view.d !== headDim) throw new Error(`layer ${layer} head ${h}: keys hold ${view.d} of ${headDim} channels; evict before pruning channels`)
    const qb = heap.f32From(q.subarray(h * group * headDim, (h + 1) * group * headDim))
    const logits = heap.allocF32(group * n)
    const vote = heap.allocF32(n)
    try {
      ops.scoreKeys(qb, group, view, 1 / Math.sqrt(headDim), logits)
      ops.softVote(logits, group, n, vote)
      out.push(vote.view.slice())
    } finally {
      vote.free()
      logits.free()
      qb.free()
    }
  }
  return out
}
