import type { KVDtype } from '../cache/formats.js'
import type { KernelBuild } from '../backend/index.js'
import type { BackendName } from '../backend/backend.js'
import type { CacheBytes, KVCache } from '../cache/types.js'
import type { ModelShape, Policy } from '../policies/types.js'
import type { PolicyConfig } from '../policies/config.js'
import type { SharedPrefill } from './prefill.js'
import type { LlamaModel } from './model.js'
import type { PagedKVCache } from '../cache/paged-cache.js'
import type { WasmLoadOptions } from '../backend/wasm/load.js'
import type { SpawnWorker } from '../backend/threads/spawn.js'
import type { LoadProgress } from './source.js'

/** The parts of config.json the runtime uses, normalized across Llama, Mistral, Qwen2 and SmolLM. */
export interface ModelConfig extends ModelShape {
  architecture: string
  hidden: number
  intermediate: number
  vocab: number
  rmsNormEps: number
  ropeTheta: number
  /** llama3 RoPE scaling, when the config has it */
  ropeScaling: null | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number }
  /** the context limit in force: max_position_embeddings, or loadModel's `contextLimit` where given */
  maxPositions: number
  /** max_position_embeddings as the config gives it (what the model was trained for), where contextLimit lifted maxPositions */
  trainedPositions?: number
  tieWordEmbeddings: boolean
  /** Qwen2: biases on the Q, K and V projections */
  attentionBias: boolean
  bosTokenId: number | null
  eosTokenIds: number[]
  padTokenId: number | null
  /**
   * Present for a masked diffusion LM (Dream): bidirectional attention, decoded by iterative unmasking
   * (LlamaModel.diffusionGenerate). `maskTokenId` fills the positions still to decode; `logitShift` 1
   * means the logits at position i predict the token at i + 1 (Dream), 0 that they predict position i
   * (LLaDA).
   */
  diffusion?: { maskTokenId: number; logitShift: 0 | 1 }
}

export interface LoadOptions {
  backend?: BackendName
  /** tokens per prefill chunk (default 128) */
  chunk?: number
  /** called as bytes arrive: per file, bytes loaded of its total */
  onProgress?: (progress: LoadProgress) => void
  /** aborts the load: the promise rejects with the signal's reason and no weights stay allocated */
  signal?: AbortSignal
  /** where the wasm builds come from (browsers: a URL or the bytes; default: build/ next to the package) */
  wasm?: WasmLoadOptions
  /**
   * Lifts the context limit (prompt + new tokens) from the config's max_position_embeddings to this many
   * tokens: positions past what the model was trained for, for methods that keep attended positions
   * within it (`tokenselect:rope=selected`) or to see how a model fails there. Without it, a longer
   * sequence is refused (ContextLengthError) or ends with finishReason 'context'; it never runs on
   * silently. An integer >= 2; `config.maxPositions` then reads this value, `config.trainedPositions` the
   * config's.
   */
  contextLimit?: number
  /** the default KV-cache element type of this model's generations (see GenerateOptions.kvDtype) */
  kvDtype?: KVDtype
  /**
   * Threads the wasm kernels run on (default: the cores the runtime reports, navigator.hardwareConcurrency,
   * or os.availableParallelism through kvkit/node). Matrix products split by output rows and attention
   * by query rows, so results are identical to one thread. One thread where shared memory or workers
   * are unavailable (a page that is not cross-origin isolated; Node through the root entry, which
   * cannot start Node workers: use kvkit/node's loadModel). `model.backend.threads` says what runs.
   */
  threads?: number
  /** starts a kernel worker (default: the global Worker; kvkit/node's loadModel passes Node's worker threads) */
  spawnWorker?: SpawnWorker
}

