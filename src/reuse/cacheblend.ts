import type { LlamaModel } from '../model/model.js'
import { loadChunks, MemoryChunkStore, placeChunk, placeRows, type ChunkStore } from './chunk-kv.js'
import { AssembledContext } from './context-handle.js'
import { abortCheck, checkChunkStore, checkOptionNames, checkSalt, ReuseError } from './errors.js'
import { contextLimitText, shownValue } from '../model/errors.js'
import { nextTurn } from '../model/next-turn.js'
import { SelectiveReuse, type RecomputeOptions } from './selective-recompute.js'

export interface CacheBlendOptions extends RecomputeOptions {
  /** where chunks' KV are kept (default: in memory, for this CacheBlend's lifetime) */
  store?: ChunkStore
  /** per-tenant salt of the chunk keys */
  salt?: string
  /**
   * how a chunk is encoded: 'none' (default) alone at positions 0..T-1, or 'bos' after the model's BOS
   * at 1..T, the BOS row then dropped (CacheBlend's example script encodes each passage after the
   * tokenizer's BOS and drops it): the chunk's first token then does not become an attention sink whose
   * KV no full prefill has. A chunk that starts with the BOS is encoded as it is.
   */
  chunkPrefix?: 'none' | 'bos'
}

const CACHEBLEND_OPTIONS: Record<Exclude<keyof CacheBlendOptions, keyof RecomputeOptions>, true> = { store: true, salt: true, chunkPrefix: true }

/** What a blend did: chunks found in the store, and the tokens recomputed after the check layer. */
export interface BlendReport {
  chunkHits: number
  chunks: number
  /** context slots recomputed in the layer after the check layer (every later layer's are among them), ascending */
  recomputed: Int32Array
  /** per layer, how many context slots it recomputed */
  perLayer: number[]
}

/**
 * CacheBlend (Yao et al., EuroSys 2025, sections 4-5; LMCache's blender): reuse the KV of chunks
 * computed independently (RAG passages) in any order. Each chunk's cached KV is placed at its new
 * positions (keys re-rotated), then the layers up to `checkLayer` are recomputed for every token; at the
 * check layer the tokens whose fresh keys deviate most from the reused ones (squared L2 over the KV
 * heads: LMCache's key deviation; the paper speaks of KV deviation) are chosen, `ratio` of them, and
 * only those are recomputed in the later layers, attending over the mix of fresh and reused KV.
 * Options from the paper that LMCache's blender leaves out: `deviation: 'kv'` (keys and values,
 * section 4.2) and `gradualFrom` (gradual filtering, section 4.3: more tokens kept at the check layer,
 * fewer at each later one, by that layer's deviation); `chunkPrefix: 'bos'` encodes each chunk after the
 * BOS, as CacheBlend's example script does. `selection: 'cross-chunk'` (kvkit's, after Cache-Craft's
 * inter-chunk attention, Agarwal et al., SIGMOD 2025) chooses instead the tokens whose queries at the
 * check layer attend most to earlier chunks (crossChunkScores): the tokens that link facts across
 * chunks, which deviation at an early check layer ranks low (BENCHMARKS.md, "CacheBlend: choosing by
 * cross-chunk attention"; check layer 2 is where it recovered variable tracking on the fixture).
 * The first chunk, encoded as it stands (not after a BOS it lacks), sits where it was computed with
 * nothing before it, so its KV is the full prefill's: it is left alone in every layer, as an exact
 * prefix is (the layers up to the check layer were a quarter of the blend's time on the fixture; 6% less
 * CPU time at 4096 tokens, BENCHMARKS.md), and `ratio` still counts its tokens among the context's.
 * The question (what follows the chunks) is prefilled by generate as usual. At ratio 1 every other token
 * is recomputed in order, which is a full prefill bit for bit.
 *
 * Use: `const ctx = await blend.prepare(chunks)`, then `model.generate([...chunks.flat(), ...question],
 * { reuse: ctx })`.
 */
export class CacheBlend extends SelectiveReuse {
  readonly store: ChunkStore
  readonly chunkPrefix: 'none' | 'bos'
  private readonly salt: string

