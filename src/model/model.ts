import { kernelBuild, type KernelBuild } from '../backend/index.js'
import { throwIfAborted } from './abort.js'
import type { Backend } from '../backend/backend.js'
import { Ops } from '../backend/ops.js'
import { PagedKVCache } from '../cache/paged-cache.js'
import type { CacheBytes, Decision, KVCache, KeyStorage } from '../cache/types.js'
import { KV_DTYPES, type KVDtype } from '../cache/formats.js'
import type { Policy, PolicyContext, PolicySession } from '../policies/types.js'
import { resolvePolicy, type PolicyConfig } from '../policies/config.js'
import { scoresTokensAtCreation } from '../policies/registry.js'
import { SharedPrefill } from './prefill.js'
import { ContextLengthError, contextLimitText, DecodingModeError, ModelDisposedError, ModelInputError, NonFiniteError, optionNamesProblem, shownValue } from './errors.js'
import { diffusionDecode, type DiffusionResult } from './diffusion/decode.js'
import { BidirectionalForward } from './diffusion/forward.js'
import { checkDiffusionOptions, diffusionContextError, type DiffusionGenerateOptions } from './diffusion/options.js'
import { StreamingGeneration } from './generation.js'
import { HookCapture } from './hooks.js'
import { KeptRecorder } from './kept.js'
import { GpuLlamaForward } from './gpu-forward.js'
import type { GpuSoftVoteSelection } from './gpu-selection.js'
import { LlamaForward, type StepOptions } from './llama.js'
import type { WebGpuBackend } from '../backend/webgpu/index.js'
import { policyRuntime } from './policy-runtime.js'
import { checkSampling, sample, seededRandom } from './sampling.js'
import type { FinishReason, GenerateOptions, GenerateResult, Generation, LogitsOptions, Model, ModelConfig, ReuseHandle, Tokenizer } from './types.js'
import { TextStream } from './text-stream.js'
import { nextTurn } from './next-turn.js'
import type { Weights } from './weights.js'

/** the first non-finite value among [rows][vocab] logits, or null */
function firstNonFinite(x: Float32Array): number | null {
  for (let j = 0; j < x.length; j++) if (!Number.isFinite(x[j])) return j
  return null
}

/**
 * Logits an onLogits callback changed in place must still be sampleable: -Infinity bans a token, but NaN,
 * +Infinity or a row with every token banned would make sampling pick an arbitrary token (the argmax of
 * NaNs is token 0, often end-of-sequence) and end the generation silently.
 */
function checkProcessedLogits(logits: Float32Array, step: number): void {
  let allBanned = true
  for (let j = 0; j < logits.length; j++) {
    const v = logits[j]
    if (Number.isNaN(v) || v === Infinity) throw new NonFiniteError(`generate: onLogits left ${v} at token ${j} of decode step ${step}; only -Infinity (a banned token) may replace a logit`)
    if (v !== -Infinity) allBanned = false
  }
  if (allBanned) throw new NonFiniteError(`generate: onLogits banned every token of decode step ${step} (all ${logits.length} logits are -Infinity)`)
}


/** every option generate takes; the record's type makes a new GenerateOptions field fail to compile until listed */
const GENERATE_OPTION_SET: Record<keyof GenerateOptions, true> = {
  maxNewTokens: true, temperature: true, topP: true, topK: true, seed: true, stop: true, signal: true, contextTokens: true,
  policy: true, onToken: true, onKept: true, onLogits: true, prefill: true, kvDtype: true, reuse: true,
}

/** prefillPrompt's options */
export interface PrefillPromptOptions {
  /** the KV cache's element type (default: the model's), as generate's kvDtype; the generations that start from it use the same */
  kvDtype?: KVDtype
  /** prompt tokens prefilled (default: all but the last); generations from it pass the same contextTokens */
  contextTokens?: number
  /** aborts the prefill between chunks; the promise rejects with the signal's reason */
  signal?: AbortSignal
}

/** every option prefillPrompt takes (as GENERATE_OPTION_SET) */
const PREFILL_PROMPT_OPTION_SET: Record<keyof PrefillPromptOptions, true> = { kvDtype: true, contextTokens: true, signal: true }

const LOGITS_OPTION_SET: Record<keyof LogitsOptions, true> = { signal: true }

/** Throws ModelInputError unless `signal` is undefined or an AbortSignal. */
function checkSignal(signal: unknown, where: string): void {
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new ModelInputError(`${where}: signal must be an AbortSignal`)
}

/** Throws ModelInputError unless `chunk` (tokens per prefill chunk) is an integer in [1, 4096]; `where` names the call. */
export function checkChunk(chunk: number, where = 'LlamaModel'): void {
  if (!(Number.isInteger(chunk) && chunk >= 1 && chunk <= 4096)) throw new ModelInputError(`${where}: chunk must be an integer in [1, 4096], got ${shownValue(chunk)}`)
}

