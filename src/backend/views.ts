import type { HeadView } from '../cache/types.js'
import type { F32Buf } from './heap.js'
import { ShapeError } from './ops.js'

/** A HeadView that owns its page tables: free() releases them (never the key/value buffers). */
export interface OwnedHeadView extends HeadView {
  free(): void
}

/**
 * A HeadView over contiguous [n][d] keys and values (values default to the keys, for scoring-only use):
 * each table is one entry pointing at the whole buffer, with pageTokens = n. Lets callers run the paged
 * kernels on plain arrays, e.g. observation-window queries or test inputs.
 */
export function contiguousView(keys: F32Buf, n: number, d: number, values: F32Buf = keys): OwnedHeadView {
  if (!Number.isInteger(n) || n < 0) throw new ShapeError(`contiguousView: n must be a non-negative integer, got ${n}`)
  if (!Number.isInteger(d) || d <= 0) throw new ShapeError(`contiguousView: d must be a positive integer, got ${d}`)
  if (keys.length < n * d) throw new ShapeError(`contiguousView: keys hold ${keys.length} floats, need n*d = ${n * d}`)
  if (values.length < n * d) throw new ShapeError(`contiguousView: values hold ${values.length} floats, need n*d = ${n * d}`)
  if (values.heap !== keys.heap) throw new ShapeError('contiguousView: keys and values live in different heaps')
  const heap = keys.heap
  const tables = heap.alloc(8)
  heap.I32[tables >>> 2] = keys.ptr
  heap.I32[(tables >>> 2) + 1] = values.ptr
  let freed = false
  return {
    kTable: tables,
    vTable: tables + 4,
    pageTokens: Math.max(n, 1),
    n,
    d,
    free() {
      if (freed) return
      freed = true
      heap.release(tables)
    },
  }
}
