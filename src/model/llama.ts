import type { Backend } from '../backend/backend.js'
import { attendScratchFloats, matmulAll, type ModelKernels } from '../backend/model-kernels.js'
import { attendCache, attendCacheAsync, type CacheAttention } from '../cache/attention.js'
import type { PagedKVCache } from '../cache/paged-cache.js'
import type { TokenSelection } from '../cache/types.js'
import { ropeInvFreq } from './config.js'
import type { HookCapture } from './hooks.js'
import { RopeTables } from './rope.js'
import type { ModelConfig } from './types.js'
import type { LayerWeights, Weights } from './weights.js'

/** the kernels that run a layer's dense parts (norms, projections, MLP): the wasm core's or the GPU's */
type LayerKernels = Pick<ModelKernels, 'rmsnorm' | 'matmul' | 'matmulBatch' | 'addInPlace' | 'swiglu'>

/** input RMSNorm of x into xn, then xn's query, key and value projections into q, k, v ([T] rows) */
export function projectQkv(k: LayerKernels, cfg: ModelConfig, w: LayerWeights, p: LlamaForward['p'], T: number): void {
  const { hidden: H, qHeads, kvHeads, headDim: d, rmsNormEps: eps } = cfg
  k.rmsnorm(p.x, w.inputNorm, p.xn, T, H, eps)
  // one parallel region for the three (a decode step's are too small to pay a fork and join each)
  matmulAll(k, [
    { x: p.xn, w: w.q, bias: w.qBias, y: p.q, T, inDim: H, outDim: qHeads * d },
    { x: p.xn, w: w.k, bias: w.kBias, y: p.k, T, inDim: H, outDim: kvHeads * d },
    { x: p.xn, w: w.v, bias: w.vBias, y: p.v, T, inDim: H, outDim: kvHeads * d },
  ])
}

/** att's output projection and residual into x, then the post-attention RMSNorm and SwiGLU MLP with its residual */
export function outputAndMlp(k: LayerKernels, cfg: ModelConfig, w: LayerWeights, p: LlamaForward['p'], T: number): void {
  const { hidden: H, intermediate: I, qHeads, headDim: d, rmsNormEps: eps } = cfg
  k.matmul(p.att, w.o, w.oBias, p.o, T, qHeads * d, H)
  k.addInPlace(p.x, p.o, T * H)
  k.rmsnorm(p.x, w.postNorm, p.xn, T, H, eps)
  matmulAll(k, [
    { x: p.xn, w: w.gate, bias: w.gateBias, y: p.gate, T, inDim: H, outDim: I },
    { x: p.xn, w: w.up, bias: w.upBias, y: p.up, T, inDim: H, outDim: I },
  ])
  k.swiglu(p.gate, p.up, p.gate, T * I)
  k.matmul(p.gate, w.down, w.downBias, p.o, T, I, H)
  k.addInPlace(p.x, p.o, T * H)
}

export interface StepOptions {
  capture?: HookCapture
  /** index of the first of these tokens within the prompt (for hook placement) */
  first?: number
  /** a decode step (hooks record the step's query, not the prompt's) */
  decode?: boolean
  /** per layer: per KV head slots to attend to (decode), or null for all; the query is pre-RoPE for a pre-RoPE cache */
  select?: (layer: number, query: Float32Array) => TokenSelection | null
  /** which rows' logits to compute into `out` ([rows][vocab]) */
  logits?: 'none' | 'last' | 'all'
  out?: Float32Array
  outOffset?: number
  /** the WebGPU runtime runs the cache half of this step on the CPU (a policy reads the cache every step) */
  cpuCache?: boolean
}

/**
 * The Llama forward pass (Llama, Mistral, Qwen2, SmolLM), chunk by chunk: embeddings, then per layer
 * RMSNorm, Q/K/V projections, RoPE, attention through the KV cache, output projection, RMSNorm, SwiGLU
 * MLP; final norm and LM head. Every buffer lives in the arena, sized once for `chunk` tokens, so a 32k
 * prompt runs in the memory of one chunk plus the cache.
 */
