import type { LlamaModel } from '../model/model.js'
import { checkStoredChunk, chunkKey, MemoryChunkStore, placeRows, readLayers, type ChunkKV, type ChunkStore } from './chunk-kv.js'
import { AssembledContext } from './context-handle.js'
import { nextTurn } from '../model/next-turn.js'
import { shownValue } from '../model/errors.js'
import { abortCheck, checkChunkStore, checkOptionNames, checkSalt, ReuseError } from './errors.js'
import { SelectiveReuse, type RecomputeOptions } from './selective-recompute.js'
import { alignTokens, type TokenAlignment } from './token-align.js'
import { checkDecodeRefresh, DecodeRefresh, type DecodeRefreshOptions, type DecodeRefreshReport } from './decode-refresh.js'

export interface KVShareOptions extends RecomputeOptions {
  /** where cached requests' KV are kept (default: in memory, for this KVShare's lifetime) */
  store?: ChunkStore
  /** per-tenant salt of the store keys */
  salt?: string
  /** least share of a context's tokens that must align to a cached request for its KV to be reused (default 0.5) */
  minReuse?: number
  /** cached requests kept; beyond it the least recently used is dropped, from the store too (default 64) */
  maxRequests?: number
  /**
   * the decode-time recompute when attention drifts (decode-refresh.ts; the paper's DHD, decode phase),
   * on by default with its defaults (threshold 0.5, 16 tokens, 4 refreshes); false turns it off
   */
  decodeRefresh?: DecodeRefreshOptions | false
}

/** What a prepare did. */
const KVSHARE_OPTIONS: Record<Exclude<keyof KVShareOptions, keyof RecomputeOptions>, true> = { store: true, salt: true, minReuse: true, maxRequests: true, decodeRefresh: true }

export interface KVShareReport {
  /** whether a cached request was reused (false: the context was prefilled in full and cached) */
  hit: boolean
  /** tokens of the cached request the context was aligned to (0 on a miss) */
  sourceTokens: number
  /** context tokens whose KV came from the cached request */
  reused: number
  /** of those, the leading ones reused as they were (the common prefix: same tokens, same positions) */
  exact: number
  /** context tokens with no cached twin (inserted or replaced), recomputed in every layer */
  edited: number
  /** context slots recomputed after the check layer (the edited ones and those chosen), ascending */
  recomputed: Int32Array
  /** what the decode-time recompute did, filled in while the generation runs; null when off or on a miss */
  decode: DecodeRefreshReport | null
}

/** a cached request found for a context: its KV and the alignment */
interface Found {
  kv: ChunkKV
  align: TokenAlignment
}

interface Entry {
  ids: readonly number[]
  counts: Map<number, number>
}

const countTokens = (ids: readonly number[]): Map<number, number> => {
  const m = new Map<number, number>()
  for (const t of ids) m.set(t, (m.get(t) ?? 0) + 1)
  return m
}

/**
 * KVShare (Yang et al. 2025, "KVShare: Semantic-Aware Key-Value Cache Sharing for Efficient Large
 * Language Model Inference", arXiv 2503.16525): reuse the KV of a cached request for an edited or
 * similar one. The candidate is the cached request sharing the most tokens (a multiset overlap: the
 * token-level stand-in for the paper's semantic search); the new context is aligned to it by a
 * minimal edit script (token-align.ts, the paper's "differential editing"); aligned tokens take their
 * cached KV, keys re-rotated to their new positions (rerotate.ts); the edited tokens are recomputed in
 * every layer and, as in CacheBlend, the ratio of the other tokens after the first edit whose keys
 * deviate most at the check layer are recomputed in the later layers (selective-recompute.ts). The
 * common prefix is exact and recomputed nowhere: an unedited repeat costs no forward pass, and at
 * ratio 1 the context is a full prefill bit for bit.
 *
 * During decoding, stale reused tokens the new tokens attend to heavily are recomputed a bounded number
 * of times (`decodeRefresh`, decode-refresh.ts: the decode phase of the paper's DHD).
 *
 * Use: `const ctx = await share.prepare(context)`, then `model.generate([...context, ...question],
 * { reuse: ctx })`. A context that finds no cached request is prefilled in full and cached for the next.
 */
export class KVShare extends SelectiveReuse {
  readonly minReuse: number
  readonly maxRequests: number
  readonly store: ChunkStore
  /** the decode-time recompute's options, null when off */
  readonly decodeRefresh: Required<DecodeRefreshOptions> | null
  private readonly salt: string
  /** cached requests by store key, least recently used first */
  private readonly entries = new Map<string, Entry>()

