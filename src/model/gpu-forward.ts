import { attendScratchWords, flashScratchWords, type WebGpuKernels } from '../backend/webgpu/kernels.js'
import { GpuArenaMirror } from '../backend/webgpu/mirror.js'
import type { WebGpuBackend } from '../backend/webgpu/index.js'
import { attendCacheAsync } from '../cache/attention.js'
import { elementBytes } from '../cache/formats.js'
import type { PagedKVCache } from '../cache/paged-cache.js'
import type { TokenSelection } from '../cache/types.js'
import type { SoftVotePlan } from '../policies/types.js'
import { GpuSoftVoteSelection, voteScratchBytes, type HeadTables, type VoteScratch } from './gpu-selection.js'
import { outputAndMlp, projectQkv, type LlamaForward, type StepOptions } from './llama.js'

/** which side holds a cache's newest rows: the heap ('cpu'), the GPU twin ('gpu'), or both alike */
type Side = 'cpu' | 'gpu' | 'both'

/**
 * The Llama forward pass on a WebGPU device, over the GPU twin of the arena (GpuArenaMirror: the same
 * byte pointers for weights, buffers, pages and page tables). Projections, RoPE, RMSNorm, SwiGLU and the
 * LM head always run on the GPU. A step whose cache is plain float32 or float16 pages with post-RoPE
 * keys, with no hook data and no decode-time selection to hand the CPU, runs wholly there: the rows are
 * appended on the GPU (wgsl/runtime.wgsl; float16 rows rounded as the CPU rounds them,
 * wgsl/append_f16.wgsl) and attended there (causal chunks in FlashAttention-2 tiles, wgsl/flash.wgsl;
 * decode split along the sequence; float16 pages through the kernels' F16 twins, wgsl/kv.f16.wgsl),
 * and only the logits come back. A chunk's matmuls take the register-blocked kernel (wgsl/gemm.wgsl),
 * a decode step's the matrix-vector one.
 * TokenSelect's selection (a SoftVotePlan) runs there too, per layer in the same batch
 * (GpuSoftVoteSelection). Any other step (a policy's observation window, attention-mass or
 * hidden-state hooks, another selecting policy, packed or pre-RoPE pages) brings the layer's q, k, v
 * back and runs the cache half on the CPU exactly as the wasm runtime does (LlamaForward.prepareAttention
 * and attendCache), so every policy takes the decisions it takes there, from the GPU's projections.
 * Steps of one model run one at a time (a lock), since they share the chunk buffers.
 */
export class GpuLlamaForward {
  readonly mirror: GpuArenaMirror
  private readonly k: WebGpuKernels
  private readonly tabs: number
  private readonly scratch: number
  /** the chunk attention's key splits (0 when no chunk of this model splits) */
  private readonly flashScratch: number
  private readonly side = new WeakMap<PagedKVCache, Side>()
  /** what the GPU holds of each page table (by pointer) */
  private readonly tablesSent = new Map<number, Int32Array>()
  private lock: Promise<unknown> = Promise.resolve()
  /** the soft vote's scratch, made at the first GPU selection (sized for the model's context) */
  private vote: VoteScratch | null = null
  /** steps run wholly on the GPU, and steps whose cache half ran on the CPU */
  readonly steps = { gpu: 0, cpuAttention: 0 }

  constructor(
    readonly backend: WebGpuBackend,
    readonly cpu: LlamaForward,
  ) {
    const { layers, kvHeads, qHeads, headDim: d, maxPositions } = cpu.cfg
    const heap = backend.heap
    this.k = backend.gpu
    this.tabs = heap.alloc(layers * kvHeads * 16, 64)
    this.scratch = heap.alloc(attendScratchWords(qHeads / kvHeads, d, maxPositions + cpu.chunk) * 4, 64)
    const flashWords = flashScratchWords(cpu.chunk, qHeads, d, maxPositions + cpu.chunk)
    this.flashScratch = flashWords ? heap.alloc(flashWords * 4, 64) : 0
    this.mirror = new GpuArenaMirror(this.k, heap)
    // weights and everything else the heap holds now; later writes go up as the runtime needs them
    this.mirror.push(0, heap.memory.buffer.byteLength)
  }

  private exclusive<R>(fn: () => Promise<R>): Promise<R> {
    const run = this.lock.then(fn, fn)
    this.lock = run.catch(() => undefined)
    return run
  }

