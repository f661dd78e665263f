/**
 * Per-page key bounds for page-level selection (Quest's kmax/kmin, MPCache's cluster bounds): per (layer,
 * KV head), one row of 2d floats per page of `page` slots, [kmax_0..kmax_{d-1}, kmin_0..kmin_{d-1}], in an
 * arena buffer kept up to date as tokens arrive (only the new rows are folded in). When rows change in
 * place (an eviction, KIVI packing a key group: packed keys read back dequantized), the cache says which
 * slots (`KVCache.changes`), and only the pages holding them are recomputed by the pageMinMax kernel from
 * the stored rows, as a whole rebuild would: the bounds stay bit for bit those of a rebuild (issue 16;
 * a rebuild of every head after each KIVI step read back every key of the cache).
 *
 * The row layout turns Quest's page score into one dot product, so the scoring kernel serves it:
 * sum_c max(q_c kmax_c, q_c kmin_c) = [max(q, 0) | min(q, 0)] . [kmax | kmin], as kmax >= kmin.
 */
import type { F32Buf, Heap } from '../backend/heap.js'
import type { HeadView } from '../cache/types.js'
import { contiguousView } from '../backend/views.js'
import { keyView } from './selection.js'
import { halfToFloat } from '../backend/half.js'
import type { PolicyContext } from './types.js'

interface HeadBounds {
  buf: F32Buf
  /** page rows the buffer holds room for */
  capacity: number
  /** slots folded in so far */
  n: number
  /** a one-entry page table over buf (pageTokens = capacity) */
  table: number
  /** the cache's change version the bounds follow (KVCache.changes) */
  version: number
}

export class PageBounds {
  private heads = new Map<number, HeadBounds>()

  constructor(
    private readonly heap: Heap,
    readonly page: number,
  ) {}

  /** the head's bounds as a kernel view: n = pages, d = 2 x headDim (valid until the next call) */
  view(ctx: PolicyContext, layer: number, head: number): HeadView {
    const d = ctx.model.headDim
    const n = ctx.cache.length(layer, head)
    const pages = Math.ceil(n / this.page)
    const key = layer * ctx.model.kvHeads + head
    let h = this.heads.get(key)
    if (!h || h.capacity < pages) {
      const capacity = Math.max(pages, 2 * (h?.capacity ?? 0), 16)
      const buf = this.heap.allocF32(capacity * 2 * d)
      const table = h?.table ?? this.heap.alloc(4)
      if (h && h.n > 0) buf.view.set(h.buf.view.subarray(0, Math.ceil(h.n / this.page) * 2 * d))
      h?.buf.free()
      h = { buf, capacity, n: h?.n ?? -1, table, version: h?.version ?? 0 }
      this.heads.set(key, h)
    }
    this.heap.I32[h.table >> 2] = h.buf.ptr
    const changed = ctx.cache.changes(layer, head, h.version)
    h.version = changed.version
    if (h.n < 0 || changed.from === 0 && changed.to >= Math.min(h.n, n)) this.rebuild(ctx, layer, head, h, n)
    else {
      // rows [0, done) are folded in and, but for the changed slots, still the rows they were; a page the
      // cache shortened (its last rows evicted) is folded again from its start
      let done = h.n > n ? Math.floor(n / this.page) * this.page : h.n
      if (changed.from < changed.to && changed.from < done) {
        const end = Math.min(n, Math.ceil(Math.min(changed.to, done) / this.page) * this.page)
        this.recompute(ctx, layer, head, h, Math.floor(changed.from / this.page), end)
        done = Math.max(done, end)
      }
      h.n = done
      if (done < n) this.fold(ctx, layer, head, h, n)
    }
    return { kTable: h.table, vTable: h.table, pageTokens: h.capacity, n: pages, d: 2 * d }
  }

  private rebuild(ctx: PolicyContext, layer: number, head: number, h: HeadBounds, n: number): void {
    h.n = n
    if (n === 0) return
    const kv = keyView(ctx, layer, head)
    try {
      this.write(ctx, h, 0, kv.view)
    } finally {
      kv.done()
    }
  }

  /** pages first.. up to slot `end` (a page boundary, or the head's length) from the stored rows */
  private recompute(ctx: PolicyContext, layer: number, head: number, h: HeadBounds, first: number, end: number): void {
    const rows = end - first * this.page
    if (rows <= 0) return
    const buf = this.heap.allocF32(rows * ctx.model.headDim)
    ctx.cache.readKeysInto(layer, head, first * this.page, end, buf.ptr)
    const kv = contiguousView(buf, rows, ctx.model.headDim)
    try {
      this.write(ctx, h, first, kv)
    } finally {
      kv.free()
      buf.free()
    }
  }

  /** the pageMinMax kernel over `kv` (rows from page `first` on) into the bounds' page rows */
  private write(ctx: PolicyContext, h: HeadBounds, first: number, kv: HeadView): void {
    const d = ctx.model.headDim
    const pages = Math.ceil(kv.n / this.page)
    const lo = this.heap.allocF32(pages * d)
    const hi = this.heap.allocF32(pages * d)
    try {
      ctx.ops.pageMinMax(kv, this.page, lo, hi)
      const out = h.buf.view
      const L = lo.view
      const H = hi.view
      for (let p = 0; p < pages; p++) {
        out.set(H.subarray(p * d, (p + 1) * d), (first + p) * 2 * d)
        out.set(L.subarray(p * d, (p + 1) * d), (first + p) * 2 * d + d)
      }
    } finally {
      hi.free()
      lo.free()
    }
  }

  /**
   * folds slots h.n..n-1 into their pages' bounds, reading the rows in place: new tokens land in the
   * arena's append segment even when the older pages sit in the host tier. float16 rows are widened
   * exactly, so the bounds are a rebuild's (which reads the widened copy) bit for bit.
   */
  private fold(ctx: PolicyContext, layer: number, head: number, h: HeadBounds, n: number): void {
    const d = ctx.model.headDim
    const s = ctx.cache.segments(layer, head).find((x) => h.n >= x.start && n <= x.start + x.n)
    const half = s?.format === 'float16'
    if (!s || s.tier !== 'wasm' || !(half || s.format === 'float32') || s.channels !== null) return this.rebuild(ctx, layer, head, h, n)
    const { kTable, pageTokens, start } = s
    const F = this.heap.F32
    const U16 = this.heap.U16
    const I = this.heap.I32
    const out = h.buf.ptr >> 2
    for (let i = h.n; i < n; i++) {
      const r = i - start
      // the row's first element, counted in its element type
      const row = (I[(kTable >> 2) + Math.floor(r / pageTokens)] >> (half ? 1 : 2)) + (r % pageTokens) * d
      const at = out + Math.floor(i / this.page) * 2 * d
      const fresh = i % this.page === 0
      for (let c = 0; c < d; c++) {
        const v = half ? halfToFloat(U16[row + c]) : F[row + c]
        if (fresh || v > F[at + c]) F[at + c] = v
        if (fresh || v < F[at + d + c]) F[at + d + c] = v
      }
    }
    h.n = n
  }

  free(): void {
    for (const h of this.heads.values()) {
      h.buf.free()
      this.heap.release(h.table)
    }
    this.heads.clear()
  }
}