export interface GenerateOptions {
  maxNewTokens?: number
  /** 0 (default) is greedy */
  temperature?: number
  topP?: number
  topK?: number
  /** the sampling draws' seed, an integer (default 0); another value is refused with ModelInputError */
  seed?: number
  /** stop strings: generation ends at the first occurrence of one anywhere in the text (it is not returned) */
  stop?: string[]
  signal?: AbortSignal
  /**
   * Prompt tokens compressed at prefill end (default: all but the last, kvpress's protocol). With fewer,
   * the policy compresses the context alone and the rest of the prompt (a question) is then prefilled on
   * the compressed cache, uncompressed: the query-agnostic loop, a document compressed once for many
   * questions. An integer in [1, prompt length - 1].
   */
  contextTokens?: number
  /**
   * the KV-cache policy: a typed setting (`snapkv({ budget: 0.25 })`), a spec string
   * (`'snapkv:budget=0.25'`) or a built Policy; none (or `full()`) keeps the full cache
   */
  policy?: Policy | PolicyConfig | string
  /** called with each new token as it is produced */
  onToken?: (token: GeneratedToken) => void
  /**
   * Called with the tokens the cache holds per (layer, KV head): once when decoding starts (after the
   * policy's prefill-end decision and any question prefill; `stage: 'prefill'`, step 0), then after each
   * decode step and its decision (`stage: 'decode'`, step 1, 2, ...), with the positions a selecting
   * policy (Quest, TokenSelect, ...) attended to at that step. What the playground's heat map draws.
   * Copies positions each call (layers x KV heads arrays): leave it unset when not inspecting.
   */
  onKept?: (kept: KeptTokens) => void
  /**
   * Called after each decode step (0-based `step`) with the step's logits over the vocabulary, before
   * sampling: Hugging Face's `output_logits`. The array is reused by the next step: copy what you keep.
   * What a backend comparison reads to show the margin of a near tie (bench/backend-parity.ts).
   * Changing it in place is a logits processor: sampling reads the changed values, and -Infinity bans
   * a token. NaN, +Infinity, or every token banned throws NonFiniteError naming the step and token.
   */
  onLogits?: (logits: Float32Array, step: number) => void
  /** start from this prompt's shared prefill (LlamaModel.prefillPrompt) instead of prefilling it again */
  prefill?: SharedPrefill
  /**
   * element type of the KV cache (default: the model's, LoadOptions.kvDtype, else 'float32'): 'float16' stores keys and values in half the
   * bytes (llama.cpp's `--cache-type-k f16 --cache-type-v f16`; a Hugging Face cache in torch.float16),
   * rounded to nearest, ties to even, saturating at +-65504, and attended in place by the F16 kernels
   */
  kvDtype?: KVDtype
  /**
   * Reuse KV across requests: a `PrefixCache` (blocks of earlier prompts, `prefixCache.tenant(salt)` for
   * a tenant's own), a `Sequence` (a conversation's earlier turns), or a context CacheBlend or Graph-KV
   * assembled. The request prefills only what it does not find (`stats.cachedTokens`). With the full
   * float32 cache only: no policy, contextTokens, prefill or kvDtype.
   */
  reuse?: KVReuse
}

/**
 * Where a request's KV cache comes from and goes back to (src/reuse: PrefixCache, Sequence). `open`
 * runs when `generate` is called, so its errors come before any work.
 */
export interface KVReuse {
  open(ids: readonly number[], model: LlamaModel): ReuseHandle
}

/** One request's cache from a KVReuse. */
export interface ReuseHandle {
  readonly cache: PagedKVCache
  /** the tokens the request runs: the prompt, or a sequence's history followed by it */
  readonly ids: readonly number[]
  /** the cache already holds the KV of ids[0, cachedTokens) */
  readonly cachedTokens: number
  /**
   * ids[i] for i >= cachedTokens runs at position i + positionOffset (default 0). Graph-KV's sources
   * share one position range, so what follows them sits earlier than its index: a negative offset.
   */
  readonly positionOffset?: number
  /** the cache now holds the KV of ids[0, tokens) (prefill done; called before decoding) */
  prefilled(tokens: number): void
  /** the request ended: the tokens it generated, and whether it finished (false: it failed or was aborted) */
  close(generated: readonly number[], ok: boolean): void
  /**
   * Decode-time refresh (KVShare's recompute when attention drifts): called after each decode step with
   * the step's post-RoPE decode queries per layer ([qHeads][headDim] each) and the token of every slot
   * (the prompt, then the generated tokens, the step's own last). It may rewrite cache rows before the
   * step's slot and return true: the step's slot is then rolled back and the step runs again on the
   * rewritten KV (and this is called again). It must return false after a bounded number of trues.
   */
  afterStep?(queries: readonly Float32Array[], slotIds: readonly number[]): boolean
}

/**
 * Which prompt and generated tokens one generation's KV cache holds, by position (the token's index in
 * prompt + generated tokens), after a policy's decision. See `GenerateOptions.onKept`.
 */