  /**
   * LlamaForward.step on the GPU; logits (when asked for) are the only readback of a GPU-only step.
   * `sel`: the request's selection on the GPU (softVoteSelection), for its decode steps; throws when
   * such a step cannot run wholly on the GPU (it would need the CPU's selector, which the plan replaced).
   */
  step(ids: ArrayLike<number>, positions: Int32Array, cache: PagedKVCache, o: StepOptions = {}, sel?: GpuSoftVoteSelection): Promise<void> {
    return this.exclusive(() => this.run(ids, positions, cache, o, sel))
  }

  /**
   * A request's TokenSelect selection carried out on the GPU, or null when this cache cannot take it
   * (not resident on the GPU, or a layer whose KV heads hold different counts): the request then
   * selects on the CPU. `record` receives each decode step's selection (for onKept). Dispose it when
   * the request ends.
   */
  softVoteSelection(plan: SoftVotePlan, cache: PagedKVCache, record?: (layer: number, slots: TokenSelection | null) => void): GpuSoftVoteSelection | null {
    const { layers, kvHeads } = this.cpu.cfg
    if (!this.residentOnGpu(cache)) return null
    for (let l = 0; l < layers; l++) for (let g = 1; g < kvHeads; g++) if (cache.length(l, g) !== cache.length(l, 0)) return null
    if (!this.vote) {
      const positions = this.cpu.cfg.maxPositions
      const [scores, vote, stats] = voteScratchBytes(this.cpu.cfg, positions).map((b) => this.backend.heap.alloc(b, 16))
      this.vote = { scores, vote, stats, positions }
    }
    return new GpuSoftVoteSelection(plan, this.cpu.cfg, this.backend.heap, this.k, this.vote, record)
  }

  /** resolves once the GPU has run every step submitted so far (prefill timings include the GPU's work) */
  finish(): Promise<void> {
    return this.exclusive(() => this.k.finish())
  }

  /** brings the cache's newest rows to the heap, before CPU code reads it (a policy's decision) */
  toCpu(cache: PagedKVCache): Promise<void> {
    return this.exclusive(() => this.pullCache(cache))
  }

  /** the CPU changed the cache (a decision applied, a prefill restored): the GPU copy is stale */
  cpuWrote(cache: PagedKVCache): void {
    this.side.set(cache, 'cpu')
  }

  /**
   * whether the GPU can append to and attend over the cache itself: plain float32 or float16 pages (one
   * arena segment a head in the cache's kvDtype; float16 rows of an even head dim, whole 32-bit words)
   * with post-RoPE keys
   */
  residentOnGpu(cache: PagedKVCache): boolean {
    const { layers, kvHeads, keys, kvDtype, headDim } = cache.options
    if (keys !== 'post-rope' || (kvDtype === 'float16' && headDim % 2)) return false
    for (let l = 0; l < layers; l++) {
      for (let h = 0; h < kvHeads; h++) {
        const segs = cache.segments(l, h)
        if (segs.length !== 1) return false
        const s = segs[0]
        if (s.tier !== 'wasm' || s.format !== kvDtype || s.valueFormat !== kvDtype || s.channels || s.d !== headDim) return false
      }
    }
    return true
  }

  private async run(ids: ArrayLike<number>, positions: Int32Array, cache: PagedKVCache, o: StepOptions, sel?: GpuSoftVoteSelection): Promise<void> {
    const T = ids.length
    const cpu = this.cpu
    if (T < 1 || T > cpu.chunk) throw new RangeError(`GpuLlamaForward.step: 1..${cpu.chunk} tokens a step, got ${T}`)
    const wholeGpu = !o.select && !o.cpuCache && !o.capture?.wantsStep(o.first ?? 0, T, o.decode ?? false) && this.residentOnGpu(cache)
    if (sel && !wholeGpu) throw new Error('GpuLlamaForward.step: a step with a GPU selection must run wholly on the GPU (plain float32 or float16 cache, no hooks, no CPU selector)')
    if (wholeGpu) this.pushCache(cache)
    else await this.pullCache(cache)
    const { hidden: H, layers } = cpu.cfg
    const { x, cos, sin } = cpu.p
    cpu.embed(ids, positions)
    this.mirror.push(x, T * H * 4)
    this.mirror.push(cos, T * cpu.rope.invFreq.length * 4)
    this.mirror.push(sin, T * cpu.rope.invFreq.length * 4)
    if (wholeGpu) {
      // every layer's slots first (CPU bookkeeping and uploads), then one batch of kernels
      const ns = Array.from({ length: layers }, (_, l) => this.reserve(l, positions, cache))
      const half = cache.options.kvDtype === 'float16'
      for (let l = 0; l < layers; l++) this.layerOnGpu(l, T, ns[l], cache.options.pageTokens, half, sel)
      this.side.set(cache, 'gpu')
      this.steps.gpu++
    } else {
      for (let l = 0; l < layers; l++) await this.layerWithCpuCache(l, T, positions, cache, o)
      this.side.set(cache, 'cpu')
      this.steps.cpuAttention++
    }
    await this.logits(T, o, sel)
  }

