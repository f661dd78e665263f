import type { PagedKVCache } from '../cache/paged-cache.js'
import type { LlamaModel } from '../model/model.js'
import type { KVReuse, ReuseHandle } from '../model/types.js'
import { ReuseError } from './errors.js'

/**
 * A context assembled from reused KV (CacheBlend, Graph-KV), handed to one generation: the prompt must
 * start with the context's tokens; the cache holds them and is the request's, freed when it ends.
 */
export class AssembledContext implements KVReuse {
  private used = false
  private disposed = false
  /** rewrites stale rows during decoding (KVShare's decode-time recompute), if set */
  refresh?: Pick<ReuseHandle, 'afterStep'>

  constructor(
    readonly model: LlamaModel,
    /** the context's tokens, in cache slot order */
    readonly ids: readonly number[],
    readonly cache: PagedKVCache,
    /** position of the first token after the context, minus its index (Graph-KV's shared position range) */
    readonly positionOffset = 0,
  ) {}

  open(ids: readonly number[], model: LlamaModel): ReuseHandle {
    if (model !== this.model) throw new ReuseError('the context was assembled for another model')
    // said apart from a used one: "used by a generation already" sent the caller looking for a generation
    if (this.disposed) throw new ReuseError('the assembled context was disposed: assemble it again (prepare, graphKV)')
    if (this.used) throw new ReuseError('the assembled context was used by a generation already: it serves one (fork its cache for more)')
    if (ids.length <= this.ids.length || this.ids.some((t, i) => t !== ids[i])) {
      throw new ReuseError(`the prompt must start with the ${this.ids.length} context tokens and add at least one (the question)`)
    }
    this.used = true
    const before = this.rowCounts()
    return {
      cache: this.cache,
      ids: ids.slice(),
      cachedTokens: this.ids.length,
      positionOffset: this.positionOffset,
      prefilled: () => {},
      // a request that failed before it appended a row (refused for its length, aborted before it
      // started) leaves the context as assembled: it stays the caller's for another request
      close: (_generated, ok) => {
        if (!ok && this.rowCounts() === before) this.used = false
        else this.cache.dispose()
      },
      ...(this.refresh?.afterStep ? { afterStep: this.refresh.afterStep.bind(this.refresh) } : {}),
    }
  }

  /** the cache's rows per (layer, KV head), joined: a request that appended nothing leaves it unchanged */
  private rowCounts(): string {
    const { layers, kvHeads } = this.cache.options
    return Array.from({ length: layers * kvHeads }, (_, i) => this.cache.length(Math.floor(i / kvHeads), i % kvHeads)).join(',')
  }

  /** frees the cache of a context no generation used */
  dispose(): void {
    if (this.used) return
    this.used = true
    this.disposed = true
    this.cache.dispose()
  }
}
