import type { LlamaModel } from '../model/model.js'
import type { ChunkKV, ChunkStore } from '../reuse/chunk-kv.js'
import { chunkKey } from '../reuse/chunk-kv.js'
import { CacheBlend } from '../reuse/cacheblend.js'
import type { AssembledContext } from '../reuse/context-handle.js'
import { graphKV, type GraphInput, type GraphTarget } from '../reuse/graph-kv.js'
import { ApiError } from './errors.js'
import { PinnedStore } from './pinned-store.js'
import type { ChatRequest } from './schema.js'
import type { KVScheduler } from './scheduler.js'

/** CacheBlend's options as the server takes them (`--blend-ratio`); defaults are CacheBlend's (0.15, check layer 1) */
export interface BlendOptions {
  /** share of the chunks' tokens recomputed after the check layer, in [0, 1] */
  ratio?: number
  /** the layer where the tokens to recompute are chosen */
  checkLayer?: number
}

/**
 * A request's `documents` as token chunks. Each document is its text and a newline, tokenized alone
 * (so its tokens, and its chunk key, do not depend on what stands around it). Documents without
 * `sources` are `chunks`: CacheBlend's chunks, or Graph-KV's sources when any document has `sources`;
 * those with `sources` are Graph-KV's targets, their sources indexing `chunks`. The prompt is
 * `planIds(plan)` followed by the rendered conversation.
 */
export interface DocumentPlan {
  chunks: number[][]
  targets: GraphTarget[]
}

type Documents = NonNullable<ChatRequest['documents']>

/**
 * Checks `documents` (the request's field; its shape zod checked): a target's sources must be earlier
 * documents without sources of their own, each named once, and every source document comes before the
 * first target (Graph-KV lays the sources out first, then the targets, in request order). Throws
 * ApiError 400 naming the field, e.g. `documents[2].sources[1]`. Nothing is tokenized: the context's
 * refusal by the tokenizer's bound comes after these, as the count's does.
 */
export function checkDocuments(documents: Documents): void {
  const firstTarget = documents.findIndex((d) => d.sources !== undefined)
  documents.forEach((d, i) => {
    if (d.sources === undefined) {
      if (firstTarget >= 0 && i > firstTarget)
        throw new ApiError(400, `documents[${i}]: a document without sources must come before every document with sources (documents[${firstTarget}] has sources): Graph-KV lays the sources out first`, `documents[${i}]`)
      return
    }
    const seen = new Set<number>()
    d.sources.forEach((s, j) => {
      const param = `documents[${i}].sources[${j}]`
      if (s >= documents.length) throw new ApiError(400, `${param}: there is no document ${s} (the request has ${documents.length})`, param)
      if (s === i) throw new ApiError(400, `${param}: a document cannot be its own source`, param)
      if (documents[s].sources !== undefined) throw new ApiError(400, `${param}: document ${s} has sources of its own; a source must be a document without sources`, param)
      if (seen.has(s)) throw new ApiError(400, `${param}: document ${s} is listed twice`, param)
      seen.add(s)
    })
  })
}

/**
 * Tokenizes `documents` through `encode` (the server's: ServeEngine.encode), which checkDocuments has
 * passed (ServeEngine.chatJob checks them before the context's refusal), each with a newline after it,
 * in its place in the plan.
 */
export async function planDocuments(encode: (text: string) => Promise<number[]>, documents: Documents): Promise<DocumentPlan> {
  const plan: DocumentPlan = { chunks: [], targets: [] }
  const all = await Promise.all(documents.map((d) => encode(`${d.text}\n`)))
  for (const [i, d] of documents.entries()) {
    const ids = all[i]
    // sources come first, so a source's document index is its index among the chunks
    if (d.sources === undefined) plan.chunks.push(ids)
    else plan.targets.push({ ids, sources: d.sources.slice() })
  }
  return plan
}

/** the documents' tokens as they open the prompt: the chunks in order, then the targets */
export function planIds(plan: DocumentPlan): number[] {
  return [...plan.chunks.flat(), ...plan.targets.flatMap((t) => t.ids)]
}

/** what graphKV is given for a plan with targets: no prefix, the chunks as sources, the targets */
export function graphInput(plan: DocumentPlan): GraphInput {
  return { prefix: [], sources: plan.chunks, targets: plan.targets }
}

/** the store, counting the tokens of the chunks found in it (what `cached_tokens` reports) */
class CountingStore implements ChunkStore {
  hitTokens = 0

  constructor(private readonly inner: PinnedStore) {}

  get(key: string): ChunkKV | undefined {
    const kv = this.inner.get(key)
    if (kv) this.hitTokens += kv.ids.length
    return kv
  }

  set(key: string, kv: ChunkKV): void {
    this.inner.set(key, kv)
  }

  delete(key: string): boolean {
    return this.inner.delete(key)
  }
}

/**
 * The server's reuse of `documents`. A plan with targets is served by Graph-KV (graphKV: each target
 * attends only to its sources, the sources share one position range); it is computed afresh, so it
 * reports 0 cached tokens. Otherwise, with blending on, by CacheBlend: each document's KV, computed
 * alone, is kept in one store (keys salted per `cache_salt`), placed at its position in this prompt
 * and blended with `ratio` of its tokens recomputed; `cached` is the tokens of the documents found in
 * the store. Kept chunks are pins in the KV budget (PinnedStore), reclaimed oldest first for a waiting
 * request, and the oldest give way to a new chunk that does not fit.
 */
export class DocumentReuse {
  readonly store: PinnedStore

  constructor(
    private readonly model: LlamaModel,
    scheduler: KVScheduler,
    /** CacheBlend's options, or null where blending is off (documents then run on the prefix cache) */
    readonly blend: BlendOptions | null,
  ) {
    this.store = new PinnedStore(scheduler, true)
    // the options are checked at server start (CacheBlend's ReuseError names the bad one)
    if (blend) new CacheBlend(model, { ...blend, store: this.store })
  }

  /**
   * the documents' assembled context and the chunk tokens reused, or undefined where the request runs on
   * the prefix cache; `signal` (the request's) stops Graph-KV and CacheBlend between the chunks they compute
   */
  async context(plan: DocumentPlan, salt: string, signal?: AbortSignal): Promise<{ ctx: AssembledContext; cached: number } | undefined> {
    if (plan.targets.length) return { ctx: await graphKV(this.model, graphInput(plan), { signal }), cached: 0 }
    if (!this.blend) return undefined
    const store = new CountingStore(this.store)
    const ctx = await new CacheBlend(this.model, { ...this.blend, store, salt }).prepare(plan.chunks, { signal })
    return { ctx, cached: store.hitTokens }
  }

  /** the chunk tokens a request would find in the store now (for the kvshare queue order) */
  expected(plan: DocumentPlan, salt: string): number {
    if (plan.targets.length || !this.blend) return 0
    return plan.chunks.reduce((n, c) => n + (this.store.get(chunkKey(c, salt)) ? c.length : 0), 0)
  }
}
