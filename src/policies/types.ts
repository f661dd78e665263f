import type { Decision, KVCache, TokenSelection } from '../cache/types.js'
import type { Ops } from '../backend/ops.js'

/** Model facts a policy may need to size its work. */
export interface ModelShape {
  layers: number
  qHeads: number
  kvHeads: number
  headDim: number
  /** query heads per KV head (qHeads / kvHeads); query head h reads KV head floor(h / group) */
  group: number
  /** width of the residual stream (hidden_size), where known (a ModelConfig has it): trained parts that read hidden states check it */
  hidden?: number
}

/** What a policy asks the runtime to capture during prefill and decode (nothing is computed unasked). */
export interface PolicyNeeds {
  /** last w post-RoPE queries of the prompt, per layer */
  observationWindow?: number
  /** every query's attention mass per token, accumulated over the prompt (H2O's heavy-hitter score) */
  prefillAttentionMass?: boolean
  /** the current decode query (post-RoPE) at each step */
  decodeQueries?: boolean
  /** the hidden state entering each layer, per token, at creation (TRIM-KV's gates) */
  hiddenStates?: boolean
  /** keys before RoPE (ShadowKV, Knorm variants) */
  preRopeKeys?: boolean
  /** the L2 norm of each prompt token's attention input (after the layer's input RMSNorm), per layer (KVzip+) */
  attentionInputNorms?: boolean
  /** how the cache stores keys: 'pre-rope' rotates them at attention time from cache positions (StreamingLLM) */
  cacheKeys?: 'pre-rope' | 'post-rope'
  /** tokens per cache page (default 64): a packing policy whose key groups are longer asks for pages that hold one (VidKV's groupSize=128) */
  pageTokens?: number
}

/** Hook data for one layer, computed only where the policy's needs ask for it. */
export interface LayerHooks {
  layer: number
  /** [qHeads][w][headDim] post-RoPE queries of the last w prompt tokens */
  observationQueries?: Float32Array
  /** the positions of those w queries */
  observationPositions?: Int32Array
  /**
   * [kvHeads][stride] summed attention probability per cached token over all prompt queries (per KV head:
   * sum over its group); stride = length / kvHeads, the prompt's token count as captured, the longest head after a
   * composed decision left the heads of a layer different counts. Read a head's row with `headMass` (head-mass.ts).
   */
  attentionMass?: Float32Array
  /** [qHeads][headDim] the decode query of this step */
  decodeQuery?: Float32Array
  /** [n][hidden] hidden states at token creation, for the cache's tokens in slot order */
  hiddenStates?: Float32Array
  /** [n][kvHeads][headDim] keys before RoPE, in slot order */
  preRopeKeys?: Float32Array
  /** [n] L2 norm of each prompt token's attention input (after the input RMSNorm) */
  attentionInputNorms?: Float32Array
}

/** Hook data of tokens run through the model by `PolicyRuntime.extend`, one layer. */
export interface ExtensionHooks {
  layer: number
  /** [qHeads][T][headDim] post-RoPE queries of the T extension tokens */
  queries: Float32Array
  /** [T] their positions */
  positions: Int32Array
  /** [T] L2 norm of their attention inputs (after the input RMSNorm) */
  inputNorms: Float32Array
}

/**
 * What the runtime offers a policy at prefill end beyond hook data: computations that need the model's
 * weights or its forward pass, which policies never see themselves.
 */