  /** appends T uncounted rows per KV head of layer l on the CPU side; uploads the page tables and slots */
  private reserve(l: number, positions: Int32Array, cache: PagedKVCache): HeadTables[] {
    const T = positions.length
    const { kvHeads, pageTokens } = cache.options
    const at = cache.appendReserved(l, positions)
    const tabs = this.tabs + l * kvHeads * 16
    const I = this.backend.heap.I32
    const out = at.map(({ kTable, vTable, first }, g) => {
      I.set([kTable, vTable, first, first + T], (tabs >> 2) + g * 4)
      const pages = Math.ceil((first + T) / pageTokens)
      for (const table of [kTable, vTable]) {
        // a table changes when a page is added or copied on write (or the pointer is reused): most steps send none
        const now = I.subarray(table >> 2, (table >> 2) + pages)
        const sent = this.tablesSent.get(table)
        if (sent && sent.length === pages && sent.every((p, i) => p === now[i])) continue
        this.mirror.push(table, pages * 4)
        this.tablesSent.set(table, now.slice())
      }
      return { kTable, vTable, n: first + T }
    })
    this.mirror.push(tabs, kvHeads * 16)
    return out
  }

  /** `half`: the cache holds float16 pages (the kernels' F16 twins append and attend) */
  private layerOnGpu(l: number, T: number, heads: HeadTables[], pt: number, half: boolean, sel?: GpuSoftVoteSelection): void {
    const { qHeads, kvHeads, headDim: d, group } = this.cpu.cfg
    const w = this.cpu.w.layers[l]
    const K = this.k
    const { q, att, cos, sin, lse } = this.cpu.p
    const kb = this.cpu.p.k
    const vb = this.cpu.p.v
    projectQkv(K, this.cpu.cfg, w, this.cpu.p, T)
    K.rope(q, T, qHeads, d, cos, sin)
    K.rope(kb, T, kvHeads, d, cos, sin)
    const tabs = this.tabs + l * kvHeads * 16
    if (half) K.appendRowsF16(kb, vb, T, kvHeads, d, tabs, pt)
    else K.appendRows(kb, vb, T, kvHeads, d, tabs, pt)
    const attend = (half ? K.attendF16 : K.attend).bind(K)
    const scale = this.cpu.scale
    if (T === 1) {
      // TokenSelect's list per KV head (null: dense), decided here from this step's q
      const list = sel?.encode(l, q, heads, pt, scale, half) ?? null
      const count = list ? sel!.plan.budget : 0
      heads.forEach((h, g) => {
        const off = g * group * d * 4
        attend(q + off, group, d, h.kTable, h.vTable, pt, h.n, list ? list(g) : 0, count, scale, att + off, lse + g * group * 4, this.scratch)
      })
    } else {
      const keys = heads.reduce((m, h) => Math.max(m, h.n), 0)
      const causal = (half ? K.attendCausalF16 : K.attendCausal).bind(K)
      causal(q, qHeads * d, qHeads, group, T, d, tabs, pt, scale, att, qHeads * d, keys, this.flashScratch)
    }
    outputAndMlp(this.k, this.cpu.cfg, this.cpu.w.layers[l], this.cpu.p, T)
  }