/** Throws ModelInputError unless `kvDtype` is a KV-cache element type this build stores ('float32', 'float16'). */
export function checkKvDtype(kvDtype: unknown, where: string): asserts kvDtype is KVDtype {
  if (!KV_DTYPES.includes(kvDtype as KVDtype)) throw new ModelInputError(`${where}: kvDtype must be one of ${KV_DTYPES.map((d) => `'${d}'`).join(', ')}, got ${JSON.stringify(kvDtype)}`)
}

/** generate's first checks of its options, before the context's (option names, maxNewTokens); maxNewTokens */
function generateMaxNew(options: GenerateOptions): number {
  const optionsProblem = optionNamesProblem(options, GENERATE_OPTION_SET)
  if (optionsProblem !== undefined) throw new ModelInputError(`generate: ${optionsProblem}`)
  const maxNew = options.maxNewTokens ?? 128
  if (!(Number.isInteger(maxNew) && maxNew >= 1)) throw new ModelInputError(`generate: maxNewTokens must be a positive integer, got ${shownValue(maxNew)}`)
  return maxNew
}

/** A loaded Llama-family model: weights in the arena, forward pass, generation with KV-cache policies. */
export class LlamaModel implements Model {
  readonly forward: LlamaForward
  /**
   * The forward pass on the GPU when the backend is 'webgpu' (generate and prefillPrompt run there;
   * logits() and the reuse paths' recompute stay on the wasm core), else null.
   */
  readonly gpu: GpuLlamaForward | null
  readonly ops: Ops
  private wasDisposed = false
  /** whether dispose() was called: every use after it throws ModelDisposedError */
  get disposed(): boolean {
    return this.wasDisposed
  }

  constructor(
    readonly backend: Backend,
    readonly config: ModelConfig,
    readonly tokenizer: Tokenizer,
    readonly weights: Weights,
    chunk = 128,
    /** the KV-cache element type of generations that do not choose one */
    readonly kvDtype: KVDtype = 'float32',
    /** the model made its backend (loadModel without backendInstance): dispose() stops its worker threads */
    private readonly ownsBackend = false,
  ) {
    checkChunk(chunk)
    checkKvDtype(kvDtype, 'loadModel')
    this.forward = new LlamaForward(backend, config, weights, chunk)
    this.gpu = backend.name === 'webgpu' ? new GpuLlamaForward(backend as WebGpuBackend, this.forward) : null
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
    if (this.wasDisposed) throw new ModelDisposedError('model used after dispose()')
  }

  /** token ids as given, checked against the vocabulary */
  checkIds(ids: ArrayLike<number>, what = 'ids'): void {
    if (ids.length === 0) throw new ModelInputError(`${what}: empty token list`)
    const V = this.config.vocab
    for (let i = 0; i < ids.length; i++) {
      const t = ids[i]
      if (!Number.isInteger(t) || t < 0 || t >= V) throw new ModelInputError(`${what}[${i}] = ${shownValue(t)} is not a token id in [0, ${V})`)
    }
  }

  newCache(keys: KeyStorage = 'post-rope', pageTokens = 64, kvDtype: KVDtype = this.kvDtype): PagedKVCache {
    this.alive()
    const { layers, kvHeads, headDim } = this.config
    return new PagedKVCache(this.backend, { layers, kvHeads, headDim, pageTokens, keys, kvDtype })
  }

  /**
   * runs tokens through the model in chunks, appending to `cache`; `first` is the index of ids[0]
   * among the tokens `capture` records (a prefill run chunk by chunk passes its offset)
   */
  prefill(ids: ArrayLike<number>, cache: PagedKVCache, firstPosition = 0, capture?: HookCapture, out?: Float32Array, first = 0): void {
    // Sequence.feed calls it on a cache made before a dispose(): without the check it ran the forward
    // pass over the freed weights (one thread) and returned their logits
    this.alive()
    // the causal paths built on it (Sequence, CacheBlend, KVShare, graphKV) would run a diffusion LM causally
    this.causalOnly('prefill')
    for (const { s, chunk, positions } of this.chunks(ids, firstPosition)) {
      this.forward.step(chunk, positions, cache, {
        capture, first: first + s, logits: out ? 'all' : 'none', out, outOffset: s * this.config.vocab,
      })
    }
  }

  /** ids in prefill chunks: each chunk's offset in ids, its tokens and their positions */
  private *chunks(ids: ArrayLike<number>, firstPosition: number): Generator<{ s: number; chunk: number[]; positions: Int32Array }> {
    const C = this.forward.chunk
    for (let s = 0; s < ids.length; s += C) {
      const T = Math.min(C, ids.length - s)
      yield { s, chunk: Array.prototype.slice.call(ids, s, s + T) as number[], positions: Int32Array.from({ length: T }, (_, t) => firstPosition + s + t) }
    }
  }

