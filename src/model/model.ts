import { kernelBuild, type KernelBuild } from '../backend/index.js'
import type { Backend } from '../backend/backend.js'
import { Ops } from '../backend/ops.js'
import { PagedKVCache } from '../cache/paged-cache.js'
import type { CacheBytes, KVCache, KeyStorage } from '../cache/types.js'
import type { Policy, PolicyContext } from '../policies/types.js'
import { ModelInputError } from './errors.js'
import { StreamingGeneration } from './generation.js'
import { HookCapture } from './hooks.js'
import { LlamaForward } from './llama.js'
import { checkSampling, sample, seededRandom } from './sampling.js'
import type { GenerateOptions, GenerateResult, Generation, Model, ModelConfig, Tokenizer } from './types.js'
import type { Weights } from './weights.js'

const nextTurn: () => Promise<void> =
  typeof setImmediate === 'function' ? () => new Promise((r) => setImmediate(r)) : () => new Promise((r) => setTimeout(r, 0))

/** A loaded Llama-family model: weights in the arena, forward pass, generation with KV-cache policies. */
export class LlamaModel implements Model {
  readonly forward: LlamaForward
  readonly ops: Ops
  private disposed = false

  constructor(
    readonly backend: Backend,
    readonly config: ModelConfig,
    readonly tokenizer: Tokenizer,
    readonly weights: Weights,
    chunk = 128,
    ropePrecision: 'float32' | 'float16' = 'float32',
  ) {
    if (!(Number.isInteger(chunk) && chunk >= 1 && chunk <= 4096)) throw new ModelInputError(`chunk must be an integer in [1, 4096], got ${chunk}`)
    this.forward = new LlamaForward(backend, config, weights, chunk, ropePrecision)
    this.ops = new Ops(backend)
  }

  get kernels(): KernelBuild {
    return kernelBuild(this.backend)
  }

  /** bytes of weights held in the arena (float32) */
  get weightBytes(): number {
    return this.weights.bytes
  }

  private alive(): void {
    if (this.disposed) throw new ModelInputError('model used after dispose()')
  }

  /** token ids as given, checked against the vocabulary */
  checkIds(ids: ArrayLike<number>, what = 'ids'): void {
    if (ids.length === 0) throw new ModelInputError(`${what}: empty token list`)
    const V = this.config.vocab
    for (let i = 0; i < ids.length; i++) {
      const t = ids[i]
      if (!Number.isInteger(t) || t < 0 || t >= V) throw new ModelInputError(`${what}[${i}] = ${t} is not a token id in [0, ${V})`)
    }
  }

  newCache(keys: KeyStorage = 'post-rope', pageTokens = 64): PagedKVCache {
    this.alive()
    const { layers, kvHeads, headDim } = this.config
    return new PagedKVCache(this.backend, { layers, kvHeads, headDim, pageTokens, keys })
  }

  /** runs tokens through the model in chunks, appending to `cache`; returns nothing */
  prefill(ids: ArrayLike<number>, cache: PagedKVCache, firstPosition = 0, capture?: HookCapture, out?: Float32Array): void {
    const C = this.forward.chunk
    for (let s = 0; s < ids.length; s += C) {
      const T = Math.min(C, ids.length - s)
      const chunk = Array.prototype.slice.call(ids, s, s + T) as number[]
      const positions = Int32Array.from({ length: T }, (_, t) => firstPosition + s + t)
      this.forward.step(chunk, positions, cache, {
        capture, first: s, logits: out ? 'all' : 'none', out, outOffset: s * this.config.vocab,
      })
    }
  }

  logits(ids: number[]): Float32Array {
    this.alive()
    this.checkIds(ids)
    const out = new Float32Array(ids.length * this.config.vocab)
    const cache = this.newCache()
    try {
      this.prefill(ids, cache, 0, undefined, out)
    } finally {
      cache.dispose()
    }
    return out
  }

