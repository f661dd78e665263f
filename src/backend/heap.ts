/**
 * The arena: one WebAssembly.Memory owned by TypeScript. Every buffer a kernel reads or writes lives here,
 * so kernels take plain pointers and sizes. The reference backend uses the same arena (without calling
 * wasm), so both backends see identical memory layouts and tests can compare them byte for byte.
 *
 * Allocation: first fit over an address-ordered free list with coalescing, and a bump pointer at the top.
 * Freed blocks at the top lower the bump pointer, so a long session that frees what it allocates stays
 * bounded: the memory never grows past the peak of live bytes plus fragmentation.
 */

import { SizeTable } from './size-table.js'

const PAGE = 65536

export class HeapError extends Error {
  override name = 'HeapError'
}

interface FreeBlock {
  ptr: number
  size: number
}

export class Heap {
  readonly memory: WebAssembly.Memory
  /** first byte the arena hands out (above the wasm module's static data) */
  readonly base: number
  private top: number
  private readonly free: FreeBlock[] = []
  /** live blocks' sizes by pointer (typed arrays: see size-table.ts) */
  private readonly sizes = new SizeTable()
  private live = 0
  private peak = 0
  private f32v: Float32Array
  private i32v: Int32Array
  private u8v: Uint8Array
  private u16v: Uint16Array

  /**
   * @param memory an existing memory (the one the wasm module imports) or none to make one
   * @param base first byte the arena may hand out: memory below it belongs to the wasm module's data
   */
  constructor(memory?: WebAssembly.Memory, base = 1 << 16) {
    this.memory = memory ?? new WebAssembly.Memory({ initial: 16, maximum: 65536 })
    this.base = align(base, 64)
    this.top = this.base
    this.f32v = new Float32Array(this.memory.buffer)
    this.i32v = new Int32Array(this.memory.buffer)
    this.u8v = new Uint8Array(this.memory.buffer)
    this.u16v = new Uint16Array(this.memory.buffer)
  }

  /** Bytes handed out and not yet freed. */
  get bytesLive(): number {
    return this.live
  }
  /** Highest bytesLive seen. */
  get bytesPeak(): number {
    return this.peak
  }
  /** Size of the linear memory (what the process really holds for this arena). */
  get bytesReserved(): number {
    return this.memory.buffer.byteLength
  }

  /** Allocates `bytes` (rounded up to 16) aligned to `alignment` (a power of two, 16 by default). */
  alloc(bytes: number, alignment = 16): number {
    if (!Number.isInteger(bytes) || bytes < 0) throw new HeapError(`alloc: bytes must be a non-negative integer, got ${bytes}`)
    if (alignment < 16 || (alignment & (alignment - 1)) !== 0) throw new HeapError(`alloc: alignment must be a power of two >= 16, got ${alignment}`)
    const size = Math.max(16, align(bytes, 16))
    for (let i = 0; i < this.free.length; i++) {
      const b = this.free[i]
      const start = align(b.ptr, alignment)
      const pad = start - b.ptr
      if (b.size < pad + size) continue
      // split: keep the leading pad and the tail as free blocks
      const tail = b.size - pad - size
      const repl: FreeBlock[] = []
      if (pad > 0) repl.push({ ptr: b.ptr, size: pad })
      if (tail > 0) repl.push({ ptr: start + size, size: tail })
      this.free.splice(i, 1, ...repl)
      return this.taken(start, size)
    }
    const start = align(this.top, alignment)
    const end = start + size
    if (end > 0xffff_0000) throw new HeapError(`alloc: ${bytes} bytes do not fit in the 4 GiB wasm address space (${this.live} bytes live)`)
    if (start > this.top) this.insertFree(this.top, start - this.top)
    this.ensure(end)
    this.top = end
    return this.taken(start, size)
  }