  /** one step on this model's runtime: the GPU's when there is one, else the wasm core's */
  private async step(ids: ArrayLike<number>, positions: Int32Array, cache: PagedKVCache, o: StepOptions, sel?: GpuSoftVoteSelection): Promise<void> {
    if (this.gpu) await this.gpu.step(ids, positions, cache, o, sel)
    else this.forward.step(ids, positions, cache, o)
  }

  /** prefill() on this model's runtime (the GPU's steps are awaited) */
  private async prefillAsync(ids: ArrayLike<number>, cache: PagedKVCache, firstPosition = 0, capture?: HookCapture, first = 0): Promise<void> {
    if (!this.gpu) return this.prefill(ids, cache, firstPosition, capture, undefined, first)
    for (const { s, chunk, positions } of this.chunks(ids, firstPosition)) await this.gpu.step(chunk, positions, cache, { capture, first: first + s })
  }

  /** before CPU code reads the cache: its newest rows in the heap (a no-op without a GPU) */
  private async cacheToCpu(cache: PagedKVCache): Promise<void> {
    if (this.gpu) await this.gpu.toCpu(cache)
  }

  /** Throws what prefill() refuses before any work: ModelDisposedError after dispose(), DecodingModeError on a diffusion LM. */
  checkPrefill(): void {
    this.alive()
    this.causalOnly('prefill')
  }

  /**
   * prefill() a chunk at a time, each on a later turn of the event loop after `check()` (which throws
   * once the caller's signal is aborted, or the model disposed): a long prefill stops between its
   * chunks. The rows of the chunks done stay in `cache` (the caller rolls back or disposes it). `out`:
   * every token's logits, [ids.length][vocab], as prefill's.
   */
  prefillChunked(ids: ArrayLike<number>, cache: PagedKVCache, firstPosition: number, check: () => void, out?: Float32Array): Promise<void> {
    this.checkPrefill()
    return this.prefillEachChunk(ids, cache, firstPosition, check, out)
  }

  private async prefillEachChunk(ids: ArrayLike<number>, cache: PagedKVCache, firstPosition: number, check: () => void, out?: Float32Array): Promise<void> {
    const C = this.forward.chunk
    const V = this.config.vocab
    for (let s = 0; s < ids.length; s += C) {
      await nextTurn()
      check()
      const e = Math.min(ids.length, s + C)
      this.prefill(Array.prototype.slice.call(ids, s, e) as number[], cache, firstPosition + s, undefined, out?.subarray(s * V, e * V))
    }
  }

  /**
   * Every position's logits [ids.length][vocab] (tests and perplexity). With `options` it returns a
   * promise and runs chunk by chunk, `signal` aborting between chunks (the promise rejects with its
   * reason); without, it runs at once. Throws ModelInputError (bad ids or options) or ContextLengthError
   * before any work.
   */
  logits(ids: number[]): Float32Array
  logits(ids: number[], options: LogitsOptions): Promise<Float32Array>
  logits(ids: number[], options?: LogitsOptions): Float32Array | Promise<Float32Array> {
    this.alive()
    this.checkIds(ids)
    if (ids.length > this.config.maxPositions)
      throw new ContextLengthError(`logits: ${ids.length} tokens do not fit the model's context (${contextLimitText(this.config)})`)
    if (options !== undefined) {
      const problem = optionNamesProblem(options, LOGITS_OPTION_SET)
      if (problem !== undefined) throw new ModelInputError(`logits: ${problem}`)
      checkSignal(options.signal, 'logits')
      return this.logitsChunked(ids, options.signal)
    }
    if (this.config.diffusion) return this.bidirectionalLogits(ids)
    const out = new Float32Array(ids.length * this.config.vocab)
    const cache = this.newCache()
    try {
      this.prefill(ids, cache, 0, undefined, out)
    } finally {
      cache.dispose()
    }
    if (firstNonFinite(out) !== null) this.nonFinite(ids, 'logits')
    return out
  }

  private async logitsChunked(ids: number[], signal: AbortSignal | undefined): Promise<Float32Array> {
    const check = () => throwIfAborted(signal, 'logits')
    if (this.config.diffusion) {
      // one bidirectional pass: the abort is seen before it
      await nextTurn()
      check()
      return this.bidirectionalLogits(ids)
    }
    const out = new Float32Array(ids.length * this.config.vocab)
    const cache = this.newCache()
    try {
      await this.prefillChunked(ids, cache, 0, check, out)
    } finally {
      cache.dispose()
    }
    if (firstNonFinite(out) !== null) this.nonFinite(ids, 'logits')
    return out
  }