export interface KeptTokens {
  /** 'prefill': the cache decoding starts from; 'decode': after decode step `step` */
  stage: 'prefill' | 'decode'
  /** 0 at prefill, then the decode step (1-based) */
  step: number
  /** [layer][kvHead]: positions of the tokens the cache holds, ascending */
  kept: Int32Array[][]
  /**
   * [layer][kvHead]: positions the step's attention read, ascending, for a policy that selects tokens
   * per decode step; null for a head (or a layer) that attended to all it holds. Absent at prefill and
   * for policies that do not select.
   */
  attended?: (Int32Array | null)[][]
}

export interface GeneratedToken {
  id: number
  text: string
}

export interface GenerateStats {
  promptTokens: number
  newTokens: number
  /** prompt time: prefill, compression, and (contextTokens) the question's prefill on the compressed cache */
  prefillMs: number
  /** time of policy decisions at prefill end (with any extra forward pass they run, KVzip's), included in prefillMs */
  compressMs: number
  decodeMsPerToken: number
  /** cache bytes after compression (at prefill end) and at the end */
  kvBytesAfterPrefill: CacheBytes
  kvBytes: CacheBytes
  /** what a full cache would hold for the same tokens */
  kvBytesFull: number
  /** the policy's own counters, where it keeps some (a selection's `cacheHitRate`, tier transfers) */
  policy?: Record<string, number>
  /** prompt tokens whose KV came from `reuse` instead of the prefill (0 without it) */
  cachedTokens: number
}

/**
 * Why generation ended, in the names of OpenAI-style APIs, with two they fold together kept apart:
 * - 'stop': a stop string was generated (it and what follows are not in the text);
 * - 'eos': the model generated an end-of-sequence token (OpenAI reports this as 'stop' too);
 * - 'length': maxNewTokens were generated;
 * - 'context': the sequence reached max_position_embeddings (OpenAI reports this as 'length');
 * - 'cancelled': every loop iterating the generation left early (`break`) and none was still iterating:
 *   the tokens streamed so far are the result.
 * An aborted generation has no result: `result` rejects with the signal's reason (an AbortError).
 */
export type FinishReason = 'stop' | 'eos' | 'length' | 'context' | 'cancelled'

export interface GenerateResult {
  /** the generated text, up to (not including) the first stop string */
  text: string
  /** every generated token (the end-of-sequence token excluded), as streamed */
  ids: number[]
  finishReason: FinishReason
  stats: GenerateStats
}

/**
 * A streaming generation: iterate it for tokens, or await `result` for the whole. Each iteration, also
 * several at once, yields every token from the first. Leaving a loop early (`break`, `return`, a throw
 * in its body) stops the generation once no other loop is iterating it: the decode step running ends,
 * the request's cache and policy state are freed, and `result` resolves with the tokens streamed so far
 * and finishReason 'cancelled'. A generation nobody iterates runs to its end.
 */
export interface Generation extends AsyncIterable<GeneratedToken> {
  readonly result: Promise<GenerateResult>
}

export interface Tokenizer {
  encode(text: string): number[]
  decode(ids: number[]): string
  readonly vocabSize: number
  /**
   * A lower bound on `encode(text).length`, from the text's length and letters (no tokenizing; token-bound.ts),
   * so a prompt that cannot fit the context is refused before the costly encode. 0 where the tokenizer
   * has no proven bound; absent on a tokenizer that offers none. Past `enough` it may stop counting
   * (the value is then at least `enough`): callers that ask whether a text fits pass the limit.
   */
  minTokens?(text: string, enough?: number): number
}

/** logits' options: given, it returns a promise and runs chunk by chunk */
export interface LogitsOptions {
  /** aborts between prefill chunks; the promise rejects with the signal's reason */
  signal?: AbortSignal
}

export interface Model {
  readonly config: ModelConfig
  readonly tokenizer: Tokenizer
  /** the compute core the model runs on (which wasm build, or the reference kernels) */
  readonly kernels: KernelBuild
  /** full logits [ids.length][vocab] of a prompt (tests and perplexity) */
  logits(ids: number[]): Float32Array
  /** the same as a promise, run chunk by chunk: `signal` aborts between chunks (rejecting with its reason) */
  logits(ids: number[], options: LogitsOptions): Promise<Float32Array>
  /** prompt as text or token ids */
  generate(prompt: string | number[], options?: GenerateOptions): Generation
  /** a fresh, empty KV cache sized for this model */
  newCache(): KVCache
  /** frees the weights and every buffer of this model */
  dispose(): void
}
