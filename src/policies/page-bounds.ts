/**
 * Per-page key bounds for page-level selection (Quest's kmax/kmin, MPCache's cluster bounds): per (layer,
 * KV head), one row of 2d floats per page of `page` slots, [kmax_0..kmax_{d-1}, kmin_0..kmin_{d-1}], in an
 * arena buffer kept up to date as tokens arrive (only the new rows are folded in), rebuilt by the
 * pageMinMax kernel when a decision moved slots.
 *
 * The row layout turns Quest's page score into one dot product, so the scoring kernel serves it:
 * sum_c max(q_c kmax_c, q_c kmin_c) = [max(q, 0) | min(q, 0)] . [kmax | kmin], as kmax >= kmin.
 */
import type { F32Buf, Heap } from '../backend/heap.js'
import type { HeadView } from '../cache/types.js'
import { keyView } from './selection.js'
import type { PolicyContext } from './types.js'

interface HeadBounds {
  buf: F32Buf
  /** page rows the buffer holds room for */
  capacity: number
  /** slots folded in so far */
  n: number
  /** a one-entry page table over buf (pageTokens = capacity) */
  table: number
}

export class PageBounds {
  private heads = new Map<number, HeadBounds>()

  constructor(
    private readonly heap: Heap,
    readonly page: number,
  ) {}

  /** every head's bounds are rebuilt at next use (slots moved) */
  invalidate(): void {
    for (const h of this.heads.values()) h.n = -1
  }

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
      h = { buf, capacity, n: h?.n ?? -1, table }
      this.heads.set(key, h)
    }
    this.heap.I32[h.table >> 2] = h.buf.ptr
    if (h.n < 0 || h.n > n) this.rebuild(ctx, layer, head, h, n)
    else if (h.n < n) this.fold(ctx, layer, head, h, n)
    return { kTable: h.table, vTable: h.table, pageTokens: h.capacity, n: pages, d: 2 * d }
  }

  private rebuild(ctx: PolicyContext, layer: number, head: number, h: HeadBounds, n: number): void {
    const d = ctx.model.headDim
    const pages = Math.ceil(n / this.page)
    h.n = n
    if (pages === 0) return
    const lo = this.heap.allocF32(pages * d)
    const hi = this.heap.allocF32(pages * d)
    const kv = keyView(ctx, layer, head)
    try {
      ctx.ops.pageMinMax(kv.view, this.page, lo, hi)
      const out = h.buf.view
      const L = lo.view
      const H = hi.view
      for (let p = 0; p < pages; p++) {
        out.set(H.subarray(p * d, (p + 1) * d), p * 2 * d)
        out.set(L.subarray(p * d, (p + 1) * d), p * 2 * d + d)
      }
    } finally {
      kv.done()
      hi.free()
      lo.free()
    }
  }

  /**
   * folds slots h.n..n-1 into their pages' bounds, reading the rows in place: new tokens land in the
   * arena's append segment even when the older pages sit in the host tier
   */
  private fold(ctx: PolicyContext, layer: number, head: number, h: HeadBounds, n: number): void {
    const d = ctx.model.headDim
    const s = ctx.cache.segments(layer, head).find((x) => h.n >= x.start && n <= x.start + x.n)
    if (!s || s.tier !== 'wasm' || s.format !== 'float32' || s.channels !== null) return this.rebuild(ctx, layer, head, h, n)
    const { kTable, pageTokens, start } = s
    const F = this.heap.F32
    const I = this.heap.I32
    const out = h.buf.ptr >> 2
    for (let i = h.n; i < n; i++) {
      const r = i - start
      const row = (I[(kTable >> 2) + Math.floor(r / pageTokens)] >> 2) + (r % pageTokens) * d
      const at = out + Math.floor(i / this.page) * 2 * d
      const fresh = i % this.page === 0
      for (let c = 0; c < d; c++) {
        const v = F[row + c]
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