  /** Frees a block from alloc. Freeing twice or a foreign pointer is an error, never silent corruption. */
  release(ptr: number): void {
    const size = this.sizes.delete(ptr)
    if (size === 0) throw new HeapError(`release: ${ptr} is not a live allocation`)
    this.live -= size
    this.insertFree(ptr, size)
    // give the top back so the bump pointer can shrink
    const last = this.free[this.free.length - 1]
    if (last && last.ptr + last.size === this.top) {
      this.top = last.ptr
      this.free.pop()
    }
  }

  /**
   * Frees many blocks at once (a compaction returning thousands of pages): checked whole first, then
   * merged into the address-ordered free list in one pass, O(free blocks + k log k) instead of one
   * insertion (an array splice) per block. The pointers are sorted as numbers in a typed array and
   * duplicates found as equal neighbours: no Set and no object per block, which cost more than the
   * merge itself for a few thousand pages; each block costs one size-table delete.
   */
  releaseMany(ptrs: ArrayLike<number>): void {
    const k = ptrs.length
    if (k < 8) {
      for (let i = 0; i < k; i++) {
        let twice = false
        for (let j = 0; j < i; j++) twice ||= ptrs[j] === ptrs[i]
        if (twice || this.sizes.get(ptrs[i]) === 0) throw new HeapError(`releaseMany: ${ptrs[i]} is not a live allocation`)
      }
      for (let i = 0; i < k; i++) this.release(ptrs[i])
      return
    }
    // sorted as uint32 (twice as fast as float64 in V8's typed-array sort), copied with a check that
    // each pointer is one: a fraction or a negative would otherwise be truncated onto another block
    // (a Uint32Array, as PageStore.drain passes, holds only such values: one native copy)
    let sorted: Uint32Array
    if (ptrs instanceof Uint32Array) sorted = ptrs.slice()
    else {
      sorted = new Uint32Array(k)
      for (let i = 0; i < k; i++) {
        sorted[i] = ptrs[i]
        if (sorted[i] !== ptrs[i]) throw new HeapError(`releaseMany: ${ptrs[i]} is not a live allocation`)
      }
    }
    sorted.sort()
    const sizes = new Float64Array(k)
    // one table operation a block: deleted as checked; a foreign or repeated pointer puts the ones
    // already deleted back before the error, so a refused batch frees nothing
    for (let i = 0; i < k; i++) {
      const size = i > 0 && sorted[i] === sorted[i - 1] ? 0 : this.sizes.delete(sorted[i])
      if (size === 0) {
        for (let j = 0; j < i; j++) this.sizes.set(sorted[j], sizes[j])
        throw new HeapError(`releaseMany: ${sorted[i]} is not a live allocation`)
      }
      sizes[i] = size
    }
    for (let i = 0; i < k; i++) this.live -= sizes[i]
    // merge the free list and the sorted blocks by address, joining neighbours (one object per run)
    const merged: FreeBlock[] = []
    const free = this.free
    let i = 0
    let j = 0
    let lastEnd = -1
    while (i < free.length || j < k) {
      const fromFree = j === k || (i < free.length && free[i].ptr < sorted[j])
      const ptr = fromFree ? free[i].ptr : sorted[j]
      const size = fromFree ? free[i++].size : sizes[j++]
      if (ptr === lastEnd) merged[merged.length - 1].size += size
      else merged.push({ ptr, size })
      lastEnd = ptr + size
    }
    free.length = 0
    for (const b of merged) free.push(b)
    const top = free[free.length - 1]
    if (top && top.ptr + top.size === this.top) {
      this.top = top.ptr
      free.pop()
    }
  }

  /** Size in bytes of a live allocation. */
  sizeOf(ptr: number): number {
    const s = this.sizes.get(ptr)
    if (s === 0) throw new HeapError(`sizeOf: ${ptr} is not a live allocation`)
    return s
  }