  /** logits() of a masked diffusion LM: one bidirectional forward over all of ids, every row's logits */
  private bidirectionalLogits(ids: number[]): Float32Array {
    const N = ids.length
    const out = new Float32Array(N * this.config.vocab)
    const fwd = new BidirectionalForward(this.backend, this.config, this.weights, N, N, false)
    try {
      const rows = Int32Array.from({ length: N }, (_, i) => i)
      fwd.run(Int32Array.from(ids), { rows, tail: N, fullFrom: 0, track: null, gamma: 0, trackNum: 0, masked: new Uint8Array(N), logitRows: N, out })
    } finally {
      fwd.dispose()
    }
    if (firstNonFinite(out) !== null) throw new NonFiniteError('logits: the bidirectional forward pass produced non-finite values')
    return out
  }

  /** DecodingModeError for a causal call on a masked diffusion LM */
  private causalOnly(call: string): void {
    if (this.config.diffusion)
      throw new DecodingModeError(`${call}: ${this.config.architecture} is a masked diffusion LM, decoded by iterative unmasking: call model.diffusionGenerate(promptIds, { genLength, blockLength, steps }) instead`)
  }

  /**
   * Decodes a masked diffusion LM (Dream) by iterative unmasking: `genLength` mask tokens after the
   * prompt, in blocks of `blockLength`, `steps` denoising steps in all, each unmasking the most confident
   * greedy predictions (LLaDA's low_confidence remasking; LLaDA generate.py, Dream's
   * diffusion_generate). `cache: elasticCache({...})` reuses K/V across steps (Elastic-Cache, arXiv
   * 2510.14973). Checks everything before any work, throwing synchronously: DecodingModeError on a
   * causal model, ModelInputError for a bad prompt or option, ContextLengthError when prompt + genLength
   * exceed max_position_embeddings. The promise rejects with the signal's reason when aborted.
   */
  diffusionGenerate(prompt: string | number[], options: DiffusionGenerateOptions): Promise<DiffusionResult> {
    this.alive()
    if (!this.config.diffusion)
      throw new DecodingModeError(`diffusionGenerate: ${this.config.architecture} is a causal LM: call model.generate(prompt, { maxNewTokens }) instead`)
    // the bound refuses as the count would, prompt + genLength past the context; a bad genLength is left to checkDiffusionOptions, after encode
    const G = (options as DiffusionGenerateOptions | undefined)?.genLength
    const room = Number.isInteger(G) && (G as number) >= 1 ? (G as number) : null
    const ids = typeof prompt === 'string' ? this.encodePrompt(prompt, room, (tokens) => this.diffusionBeyond(options, tokens, room as number)) : prompt
    if (!Array.isArray(ids)) throw new ModelInputError(`diffusionGenerate: prompt must be a string or an array of token ids, got ${typeof prompt}`)
    this.checkIds(ids, 'diffusionGenerate: prompt')
    const o = checkDiffusionOptions(this.config, ids, options)
    const check = () => this.checkRun(o)
    const run = async () => {
      await nextTurn()
      return diffusionDecode({ backend: this.backend, config: this.config, weights: this.weights, tokenizer: this.tokenizer, check, yieldTurn: nextTurn }, ids, o)
    }
    return run()
  }

