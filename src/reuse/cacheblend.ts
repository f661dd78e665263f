import type { LlamaModel } from '../model/model.js'
import { seededRandom } from '../model/sampling.js'
import { loadChunk, MemoryChunkStore, placeChunk, type ChunkStore } from './chunk-kv.js'
import { AssembledContext } from './context-handle.js'
import { ReuseError } from './errors.js'

export interface CacheBlendOptions {
  /** share of the context's tokens recomputed after the check layer (default 0.15, the paper's) */
  ratio?: number
  /** layers below it are recomputed for every token; at it the tokens are chosen (default 1, LMCache's) */
  checkLayer?: number
  /** how tokens are chosen: by key deviation (the method) or at random (its ablation) */
  selection?: 'deviation' | 'random'
  /** seed of the random selection */
  seed?: number
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
export class CacheBlend {
  readonly ratio: number
  readonly checkLayer: number
  readonly selection: 'deviation' | 'random'
  readonly store: ChunkStore
  private readonly seed: number
  private readonly salt: string

  constructor(
    readonly model: LlamaModel,
    options: CacheBlendOptions = {},
  ) {
    const ratio = options.ratio ?? 0.15
    const check = options.checkLayer ?? 1
    const selection = options.selection ?? 'deviation'
    const L = model.config.layers
    if (!(typeof ratio === 'number' && ratio >= 0 && ratio <= 1)) throw new ReuseError(`CacheBlend: ratio must be a number in [0, 1], got ${ratio}`)
    if (!(Number.isInteger(check) && check >= 0 && check < L)) throw new ReuseError(`CacheBlend: checkLayer must be an integer in [0, ${L - 1}], got ${check}`)
    if (selection !== 'deviation' && selection !== 'random') throw new ReuseError(`CacheBlend: selection must be 'deviation' or 'random', got ${JSON.stringify(selection)}`)
    this.ratio = ratio
    this.checkLayer = check
    this.selection = selection
    this.seed = options.seed ?? 0
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
      const recomputed = this.recompute(ids, cache)
      const ctx = new AssembledContext(this.model, ids, cache) as AssembledContext & { report: BlendReport }
      ctx.report = { chunkHits: loaded.filter((x) => x.hit).length, chunks: chunks.length, recomputed }
      return ctx
    } catch (e) {
      cache.dispose()
      throw e
    }
  }

  /** the selective recompute over the placed context; returns the slots recomputed after the check layer */
  private recompute(ids: readonly number[], cache: ReturnType<LlamaModel['newCache']>): Int32Array {
    const fwd = this.model.forward
    const { layers, kvHeads, hidden: H } = this.model.config
    const N = ids.length
    let rows: Int32Array = Int32Array.from({ length: N }, (_, i) => i)
    let hidden = fwd.embedRows(ids)
    for (let l = 0; l < layers; l++) {
      const before = l === this.checkLayer ? Array.from({ length: kvHeads }, (_, h) => cache.readKeys(l, h)) : null
      // runs of consecutive slots, at most a chunk each, through the layer
      for (let i = 0; i < rows.length; ) {
        let j = i + 1
        while (j < rows.length && rows[j] === rows[j - 1] + 1 && j - i < fwd.chunk) j++
        fwd.recomputeLayer(l, hidden.subarray(i * H, j * H), rows.slice(i, j), rows[i], cache)
        i = j
      }
      if (!before) continue
      const keep = this.choose(N, before, (h) => cache.readKeys(l, h))
      const next = new Float32Array(keep.length * H)
      keep.forEach((r, i) => next.set(hidden.subarray(r * H, (r + 1) * H), i * H))
      rows = keep
      hidden = next
    }
    return rows
  }

  /** ratio x N tokens by key deviation at the check layer (ties to the earlier token), or at random */
  private choose(N: number, before: Float32Array[], after: (h: number) => Float32Array): Int32Array {
    const k = Math.round(this.ratio * N)
    const order = Array.from({ length: N }, (_, i) => i)
    if (this.selection === 'random') {
      const rand = seededRandom(this.seed)
      for (let i = N - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1))
        ;[order[i], order[j]] = [order[j], order[i]]
      }
    } else {
      const dev = new Float64Array(N)
      const d = this.model.config.headDim
      before.forEach((b, h) => {
        const a = after(h)
        for (let t = 0; t < N; t++) for (let c = 0; c < d; c++) dev[t] += (a[t * d + c] - b[t * d + c]) ** 2
      })
      order.sort((x, y) => dev[y] - dev[x] || x - y)
    }
    return Int32Array.from(order.slice(0, k)).sort()
  }
}
