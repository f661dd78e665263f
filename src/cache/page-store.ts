import type { Heap } from '../backend/heap.js'
import { CacheError } from './errors.js'
import { DEFAULT_GROUP, pageBytes, type PageFormat, type StreamRole } from './formats.js'

/**
 * Where a page's bytes live. 'wasm': the arena (the kernels read it in place); 'host': a plain
 * ArrayBuffer outside wasm memory, so a cache is not bounded by wasm32's 4 GiB (read back into the arena
 * to be attended); 'gpu': a WebGPU buffer, reserved for the WebGPU backend (not in this build).
 */
export type Tier = 'wasm' | 'host' | 'gpu'
export const TIERS: readonly Tier[] = ['wasm', 'host', 'gpu']

/** One page: `bytes` bytes in one format and tier, shared by every segment that references it. */
export interface Page {
  readonly format: PageFormat
  readonly role: StreamRole
  /** values per row (floats per row for float formats) */
  readonly width: number
  /** int2+sign keys: the leading channels held as int2 (formats.ts); else 0 */
  readonly hi: number
  /** packed pages: values a quantization group holds (keys: tokens; values: channels); formats.ts */
  readonly group: number
  readonly bytes: number
  tier: Tier
  /** byte pointer into the arena (tier 'wasm'), else 0 */
  ptr: number
  /** the page's bytes outside wasm (tier 'host'), else null */
  host: Uint8Array | null
  /** segments (of any sequence on this store) that reference the page; 0 = back in the pool */
  refs: number
}

export interface TierBytes {
  wasm: number
  host: number
  gpu: number
}

/**
 * Owns every page of a family of sequences (a cache and its forks): allocation from per-shape pools,
 * reference counts, tier moves. Shared pages are counted once here, whoever references them.
 */
export class PageStore {
  /** free arena pages by byte size (a number key: no string built per page taken or released) */
  private readonly pools = new Map<number, number[]>()
  private pooled = 0
  private readonly live: TierBytes = { wasm: 0, host: 0, gpu: 0 }
  /** bytes copied between tiers since the store was made (the cost of offloading and fetching) */
  bytesMoved = 0
  /** rows moved by compaction since the store was made (a kept row that moves counts once) */
  rowsMoved = 0

  constructor(
    readonly heap: Heap,
    readonly pageTokens: number,
  ) {}

  bytesOf(format: PageFormat, role: StreamRole, width: number, hi = 0, group = DEFAULT_GROUP): number {
    return pageBytes(format, role, this.pageTokens, width, group, hi)
  }

  /** a fresh page with one reference (contents undefined) */
  take(format: PageFormat, role: StreamRole, width: number, tier: Tier = 'wasm', hi = 0, group = DEFAULT_GROUP): Page {
    const bytes = this.bytesOf(format, role, width, hi, group)
    const page: Page = { format, role, width, hi, group, bytes, tier, ptr: 0, host: null, refs: 1 }
    if (tier === 'wasm') {
      const p = this.pools.get(bytes)?.pop()
      if (p !== undefined) this.pooled -= bytes
      page.ptr = p ?? this.heap.alloc(bytes, 64)
    } else if (tier === 'host') page.host = new Uint8Array(bytes)
    else throw new CacheError("PageStore: the 'gpu' tier needs the WebGPU backend, which is not part of this build")
    this.live[tier] += bytes
    return page
  }

  retain(page: Page): Page {
    if (page.refs <= 0) throw new CacheError('PageStore.retain: the page was already released')
    page.refs++
    return page
  }

  /** drops one reference; the last one returns the page's memory (arena pages to the pool) */
  release(page: Page): void {
    if (page.refs <= 0) throw new CacheError('PageStore.release: the page was already released')
    if (--page.refs > 0) return
    this.live[page.tier] -= page.bytes
    if (page.tier === 'wasm') {
      let list = this.pools.get(page.bytes)
      if (!list) this.pools.set(page.bytes, (list = []))
      list.push(page.ptr)
      this.pooled += page.bytes
      page.ptr = 0
    } else page.host = null
  }