  /**
   * Generates up to `maxNewTokens` tokens after the prompt. Refused at once (ModelInputError, or
   * ContextLengthError when prompt + 1 new token exceed max_position_embeddings); generation stops at
   * the context limit with finishReason 'context'. Streamed tokens, in order, are `result.ids`, and
   * their texts joined are `result.text`.
   */
  generate(prompt: string | number[], options: GenerateOptions = {}): Generation {
    this.alive()
    this.causalOnly('generate')
    // the checks that come before the count's refusal come before the bound's too
    const ids = typeof prompt === 'string' ? this.encodePrompt(prompt, 1, (tokens) => (generateMaxNew(options), this.noRoom(tokens))) : prompt
    if (!Array.isArray(ids)) throw new ModelInputError(`generate: prompt must be a string or an array of token ids, got ${typeof prompt}`)
    this.checkIds(ids, 'generate: prompt')
    const maxNew = generateMaxNew(options)
    if (ids.length >= this.config.maxPositions) throw this.noRoom(`${ids.length}`)
    const sampling = checkSampling(options)
    const c = options.contextTokens
    if (c !== undefined && !(Number.isInteger(c) && c >= 1 && c <= ids.length - 1))
      throw new ModelInputError(`generate: contextTokens must be an integer in [1, ${ids.length - 1}] (the prompt has ${ids.length} tokens), got ${shownValue(c)}`)
    if (options.kvDtype !== undefined) checkKvDtype(options.kvDtype, 'generate')
    // prefillPrompt is async: its promise passed as it is would read as a foreign object
    if (typeof (options.prefill as unknown as PromiseLike<unknown> | undefined)?.then === 'function') throw new ModelInputError('generate: prefill is a promise: pass what `await model.prefillPrompt(ids, policies)` gives')
    if (options.prefill !== undefined && !(options.prefill instanceof SharedPrefill)) throw new ModelInputError('generate: prefill must be what model.prefillPrompt returned')
    if (options.prefill && options.kvDtype !== undefined && options.kvDtype !== options.prefill.kvDtype)
      throw new ModelInputError(`generate: kvDtype '${options.kvDtype}' differs from the shared prefill's '${options.prefill.kvDtype}'`)
    const stop = options.stop ?? []
    if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string' || s.length === 0)) throw new ModelInputError('generate: stop must be an array of non-empty strings')
    checkSignal(options.signal, 'generate')
    // a seed that is not an integer would be floored (NaN to 0) into another seed's draws, silently
    if (options.seed !== undefined && !Number.isInteger(options.seed)) throw new ModelInputError(`generate: seed must be an integer, got ${shownValue(options.seed)}`)
    // checked here, not at the first streamed token, after the prefill has run
    if (options.onToken !== undefined && typeof options.onToken !== 'function') throw new ModelInputError(`generate: onToken must be a function, got ${typeof options.onToken}`)
    if (options.onKept !== undefined && typeof options.onKept !== 'function') throw new ModelInputError(`generate: onKept must be a function, got ${typeof options.onKept}`)
    if (options.onLogits !== undefined && typeof options.onLogits !== 'function') throw new ModelInputError(`generate: onLogits must be a function, got ${typeof options.onLogits}`)
    // a bad policy setting fails here, at the call, before any work
    const resolved: GenerateOptions = { ...options, policy: resolvePolicy(options.policy, this.config) ?? undefined }
    const p = resolved.policy as Policy | undefined
    // the question prefilled after compression has no hidden states captured: refused here, not at the first decode step
    if (p && c !== undefined && c < ids.length - 1 && scoresTokensAtCreation(p))
      throw new ModelInputError(`generate: policy '${p.name}' scores every token from its hidden state when it is created, which a question prefilled after compression (contextTokens ${c} of ${ids.length - 1}) does not capture; compress the whole prompt instead (no contextTokens)`)
    options.prefill?.check(ids, p?.needs ?? {}, c ?? ids.length - 1, this.config)
    const reuse = options.reuse
    if (reuse === undefined) return new StreamingGeneration((emit, cancelled) => this.run(ids, maxNew, sampling, stop, resolved, emit, cancelled))
    if (typeof reuse?.open !== 'function') throw new ModelInputError('generate: reuse must be a PrefixCache, a tenant of one, or a Sequence')
    const extra = [resolved.policy && 'policy', c !== undefined && 'contextTokens', options.prefill && 'prefill', options.kvDtype !== undefined && options.kvDtype !== 'float32' && 'kvDtype'].filter(Boolean)
    if (extra.length) throw new ModelInputError(`generate: reuse works on the full cache; drop ${extra.join(', ')}`)
    const handle = reuse.open(ids, this)
    if (handle.ids.length >= this.config.maxPositions) {
      handle.close([], false)
      throw new ContextLengthError(`generate: ${handle.ids.length} tokens with the reused ones leave no room for a new token (${contextLimitText(this.config)})`)
    }
    return new StreamingGeneration((emit, cancelled) => this.run(handle.ids as number[], maxNew, sampling, stop, resolved, emit, cancelled, handle))
  }

  /**
   * diffusionGenerate's refusal by the bound: the options' own errors first, as checkDiffusionOptions
   * gives them after encode (checked on a one-token prompt that is not the mask), then the context's.
   */
  private diffusionBeyond(options: DiffusionGenerateOptions, tokens: string, G: number): ContextLengthError {
    const notMask = this.config.diffusion!.maskTokenId === 0 ? 1 : 0
    try {
      checkDiffusionOptions(this.config, [notMask], options)
    } catch (e) {
      if (!(e instanceof ContextLengthError)) throw e
    }
    return diffusionContextError(this.config, tokens, G)
  }

  /** generate's refusal of a prompt of `tokens` tokens (a count, or 'at least N' from the tokenizer's bound) that leaves no room for a new token */
  private noRoom(tokens: string): ContextLengthError {
    return new ContextLengthError(`generate: a prompt of ${tokens} tokens leaves no room for a new token (${contextLimitText(this.config)})`)
  }

  /**
   * A text prompt's tokens. `refusal('at least N')`, before tokenizing, where the tokenizer's lower bound
   * (Tokenizer.minTokens, token-bound.ts) already leaves less than `room` positions after it (null: no
   * check): a prompt of megabytes would otherwise hold the thread for seconds only to be refused by the
   * same check after encode, with the same error but for its count.
   */
  private encodePrompt(prompt: string, room: number | null, refusal: (tokens: string) => ContextLengthError): number[] {
    if (room !== null) {
      const least = this.tokenizer.minTokens?.(prompt, this.config.maxPositions) ?? 0
      if (least + room > this.config.maxPositions) throw refusal(`at least ${least}`)
    }
    return this.tokenizer.encode(prompt)
  }