  /** Typed views over the whole memory, re-created after memory.grow detaches the old ones. */
  get F32(): Float32Array {
    if (this.f32v.buffer !== this.memory.buffer) this.refresh()
    return this.f32v
  }
  get I32(): Int32Array {
    if (this.i32v.buffer !== this.memory.buffer) this.refresh()
    return this.i32v
  }
  get U8(): Uint8Array {
    if (this.u8v.buffer !== this.memory.buffer) this.refresh()
    return this.u8v
  }
  /** float16 rows of the KV store, as bits */
  get U16(): Uint16Array {
    if (this.u16v.buffer !== this.memory.buffer) this.refresh()
    return this.u16v
  }

  /** A fresh view of `length` floats at `ptr`. Do not keep it across allocations: memory may grow. */
  f32(ptr: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, length)
  }
  i32(ptr: number, length: number): Int32Array {
    return new Int32Array(this.memory.buffer, ptr, length)
  }
  u8(ptr: number, length: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, ptr, length)
  }

  /** Allocates and fills a float buffer. */
  f32From(data: ArrayLike<number>): F32Buf {
    const b = this.allocF32(data.length)
    b.view.set(data)
    return b
  }
  i32From(data: ArrayLike<number>): I32Buf {
    const b = this.allocI32(data.length)
    b.view.set(data)
    return b
  }
  allocF32(length: number): F32Buf {
    return new F32Buf(this, this.alloc(length * 4), length)
  }
  allocI32(length: number): I32Buf {
    return new I32Buf(this, this.alloc(length * 4), length)
  }

  private taken(ptr: number, size: number): number {
    this.sizes.set(ptr, size)
    this.live += size
    if (this.live > this.peak) this.peak = this.live
    return ptr
  }

  private insertFree(ptr: number, size: number): void {
    // binary search for the insertion point, then coalesce with neighbours
    let lo = 0
    let hi = this.free.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (this.free[mid].ptr < ptr) lo = mid + 1
      else hi = mid
    }
    const prev = this.free[lo - 1]
    const next = this.free[lo]
    if (prev && prev.ptr + prev.size === ptr) {
      prev.size += size
      if (next && prev.ptr + prev.size === next.ptr) {
        prev.size += next.size
        this.free.splice(lo, 1)
      }
    } else if (next && ptr + size === next.ptr) {
      next.ptr = ptr
      next.size += size
    } else {
      this.free.splice(lo, 0, { ptr, size })
    }
  }

  private ensure(end: number): void {
    const have = this.memory.buffer.byteLength
    if (end <= have) return
    // grow at least by half again, so a stream of small allocations does not grow page by page
    const need = Math.ceil((end - have) / PAGE)
    const want = Math.max(need, Math.ceil(have / PAGE / 2))
    const max = 65536 - have / PAGE
    try {
      this.memory.grow(Math.min(want, max))
    } catch {
      try {
        this.memory.grow(need)
      } catch (e) {
        throw new HeapError(`alloc: cannot grow wasm memory to ${end} bytes: ${(e as Error).message}`)
      }
    }
    this.refresh()
  }

  private refresh(): void {
    this.f32v = new Float32Array(this.memory.buffer)
    this.i32v = new Int32Array(this.memory.buffer)
    this.u8v = new Uint8Array(this.memory.buffer)
    this.u16v = new Uint16Array(this.memory.buffer)
  }
}

/** A float buffer in the arena: pointer and length, with a view that survives memory growth. */
export class F32Buf {
  constructor(
    readonly heap: Heap,
    readonly ptr: number,
    readonly length: number,
  ) {}
  get view(): Float32Array {
    return this.heap.f32(this.ptr, this.length)
  }
  free(): void {
    this.heap.release(this.ptr)
  }
}

export class I32Buf {
  constructor(
    readonly heap: Heap,
    readonly ptr: number,
    readonly length: number,
  ) {}
  get view(): Int32Array {
    return this.heap.i32(this.ptr, this.length)
  }
  free(): void {
    this.heap.release(this.ptr)
  }
}

function align(x: number, a: number): number {
  return Math.ceil(x / a) * a
}
