import type { PagedKVCache } from '../cache/paged-cache.js'
import type { LlamaModel } from '../model/model.js'
import { shownValue } from '../model/errors.js'
import { checkOptionNames, ReuseError } from './errors.js'
import { recomputeRows } from './selective-recompute.js'

/** KVShare's decode-time recompute when attention drifts (`KVShareOptions.decodeRefresh`). */
export interface DecodeRefreshOptions {
  /**
   * a step drifts when its attention mass on stale tokens (reused, not recomputed), averaged over the
   * layers and query heads, is above this share (0..1; default 0.5). 0: any attention to a stale token.
   */
  threshold?: number
  /** stale tokens recomputed per refresh: the most attended ones (default 16) */
  tokens?: number
  /** refreshes per generation at most, each one extra decode step (default 4) */
  maxRefreshes?: number
}

/** What the refreshes of one generation did. */
export interface DecodeRefreshReport {
  /** refreshes run */
  refreshes: number
  /** stale tokens recomputed, in the order chosen */
  recomputed: number[]
  /** rows recomputed in all (the chosen stale tokens and the rows computed here after them) */
  rows: number
  /** per decode step checked (while refreshes remain; not a refreshed step's rerun), the attention mass on stale tokens (the drift signal) */
  mass: number[]
}

const DECODE_REFRESH_OPTIONS: Record<keyof DecodeRefreshOptions, true> = { threshold: true, tokens: true, maxRefreshes: true }

/**
 * The options with their defaults; a ReuseError naming the bad one. Options that are not an object
 * (true, 5, null) and misspelt names ({ threshhold: 0.9 }) are refused: they ran on the defaults, silently.
 */
export function checkDecodeRefresh(o: DecodeRefreshOptions): Required<DecodeRefreshOptions> {
  checkOptionNames('KVShare: decodeRefresh', o, DECODE_REFRESH_OPTIONS)
  const threshold = o.threshold ?? 0.5
  const tokens = o.tokens ?? 16
  const maxRefreshes = o.maxRefreshes ?? 4
  if (!(typeof threshold === 'number' && threshold >= 0 && threshold <= 1)) throw new ReuseError(`KVShare: decodeRefresh.threshold must be a number in [0, 1], got ${shownValue(threshold)}`)
  if (!(Number.isInteger(tokens) && tokens >= 1)) throw new ReuseError(`KVShare: decodeRefresh.tokens must be an integer >= 1, got ${shownValue(tokens)}`)
  if (!(Number.isInteger(maxRefreshes) && maxRefreshes >= 0)) throw new ReuseError(`KVShare: decodeRefresh.maxRefreshes must be an integer >= 0, got ${shownValue(maxRefreshes)}`)
  return { threshold, tokens, maxRefreshes }
}

/**
 * KVShare's decode stage of DHD (Yang et al. 2025, arXiv 2503.16525, the Dual-Stage High Deviation
 * algorithm, decode phase): tokens whose KV came from another request and were not recomputed at
 * prefill are stale; new tokens may attend to them more than the prompt did (attention drift). After
 * each decode step the step's queries are scored against the cache (softmax of q.k / sqrt(d) per query
 * head over every slot); when the mass on stale slots, averaged over layers and query heads, is above
 * `threshold`, the `tokens` stale slots with the most mass (summed over layers and heads; ties to the
 * earlier slot) are recomputed at their positions, and with them every row computed in this request
 * after the first of them (edited, prefill-recomputed, question and generated tokens), whose KV was
 * built on the stale rows; reused rows not chosen keep their cached KV. The step then runs again
 * (once: a step refreshes at most once, so the first token waits for one refresh at most). At most
 * `maxRefreshes` times a generation. With threshold 0 and enough tokens the first step
 * recomputes every row after the exact prefix in order: a full prefill bit for bit from then on.
 */
export class DecodeRefresh {
  private readonly stale: Uint8Array
  private left: number
  /** slots the cache held at the last refresh: the rerun of that step refreshes no more */
  private refreshedAt = -1
  readonly report: DecodeRefreshReport = { refreshes: 0, recomputed: [], rows: 0, mass: [] }

  constructor(
    private readonly model: LlamaModel,
    private readonly cache: PagedKVCache,
    /** the context's stale slots (reused, not recomputed) */
    stale: Iterable<number>,
    contextTokens: number,
    private readonly o: Required<DecodeRefreshOptions>,
  ) {
    this.stale = new Uint8Array(contextTokens)
    for (const s of stale) this.stale[s] = 1
    this.left = o.maxRefreshes
  }

  /** ReuseHandle.afterStep: scores the step's attention, and refreshes when it drifts */
  afterStep(queries: readonly Float32Array[], slotIds: readonly number[]): boolean {
    // spent, or the rerun of a refreshed step: no scoring (it costs an attention pass in JS)
    if (this.left === 0 || slotIds.length === this.refreshedAt) return false
    const { mass, perSlot } = this.attention(queries, slotIds.length)
    this.report.mass.push(mass)
    if (!(mass > this.o.threshold)) return false
    this.refreshedAt = slotIds.length
    const chosen = Array.from(this.stale.keys()).filter((s) => this.stale[s])
    chosen.sort((a, b) => perSlot[b] - perSlot[a] || a - b)
    chosen.length = Math.min(chosen.length, this.o.tokens)
    const first = Math.min(...chosen)
    const pos = slotIds.length - 1
    const picked = new Set(chosen)
    const rows: number[] = []
    for (let s = first; s < pos; s++) if (!this.stale[s] || picked.has(s)) rows.push(s)
    recomputeRows(this.model, slotIds, this.cache, Int32Array.from(rows))
    for (const s of chosen) this.stale[s] = 0
    this.left--
    this.report.refreshes++
    this.report.recomputed.push(...chosen)
    this.report.rows += rows.length
    return true
  }

  /** the step's attention mass on stale slots (mean over layers and query heads), and per slot (summed) */
  private attention(queries: readonly Float32Array[], n: number): { mass: number; perSlot: Float64Array } {
    const { layers, qHeads, kvHeads, headDim: d } = this.model.config
    const group = qHeads / kvHeads
    const scale = 1 / Math.sqrt(d)
    const perSlot = new Float64Array(n)
    const p = new Float64Array(n)
    let mass = 0
    for (let l = 0; l < layers; l++) {
      const q = queries[l]
      for (let g = 0; g < kvHeads; g++) {
        const k = this.cache.readKeys(l, g)
        for (let h = g * group; h < (g + 1) * group; h++) {
          let max = -Infinity
          for (let i = 0; i < n; i++) {
            let dot = 0
            for (let c = 0; c < d; c++) dot += q[h * d + c] * k[i * d + c]
            p[i] = dot * scale
            if (p[i] > max) max = p[i]
          }
          let sum = 0
          for (let i = 0; i < n; i++) sum += p[i] = Math.exp(p[i] - max)
          for (let i = 0; i < this.stale.length; i++) {
            if (!this.stale[i]) continue
            perSlot[i] += p[i] / sum
            mass += p[i] / sum
          }
        }
      }
    }
    return { mass: mass / (layers * qHeads), perSlot }
  }
}
