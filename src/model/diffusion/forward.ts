import type { Backend } from '../../backend/backend.js'
import { attendScratchFloats } from '../../backend/model-kernels.js'
import { PagedKVCache } from '../../cache/paged-cache.js'
import { LlamaForward, outputAndMlp, projectQkv } from '../llama.js'
import type { ModelConfig } from '../types.js'
import type { Weights } from '../weights.js'
import { cosineDrift, mostAttended, trackedAttention } from './elastic-cache.js'

/** What one denoising forward is asked to do (see BidirectionalForward.run). */
export interface ForwardPlan {
  /**
   * Positions of the rows to compute while layers are reused, in row order; the last `tail` of them are
   * the rows whose logits and attention mass are read (the masked positions' query rows). With
   * `fullFrom` 0 every position is computed and only the tail's order matters.
   */
  rows: Int32Array
  tail: number
  /** the first layer computed over every token (0: a full forward; layers: none unless drift says so) */
  fullFrom: number
  /** Elastic-Cache: positions of the most-attended tokens to test for drift (null: no test) and gamma */
  track: Int32Array | null
  gamma: number
  /** Elastic-Cache: how many most-attended tokens per layer to return for the next step (0: none) */
  trackNum: number
  /** a drifting layer l refreshes from l + 1 (the paper's code) instead of from l itself */
  refreshNext?: boolean
  /** 1 at positions still masked (never tracked: the paper tracks decoded tokens) */
  masked: Uint8Array
  /** logits of the first `logitRows` tail rows go to out [logitRows][vocab] */
  logitRows: number
  out: Float32Array
}

export interface ForwardOutcome {
  /** the first layer computed over every token (layers when none was) */
  fullFrom: number
  /** token rows computed, summed over layers */
  rows: number
  /** the most-attended decoded tokens (union over layers), when asked */
  track: Int32Array | null
}

/**
 * The bidirectional (non-causal) Llama/Qwen2 forward of a masked diffusion LM over one sequence of N
 * tokens, with its K/V (and, for Elastic-Cache, each layer's input hidden states and queries) kept
 * across denoising steps. The projections, RoPE, norms and MLP are LlamaForward's (sized for N rows);
 * attention is the causal kernel with every row seeing all N keys (visible0 = N), over a PagedKVCache
 * whose slot j holds position j. One object per decode: concurrent decodes share nothing but weights.
 */
export class BidirectionalForward {
  readonly f: LlamaForward
  readonly cache: PagedKVCache
  /** per layer: hidden state entering the layer [N][hidden] (Elastic-Cache's x_cache) */
  private readonly X: Float32Array[]
  /** per layer: post-RoPE queries [N][qHeads * headDim] (Elastic-Cache's q_cache, for the drift test) */
  private readonly Q: Float32Array[]
  private readonly scratch: number
  private readonly mass: number

  constructor(
    readonly backend: Backend,
    readonly cfg: ModelConfig,
    readonly w: Weights,
    readonly N: number,
    logitRows: number,
    /** keep hidden states and queries per layer (Elastic-Cache) */
    keep: boolean,
  ) {
    const { layers, kvHeads, headDim: d, hidden: H, qHeads, group } = cfg
    this.f = new LlamaForward(backend, cfg, w, N, logitRows)
    this.cache = new PagedKVCache(backend, { layers, kvHeads, headDim: d, pageTokens: 64, keys: 'post-rope' })
    // slot j is position j from the start: every step overwrites rows in place
    const zeros = new Float32Array(N * kvHeads * d)
    const positions = Int32Array.from({ length: N }, (_, i) => i)
    for (let l = 0; l < layers; l++) this.cache.append(l, zeros, zeros, positions)
    this.X = keep ? Array.from({ length: layers }, () => new Float32Array(N * H)) : []
    this.Q = keep ? Array.from({ length: layers }, () => new Float32Array(N * qHeads * d)) : []
    const heap = backend.heap
    this.scratch = heap.alloc(Math.max(attendScratchFloats(d, N * group), group * N + qHeads * d) * 4, 64)
    this.mass = heap.alloc(N * 4, 64)
  }