  /**
   * prefills ids[from, to) at positions from + shift.., a chunk at a time, calling `check` between
   * chunks: an abort (or dispose) during a long prefill is seen there
   */
  private async prefillChunks(ids: number[], from: number, to: number, cache: PagedKVCache, shift: number, capture: HookCapture, check: () => void): Promise<void> {
    const C = this.forward.chunk
    for (let s = from; s < to; s += C) {
      await this.prefillAsync(ids.slice(s, Math.min(to, s + C)), cache, s + shift, capture, s)
      if (s + C < to) {
        await nextTurn()
        check()
      }
    }
  }

  /** throws if the request was aborted or the model disposed meanwhile (checked after every await and chunk) */
  private checkRun(o: { signal?: AbortSignal }): void {
    throwIfAborted(o.signal, 'generation')
    if (this.wasDisposed) throw new ModelDisposedError('the model was disposed during generation')
  }

  private async run(
    ids: number[], maxNew: number, sampling: ReturnType<typeof checkSampling>, stop: string[],
    o: GenerateOptions, emit: (t: { id: number; text: string }) => void, cancelled: () => boolean, reuse?: ReuseHandle,
  ): Promise<GenerateResult> {
    const out: number[] = []
    let ok = false
    try {
      await nextTurn()
      this.checkRun(o)
      const result = await this.decode(ids, maxNew, sampling, stop, o, emit, cancelled, out, reuse)
      ok = true
      return result
    } finally {
      reuse?.close(out, ok)
    }
  }