  constructor(model: LlamaModel, options: CacheBlendOptions = {}) {
    super(model, 'CacheBlend', options, CACHEBLEND_OPTIONS, true)
    const prefix = options.chunkPrefix ?? 'none'
    if (prefix !== 'none' && prefix !== 'bos') throw new ReuseError(`CacheBlend: chunkPrefix must be 'none' or 'bos', got ${JSON.stringify(prefix)}`)
    if (prefix === 'bos' && model.config.bosTokenId === undefined) throw new ReuseError("CacheBlend: chunkPrefix 'bos' needs a model with a bos_token_id")
    this.chunkPrefix = prefix
    this.salt = checkSalt('CacheBlend', options.salt)
    checkChunkStore('CacheBlend', options.store)
    this.store = options.store ?? new MemoryChunkStore()
  }

  /**
   * Loads (or computes and stores) each chunk, places them one after another, and recomputes the
   * selected tokens. `always`: context slots (indices into chunks.flat()) recomputed in every layer on
   * top of the ratio's choice, for tokens the caller knows need their cross-chunk context (the
   * benchmark's oracle recomputes a task's needles with it); a ReuseError names a slot outside the context.
   * `signal` aborts between the chunks computed and before the recompute (rejecting with its reason).
   */
  async prepare(chunks: readonly (readonly number[])[], options: { always?: readonly number[]; signal?: AbortSignal } = {}): Promise<AssembledContext & { report: BlendReport }> {
    if (!Array.isArray(chunks) || chunks.length === 0) throw new ReuseError('CacheBlend.prepare: chunks must be a non-empty array of token arrays')
    chunks.forEach((c, i) => {
      if (!Array.isArray(c) || c.length === 0) throw new ReuseError(`CacheBlend.prepare: chunks[${i}] must be a non-empty array of token ids`)
      this.model.checkIds(c, `chunks[${i}]`)
    })
    // a misspelt option was ignored; `always` given as one slot (3) was a TypeError ("find is not a function")
    checkOptionNames('CacheBlend.prepare', options, { always: true, signal: true })
    const check = abortCheck('CacheBlend.prepare', options.signal)
    if (options.always !== undefined && !Array.isArray(options.always)) throw new ReuseError(`CacheBlend.prepare: always must be an array of slots, got ${typeof options.always}`)
    const ids = chunks.flat()
    const bad = (options.always ?? []).find((t) => !(Number.isInteger(t) && t >= 0 && t < ids.length))
    if (bad !== undefined) throw new ReuseError(`CacheBlend.prepare: always must hold integer slots in [0, ${ids.length}), got ${shownValue(bad)}`)
    const always = Int32Array.from(new Set(options.always ?? [])).sort()
    if (ids.length >= this.model.config.maxPositions) throw new ReuseError(`CacheBlend.prepare: ${ids.length} context tokens leave no room for a question (${contextLimitText(this.model.config)})`)
    const bos = this.model.config.bosTokenId
    const prefixed = (c: readonly number[]) => this.chunkPrefix === 'bos' && c[0] !== bos
    check()
    const loaded = await loadChunks(this.model, this.store, chunks.map((c) => (prefixed(c) ? [bos!, ...c] : c)), this.salt, check)
    // the recompute below runs on: an abort while the last chunk was stored is seen here
    await nextTurn()
    check()
    const cache = this.model.newCache('post-rope', 64, 'float32')
    try {
      // each chunk's first slot (the 'cross-chunk' selection's chunks)
      const starts = new Int32Array(chunks.length)
      let first = 0
      loaded.forEach(({ kv }, i) => {
        starts[i] = first
        // a prefixed chunk's rows 1..T, re-rotated from there to their slots
        if (prefixed(chunks[i])) placeRows(this.model, cache, kv, Int32Array.from(chunks[i], (_, j) => j + 1), first)
        else placeChunk(this.model, cache, kv, first)
        first += chunks[i].length
      })
      // the first chunk encoded as it stands (no BOS put before it) sits where it was computed, with
      // nothing before it: its KV is the full prefill's, so it is no candidate and is not recomputed
      // (as KVShare's exact prefix); a slot the caller lists in `always` is recomputed all the same
      const exact = chunks.length > 0 && !prefixed(chunks[0]) ? Math.min(chunks[0].length, always[0] ?? Infinity) : 0
      const perLayer: number[] = []
      const recomputed = this.recompute(ids, cache, exact, always, perLayer, starts, ids.length - always.length)
      const ctx = new AssembledContext(this.model, ids, cache) as AssembledContext & { report: BlendReport }
      ctx.report = { chunkHits: loaded.filter((x) => x.hit).length, chunks: chunks.length, recomputed, perLayer }
      return ctx
    } catch (e) {
      cache.dispose()
      throw e
    }
  }
}
