import type { Heap } from '../backend/heap.js'
import type { LayerHooks, PolicyNeeds } from '../policies/types.js'
import type { ModelConfig } from './types.js'

/**
 * Collects the hook data a policy asked for while the forward pass runs, and nothing it did not ask for.
 * Prefill: the last w post-RoPE queries, attention mass per cached token (accumulated chunk by chunk from
 * the attention's log-sum-exp, never an n x n matrix), hidden states and pre-RoPE keys of every prompt
 * token. Decode: the step's post-RoPE query, and the new token's hidden state and pre-RoPE key.
 */
export class HookCapture {
  readonly hooks: LayerHooks[]
  /** arena buffers [kvHeads][promptLen] of attention mass per layer (while prefilling) */
  readonly massPtr: number[] = []
  private readonly obsStart: number
  private readonly obsLen: number

  constructor(
    readonly needs: PolicyNeeds,
    readonly cfg: ModelConfig,
    readonly heap: Heap,
    /** tokens the prefill puts in the cache */
    readonly promptLen: number,
  ) {
    const { layers, qHeads, kvHeads, headDim: d, hidden } = cfg
    this.obsLen = Math.min(Math.max(0, Math.floor(needs.observationWindow ?? 0)), promptLen)
    this.obsStart = promptLen - this.obsLen
    this.hooks = Array.from({ length: layers }, (_, layer) => {
      const h: LayerHooks = { layer }
      // asked for, the arrays exist even when empty (a one-token prompt prefills nothing)
      if (needs.observationWindow) {
        h.observationQueries = new Float32Array(qHeads * this.obsLen * d)
        h.observationPositions = new Int32Array(this.obsLen)
      }
      if (needs.hiddenStates) h.hiddenStates = new Float32Array(promptLen * hidden)
      if (needs.preRopeKeys) h.preRopeKeys = new Float32Array(promptLen * kvHeads * d)
      if (needs.attentionInputNorms) h.attentionInputNorms = new Float32Array(promptLen)
      return h
    })
    if (needs.prefillAttentionMass) {
      for (let l = 0; l < layers; l++) {
        const p = heap.alloc(Math.max(1, kvHeads * promptLen) * 4)
        heap.F32.fill(0, p >> 2, (p >> 2) + kvHeads * promptLen)
        this.massPtr.push(p)
      }
    }
  }

  get wantsMass(): boolean {
    return this.massPtr.length > 0
  }

  /**
   * Whether a step of T tokens from prompt index `first` (or a decode step) gives this capture anything:
   * the WebGPU runtime brings such steps' buffers back to the CPU, and runs the others wholly on the GPU.
   */
  wantsStep(first: number, T: number, decode: boolean): boolean {
    const n = this.needs
    if (n.hiddenStates || n.preRopeKeys) return true
    if (decode) return !!n.decodeQueries
    return this.wantsMass || !!n.attentionInputNorms || (this.obsLen > 0 && first + T > this.obsStart && first < this.promptLen)
  }

  /** x [T][hidden] entering layer l, for tokens first..first+T-1 of the prompt (or a decode token) */
  hidden(l: number, x: number, T: number, first: number, decode: boolean): void {
    if (!this.needs.hiddenStates) return
    const H = this.cfg.hidden
    const src = this.heap.F32.subarray(x >> 2, (x >> 2) + T * H)
    if (decode) this.hooks[l].hiddenStates = src.slice()
    else this.hooks[l].hiddenStates!.set(src, first * H)
  }

  /** ||xn_t|| of the attention input xn [T][hidden] (after the input RMSNorm), prompt tokens only */
  attentionInput(l: number, xn: number, T: number, first: number, decode: boolean): void {
    if (!this.needs.attentionInputNorms || decode) return
    const H = this.cfg.hidden
    const F = this.heap.F32
    const out = this.hooks[l].attentionInputNorms!
    for (let t = 0; t < T; t++) {
      let s = 0
      for (let j = (xn >> 2) + t * H, e = j + H; j < e; j++) s += F[j] * F[j]
      out[first + t] = Math.sqrt(s)
    }
  }

  preRope(l: number, k: number, T: number, first: number, decode: boolean): void {
    if (!this.needs.preRopeKeys) return
    const w = this.cfg.kvHeads * this.cfg.headDim
    const src = this.heap.F32.subarray(k >> 2, (k >> 2) + T * w)
    if (decode) this.hooks[l].preRopeKeys = src.slice()
    else this.hooks[l].preRopeKeys!.set(src, first * w)
  }

  /** post-RoPE queries q [T][qHeads][d] of tokens first.. at positions */
  queries(l: number, q: number, T: number, first: number, positions: Int32Array, decode: boolean): void {
    const { qHeads, headDim: d } = this.cfg
    const F = this.heap.F32
    if (decode) {
      if (this.needs.decodeQueries) this.hooks[l].decodeQuery = F.slice(q >> 2, (q >> 2) + qHeads * d)
      return
    }
    if (this.obsLen === 0) return
    const h = this.hooks[l]
    for (let t = 0; t < T; t++) {
      const i = first + t - this.obsStart
      if (i < 0 || i >= this.obsLen) continue
      h.observationPositions![i] = positions[t]
      for (let hd = 0; hd < qHeads; hd++) {
        const src = (q >> 2) + (t * qHeads + hd) * d
        h.observationQueries!.set(F.subarray(src, src + d), (hd * this.obsLen + i) * d)
      }
    }
  }

  /** copies the accumulated mass into the hooks and frees the arena buffers */
  finishPrefill(): void {
    const n = this.promptLen * this.cfg.kvHeads
    this.massPtr.forEach((p, l) => {
      this.hooks[l].attentionMass = this.heap.F32.slice(p >> 2, (p >> 2) + n)
      this.heap.release(p)
    })
    this.massPtr.length = 0
  }

  /**
   * Instead of capturing a prefill, takes another capture's hooks of the same prompt (a SharedPrefill's,
   * made with a superset of these needs): copies of what these needs ask for, the observation window cut
   * to its last obsLen queries, so the policy sees what its own prefill would have captured.
   */
  adopt(from: readonly LayerHooks[]): void {
    const { qHeads, headDim: d } = this.cfg
    for (const p of this.massPtr) this.heap.release(p)
    const wantsMass = this.massPtr.length > 0
    this.massPtr.length = 0
    this.hooks.forEach((h, l) => {
      const src = from[l]
      if (this.obsLen > 0) {
        const W = src.observationPositions!.length
        h.observationPositions!.set(src.observationPositions!.subarray(W - this.obsLen))
        for (let hd = 0; hd < qHeads; hd++) {
          h.observationQueries!.set(src.observationQueries!.subarray((hd * W + W - this.obsLen) * d, (hd + 1) * W * d), hd * this.obsLen * d)
        }
      }
      if (wantsMass) h.attentionMass = src.attentionMass!.slice()
      if (this.needs.hiddenStates) h.hiddenStates = src.hiddenStates!.slice()
      if (this.needs.preRopeKeys) h.preRopeKeys = src.preRopeKeys!.slice()
    })
  }

  /** decode steps: drops prefill-only arrays so a step's hooks hold only that step's data */
  startDecode(): void {
    for (const h of this.hooks) {
      delete h.hiddenStates
      delete h.preRopeKeys
      delete h.attentionInputNorms
      delete h.decodeQuery
    }
  }

  dispose(): void {
    for (const p of this.massPtr) this.heap.release(p)
    this.massPtr.length = 0
  }
}