export interface PolicyRuntime {
  /** the token ids whose keys and values the cache holds at prefill end, in order */
  readonly contextIds: readonly number[]
  /**
   * For each query head g of KV head \`kvHead\`'s group and each value row i: ||W_o,g^T v_i||_p, the size
   * of what value i writes into the residual stream through head g's slice of the output projection
   * (CriticalKV, KVzip+). values: [n][headDim]; returns [group][n].
   */
  valueOutputNorms(layer: number, kvHead: number, values: Float32Array, p: 1 | 2): Float32Array
  /**
   * Runs \`ids\` through the model on top of the cache, at the positions after the prompt's prefilled
   * tokens, and calls \`visit\` with their hook data while their keys and values are the last slots of
   * every head; then removes them, so the cache is as before (KVzip's context reconstruction), also where
   * \`visit\` throws. Synchronous: the whole pass runs inside the call (extendAsync yields between its
   * chunks). The extra forward time counts in the policy's compression time.
   */
  extend(ids: number[], visit: (hooks: ExtensionHooks[], ctx: PolicyContext) => void): void
  /**
   * extend, a prefill chunk at a time with \`pause()\` awaited between chunks (so timers and I/O run and
   * an abort is seen, rejecting with what pause throws), \`visit\` awaited; the cache is as before once
   * it settles, whether it resolves or rejects (KVzip's reconstruction, from onPrefillEndAsync).
   */
  extendAsync(ids: number[], visit: (hooks: ExtensionHooks[], ctx: PolicyContext) => void | Promise<void>): Promise<void>
  /**
   * Resolves on a later turn of the event loop (timers and I/O run meanwhile), then throws what the
   * request's abort rejects with (its signal's reason, an AbortError) where it was aborted, or
   * ModelDisposedError: a long computation at prefill end awaits it between its pieces, as the prefill
   * does between its chunks (KVzip's reconstruction, between its passes and layers).
   */
  pause(): Promise<void>
  /**
   * The model's RoPE tables: cos and sin [positions.length][headDim / 2] of each position's angles,
   * written at the byte pointers cos and sin in the arena, exactly as the forward pass makes them, for
   * the rope kernel (ShadowKV re-rotates the keys it rebuilt from pre-RoPE factors; a negative position
   * gives the inverse rotation).
   */
  ropeTables(positions: ArrayLike<number>, cos: number, sin: number): void
}

export interface PolicyContext {
  cache: KVCache
  ops: Ops
  model: ModelShape
  /** per layer */
  hooks: LayerHooks[]
  /** prompt length in tokens */
  promptLength: number
  /** decode steps taken so far (0 at prefill end) */
  step: number
  /**
   * Prompt tokens that are prefilled on the compressed cache after this prefill-end compression
   * (`GenerateOptions.contextTokens`: a context compressed alone, its question after it, kvpress's
   * query-agnostic loop). 0 or absent: the whole prompt but its last token is in the cache, so its last
   * queries are the question's. A hint a policy may use to tell the loops apart (UnionKV's `afterAgnostic`);
   * the peers' presses ignore it, as kvpress's do.
   */
  promptAfter?: number
  /** the runtime's services (absent in a context built without a model) */
  runtime?: PolicyRuntime
}

/** What `prepare` may use of a model: its shape, its tokenizer, and generation (to run a calibration). */
export interface PolicyModel {
  readonly config: ModelShape & { vocab: number; bosTokenId: number | null }
  readonly tokenizer: { encode(text: string): number[] }
  generate(prompt: number[], options: { maxNewTokens: number; policy: Policy }): { result: Promise<unknown> }
}

/**
 * A KV-cache policy: a pure configuration. It is built once (createPolicy) and may be reused by any
 * number of requests, one after another or concurrently: it holds no request state. Everything a
 * request accumulates (scores, observed queries, budgets fixed at prefill end, random streams) lives in
 * the `PolicySession` that `start()` makes for that request.
 */
export interface Policy {
  readonly name: string
  readonly needs: PolicyNeeds
  /** what the sessions do to the cache, declared so a composition can refuse parts that do not fit */
  readonly traits?: PolicyTraits
  /**
   * Once per model before first use, awaited by `generate` (RazorAttention's calibration run). It must
   * cache its result per model: generate calls it on every request.
   */
  prepare?(model: PolicyModel): Promise<void>
  /** a fresh session for one request; `generate` calls it once per request, before the prefill */
  start(): PolicySession
}

/**
 * One request's policy state. Callbacks run in this order: onPrefillEnd once (also for a one-token
 * prompt, whose cache is then empty), then per decode step selectTokens (per layer, before attention)
 * and onDecodeStep (after the step's token is in the cache). After the runtime (or a composition)
 * applies any decision it calls onApplied with it.
 */
