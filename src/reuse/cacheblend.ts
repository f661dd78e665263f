import type { LlamaModel } from '../model/model.js'
import { loadChunk, MemoryChunkStore, placeChunk, type ChunkStore } from './chunk-kv.js'
import { AssembledContext } from './context-handle.js'
import { ReuseError } from './errors.js'
import { SelectiveReuse, type RecomputeOptions } from './selective-recompute.js'

export interface CacheBlendOptions extends RecomputeOptions {
  /** where chunks' KV are kept (default: in memory, for this CacheBlend's lifetime) */
  store?: ChunkStore
  /** per-tenant salt of the chunk keys */
  salt?: string
}

/** What a blend did: chunks found in the store, and the tokens recomputed after the check layer. */
export interface BlendReport {
  chunkHits: number
  chunks: number
  /** context slots recomputed in the layers after the check layer, ascending */
  recomputed: Int32Array
}

/**
 * CacheBlend (Yao et al., EuroSys 2025, sections 4-5; LMCache's blender): reuse the KV of chunks
 * computed independently (RAG passages) in any order. Each chunk's cached KV is placed at its new
 * positions (keys re-rotated), then the layers up to `checkLayer` are recomputed for every token; at the
 * check layer the tokens whose fresh keys deviate most from the reused ones (squared L2 over the KV
 * heads: LMCache's key deviation; the paper speaks of KV deviation) are chosen, `ratio` of them, and
 * only those are recomputed in the later layers, attending over the mix of fresh and reused KV. The
 * question (what follows the chunks) is prefilled by generate as usual. At ratio 1 every token is
 * recomputed in order, which is a full prefill bit for bit.
 *
 * Use: `const ctx = await blend.prepare(chunks)`, then `model.generate([...chunks.flat(), ...question],
 * { reuse: ctx })`.
 */
export class CacheBlend extends SelectiveReuse {
  readonly store: ChunkStore
  private readonly salt: string

  constructor(model: LlamaModel, options: CacheBlendOptions = {}) {
    super(model, 'CacheBlend', options)
    this.salt = options.salt ?? ''
    this.store = options.store ?? new MemoryChunkStore()
  }

  /** Loads (or computes and stores) each chunk, places them one after another, and recomputes the selected tokens. */
  async prepare(chunks: readonly (readonly number[])[]): Promise<AssembledContext & { report: BlendReport }> {
    if (!Array.isArray(chunks) || chunks.length === 0) throw new ReuseError('CacheBlend.prepare: chunks must be a non-empty array of token arrays')
    chunks.forEach((c, i) => {
      if (!Array.isArray(c) || c.length === 0) throw new ReuseError(`CacheBlend.prepare: chunks[${i}] must be a non-empty array of token ids`)
      this.model.checkIds(c, `chunks[${i}]`)
    })
    const ids = chunks.flat()
    if (ids.length >= this.model.config.maxPositions) throw new ReuseError(`CacheBlend.prepare: ${ids.length} context tokens leave no room for a question (max_position_embeddings ${this.model.config.maxPositions})`)
    const loaded = await Promise.all(chunks.map((c) => loadChunk(this.model, this.store, c, this.salt)))
    const cache = this.model.newCache('post-rope', 64, 'float32')
    try {
      let first = 0
      for (const { kv } of loaded) {
        placeChunk(this.model, cache, kv, first)
        first += kv.ids.length
      }
      const recomputed = this.recompute(ids, cache, 0, new Int32Array(0))
      const ctx = new AssembledContext(this.model, ids, cache) as AssembledContext & { report: BlendReport }
      ctx.report = { chunkHits: loaded.filter((x) => x.hit).length, chunks: chunks.length, recomputed }
      return ctx
    } catch (e) {
      cache.dispose()
      throw e
    }
  }
}