  /**
   * Drops one reference of every page in keys[from..] and values[from..] (a segment's pages past its new
   * end), last page first, key before value: what `release` one by one does, with the pool list looked up
   * once a run of pages of one size instead of once a page. The arrays are left as they are.
   */
  releaseTail(keys: readonly Page[], values: readonly Page[], from: number): void {
    let bytes = -1
    let list: number[] | undefined
    for (let p = keys.length - 1; p >= from; p--) {
      for (let r = 0; r < 2; r++) {
        const page = r === 0 ? keys[p] : values[p]
        // shared, host and released pages take the general path (and its checks)
        if (page.refs !== 1 || page.tier !== 'wasm') {
          this.release(page)
          continue
        }
        if (page.bytes !== bytes) {
          bytes = page.bytes
          list = this.pools.get(bytes)
          if (!list) this.pools.set(bytes, (list = []))
        }
        page.refs = 0
        list!.push(page.ptr)
        page.ptr = 0
        this.live.wasm -= bytes
        this.pooled += bytes
      }
    }
  }

  /** a private copy of a shared page (copy-on-write), with one reference; the original loses one */
  unshare(page: Page): Page {
    if (page.refs === 1) return page
    const copy = this.take(page.format, page.role, page.width, page.tier, page.hi, page.group)
    if (page.tier === 'wasm') this.heap.U8.copyWithin(copy.ptr, page.ptr, page.ptr + page.bytes)
    else copy.host!.set(page.host!)
    this.release(page)
    return copy
  }

  /**
   * A page's bytes in another tier, for one referencing segment: a page only it references moves in
   * place; a shared page is copied into the tier for it (the others keep theirs where it is), the old
   * one losing a reference. Returns the page to use now (the same or the copy); the bytes copied are
   * added to bytesMoved.
   */
  moveFor(page: Page, tier: Tier): Page {
    if (page.refs <= 0) throw new CacheError('PageStore.move: the page was already released')
    if (page.tier === tier) return page
    if (page.refs === 1) {
      this.move(page, tier)
      return page
    }
    const copy = this.take(page.format, page.role, page.width, tier, page.hi, page.group)
    const src = page.tier === 'wasm' ? this.heap.U8.subarray(page.ptr, page.ptr + page.bytes) : page.host!
    if (tier === 'wasm') this.heap.U8.set(src, copy.ptr)
    else copy.host!.set(src)
    this.release(page)
    this.bytesMoved += page.bytes
    return copy
  }

  /** moves a page only one segment references to another tier, in place; returns the bytes copied */
  private move(page: Page, tier: Tier): number {
    if (page.tier === tier) return 0
    if (tier === 'gpu' || page.tier === 'gpu') throw new CacheError("PageStore.move: the 'gpu' tier needs the WebGPU backend, which is not part of this build")
    if (tier === 'host') {
      const host = new Uint8Array(page.bytes)
      host.set(this.heap.U8.subarray(page.ptr, page.ptr + page.bytes))
      this.heap.release(page.ptr)
      page.ptr = 0
      page.host = host
    } else {
      const ptr = this.heap.alloc(page.bytes, 64)
      this.heap.U8.set(page.host!, ptr)
      page.ptr = ptr
      page.host = null
    }
    this.live[page.tier] -= page.bytes
    this.live[tier] += page.bytes
    page.tier = tier
    this.bytesMoved += page.bytes
    return page.bytes
  }

  /** bytes of live pages per tier, each page once however many segments share it */
  get liveBytes(): TierBytes {
    return { ...this.live }
  }

  /** bytes of arena pages in the pools, not in use */
  get pooledBytes(): number {
    return this.pooled
  }

  /** returns every pooled page to the heap, so a smaller cache is smaller memory */
  drain(): void {
    if (this.pools.size === 0) return
    // one typed array of every pooled pointer, no intermediate arrays (releaseMany sorts a copy)
    let count = 0
    for (const list of this.pools.values()) count += list.length
    const ptrs = new Uint32Array(count)
    let at = 0
    for (const list of this.pools.values()) {
      ptrs.set(list, at)
      at += list.length
    }
    this.heap.releaseMany(ptrs)
    this.pools.clear()
    this.pooled = 0
  }
}