  /** every position, `tail` (the last rows of `rows`) last: the row order of a layer computed over all tokens */
  private allRows(rows: Int32Array, tail: number): Int32Array {
    const last = rows.subarray(rows.length - tail)
    const inTail = new Uint8Array(this.N)
    for (const p of last) inTail[p] = 1
    const out = new Int32Array(this.N)
    let i = 0
    for (let p = 0; p < this.N; p++) if (!inTail[p]) out[i++] = p
    out.set(last, i)
    return out
  }

  /**
   * One denoising forward of sequence `seq` [N]. Layers below plan.fullFrom compute only plan.rows
   * (K/V at other positions are the cached ones); from fullFrom on, every token. With a track list,
   * each reused layer tests drift, and the first that drifts is computed again over every token, as
   * is every layer after it (Elastic-Cache's refresh), inputs this step did not compute taken from the
   * cache of each layer's inputs.
   */
  run(seq: Int32Array, plan: ForwardPlan): ForwardOutcome {
    const { layers, hidden: H, vocab } = this.cfg
    const k = this.backend
    const f = this.f
    const x = f.p.x
    const keep = this.X.length > 0
    if (!keep && plan.fullFrom !== 0) throw new RangeError('BidirectionalForward.run: reusing layers needs the per-layer inputs (construct with keep)')
    let fullFrom = plan.fullFrom
    let cur = fullFrom === 0 ? this.allRows(plan.rows, plan.tail) : plan.rows
    f.embed(Array.from(cur, (p) => seq[p]), cur)
    let computed = 0
    const track = new Set<number>()
    for (let l = 0; l < layers; l++) {
      const w = this.w.layers[l]
      if (keep) this.keepInputs(l, cur)
      if (l === fullFrom && cur.length < this.N) {
        // a plan that reuses the first fullFrom layers: every token from here on
        cur = this.allRows(plan.rows, plan.tail)
        this.restoreInputs(l, cur)
      }
      computed += cur.length
      // the drift test runs on reused layers while the most-attended tokens are known
      const drift = this.attention(l, cur, l < fullFrom ? plan.track : null, plan.gamma)
      if (drift && plan.refreshNext) fullFrom = l + 1
      else if (drift) {
        // the refresh: this layer and every one after it over all tokens, inputs this step did not
        // reach taken from the cache (layer 0's are the tokens' embeddings, always current)
        fullFrom = l
        cur = this.allRows(plan.rows, plan.tail)
        this.restoreInputs(l, cur)
        computed += cur.length
        this.attention(l, cur, null, 0)
      }
      if (plan.trackNum > 0) {
        for (const p of mostAttended(k, this.cfg, this.cache, l, f.p, cur.length, plan.tail, plan.masked, plan.trackNum, this.mass)) track.add(p)
      }
      outputAndMlp(k, this.cfg, w, f.p, cur.length)
    }
    // final norm and LM head on the first logitRows tail rows
    const R = plan.logitRows
    if (R > 0) {
      const from = cur.length - plan.tail
      k.rmsnorm(x + from * H * 4, this.w.norm, f.p.xn, R, H, this.cfg.rmsNormEps)
      k.matmul(f.p.xn, this.w.lmHead, 0, f.p.logits, R, H, vocab)
      plan.out.set(k.heap.F32.subarray(f.p.logits >> 2, (f.p.logits >> 2) + R * vocab))
    }
    return { fullFrom: Math.min(fullFrom, layers), rows: computed, track: plan.trackNum > 0 ? Int32Array.from([...track].sort((a, b) => a - b)) : null }
  }