  /**
   * One layer with the cache half on the CPU: the GPU's projections come back (with the hook inputs the
   * capture wants), LlamaForward.prepareAttention and attendCache run as on wasm, the attention output
   * goes up and the GPU runs the rest of the layer.
   */
  private async layerWithCpuCache(l: number, T: number, positions: Int32Array, cache: PagedKVCache, o: StepOptions): Promise<void> {
    const { hidden: H, qHeads, kvHeads, headDim: d } = this.cpu.cfg
    const w = this.cpu.w.layers[l]
    const K = this.k
    const { x, xn, q, att } = this.cpu.p
    const kb = this.cpu.p.k
    const vb = this.cpu.p.v
    const cap = o.capture
    const needs = cap?.needs
    const first = o.first ?? 0
    const decode = o.decode ?? false
    projectQkv(K, this.cpu.cfg, w, this.cpu.p, T)
    const ranges: [number, number][] = [[q, T * qHeads * d * 4], [kb, T * kvHeads * d * 4], [vb, T * kvHeads * d * 4]]
    if (needs?.hiddenStates) ranges.push([x, T * H * 4])
    if (needs?.attentionInputNorms && !decode) ranges.push([xn, T * H * 4])
    await this.mirror.pull(ranges)
    cap?.hidden(l, x, T, first, decode)
    cap?.attentionInput(l, xn, T, first, decode)
    const a = this.cpu.prepareAttention(l, T, positions, cache, o)
    await attendCacheAsync(this.backend, cache, a)
    this.cpu.massHook(l, T, cache, o)
    this.mirror.push(att, T * qHeads * d * 4)
    outputAndMlp(this.k, this.cpu.cfg, this.cpu.w.layers[l], this.cpu.p, T)
  }

  private async logits(T: number, o: StepOptions, sel?: GpuSoftVoteSelection): Promise<void> {
    const mode = o.logits ?? 'none'
    const extra = sel?.readRanges() ?? []
    if (mode === 'none') {
      // the selection's flags still come back (a decode step always asks for logits, so this is rare)
      if (extra.length) await this.mirror.pull(extra)
      else this.k.submit()
      sel?.afterStep()
      return
    }
    const { hidden: H, vocab, rmsNormEps: eps } = this.cpu.cfg
    const { x, xn, logits } = this.cpu.p
    const from = mode === 'last' ? T - 1 : 0
    const rows = T - from
    this.k.rmsnorm(x + from * H * 4, this.cpu.w.norm, xn, rows, H, eps)
    this.k.matmul(xn, this.cpu.w.lmHead, 0, logits, rows, H, vocab)
    await this.mirror.pull([[logits, rows * vocab * 4], ...extra])
    sel?.afterStep()
    o.out!.set(this.backend.heap.F32.subarray(logits >> 2, (logits >> 2) + rows * vocab), o.outOffset ?? 0)
  }

  /** the byte ranges of the cache's tables and page rows (resident caches: one segment a head) */
  private cacheRanges(cache: PagedKVCache, tables: boolean): [number, number][] {
    const { layers, kvHeads, pageTokens: pt, headDim: d, kvDtype } = cache.options
    const rowBytes = d * elementBytes(kvDtype)
    const I = this.backend.heap.I32
    const out: [number, number][] = []
    const add = (ptr: number, bytes: number) => {
      const last = out[out.length - 1]
      if (last && last[0] + last[1] === ptr) last[1] += bytes
      else out.push([ptr, bytes])
    }
    for (let l = 0; l < layers; l++) {
      for (let h = 0; h < kvHeads; h++) {
        const s = cache.segments(l, h)[0]
        if (s.n === 0) continue
        const pages = Math.ceil(s.n / pt)
        for (const table of [s.kTable, s.vTable]) {
          if (tables) add(table, pages * 4)
          for (let p = 0; p < pages; p++) add(I[(table >> 2) + p], Math.min(pt, s.n - p * pt) * rowBytes)
        }
      }
    }
    return out
  }

  private pushCache(cache: PagedKVCache): void {
    if ((this.side.get(cache) ?? 'cpu') !== 'cpu') return
    this.tablesSent.clear()
    for (const [ptr, bytes] of this.cacheRanges(cache, true)) this.mirror.push(ptr, bytes)
    this.side.set(cache, 'both')
  }

  private async pullCache(cache: PagedKVCache): Promise<void> {
    if (this.side.get(cache) !== 'gpu') return
    await this.mirror.pull(this.cacheRanges(cache, false))
    this.side.set(cache, 'both')
  }

  dispose(): void {
    this.backend.heap.release(this.tabs)
    this.backend.heap.release(this.scratch)
    if (this.flashScratch) this.backend.heap.release(this.flashScratch)
    if (this.vote) for (const p of [this.vote.stats, this.vote.vote, this.vote.scores]) this.backend.heap.release(p)
    this.mirror.destroy()
  }
}