  private async decode(
    ids: number[], maxNew: number, sampling: ReturnType<typeof checkSampling>, stop: string[],
    o: GenerateOptions, emit: (t: { id: number; text: string }) => void, cancelled: () => boolean, out: number[], reuse?: ReuseHandle,
  ): Promise<GenerateResult> {
    const policy: Policy | undefined = resolvePolicy(o.policy, this.config) ?? undefined
    // calibration (RazorAttention) runs before this request's cache exists; policies cache it per model
    if (policy?.prepare) {
      await policy.prepare(this)
      this.checkRun(o)
    }
    const cache = reuse?.cache ?? this.newCache(policy?.needs.cacheKeys ?? 'post-rope', policy?.needs.pageTokens ?? 64, o.prefill?.kvDtype ?? o.kvDtype ?? this.kvDtype)
    const cached = reuse?.cachedTokens ?? 0
    const shift = reuse?.positionOffset ?? 0
    const n = ids.length
    // the part of the prompt compressed at prefill end: all but its last token (kvpress's protocol), or
    // the context alone, the question being prefilled on the compressed cache (query-agnostic)
    const c = o.contextTokens ?? n - 1
    // a reuse that refreshes rows during decoding reads the step's queries (reuse excludes a policy)
    const capture = new HookCapture(policy?.needs ?? (reuse?.afterStep ? { decodeQueries: true } : {}), this.config, this.backend.heap, c)
    const random = seededRandom(o.seed ?? 0)
    const logits = new Float32Array(this.config.vocab)
    const eos = new Set(this.config.eosTokenIds)
    const stream = new TextStream(stop)
    // tokens wait here while their text is held back (a split character, a possible stop string)
    const pending: number[] = []
    let unsent = ''
    const send = (upto: number) => {
      for (const id of pending.splice(0, upto)) {
        const tok = { id, text: unsent }
        unsent = ''
        emit(tok)
        o.onToken?.(tok)
      }
    }
    let finishReason: FinishReason = 'length'
    let session: PolicySession | undefined
    let onGpu: GpuSoftVoteSelection | null = null
    try {
      // the kvpress protocol: prefill the first c prompt tokens (all but the last, or the context
      // alone), compress, then decode from there
      const t0 = performance.now()
      if (o.prefill) {
        o.prefill.restore(cache, capture)
        this.gpu?.cpuWrote(cache)
      } else {
        await this.prefillChunks(ids, cached, c, cache, shift, capture, () => this.checkRun(o))
        capture.finishPrefill()
        if (reuse) {
          // the prefix cache keeps (and shares) these pages: their rows must be in the heap
          await this.cacheToCpu(cache)
          reuse.prefilled(c)
        }
      }
      const ctx: PolicyContext = { cache, ops: this.ops, model: this.config, hooks: capture.hooks, promptLength: c + 1, step: 0, promptAfter: n - 1 - c }
      ctx.runtime = policyRuntime(this, cache, ids.slice(0, c), () => ctx, () => this.checkRun(o))
      const t1 = performance.now()
      // this request's policy state; onPrefillEnd runs also for a one-token prompt (empty cache), so
      // decode-time state is always set up
      session = policy?.start()
      const applyDecision = (d: Decision | null | undefined) => {
        if (!d) return
        cache.apply(d)
        this.gpu?.cpuWrote(cache)
        session?.onApplied?.(d, ctx)
      }
      if (session?.onPrefillEnd || session?.onPrefillEndAsync) {
        await this.cacheToCpu(cache)
        applyDecision(session.onPrefillEndAsync ? await session.onPrefillEndAsync(ctx) : session.onPrefillEnd!(ctx))
        // a policy may also write the cache through its runtime (KVzip's reconstruction): push it all back
        this.gpu?.cpuWrote(cache)
      }
      const t2 = performance.now()
      // query-agnostic: the rest of the prompt (the question) meets the compressed cache
      if (c < n - 1) await this.prefillAsync(ids.slice(c, n - 1), cache, c)
      await this.gpu?.finish()
      const t3 = performance.now()
      const kvBytesAfterPrefill: CacheBytes = cache.bytes()
      const kept = o.onKept ? new KeptRecorder(cache, this.config.layers, this.config.kvHeads, o.onKept) : undefined
      kept?.report('prefill', 0)
      capture.startDecode()
      let token = ids[n - 1]
      let pos = n - 1 + shift
      let decodeMs = 0
      const selector = session?.selectTokens?.bind(session)
      const chosen = selector ? (layer: number, q: Float32Array) => selector(ctx, layer, q) : undefined
      // TokenSelect's selection runs inside the GPU's decode step when the policy can say it as a plan and
      // the cache lives there; the request then never calls selectTokens (the two keep separate state)
      const plan = this.gpu && chosen && !session?.onDecodeStep ? session?.selectionPlan?.(ctx) ?? null : null
      onGpu = plan ? this.gpu!.softVoteSelection(plan, cache, kept ? (l, s) => kept.attend(l, s) : undefined) : null
      const select = onGpu ? undefined : chosen && kept ? kept.select(chosen) : chosen
      for (let step = 0; ; step++) {
        if (step === maxNew) break
        // the sequence (prompt + new tokens) never outgrows the context the model was trained for
        if (pos + 1 >= this.config.maxPositions) {
          finishReason = 'context'
          break
        }
        this.checkRun(o)
        // every loop over the stream left early: nobody takes the next token
        if (cancelled()) {
          finishReason = 'cancelled'
          break
        }
        const s0 = performance.now()
        // a policy that looks at the cache every step keeps it on the CPU (the GPU runs the rest)
        const stepOptions = { capture, decode: true, first: pos, logits: 'last' as const, out: logits, select, cpuCache: !!session?.onDecodeStep || !!reuse?.afterStep }
        await this.step([token], Int32Array.of(pos), cache, stepOptions, onGpu ?? undefined)
        // the reuse rewrote stale rows the step attended to: the step runs again on them (bounded by the reuse)
        while (reuse?.afterStep?.(capture.hooks.map((h) => h.decodeQuery!), [...ids, ...out])) {
          cache.rollback(pos)
          this.gpu?.cpuWrote(cache)
          await this.step([token], Int32Array.of(pos), cache, stepOptions, onGpu ?? undefined)
        }
        if (firstNonFinite(logits) !== null) this.nonFinite([...ids, ...out], `generate: decode step ${step} (position ${pos})`)
        if (o.onLogits) {
          o.onLogits(logits, step)
          checkProcessedLogits(logits, step)
        }
        const next = sample(logits, sampling, random)
        ctx.step = step + 1
        applyDecision(session?.onDecodeStep?.(ctx))
        decodeMs += performance.now() - s0
        kept?.report('decode', ctx.step)
        if (eos.has(next)) {
          finishReason = 'eos'
          break
        }
        out.push(next)
        pending.push(next)
        const full = this.tokenizer.decode(out)
        unsent += stream.update(full)
        if (stream.stoppedText !== null) {
          finishReason = 'stop'
          break
        }
        // a token is sent once none of the text so far is held; while some is, the newest token waits
        send(stream.holding(full) ? pending.length - 1 : pending.length)
        token = next
        pos++
        await nextTurn()
      }
      if (reuse) await this.cacheToCpu(cache)
      const text = stream.stoppedText ?? this.tokenizer.decode(out)
      unsent += stream.flush(text)
      send(pending.length)
      const steps = Math.max(1, ctx.step)
      return {
        text,
        ids: out,
        finishReason,
        stats: {
          promptTokens: n,
          newTokens: out.length,
          prefillMs: t3 - t0 + (o.prefill?.ms ?? 0),
          compressMs: t2 - t1,
          decodeMsPerToken: decodeMs / steps,
          kvBytesAfterPrefill,
          kvBytes: cache.bytes(),
          kvBytesFull: cache.bytesPerToken * (n + ctx.step - 1),
          ...(session?.report ? { policy: session.report() } : {}),
          cachedTokens: cached,
        },
      }
    } finally {
      onGpu?.dispose()
      session?.dispose?.()
      capture.dispose()
      // a reused cache goes back to its owner (run's close), which keeps or frees it
      if (!reuse) cache.dispose()
    }
  }