  constructor(model: LlamaModel, options: KVShareOptions = {}) {
    super(model, 'KVShare', options, KVSHARE_OPTIONS)
    const minReuse = options.minReuse ?? 0.5
    const maxRequests = options.maxRequests ?? 64
    if (!(typeof minReuse === 'number' && minReuse >= 0 && minReuse <= 1)) throw new ReuseError(`KVShare: minReuse must be a number in [0, 1], got ${shownValue(minReuse)}`)
    if (!(Number.isInteger(maxRequests) && maxRequests >= 1)) throw new ReuseError(`KVShare: maxRequests must be an integer >= 1, got ${shownValue(maxRequests)}`)
    this.minReuse = minReuse
    this.maxRequests = maxRequests
    this.salt = checkSalt('KVShare', options.salt)
    checkChunkStore('KVShare', options.store)
    this.store = options.store ?? new MemoryChunkStore()
    this.decodeRefresh = options.decodeRefresh === false ? null : checkDecodeRefresh(options.decodeRefresh === undefined ? {} : options.decodeRefresh)
  }

  /** cached requests held */
  get requests(): number {
    return this.entries.size
  }

  /** Computes a context's KV alone (a full prefill at 0..T-1) and caches it for later requests. */
  async add(ids: readonly number[]): Promise<void> {
    this.check(ids, 'KVShare.add')
    const cache = this.model.newCache('post-rope', 64, 'float32')
    try {
      this.model.prefill(ids, cache, 0)
      await this.remember({ ids: ids.slice(), ...readLayers(cache) })
    } finally {
      cache.dispose()
    }
  }

  /**
   * Caches a context's KV computed elsewhere: `kv.k[l]`, `kv.v[l]` [T][kvHeads][headDim] per layer, the
   * rows of a full prefill of `kv.ids` at positions 0..T-1 (a served request's prompt, read from its cache).
   * @throws ReuseError when the rows do not match the ids and the model's shape
   */
  async keep(kv: ChunkKV): Promise<void> {
    this.check(kv.ids as number[], 'KVShare.keep')
    const { layers, kvHeads, headDim } = this.model.config
    const floats = kv.ids.length * kvHeads * headDim
    const bad = [...kv.k, ...kv.v].findIndex((a) => !(a instanceof Float32Array) || a.length !== floats)
    if (kv.k.length !== layers || kv.v.length !== layers || bad >= 0)
      throw new ReuseError(`KVShare.keep: want ${layers} layers of keys and values of ${floats} floats (${kv.ids.length} tokens), got ${kv.k.length} and ${kv.v.length} layers${bad >= 0 ? `, array ${bad} of another length` : ''}`)
    await this.remember({ ids: kv.ids.slice(), k: kv.k, v: kv.v })
  }

  /**
   * The context's KV from the most similar cached request, aligned, re-rotated and partly recomputed;
   * or, when none aligns on at least `minReuse` of the context, a full prefill that is then cached.
   * @throws ReuseError (or ModelInputError for ids outside the vocabulary) before any work. `signal`
   * aborts between the full prefill's chunks and before the assembly (rejecting with its reason).
   */
  async prepare(ids: readonly number[], options: { signal?: AbortSignal } = {}): Promise<AssembledContext & { report: KVShareReport }> {
    this.check(ids, 'KVShare.prepare')
    checkOptionNames('KVShare.prepare', options, { signal: true })
    const aborted = abortCheck('KVShare.prepare', options.signal)
    aborted()
    const found = await this.find(ids, Math.ceil(this.minReuse * ids.length))
    aborted()
    if (found) return this.assemble(ids, found)
    const N = ids.length
    const cache = this.model.newCache('post-rope', 64, 'float32')
    try {
      // a chunk at a time, a turn of the event loop between: a long context's prefill sees an abort
      const C = this.model.forward.chunk
      for (let s = 0; s < N; s += C) {
        this.model.prefill(ids.slice(s, s + C), cache, s)
        await nextTurn()
        aborted()
      }
      await this.remember({ ids: ids.slice(), ...readLayers(cache) })
      const report: KVShareReport = { hit: false, sourceTokens: 0, reused: 0, exact: 0, edited: N, recomputed: Int32Array.from({ length: N }, (_, i) => i), decode: null }
      return Object.assign(new AssembledContext(this.model, ids.slice(), cache), { report })
    } catch (e) {
      cache.dispose()
      throw e
    }
  }

