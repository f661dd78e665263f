import { PagedKVCache } from '../cache/paged-cache.js'
import { PageStore, type Page } from '../cache/page-store.js'
import type { LlamaModel } from '../model/model.js'
import type { KVReuse, ReuseHandle } from '../model/types.js'
import { EVICTIONS, makeEviction, type BlockEviction, type EvictionName } from './block-eviction.js'
import { blockHashes } from './block-hash.js'
import { checkOptionNames, ReuseError } from './errors.js'
import { shownValue } from '../model/errors.js'

export interface PrefixCacheOptions {
  /** tokens per block, which is also the KV page size of the requests it serves (default 16, vLLM's) */
  blockTokens?: number
  /** blocks kept at most (default 1024); blocks held by running requests may exceed it until they end */
  maxBlocks?: number
  /** which unheld block goes first when over maxBlocks: 'lru' (default), 'lfu' or 's3fifo' */
  eviction?: EvictionName
}

const PREFIX_CACHE_OPTIONS: Record<keyof PrefixCacheOptions, true> = { blockTokens: true, maxBlocks: true, eviction: true }

export interface PrefixCacheStats {
  /** requests opened */
  requests: number
  /** full prompt blocks looked up, and of them found */
  lookups: number
  hits: number
  /** blocks entered, and dropped by the eviction policy */
  inserted: number
  evicted: number
}

interface Block {
  readonly key: string
  readonly parent: Block | null
  /** cached blocks whose parent this is (a block with children is not dropped: they would be unreachable) */
  children: number
  /** running requests holding it */
  holders: number
  /** every head's key and value page, as PagedKVCache.sharePage lists them */
  readonly pages: Page[]
}

/**
 * Automatic prefix caching across requests (vLLM's design, Kwon et al., SOSP 2023, and its prefix-caching
 * doc): the prompt is cut into blocks of `blockTokens`; each full block is keyed by a chained hash
 * (parent hash, block tokens, per-tenant salt: block-hash.ts) and holds that block's KV pages in every
 * layer and head. A request takes the longest run of cached blocks from the start by reference (no copy:
 * the pages are shared, copy-on-write), prefills the rest, and adds its new full blocks, the answer's
 * included. Blocks no request holds and no cached block extends are dropped by LRU (LFU, S3-FIFO as
 * options) when there are more than `maxBlocks`.
 *
 * Use: `model.generate(prompt, { reuse: cache })` or `{ reuse: cache.tenant(salt) }`;
 * `result.stats.cachedTokens` says how many prompt tokens were found.
 */
export class PrefixCache implements KVReuse {
  readonly blockTokens: number
  readonly maxBlocks: number
  /** the pages of the cached blocks and of the requests' caches */
  readonly store: PageStore
  readonly stats: PrefixCacheStats = { requests: 0, lookups: 0, hits: 0, inserted: 0, evicted: 0 }
  private readonly blocks = new Map<string, Block>()
  private readonly eviction: BlockEviction
  private disposed = false

  constructor(
    readonly model: LlamaModel,
    options: PrefixCacheOptions = {},
  ) {
    checkOptionNames('PrefixCache', options, PREFIX_CACHE_OPTIONS)
    const bt = options.blockTokens ?? 16
    const max = options.maxBlocks ?? 1024
    const ev = options.eviction ?? 'lru'
    if (!(Number.isInteger(bt) && bt >= 1 && bt <= 4096)) throw new ReuseError(`PrefixCache: blockTokens must be an integer in [1, 4096], got ${shownValue(bt)}`)
    if (!(Number.isInteger(max) && max >= 1)) throw new ReuseError(`PrefixCache: maxBlocks must be a positive integer, got ${shownValue(max)}`)
    if (!EVICTIONS.includes(ev)) throw new ReuseError(`PrefixCache: eviction must be one of ${EVICTIONS.join(', ')}, got ${JSON.stringify(ev)}`)
    this.blockTokens = bt
    this.maxBlocks = max
    this.eviction = makeEviction(ev, max)
    this.store = new PageStore(model.backend.heap, bt)
  }

  /** blocks cached now */
  get size(): number {
    return this.blocks.size
  }

  /** bytes of one block across layers and heads */
  get blockBytes(): number {
    const { layers, kvHeads, headDim } = this.model.config
    return layers * kvHeads * 2 * headDim * 4 * this.blockTokens
  }

  /** The same cache seen by one tenant: its blocks are keyed with `salt`, so other tenants never hit them. */
  tenant(salt: string): KVReuse {
    if (typeof salt !== 'string') throw new ReuseError(`PrefixCache.tenant: salt must be a string, got ${typeof salt}`)
    return { open: (ids, model) => this.openFor(ids, model, salt) }
  }

  open(ids: readonly number[], model: LlamaModel): ReuseHandle {
    return this.openFor(ids, model, '')
  }

