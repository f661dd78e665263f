import type { Heap } from '../backend/heap.js'
import type { WebGpuKernels } from '../backend/webgpu/kernels.js'
import type { TokenSelection } from '../cache/types.js'
import type { SoftVotePlan } from '../policies/types.js'
import type { ModelConfig } from './types.js'

/** the arena scratch the soft vote needs for caches of up to `positions` slots (shared by the requests of one model) */
export interface VoteScratch {
  /** [qHeads][positions] float32: q . k / sqrt(d) */
  scores: number
  /** [kvHeads][positions] float32: the vote of each unit (one row for a layer-wide vote) */
  vote: number
  /** [qHeads][2] float32: row max and exp-sum */
  stats: number
  positions: number
}

/** the arena bytes of VoteScratch for a model, in allocation order */
export function voteScratchBytes(cfg: ModelConfig, positions: number): [number, number, number] {
  return [cfg.qHeads * positions * 4, cfg.kvHeads * positions * 4, cfg.qHeads * 2 * 4]
}

/** a KV head's cache as the decode step attends to it */
export interface HeadTables {
  kTable: number
  vTable: number
  n: number
}

/**
 * One request's TokenSelect selection on the GPU (a SoftVotePlan: Wu et al. 2025, sec. 3.2-3.4, as
 * src/policies/tokenselect.ts selects on the CPU). Per layer of a decode step, in the step's batch and
 * with no readback: the Selection Cache test on q (its flag skips the rest on a hit), the scores of every
 * query head over its KV head's keys, the soft vote (softmax per head, summed over the vote unit), the
 * multi-workgroup top-k of [first, n - last) and the windows, into a list per vote unit that the
 * gathered attention then reads. The hit flags (and, when a caller records them, the lists) come back
 * with the step's logits, so the policy's counters and `onKept` see what the CPU path would report.
 * Per request: the cached queries, the lists and the flags (arena buffers); `dispose` frees them.
 */
export class GpuSoftVoteSelection {
  private readonly units: number
  private readonly k: number
  private readonly lists: number
  private readonly cachedQ: number
  private readonly flags: number
  /** layers whose cached query is set (a selection was computed) */
  private readonly valid: boolean[]
  /** layers that made a Selection Cache lookup this step, or selected at all */
  private readonly looked: boolean[]
  private readonly selected: boolean[]
  /** whether a decode step encoded this request's layers since the last afterStep */
  private stepped = false

  constructor(
    readonly plan: SoftVotePlan,
    private readonly cfg: ModelConfig,
    private readonly heap: Heap,
    private readonly K: WebGpuKernels,
    private readonly scratch: VoteScratch,
    /** receives each layer's selection (slots per KV head) after a step, for onKept; unset: the lists stay on the GPU */
    private readonly record?: (layer: number, slots: TokenSelection | null) => void,
  ) {
    const { layers, kvHeads, qHeads, headDim: d } = cfg
    this.units = plan.vote === 'layer' ? 1 : kvHeads
    this.k = plan.budget - plan.first - plan.last
    if (this.k < 0) throw new RangeError(`GpuSoftVoteSelection: budget ${plan.budget} is below first ${plan.first} + last ${plan.last}`)
    this.lists = heap.alloc(layers * this.units * plan.budget * 4, 16)
    this.cachedQ = heap.alloc(layers * qHeads * d * 4, 16)
    this.flags = heap.alloc(layers * 4, 16)
    this.valid = new Array<boolean>(layers).fill(false)
    this.looked = new Array<boolean>(layers).fill(false)
    this.selected = new Array<boolean>(layers).fill(false)
  }

  /**
   * Encodes layer l's selection for the step's query q (byte pointer, [qHeads][d] post-RoPE). Returns
   * the list (byte pointer of plan.budget int32 slots) KV head g attends to, or null when the layer
   * attends densely (its heads hold at most plan.budget slots, or it is below plan.dense). Throws when the heads hold different
   * counts (the plan's vote needs them alike; the runtime takes a plan only for such caches).
   * `half`: the keys are float16 pages (scored by scoreKeysF16).
   */
  encode(l: number, q: number, heads: HeadTables[], pt: number, scale: number, half = false): ((g: number) => number) | null {
    const { qHeads, group, headDim: d } = this.cfg
    const { budget: B, first: f, last: tail, threshold } = this.plan
    const n = heads[0].n
    if (heads.some((h) => h.n !== n)) throw new Error(`GpuSoftVoteSelection: layer ${l}'s KV heads hold different counts (${heads.map((h) => h.n).join(', ')})`)
    if (n > this.scratch.positions) throw new RangeError(`GpuSoftVoteSelection: ${n} slots exceed the vote scratch of ${this.scratch.positions}`)
    this.stepped = true
    this.selected[l] = n > B && l >= this.plan.dense
    if (!this.selected[l]) return null
    const K = this.K
    const list = this.lists + l * this.units * B * 4
    let skip = -1
    if (threshold !== null) {
      skip = this.flags + l * 4
      K.selectionCacheTest(q, this.cachedQ + l * qHeads * d * 4, qHeads * d, threshold, skip, this.valid[l])
      this.looked[l] = true
    }
    this.valid[l] = true
    const { scores, vote, stats } = this.scratch
    const score = (half ? K.scoreKeysF16 : K.scoreKeys).bind(K)
    heads.forEach((h, g) => score(q + g * group * d * 4, group, d, h.kTable, pt, n, scale, scores + g * group * n * 4, skip))
    const rows = qHeads / this.units
    for (let u = 0; u < this.units; u++) K.softVote(scores + u * rows * n * 4, rows, n, vote + u * n * 4, stats + u * rows * 8, skip)
    // the top k of [f, n - last), written between the windows with the slot offset f added
    K.topKRows(vote + f * 4, this.units, n, n - f - tail, this.k, list + f * 4, B, f, skip)
    K.selectionWindows(list, this.units, B, n, f, tail, this.k)
    return (g) => list + (this.units === 1 ? 0 : g) * B * 4
  }

  /** what to read back with the step's logits: the hit flags, and the lists when a caller records them */
  readRanges(): [number, number][] {
    const { layers } = this.cfg
    const out: [number, number][] = []
    if (this.looked.some((x) => x)) out.push([this.flags, layers * 4])
    if (this.record && this.selected.some((x) => x)) out.push([this.lists, layers * this.units * this.plan.budget * 4])
    return out
  }

  /** after a decode step's readback (the ranges are in the heap): counts the lookups, hands the lists to `record` */
  afterStep(): void {
    if (!this.stepped) return
    this.stepped = false
    const I = this.heap.I32
    const { layers, kvHeads } = this.cfg
    const B = this.plan.budget
    for (let l = 0; l < layers; l++) {
      if (this.looked[l]) this.plan.lookup(I[(this.flags >> 2) + l] !== 0)
      if (this.record) {
        const at = (this.lists >> 2) + l * this.units * B
        const slots = (g: number) => I.slice(at + (this.units === 1 ? 0 : g) * B, at + ((this.units === 1 ? 0 : g) + 1) * B)
        this.record(l, this.selected[l] ? Array.from({ length: kvHeads }, (_, g) => slots(g)) : null)
      }
      this.looked[l] = false
      this.selected[l] = false
    }
  }

  dispose(): void {
    this.heap.release(this.flags)
    this.heap.release(this.cachedQ)
    this.heap.release(this.lists)
  }
}