  /**
   * prepare() on a hit only: the context from the most similar cached request, or undefined when none
   * aligns on `minReuse` of it (then nothing is computed or cached: the caller prefills as it would).
   * @throws ReuseError (or ModelInputError) before any work
   */
  async match(ids: readonly number[]): Promise<(AssembledContext & { report: KVShareReport }) | undefined> {
    this.check(ids, 'KVShare.match')
    const found = await this.find(ids, Math.ceil(this.minReuse * ids.length))
    return found && this.assemble(ids, found)
  }

  /** the found request's KV placed at the context's slots, the edit and the chosen tokens recomputed */
  private assemble(ids: readonly number[], { kv, align }: Found): AssembledContext & { report: KVShareReport } {
    const N = ids.length
    const cache = this.model.newCache('post-rope', 64, 'float32')
    try {
      placeRows(this.model, cache, kv, align.source, 0)
      const always = Int32Array.from(align.source.keys()).filter((j) => align.source[j] < 0)
      const recomputed = this.recompute(ids, cache, align.firstEdit, always)
      let refresh: DecodeRefresh | undefined
      if (this.decodeRefresh) {
        // stale: reused after the first edit and not recomputed
        const fresh = new Set(recomputed)
        const stale = Array.from({ length: N - align.firstEdit }, (_, i) => align.firstEdit + i).filter((j) => align.source[j] >= 0 && !fresh.has(j))
        refresh = new DecodeRefresh(this.model, cache, stale, N, this.decodeRefresh)
      }
      const report: KVShareReport = { hit: true, sourceTokens: kv.ids.length, reused: align.matched, exact: align.firstEdit, edited: always.length, recomputed, decode: refresh?.report ?? null }
      const ctx = Object.assign(new AssembledContext(this.model, ids.slice(), cache), { report })
      ctx.refresh = refresh
      return ctx
    } catch (e) {
      cache.dispose()
      throw e
    }
  }

  private check(ids: readonly number[], where: string): void {
    if (!Array.isArray(ids) || ids.length === 0) throw new ReuseError(`${where}: ids must be a non-empty array of token ids, got ${Array.isArray(ids) ? 'an empty array' : typeof ids}`)
    this.model.checkIds(ids, `${where}: ids`)
    if (ids.length >= this.model.config.maxPositions) throw new ReuseError(`${where}: ${ids.length} context tokens leave no room for a question (max_position_embeddings ${this.model.config.maxPositions})`)
  }

  /** the cached request sharing the most tokens, aligned, if at least `need` tokens align; its KV loaded */
  private async find(ids: readonly number[], need: number): Promise<Found | undefined> {
    const [best, bestShared] = this.mostShared(ids)
    // aligned tokens are shared tokens: too few shared, no alignment can reach `need`
    if (!best || bestShared < need || bestShared === 0) return undefined
    const [key, entry] = best
    // matched >= need means insertions + deletions <= N + M - 2 need
    const align = alignTokens(entry.ids, ids, ids.length + entry.ids.length - 2 * need)
    if (!align || align.matched < need || align.matched === 0) return undefined
    const kv = await this.store.get(key)
    if (!kv) {
      // the store dropped it (a tier evicts on its own): forget it
      this.entries.delete(key)
      return undefined
    }
    checkStoredChunk('KVShare: store', key, kv, entry.ids, this.model)
    this.entries.delete(key)
    this.entries.set(key, entry)
    return { kv, align }
  }

  /**
   * Tokens the context shares with the most similar cached request (a multiset overlap, no alignment
   * run): at least what a match would reuse, 0 with nothing cached. What a scheduler expects a request to hit.
   */
  overlap(ids: readonly number[]): number {
    return Math.max(0, this.mostShared(ids)[1])
  }

  /** the cached request sharing the most tokens with ids (ties to the most recently used), and how many */
  private mostShared(ids: readonly number[]): [[string, Entry] | undefined, number] {
    const counts = countTokens(ids)
    let best: [string, Entry] | undefined
    let bestShared = -1
    for (const [key, e] of this.entries) {
      let shared = 0
      for (const [t, n] of counts) shared += Math.min(n, e.counts.get(t) ?? 0)
      // ties to the most recently used, the later in the map
      if (shared >= bestShared) [best, bestShared] = [[key, e], shared]
    }
    return [best, bestShared]
  }

  /** caches a request's KV, dropping the least recently used beyond maxRequests */
  private async remember(kv: ChunkKV): Promise<void> {
    const key = chunkKey(kv.ids, `kvshare\0${this.salt}`)
    await this.store.set(key, kv)
    this.entries.delete(key)
    this.entries.set(key, { ids: kv.ids, counts: countTokens(kv.ids) })
    while (this.entries.size > this.maxRequests) {
      const [old] = this.entries.keys()
      this.entries.delete(old)
      await this.store.delete?.(old)
    }
  }
}