export class LlamaForward {
  readonly rope: RopeTables
  readonly scale: number
  /** the arena buffers of one chunk (byte pointers), shared with the WebGPU runtime's twin of the arena */
  readonly p: Readonly<Record<'x' | 'xn' | 'q' | 'qPre' | 'k' | 'v' | 'att' | 'o' | 'gate' | 'up' | 'cos' | 'sin' | 'lse' | 'logits' | 'scratch', number>>

  constructor(
    readonly backend: Backend,
    readonly cfg: ModelConfig,
    readonly w: Weights,
    readonly chunk = 128,
    /** rows of logits one call computes (default: chunk); a diffusion decode reads only its block's rows */
    logitRows = chunk,
  ) {
    const { hidden: H, intermediate: I, qHeads, kvHeads, headDim: d, vocab } = cfg
    const C = chunk
    const sizes = {
      x: C * H, xn: C * H, q: C * qHeads * d, qPre: C * qHeads * d, k: C * kvHeads * d, v: C * kvHeads * d,
      att: C * qHeads * d, o: C * H, gate: C * I, up: C * I, cos: C * (d / 2), sin: C * (d / 2),
      lse: C * qHeads, logits: logitRows * vocab, scratch: 256,
    }
    const heap = backend.heap
    this.p = Object.fromEntries(Object.entries(sizes).map(([k, n]) => [k, heap.alloc(n * 4, 64)])) as LlamaForward['p']
    this.rope = new RopeTables(backend, ropeInvFreq(cfg))
    this.scale = 1 / Math.sqrt(d)
  }

  /** runs T <= chunk tokens at `positions` through every layer, appending their keys and values to the cache */
  step(ids: ArrayLike<number>, positions: Int32Array, cache: PagedKVCache, o: StepOptions = {}): void {
    const T = this.embed(ids, positions)
    for (let l = 0; l < this.cfg.layers; l++) {
      const a = this.beforeAttention(l, T, positions, cache, o)
      attendCache(this.backend, cache, a)
      this.afterAttention(l, T, cache, o)
    }
    this.logits(T, o)
  }

  /**
   * step() for caches with pages outside the arena: each layer awaits the fetch of the rows its
   * attention reads from the host tier (attendCacheAsync), the rest runs as step() does. A cache held
   * wholly in the arena takes the same synchronous kernels, one settled await per layer.
   */
  async stepAsync(ids: ArrayLike<number>, positions: Int32Array, cache: PagedKVCache, o: StepOptions = {}): Promise<void> {
    const T = this.embed(ids, positions)
    for (let l = 0; l < this.cfg.layers; l++) {
      const a = this.beforeAttention(l, T, positions, cache, o)
      await attendCacheAsync(this.backend, cache, a)
      this.afterAttention(l, T, cache, o)
    }
    this.logits(T, o)
  }

  /** the embeddings of ids as a fresh [ids.length][hidden] array: the hidden state entering layer 0 */
  embedRows(ids: ArrayLike<number>): Float32Array {
    const H = this.cfg.hidden
    const F = this.backend.heap.F32
    const out = new Float32Array(ids.length * H)
    for (let t = 0; t < ids.length; t++) out.set(F.subarray((this.w.embed >> 2) + ids[t] * H, (this.w.embed >> 2) + (ids[t] + 1) * H), t * H)
    return out
  }

  /**
   * One layer for T <= chunk tokens the cache already holds at `slots` (ascending; gaps allowed), the
   * selective recompute of CacheBlend and KVShare: `hidden` [T][hidden] enters layer l and leaves it
   * updated; the tokens' keys and values at this layer are computed afresh at `positions`, overwrite
   * the cached ones, and each token attends causally over the cache (slots up to its own). The
   * projections and the MLP run on all T rows at once (scattered tokens share the weight loads), and so
   * does the attention (attendCausalRows: each row over the slots up to its own, bit for bit what
   * attendCausal gives it), so recomputing every token in order reproduces a prefill bit for bit.
   * Post-RoPE caches in one arena segment a head. The same as recomputeKeysValues, then
   * recomputeAttention on every row.
   */
  recomputeLayer(l: number, hidden: Float32Array, positions: Int32Array, slots: Int32Array, cache: PagedKVCache): void {
    this.recomputeKeysValues(l, hidden, positions, slots, cache)
    this.finishRows(l, hidden, slots, cache)
  }