  /** the hidden states entering layer l at rows cur (in the x buffer) into the layer's input cache */
  private keepInputs(l: number, cur: Int32Array): void {
    const H = this.cfg.hidden
    const F = this.backend.heap.F32
    const x = this.f.p.x >> 2
    for (let t = 0; t < cur.length; t++) this.X[l].set(F.subarray(x + t * H, x + (t + 1) * H), cur[t] * H)
  }

  /** the x buffer and RoPE tables for rows cur, their inputs from layer l's input cache */
  private restoreInputs(l: number, cur: Int32Array): void {
    const H = this.cfg.hidden
    const F = this.backend.heap.F32
    const x = this.f.p.x >> 2
    for (let t = 0; t < cur.length; t++) F.set(this.X[l].subarray(cur[t] * H, (cur[t] + 1) * H), x + t * H)
    this.f.rope.fill(cur, this.f.p.cos, this.f.p.sin)
  }

  /**
   * Layer l's attention half for rows cur: projections, RoPE, K/V (and queries) into the cache, then
   * attention over every key into the att buffer. With tracked tokens, the drift test: true when their
   * attention now and as cached have a cosine similarity of at most gamma (the layer must be refreshed).
   */
  private attention(l: number, cur: Int32Array, track: Int32Array | null, gamma: number): boolean {
    const { qHeads, kvHeads, headDim: d } = this.cfg
    const k = this.backend
    const { q, cos, sin } = this.f.p
    const T = cur.length
    projectQkv(k, this.cfg, this.w.layers[l], this.f.p, T)
    k.rope(q, T, qHeads, d, cos, sin)
    k.rope(this.f.p.k, T, kvHeads, d, cos, sin)
    const test = track !== null && track.length > 0
    // the tracked tokens' attention as cached: their cached queries against the cached keys
    const before = test ? trackedAttention(k, this.cfg, this.cache, l, this.Q[l], track, this.scratch) : null
    this.store(l, cur)
    this.attend(l, T)
    if (!test) return false
    const now = trackedAttention(k, this.cfg, this.cache, l, this.Q[l], track, this.scratch)
    return cosineDrift(before!, now, this.N) <= gamma
  }

  /** the rows' post-RoPE keys and values into the cache at their positions, their queries into Q (Elastic-Cache) */
  private store(l: number, cur: Int32Array): void {
    const { qHeads, kvHeads, headDim: d } = this.cfg
    const F = this.backend.heap.F32
    const kb = this.f.p.k >> 2
    const vb = this.f.p.v >> 2
    for (let t = 0; t < cur.length; t++) {
      for (let h = 0; h < kvHeads; h++) {
        const off = (t * kvHeads + h) * d
        this.cache.overwrite(l, h, cur[t], F.subarray(kb + off, kb + off + d), F.subarray(vb + off, vb + off + d))
      }
    }
    if (this.Q.length) {
      const Q = this.Q[l]
      const qb = this.f.p.q >> 2
      const row = qHeads * d
      for (let t = 0; t < cur.length; t++) Q.set(F.subarray(qb + t * row, qb + (t + 1) * row), cur[t] * row)
    }
  }

  /** bidirectional attention of T query rows over all N cached keys, per KV head; lse per row for the mass */
  private attend(l: number, T: number): void {
    const { qHeads, kvHeads, headDim: d, group } = this.cfg
    const { q, att, lse } = this.f.p
    for (let g = 0; g < kvHeads; g++) {
      const v = this.cache.view(l, g)
      const o = g * group * d * 4
      // visible0 = n: row t sees min(n, n + t) = all n keys (no causal mask)
      this.backend.attendCausal(q + o, qHeads * d, group, T, d, d, v.kTable, v.vTable, v.pageTokens, v.n, v.n, this.f.scale, att + o, qHeads * d, lse + g * T * group * 4, this.scratch)
    }
  }

  dispose(): void {
    this.f.dispose()
    this.cache.dispose()
    this.backend.heap.release(this.scratch)
    this.backend.heap.release(this.mass)
  }
}