  /**
   * Prefills a prompt once for several generations (`generate(ids, { policy, prefill })`): everything but
   * its last token, capturing what any of `policies` needs (they must store keys alike). Comparing
   * policies on one prompt this way costs one prefill instead of one per policy, with the same tokens.
   * `contextTokens` (as in `generate`) prefills only the context, for question-after generations with
   * the same `contextTokens`. Throws ModelInputError for a `contextTokens` outside [1, ids.length - 1]; a
   * one-token prompt without it prefills no token, as its generation does. `signal` aborts between
   * prefill chunks (the promise rejects with its reason), as generate's does; an option it does not
   * know is a ModelInputError.
   */
  async prefillPrompt(ids: number[], policies: readonly (Policy | PolicyConfig | string | null | undefined)[], options: PrefillPromptOptions = {}): Promise<SharedPrefill> {
    this.alive()
    this.causalOnly('prefillPrompt')
    this.checkIds(ids, 'prefillPrompt: prompt')
    if (!Array.isArray(policies)) throw new ModelInputError(`prefillPrompt: policies must be an array (of spec strings, settings or policies), got ${typeof policies}`)
    // a misspelt option was ignored, and `signal` (which it did not take) left a long prefill unstoppable
    const optionsProblem = optionNamesProblem(options, PREFILL_PROMPT_OPTION_SET)
    if (optionsProblem !== undefined) throw new ModelInputError(`prefillPrompt: ${optionsProblem}`)
    checkSignal(options.signal, 'prefillPrompt')
    const kvDtype = options.kvDtype ?? this.kvDtype
    checkKvDtype(kvDtype, 'prefillPrompt')
    const given = options.contextTokens
    if (given !== undefined && !(Number.isInteger(given) && given >= 1 && given <= ids.length - 1))
      throw new ModelInputError(`prefillPrompt: contextTokens must be an integer in [1, ${ids.length - 1}] (the prompt has ${ids.length} tokens), got ${shownValue(given)}`)
    // a one-token prompt prefills nothing (generate's protocol: all but the last token), as generate does
    const c = given ?? ids.length - 1
    const built = policies.map((p) => resolvePolicy(p, this.config))
    for (const p of built) if (p?.prepare) await p.prepare(this)
    this.checkRun(options)
    const needs = SharedPrefill.unionNeeds(built.map((p) => p?.needs ?? {}))
    const cache = this.newCache(needs.cacheKeys, 64, kvDtype)
    const capture = new HookCapture(needs, this.config, this.backend.heap, c)
    try {
      const t0 = performance.now()
      await this.prefillChunks(ids, 0, c, cache, 0, capture, () => this.checkRun(options))
      capture.finishPrefill()
      await this.cacheToCpu(cache)
      return SharedPrefill.capture(ids, needs, cache, capture, performance.now() - t0, c)
    } finally {
      capture.dispose()
      cache.dispose()
    }
  }

  /**
   * Throws NonFiniteError naming the first layer whose output holds a NaN or an infinity: the tokens
   * run again from scratch (only on this error path) with the hidden state entering each layer kept.
   */
  private nonFinite(ids: number[], what: string): never {
    const { layers, hidden } = this.config
    const cache = this.newCache()
    const capture = new HookCapture({ hiddenStates: true }, this.config, this.backend.heap, ids.length)
    // the hidden state entering each layer is captured: values that first go bad in the last layer's
    // output show only in the logits, after the final norm and the LM head
    let where = `layer ${layers - 1} or after it (the final norm, the LM head)`
    try {
      this.prefill(ids, cache, 0, capture)
      for (let l = 0; l < layers; l++) {
        const j = firstNonFinite(capture.hooks[l].hiddenStates!)
        if (j === null) continue
        where = l === 0 ? 'the token embeddings' : `layer ${l - 1}`
        where += ` (token ${Math.floor(j / hidden)}, channel ${j % hidden})`
        break
      }
    } finally {
      capture.dispose()
      cache.dispose()
    }
    throw new NonFiniteError(`${what}: the forward pass produced non-finite values, first in ${where}`)
  }

  dispose(): void {
    if (this.wasDisposed) return
    this.gpu?.dispose()
    this.forward.dispose()
    for (const p of this.weights.allocations) this.backend.heap.release(p)
    if (this.ownsBackend) this.backend.close?.()
    this.wasDisposed = true
  }
}