  /**
   * The first half of recomputeLayer: the T <= chunk tokens' keys and values at layer l, computed from
   * `hidden` [T][hidden] (left as it is) at `positions`, overwrite slots `slots` of the cache; `queries`,
   * when given, receives their post-RoPE queries [T][qHeads][headDim], which recomputeAttention takes.
   * A selective recompute's check layer needs every row's keys and values, but the attention and MLP of
   * the rows it keeps only. RangeError for a bad size or a cache without post-RoPE keys.
   */
  recomputeKeysValues(l: number, hidden: Float32Array, positions: Int32Array, slots: Int32Array, cache: PagedKVCache, queries?: Float32Array): void {
    const { hidden: H, qHeads, kvHeads, headDim: d } = this.cfg
    const T = positions.length
    if (T < 1 || T > this.chunk || hidden.length !== T * H || slots.length !== T) throw new RangeError(`recomputeKeysValues: 1..${this.chunk} tokens of ${H} floats and a slot each, got ${T} positions, ${slots.length} slots and ${hidden.length} floats`)
    if (cache.options.keys !== 'post-rope') throw new RangeError('recomputeKeysValues: the cache must keep post-RoPE keys')
    if (queries && queries.length !== T * qHeads * d) throw new RangeError(`recomputeKeysValues: queries must hold ${T * qHeads * d} floats, got ${queries.length}`)
    const w = this.w.layers[l]
    const k = this.backend
    const { x, q, cos, sin } = this.p
    const kb = this.p.k
    const vb = this.p.v
    k.heap.F32.set(hidden, x >> 2)
    this.rope.fill(positions, cos, sin)
    projectQkv(k, this.cfg, w, this.p, T)
    k.rope(q, T, qHeads, d, cos, sin)
    k.rope(kb, T, kvHeads, d, cos, sin)
    queries?.set(k.heap.F32.subarray(q >> 2, (q >> 2) + T * qHeads * d))
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < kvHeads; h++) {
        const off = (t * kvHeads + h) * d
        const F = k.heap.F32
        cache.overwrite(l, h, slots[t], F.slice((kb >> 2) + off, (kb >> 2) + off + d), F.slice((vb >> 2) + off, (vb >> 2) + off + d))
      }
    }
  }

  /**
   * The second half of recomputeLayer for T <= chunk tokens whose keys and values at layer l are in the
   * cache already (recomputeKeysValues): `queries` [T][qHeads][headDim] (post-RoPE) attend over the slots
   * up to each token's own, then the output projection and the MLP; `hidden` [T][hidden] enters layer l
   * and leaves it. Each row bit for bit what recomputeLayer gives it. `lse`, when given, receives each
   * query head's log-sum-exp [T][qHeads].
   */
  recomputeAttention(l: number, hidden: Float32Array, queries: Float32Array, slots: Int32Array, cache: PagedKVCache, lse?: Float32Array): void {
    const { hidden: H, qHeads, headDim: d } = this.cfg
    const T = slots.length
    if (T < 1 || T > this.chunk || hidden.length !== T * H || queries.length !== T * qHeads * d) throw new RangeError(`recomputeAttention: 1..${this.chunk} tokens of ${H} hidden and ${qHeads * d} query floats, got ${T} slots, ${hidden.length} and ${queries.length} floats`)
    const F = this.backend.heap.F32
    F.set(hidden, this.p.x >> 2)
    F.set(queries, this.p.q >> 2)
    this.finishRows(l, hidden, slots, cache, lse)
  }

  /**
   * Each query head's log-sum-exp of its scaled scores over the slots up to its token's own at layer l,
   * for T <= chunk tokens' post-RoPE queries [T][qHeads][headDim], into lse [T][qHeads]: the attention
   * without its values (attendCausalRows with none), bit for bit the lse recomputeLayer gives.
   */
  attentionLse(l: number, queries: Float32Array, slots: Int32Array, cache: PagedKVCache, lse: Float32Array): void {
    const { qHeads, headDim: d } = this.cfg
    const T = slots.length
    if (T < 1 || T > this.chunk || queries.length !== T * qHeads * d || lse.length !== T * qHeads) throw new RangeError(`attentionLse: 1..${this.chunk} tokens, ${qHeads * d} query and ${qHeads} lse floats each, got ${T} slots, ${queries.length} and ${lse.length} floats`)
    this.backend.heap.F32.set(queries, this.p.q >> 2)
    this.attendRows(l, T, slots, cache, lse, false)
  }

  /** x and q hold T tokens' hidden and post-RoPE queries at layer l: attention, output projection and MLP, x back into hidden */
  private finishRows(l: number, hidden: Float32Array, slots: Int32Array, cache: PagedKVCache, lse?: Float32Array): void {
    const T = slots.length
    this.attendRows(l, T, slots, cache, lse, true)
    this.afterAttention(l, T, cache, {})
    hidden.set(this.backend.heap.F32.subarray(this.p.x >> 2, (this.p.x >> 2) + T * this.cfg.hidden))
  }

  /**
   * q's T tokens attend over the slots up to their own (att; without `values`, no output: the log-sum-exps
   * alone), lse [T][qHeads] when given. One call a KV head for all T rows: scattered rows (a selective
   * recompute's choice) share every key tile's loads, as a run of consecutive ones does.
   */
  private attendRows(l: number, T: number, slots: Int32Array, cache: PagedKVCache, lse: Float32Array | undefined, values: boolean): void {
    const { qHeads, kvHeads, headDim: d, group } = this.cfg
    const k = this.backend
    const { q, att } = this.p
    const vd = values ? d : 0
    const scratch = k.heap.alloc(attendScratchFloats(vd, T * group) * 4, 64)
    const ends = k.heap.alloc(T * 4, 64)
    try {
      k.heap.I32.set(slots.map((s) => s + 1), ends >> 2)
      for (let g = 0; g < kvHeads; g++) {
        const v = cache.view(l, g)
        const o = g * group * d * 4
        k.attendCausalRows(q + o, qHeads * d, group, T, d, vd, v.kTable, values ? v.vTable : 0, v.pageTokens, ends, this.scale, att + o, qHeads * d, lse ? this.p.lse : 0, scratch)
        // the kernel's lse rows are [t][group]: into the caller's [T][qHeads]
        if (lse) for (let t = 0; t < T; t++) lse.set(k.heap.F32.subarray((this.p.lse >> 2) + t * group, (this.p.lse >> 2) + (t + 1) * group), t * qHeads + g * group)
      }
    } finally {
      k.heap.release(ends)
      k.heap.release(scratch)
    }
  }

  /** embeddings of the T tokens into x, RoPE tables for their positions; returns T (RangeError outside 1..chunk) */
  embed(ids: ArrayLike<number>, positions: Int32Array): number {
    const T = ids.length
    if (T < 1 || T > this.chunk) throw new RangeError(`LlamaForward.step: 1..${this.chunk} tokens a step, got ${T}`)
    const { hidden: H, vocab } = this.cfg
    const F = this.backend.heap.F32
    const { x } = this.p
    for (let t = 0; t < T; t++) {
      const src = (this.w.embed >> 2) + ids[t] * H
      F.copyWithin((x >> 2) + t * H, src, src + H)
    }
    this.rope.fill(positions, this.p.cos, this.p.sin)
    return T
  }

  private logits(T: number, o: StepOptions): void {
    const { hidden: H, vocab } = this.cfg
    const { x } = this.p
    const mode = o.logits ?? 'none'
    if (mode === 'none') return
    const from = mode === 'last' ? T - 1 : 0
    const rows = T - from
    const k = this.backend
    k.rmsnorm(x + from * H * 4, this.w.norm, this.p.xn, rows, H, this.cfg.rmsNormEps)
    k.matmul(this.p.xn, this.w.lmHead, 0, this.p.logits, rows, H, vocab)
    o.out!.set(this.backend.heap.F32.subarray(this.p.logits >> 2, (this.p.logits >> 2) + rows * vocab), o.outOffset ?? 0)
  }

  /** the layer up to attention: norm, projections, RoPE, append to the cache; returns the attention to run */
  private beforeAttention(l: number, T: number, positions: Int32Array, cache: PagedKVCache, o: StepOptions): CacheAttention {
    const w = this.w.layers[l]
    const k = this.backend
    const { x, xn } = this.p
    const cap = o.capture
    const first = o.first ?? 0
    const decode = o.decode ?? false
    cap?.hidden(l, x, T, first, decode)
    projectQkv(k, this.cfg, w, this.p, T)
    cap?.attentionInput(l, xn, T, first, decode)
    return this.prepareAttention(l, T, positions, cache, o)
  }

  /**
   * The layer from the projections' output (q, k, v buffers) to the attention to run: the pre-RoPE
   * hook, RoPE, the append to the cache, the query hooks and the decode-time selection. Public for the
   * WebGPU runtime, which computes the projections on the GPU and hands this CPU half the same buffers.
   */
  prepareAttention(l: number, T: number, positions: Int32Array, cache: PagedKVCache, o: StepOptions): CacheAttention {
    const { qHeads, kvHeads, headDim: d } = this.cfg
    const k = this.backend
    const { q, qPre, att, cos, sin, lse } = this.p
    const kb = this.p.k
    const vb = this.p.v
    const cap = o.capture
    const first = o.first ?? 0
    const decode = o.decode ?? false
    cap?.preRope(l, kb, T, first, decode)
    const preRope = cache.options.keys === 'pre-rope'
    if (preRope) {
      // the cache rotates keys (and queries) from cache positions at attention time
      k.heap.F32.copyWithin(qPre >> 2, q >> 2, (q >> 2) + T * qHeads * d)
      cache.appendFromHeap(l, kb, vb, positions)
      k.rope(q, T, qHeads, d, cos, sin)
    } else {
      k.rope(q, T, qHeads, d, cos, sin)
      k.rope(kb, T, kvHeads, d, cos, sin)
      cache.appendFromHeap(l, kb, vb, positions)
    }
    cap?.queries(l, q, T, first, positions, decode)
    const wantMass = !!cap?.wantsMass && !decode
    // the query as the cache stores keys, so a selector's q . k is the kernels' logit
    const qs = preRope ? qPre : q
    const select = o.select?.(l, k.heap.F32.slice(qs >> 2, (qs >> 2) + qHeads * d)) ?? undefined
    return {
      layer: l, q: preRope ? qPre : q, T, qHeads, out: att, scale: this.scale,
      rotate: this.rope.rotate, select: select ?? undefined, rebuiltKeys: select?.rebuiltKeys, lse: wantMass ? lse : 0,
    }
  }

  /** the layer after attention: mass hook, output projection, residual, MLP */
  private afterAttention(l: number, T: number, cache: PagedKVCache, o: StepOptions): void {
    this.massHook(l, T, cache, o)
    outputAndMlp(this.backend, this.cfg, this.w.layers[l], this.p, T)
  }

  /** after a prefill chunk's attention: H2O's mass hook, when the capture asks for it */
  massHook(l: number, T: number, cache: PagedKVCache, o: StepOptions): void {
    const cap = o.capture
    if (!!cap?.wantsMass && !(o.decode ?? false)) this.accumulateMass(l, T, this.p.q, cache, cap)
  }

  /** H2O's prefill score: each query's attention probabilities added per key, from the chunk's log-sum-exp */
  private accumulateMass(l: number, T: number, q: number, cache: PagedKVCache, cap: HookCapture): void {
    const { qHeads, kvHeads, headDim: d, group } = this.cfg
    if (cache.options.keys === 'pre-rope') throw new Error('prefillAttentionMass needs a cache with post-RoPE keys')
    for (let g = 0; g < kvHeads; g++) {
      const v = cache.view(l, g)
      const mass = cap.massPtr[l] + g * cap.promptLen * 4
      const mass1 = v.format === 'float16' ? this.backend.attentionMassF16 : this.backend.attentionMass
      mass1(q + g * group * d * 4, qHeads * d, group, T, d, v.kTable, v.pageTokens, v.n, v.n - T + 1, this.scale, this.p.lse + g * T * group * 4, mass, this.p.scratch)
    }
  }

  dispose(): void {
    for (const p of Object.values(this.p)) this.backend.heap.release(p)
  }
}
