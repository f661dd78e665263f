import type { Heap } from '../backend/heap.js'

/**
 * Pages of `pageTokens` rows in the arena, pooled by row width so that freed pages serve the next append
 * or compaction without going back to the heap. Everything the pool holds counts as reserved memory.
 */
export class PagePool {
  private readonly free = new Map<number, number[]>()
  private pooledBytes = 0

  constructor(
    readonly heap: Heap,
    readonly pageTokens: number,
  ) {}

  pageBytes(width: number): number {
    return this.pageTokens * width * 4
  }

  take(width: number): number {
    const list = this.free.get(width)
    const p = list?.pop()
    if (p !== undefined) {
      this.pooledBytes -= this.pageBytes(width)
      return p
    }
    return this.heap.alloc(this.pageBytes(width), 64)
  }

  give(width: number, ptr: number): void {
    let list = this.free.get(width)
    if (!list) this.free.set(width, (list = []))
    list.push(ptr)
    this.pooledBytes += this.pageBytes(width)
  }

  /** bytes of pages held in the pool, not in use */
  get bytes(): number {
    return this.pooledBytes
  }

  /** returns every pooled page to the heap */
  drain(): void {
    for (const list of this.free.values()) for (const p of list) this.heap.release(p)
    this.free.clear()
    this.pooledBytes = 0
  }
}

/**
 * Rows of one width (keys: kd floats, values: vd floats) in pages, with int32 page tables in the arena so
 * the kernels read them without a copy. Tables grow by doubling.
 */
export class PagedRows {
  n = 0
  private kPages: number[] = []
  private vPages: number[] = []
  private kTab = 0
  private vTab = 0
  private tabCap = 0

  constructor(
    private readonly pool: PagePool,
    readonly kd: number,
    readonly vd: number,
    readonly channels: Int32Array | null,
  ) {}

  get kTable(): number {
    return this.kTab
  }
  get vTable(): number {
    return this.vTab
  }
  get pages(): number {
    return this.kPages.length
  }
  /** bytes of pages and tables really held */
  get reservedBytes(): number {
    return this.kPages.length * (this.pool.pageBytes(this.kd) + this.pool.pageBytes(this.vd)) + this.tabCap * 8
  }
  /** bytes the rows need */
  get hotBytes(): number {
    return this.n * (this.kd + this.vd) * 4
  }

  /** makes room for `more` rows (allocating may grow memory: take views only after this) */
  reserve(more: number): void {
    const pt = this.pool.pageTokens
    const need = Math.ceil((this.n + more) / pt)
    if (need > this.tabCap) this.growTables(Math.max(need, this.tabCap * 2, 4))
    while (this.kPages.length < need) {
      const k = this.pool.take(this.kd)
      const v = this.pool.take(this.vd)
      this.kPages.push(k)
      this.vPages.push(v)
      const I = this.pool.heap.I32
      I[(this.kTab >> 2) + this.kPages.length - 1] = k
      I[(this.vTab >> 2) + this.vPages.length - 1] = v
    }
  }

  /** byte pointers of row i's key and value */
  keyPtr(i: number): number {
    const pt = this.pool.pageTokens
    return this.kPages[Math.floor(i / pt)] + (i % pt) * this.kd * 4
  }
  valuePtr(i: number): number {
    const pt = this.pool.pageTokens
    return this.vPages[Math.floor(i / pt)] + (i % pt) * this.vd * 4
  }

  /** appends a row from float arrays (after reserve) */
  pushRow(k: Float32Array, kOff: number, v: Float32Array, vOff: number): void {
    const F = this.pool.heap.F32
    const i = this.n++
    F.set(k.subarray(kOff, kOff + this.kd), this.keyPtr(i) >> 2)
    F.set(v.subarray(vOff, vOff + this.vd), this.valuePtr(i) >> 2)
  }

  /** appends a row copied from arena pointers (after reserve) */
  pushRowFromHeap(kPtr: number, vPtr: number): void {
    const F = this.pool.heap.F32
    const i = this.n++
    F.copyWithin(this.keyPtr(i) >> 2, kPtr >> 2, (kPtr >> 2) + this.kd)
    F.copyWithin(this.valuePtr(i) >> 2, vPtr >> 2, (vPtr >> 2) + this.vd)
  }

  /** returns every page to the pool, keeping the tables */
  clearRows(): void {
    for (const p of this.kPages) this.pool.give(this.kd, p)
    for (const p of this.vPages) this.pool.give(this.vd, p)
    this.kPages = []
    this.vPages = []
    this.n = 0
  }

  dispose(): void {
    this.clearRows()
    if (this.tabCap) {
      this.pool.heap.release(this.kTab)
      this.pool.heap.release(this.vTab)
    }
    this.tabCap = 0
    this.kTab = this.vTab = 0
  }

  private growTables(cap: number): void {
    const heap = this.pool.heap
    const k = heap.alloc(cap * 4)
    const v = heap.alloc(cap * 4)
    const I = heap.I32
    for (let i = 0; i < this.kPages.length; i++) {
      I[(k >> 2) + i] = this.kPages[i]
      I[(v >> 2) + i] = this.vPages[i]
    }
    if (this.tabCap) {
      heap.release(this.kTab)
      heap.release(this.vTab)
    }
    this.kTab = k
    this.vTab = v
    this.tabCap = cap
  }
}