  generate(prompt: string | number[], options: GenerateOptions = {}): Generation {
    this.alive()
    const ids = typeof prompt === 'string' ? this.tokenizer.encode(prompt) : prompt
    if (!Array.isArray(ids)) throw new ModelInputError(`generate: prompt must be a string or an array of token ids, got ${typeof prompt}`)
    this.checkIds(ids, 'generate: prompt')
    const maxNew = options.maxNewTokens ?? 128
    if (!(Number.isInteger(maxNew) && maxNew >= 1)) throw new ModelInputError(`generate: maxNewTokens must be a positive integer, got ${maxNew}`)
    const sampling = checkSampling(options)
    const stop = options.stop ?? []
    if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string' || s.length === 0)) throw new ModelInputError('generate: stop must be an array of non-empty strings')
    return new StreamingGeneration((emit) => this.run(ids, maxNew, sampling, stop, options, emit))
  }

  private async run(
    ids: number[], maxNew: number, sampling: ReturnType<typeof checkSampling>, stop: string[],
    o: GenerateOptions, emit: (t: { id: number; text: string }) => void,
  ): Promise<GenerateResult> {
    await nextTurn()
    const policy: Policy | undefined = o.policy
    // calibration (RazorAttention) runs before this request's cache exists; policies cache it per model
    if (policy?.prepare) await policy.prepare(this)
    const cache = this.newCache(policy?.needs.cacheKeys ?? 'post-rope')
    const n = ids.length
    const capture = new HookCapture(policy?.needs ?? {}, this.config, this.backend.heap, n - 1)
    const random = seededRandom(o.seed ?? 0)
    const logits = new Float32Array(this.config.vocab)
    const eos = new Set(this.config.eosTokenIds)
    const out: number[] = []
    let text = ''
    try {
      const abortCheck = () => {
        if (o.signal?.aborted) throw o.signal.reason ?? new DOMException('generation aborted', 'AbortError')
      }
      abortCheck()
      // the kvpress protocol: prefill all but the last prompt token, compress, then decode from there
      const t0 = performance.now()
      this.prefill(ids.slice(0, n - 1), cache, 0, capture)
      capture.finishPrefill()
      const ctx: PolicyContext = { cache, ops: this.ops, model: this.config, hooks: capture.hooks, promptLength: n, step: 0 }
      const t1 = performance.now()
      if (policy?.onPrefillEnd && n > 1) {
        const d = policy.onPrefillEnd(ctx)
        if (d) cache.apply(d)
      }
      const t2 = performance.now()
      const kvBytesAfterPrefill: CacheBytes = cache.bytes()
      capture.startDecode()
      let token = ids[n - 1]
      let pos = n - 1
      let decodeMs = 0
      const select = policy?.selectTokens ? (layer: number, q: Float32Array) => policy.selectTokens!(ctx, layer, q) : undefined
      for (let step = 0; step < maxNew; step++) {
        abortCheck()
        const s0 = performance.now()
        this.forward.step([token], Int32Array.of(pos), cache, { capture, decode: true, first: pos, logits: 'last', out: logits, select })
        const next = sample(logits, sampling, random)
        ctx.step = step + 1
        if (policy?.onDecodeStep) {
          const d = policy.onDecodeStep(ctx)
          if (d) cache.apply(d)
        }
        decodeMs += performance.now() - s0
        if (eos.has(next)) break
        out.push(next)
        const full = this.tokenizer.decode(out)
        const piece = full.slice(text.length)
        text = full
        const hit = stop.find((s) => text.endsWith(s))
        if (hit) {
          text = text.slice(0, text.length - hit.length)
          break
        }
        const tok = { id: next, text: piece }
        emit(tok)
        o.onToken?.(tok)
        token = next
        pos++
        await nextTurn()
      }
      const steps = Math.max(1, ctx.step)
      return {
        text,
        ids: out,
        stats: {
          promptTokens: n,
          newTokens: out.length,
          prefillMs: t2 - t0,
          compressMs: t2 - t1,
          decodeMsPerToken: decodeMs / steps,
          kvBytesAfterPrefill,
          kvBytes: cache.bytes(),
          kvBytesFull: cache.bytesPerToken * (n + ctx.step - 1),
        },
      }
    } finally {
      capture.dispose()
      cache.dispose()
    }
  }

  dispose(): void {
    if (this.disposed) return
    this.forward.dispose()
    for (const p of this.weights.allocations) this.backend.heap.release(p)
    this.disposed = true
  }
}