  /** prompt tokens a request of this tenant would find cached now (nothing is held or counted) */
  cachedPrefix(ids: readonly number[], salt = ''): number {
    let hits = 0
    for (const key of blockHashes(ids, this.blockTokens, salt, this.prefillBlocks(ids))) {
      if (!this.blocks.has(key)) break
      hits++
    }
    return hits * this.blockTokens
  }

  /**
   * Holds the cached blocks `ids` starts with (of the tenant `salt`), so that eviction passes them over
   * until `release()`: Continuum's pinning of a paused session's KV (src/serve/tool-pins.ts). `tokens`
   * says how many tokens' blocks were found and held (0: none are cached).
   */
  hold(ids: readonly number[], salt = ''): { tokens: number; release: () => void } {
    if (this.disposed) throw new ReuseError('PrefixCache: used after dispose()')
    const held: Block[] = []
    for (const key of blockHashes(ids, this.blockTokens, salt)) {
      const block = this.blocks.get(key)
      if (!block) break
      block.holders++
      held.push(block)
    }
    let released = false
    return {
      tokens: held.length * this.blockTokens,
      release: () => {
        if (released) return
        released = true
        for (const b of held) b.holders--
        if (!this.disposed) this.shrink()
      },
    }
  }

  /** full blocks of the part a request prefills (all but the last prompt token, which decoding runs) */
  private prefillBlocks(ids: readonly number[]): number {
    return Math.floor(Math.max(0, ids.length - 1) / this.blockTokens)
  }

  private openFor(ids: readonly number[], model: LlamaModel, salt: string): ReuseHandle {
    if (this.disposed) throw new ReuseError('PrefixCache: used after dispose()')
    if (model !== this.model) throw new ReuseError('PrefixCache: generate was called on another model than the cache was made for')
    const B = this.blockTokens
    const held: Block[] = []
    const keys = blockHashes(ids, B, salt, this.prefillBlocks(ids))
    for (const key of keys) {
      const block = this.blocks.get(key)
      if (!block) break
      block.holders++
      this.eviction.access(key)
      held.push(block)
    }
    this.stats.requests++
    this.stats.lookups += keys.length
    this.stats.hits += held.length
    const { layers, kvHeads, headDim } = model.config
    const cache = new PagedKVCache(model.backend, { layers, kvHeads, headDim, pageTokens: B, keys: 'post-rope' }, this.store)
    const cachedTokens = held.length * B
    cache.appendPages(held.flatMap((b) => b.pages), Int32Array.from({ length: cachedTokens }, (_, i) => i))
    let closed = false
    return {
      cache,
      ids: ids.slice(),
      cachedTokens,
      prefilled: (tokens) => this.insert(ids, tokens, cache, held, salt),
      close: (generated, ok) => {
        if (closed) return
        closed = true
        if (ok && !this.disposed) this.insert([...ids, ...generated], cache.length(0, 0), cache, held, salt)
        for (const b of held) b.holders--
        cache.dispose()
        this.shrink()
      },
    }
  }

  /** enters the full blocks of tokens[0, count) the request's cache holds beyond those it holds already */
  private insert(tokens: readonly number[], count: number, cache: PagedKVCache, held: Block[], salt: string): void {
    const keys = blockHashes(tokens, this.blockTokens, salt, Math.floor(Math.min(count, tokens.length, cache.length(0, 0)) / this.blockTokens))
    for (let b = held.length; b < keys.length; b++) {
      let block = this.blocks.get(keys[b])
      if (block) this.eviction.access(block.key)
      else {
        const parent = held[b - 1] ?? null
        block = { key: keys[b], parent, children: 0, holders: 0, pages: cache.sharePage(b) }
        if (parent) parent.children++
        this.blocks.set(block.key, block)
        this.eviction.insert(block.key)
        this.stats.inserted++
      }
      block.holders++
      held.push(block)
    }
    this.shrink()
  }

  /** drops unheld leaf blocks, in the eviction policy's order, until at most maxBlocks remain */
  private shrink(): void {
    while (this.blocks.size > this.maxBlocks) {
      const key = this.eviction.victim((k) => {
        const b = this.blocks.get(k)!
        return b.holders === 0 && b.children === 0
      })
      if (key === undefined) return
      this.drop(this.blocks.get(key)!)
      this.stats.evicted++
    }
  }

  private drop(b: Block): void {
    for (const p of b.pages) this.store.release(p)
    if (b.parent) b.parent.children--
    this.blocks.delete(b.key)
    this.eviction.remove(b.key)
  }

  /** drops every block no request holds */
  clear(): void {
    // leaves first: a parent is dropped once its children are
    let dropped = true
    while (dropped) {
      dropped = false
      for (const b of [...this.blocks.values()]) {
        if (b.holders === 0 && b.children === 0) {
          this.drop(b)
          dropped = true
        }
      }
    }
    this.store.drain()
  }

  dispose(): void {
    if (this.disposed) return
    this.clear()
    this.disposed = true
  }
}