export interface PolicySession {
  /** once, after the prompt (all but its last token) is in the cache */
  onPrefillEnd?(ctx: PolicyContext): Decision | null
  /**
   * onPrefillEnd for a session whose work there is long (KVzip's reconstruction): it awaits
   * `ctx.runtime.pause()` between its pieces, so timers run and an abort ends the request there, as
   * between the prefill's chunks. A session has this or onPrefillEnd, never both; the runtime and a
   * composition await it once a request (a synchronous session is called as before).
   */
  onPrefillEndAsync?(ctx: PolicyContext): Promise<Decision | null>
  /** after each decode step (periodic eviction, score accumulation) */
  onDecodeStep?(ctx: PolicyContext): Decision | null
  /**
   * Dynamic selection, on each decode step before a layer's attention: per KV head, the cache slots
   * (ascending) to attend to, or null for all; null for the whole layer attends densely. `query` is the
   * step's query [qHeads][headDim] as the cache stores keys: post-RoPE, or pre-RoPE for a cache that keeps
   * pre-RoPE keys (`needs.cacheKeys`). See selection.ts for the selecting policies' shared machinery.
   */
  selectTokens?(ctx: PolicyContext, layer: number, query: Float32Array): TokenSelection | null
  /**
   * The selection `selectTokens` would make, as a plan the runtime may carry out itself where the cache
   * is (the WebGPU decode step, without reading q back); asked once before the first decode step, null
   * when this request must select through `selectTokens`. A runtime that takes the plan does not call
   * `selectTokens` for this request.
   */
  selectionPlan?(ctx: PolicyContext): SoftVotePlan | null
  /**
   * A decision was applied to the cache: this session's own, or one of another part of a composition.
   * Its slot indices refer to the cache before it was applied; `ctx.cache` is the cache after. State
   * indexed by slot must be remapped here; state keyed by token position needs nothing.
   */
  onApplied?(decision: Decision, ctx: PolicyContext): void
  /** counters the session kept (a selection's cache hits, tier transfers), copied into the generation's stats */
  report?(): Record<string, number>
  /** the request ended (finished, failed or aborted): free what the session holds in the arena */
  dispose?(): void
}

/**
 * TokenSelect's per-step selection as data (Wu et al. 2025, sec. 3.2-3.4; src/policies/tokenselect.ts):
 * per layer whose KV heads hold more than `budget` slots (all alike), the slots [0, first), the top
 * budget - first - last of [first, n - last) by the soft vote (sum over query heads of softmax_i of
 * q_h . k_i / sqrt(d)), and [n - last, n); a layer at or below the budget attends densely. The top part
 * is reused while cos(q_t, q_cached) >= threshold over the layer's queries (the Selection Cache;
 * threshold null: recomputed every step).
 */
export interface SoftVotePlan {
  kind: 'soft-vote'
  /** slots attended per KV head and step (>= first + last) */
  budget: number
  first: number
  last: number
  /** 'layer': one vote of all query heads, shared by the layer's KV heads; 'head': per KV head over its group */
  vote: 'layer' | 'head'
  /** layers below this one attend densely (no selection, no Selection Cache lookup) */
  dense: number
  threshold: number | null
  /** the runtime reports each Selection Cache lookup it made, so the session's counters stay its own */
  lookup(hit: boolean): void
}

/** What a policy's sessions do, beyond evicting at prefill end. */
export interface PolicyTraits {
  /** makes decisions during decoding (periodic or per-step eviction) */
  decodes?: boolean
  /** prunes key channels (the cache then holds fewer floats per key row for the pruned tokens) */
  prunesChannels?: boolean
  /** packs rows into quantized pages (which cannot be evicted, merged or channel-pruned afterwards) */
  quantizes?: boolean
  /** packs whole key rows only (VidKV's spectral keys mix every channel): no part may prune key channels before it */
  packsWholeKeys?: boolean
  /** moves rows to the host tier for the rest of the request (ShadowKV's prompt pages): they cannot be packed there */
  offloads?: boolean
  /** its decisions leave every KV head of a layer holding the same slots (one keep list a layer, no added rows) */
  sharedSlots?: boolean
  /**
   * decides from the prompt as prefilled, so in a composition it cannot follow every part: 'whole' reads
   * slot i as prompt token i in every head (KVzip's repetition, Compactor's pre-RoPE keys and queries) and
   * follows no part that changes slots; 'shared-slots' reads per-token data (hidden states) or shares one
   * selection across a layer's heads (TOVA, WindowKV, MPCache) and follows only parts with `sharedSlots`
   */
  readsPrompt?: 'whole' | 'shared-slots'
}

/** Options every policy accepts through its spec string: a budget as a ratio of the prompt or a token count. */
export interface BudgetOptions {
  budget?: number
  tokens?: number
}
