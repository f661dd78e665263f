import { packedIntScratch, type Backend } from './backend.js'
import { checkKeyGroup, formatInfo } from '../cache/formats.js'
import { packedKernels } from '../cache/attention.js'
import type { F32Buf, Heap, I32Buf } from './heap.js'
import type { HeadView } from '../cache/types.js'

/** A wrong shape, size or argument, found before any kernel runs. */
export class ShapeError extends Error {
  override name = 'ShapeError'
}

function need(cond: boolean, msg: string): void {
  if (!cond) throw new ShapeError(msg)
}
function posInt(x: number, what: string): void {
  need(Number.isInteger(x) && x > 0, `${what} must be a positive integer, got ${x}`)
}
/** kernels that read float32 rows only: a float16 view is refused by name (no silent misread of its bytes) */
function float32Rows(kv: HeadView, what: string): void {
  need((kv.format ?? 'float32') === 'float32', `${what}: reads float32 rows only, got a ${kv.format} view (attend through attendCache or scoreKeys, which read float16 pages)`)
}
function fits(buf: F32Buf | I32Buf, n: number, what: string): void {
  need(buf.length >= n, `${what} holds ${buf.length} elements, needs ${n}`)
}

/**
 * The kernels with their shapes checked: what the cache, the runtime and the policies call.
 * Every check happens before the backend is entered, so bad input never reaches wasm.
 */
export class Ops {
  constructor(readonly backend: Backend) {}

  get heap(): Heap {
    return this.backend.heap
  }

  /**
   * scores [qHeads][n] = scale * q . k over the n keys of a head view. Packed int8/4/2/1 views (KIVI's
   * pages) are scored on their codes: int4/2/1 keys with integer dot products (scorePackedKeysInt, within
   * the bound it states, far below the keys' own quantization error: for ranking keys), unless
   * `exact` asks for the fused float kernel (dequantize-then-float32 within float32 rounding).
   * int2+sign views are refused: their keys live in a basis the query must be moved into first
   * (attendCache does that).
   */
  scoreKeys(q: F32Buf, qHeads: number, kv: HeadView, scale: number, out: F32Buf, opts: { exact?: boolean } = {}): void {
    posInt(qHeads, 'scoreKeys: qHeads')
    posInt(kv.d, 'scoreKeys: d')
    fits(q, qHeads * kv.d, 'scoreKeys: q')
    fits(out, qHeads * kv.n, 'scoreKeys: out')
    need(Number.isFinite(scale), `scoreKeys: scale must be finite, got ${scale}`)
    if (kv.n === 0) return
    const format = kv.format ?? 'float32'
    if (format === 'float16') this.backend.scoreKeysF16(q.ptr, qHeads, kv.d, kv.kTable, kv.pageTokens, kv.n, scale, out.ptr)
    else if (format === 'float32') this.backend.scoreKeys(q.ptr, qHeads, kv.d, kv.kTable, kv.pageTokens, kv.n, scale, out.ptr)
    else if (format === 'int8' || format === 'int4' || format === 'int2' || format === 'int1') this.scorePacked(q, qHeads, kv, scale, out, opts.exact === true)
    else throw new ShapeError(`scoreKeys: the kernels of this build do not read ${format} pages`)
  }

  private scorePacked(q: F32Buf, qHeads: number, kv: HeadView, scale: number, out: F32Buf, exact: boolean): void {
    // the view's key group (KIVI's group_size): 32 unless the segment says 64 or 128
    const group = checkKeyGroup(kv.group ?? 32, 'scoreKeys: group', ShapeError)
    need(kv.pageTokens % group === 0, `scoreKeys: packed pages hold a multiple of the key group (${group}) tokens, got pageTokens ${kv.pageTokens}`)
    const bits = formatInfo(kv.format!).bits
    const int = !exact && bits <= 4 && kv.d % 4 === 0 ? this.backend.scorePackedKeysInt : undefined
    const kernels = packedKernels(this.backend)
    const scratch = this.heap.allocF32(int ? packedIntScratch(qHeads, kv.d, group) : qHeads * (kv.d + 1))
    try {
      if (int) int(q.ptr, qHeads, kv.d, kv.kTable, kv.pageTokens, kv.n, bits, scale, out.ptr, scratch.ptr, group)
      else kernels.scorePackedKeys(q.ptr, qHeads, kv.d, kv.kTable, kv.pageTokens, kv.n, bits, 0, scale, out.ptr, scratch.ptr, group)
    } finally {
      scratch.free()
    }
  }

  softmaxRows(x: F32Buf, rows: number, n: number): void {
    posInt(rows, 'softmaxRows: rows')
    posInt(n, 'softmaxRows: n')
    fits(x, rows * n, 'softmaxRows: x')
    this.backend.softmaxRows(x.ptr, rows, n)
  }

  logSumExp(x: F32Buf, n = x.length): number {
    posInt(n, 'logSumExp: n')
    fits(x, n, 'logSumExp: x')
    return this.backend.logSumExp(x.ptr, n)
  }

  /**
   * KVzip's score update: out[c] = max(out[c], max over rows r of x[r][from + c]) for c < count, each
   * value first taken as (x * (1 / rowNorm[r])) * colWeight[c] in float64 where those are given
   * (KVzip+'s normalization, Kim et al. 2025 / kvpress's KVzipPress), rounded to float32 at the store.
   * x [rows][n] (a softmax), rowNorm [rows], colWeight [count], out [count].
   */
  columnMax(x: F32Buf, rows: number, n: number, from: number, count: number, out: F32Buf, opts: { rowNorm?: F32Buf; colWeight?: F32Buf } = {}): void {
    posInt(rows, 'columnMax: rows')
    posInt(n, 'columnMax: n')
    posInt(count, 'columnMax: count')
    need(Number.isInteger(from) && from >= 0 && from + count <= n, `columnMax: columns ${from}..${from + count} are not inside a row of ${n}`)
    fits(x, rows * n, 'columnMax: x')
    fits(out, count, 'columnMax: out')
    if (opts.rowNorm) fits(opts.rowNorm, rows, 'columnMax: rowNorm')
    if (opts.colWeight) fits(opts.colWeight, count, 'columnMax: colWeight')
    this.backend.columnMax(x.ptr, rows, n, from, count, opts.rowNorm?.ptr ?? 0, opts.colWeight?.ptr ?? 0, out.ptr)
  }

  softVote(x: F32Buf, rows: number, n: number, out: F32Buf): void {
    posInt(rows, 'softVote: rows')
    posInt(n, 'softVote: n')
    fits(x, rows * n, 'softVote: x')
    fits(out, n, 'softVote: out')
    this.backend.softVote(x.ptr, rows, n, out.ptr)
  }

  /** indices of the k largest of the first n values, ascending; ties go to the lower index */
  topK(x: F32Buf, n: number, k: number, outIdx: I32Buf, scratch: I32Buf): void {
    posInt(n, 'topK: n')
    need(Number.isInteger(k) && k >= 0 && k <= n, `topK: k must be an integer in [0, ${n}], got ${k}`)
    fits(x, n, 'topK: x')
    fits(outIdx, k, 'topK: outIdx')
    fits(scratch, n, 'topK: scratch')
    if (k === 0) return
    this.backend.topK(x.ptr, n, k, outIdx.ptr, scratch.ptr)
  }

  pool1d(kind: 'max' | 'avg', x: F32Buf, n: number, kernel: number, out: F32Buf): void {
    posInt(n, 'pool1d: n')
    need(Number.isInteger(kernel) && kernel >= 1 && kernel % 2 === 1, `pool1d: kernel must be an odd positive integer, got ${kernel}`)
    fits(x, n, 'pool1d: x')
    fits(out, n, 'pool1d: out')
    need(x.ptr !== out.ptr, 'pool1d: out must not alias x')
    if (kind === 'max') this.backend.maxPool1d(x.ptr, n, kernel, out.ptr)
    else if (kind === 'avg') this.backend.avgPool1d(x.ptr, n, kernel, out.ptr)
    else throw new ShapeError(`pool1d: kind must be 'max' or 'avg', got ${String(kind)}`)
  }

  /**
   * Attention of qHeads query heads over a head view, densely (idx null) or over nIdx gathered slots.
   * Returns nothing; out [qHeads][d], lse [qHeads].
   */
  attend(q: F32Buf, qHeads: number, kv: HeadView, idx: I32Buf | null, nIdx: number, scale: number, out: F32Buf, lse: F32Buf): void {
    float32Rows(kv, 'attend')
    posInt(qHeads, 'attend: qHeads')
    posInt(kv.d, 'attend: d')
    posInt(kv.n, 'attend: n (an empty cache has nothing to attend to)')
    fits(q, qHeads * kv.d, 'attend: q')
    fits(out, qHeads * kv.d, 'attend: out')
    fits(lse, qHeads, 'attend: lse')
    if (idx) {
      posInt(nIdx, 'attend: nIdx')
      fits(idx, nIdx, 'attend: idx')
      const v = idx.view
      for (let i = 0; i < nIdx; i++) {
        const t = v[i]
        if (!(t >= 0 && t < kv.n)) throw new ShapeError(`attend: idx[${i}] = ${t} is outside [0, ${kv.n})`)
      }
    }
    this.backend.attend(q.ptr, qHeads, kv.d, kv.kTable, kv.vTable, kv.pageTokens, kv.n, idx ? idx.ptr : 0, idx ? nIdx : 0, scale, out.ptr, lse.ptr)
  }

  /**
   * Page-gathered decode attention: the tokens of the listed pages of a head view (indices into its page
   * table, in the order given), e.g. the pages a Quest-style policy picked. The kernel is decode attention
   * over a page table holding just those pages, so listing every page in order is dense attention bit for
   * bit, and listing pages equals gathering their tokens in the same order bit for bit. Only the view's
   * last page may be partly filled, so it may only be listed last. tables: 2 x pages.length int32 of
   * scratch for the chosen key and value tables (kernels allocate nothing).
   */
  attendPages(q: F32Buf, qHeads: number, kv: HeadView, pages: Int32Array, scale: number, out: F32Buf, lse: F32Buf, tables: I32Buf): void {
    float32Rows(kv, 'attendPages')
    posInt(qHeads, 'attendPages: qHeads')
    posInt(kv.n, 'attendPages: n (an empty cache has nothing to attend to)')
    posInt(pages.length, 'attendPages: pages.length')
    fits(q, qHeads * kv.d, 'attendPages: q')
    fits(out, qHeads * kv.d, 'attendPages: out')
    fits(lse, qHeads, 'attendPages: lse')
    fits(tables, 2 * pages.length, 'attendPages: tables')
    const count = Math.ceil(kv.n / kv.pageTokens)
    const lastRows = kv.n - (count - 1) * kv.pageTokens
    const I = this.heap.I32
    const kt = tables.ptr >> 2
    const vt = kt + pages.length
    for (let i = 0; i < pages.length; i++) {
      const p = pages[i]
      if (!(Number.isInteger(p) && p >= 0 && p < count)) throw new ShapeError(`attendPages: pages[${i}] = ${p} is outside [0, ${count})`)
      if (p === count - 1 && lastRows < kv.pageTokens && i !== pages.length - 1) {
        throw new ShapeError(`attendPages: pages[${i}] = ${p} is the partly filled last page and must be listed last`)
      }
    }
    for (let i = 0; i < pages.length; i++) {
      I[kt + i] = I[(kv.kTable >> 2) + pages[i]]
      I[vt + i] = I[(kv.vTable >> 2) + pages[i]]
    }
    const last = pages[pages.length - 1]
    const n = (pages.length - 1) * kv.pageTokens + (last === count - 1 ? lastRows : kv.pageTokens)
    this.backend.attend(q.ptr, qHeads, kv.d, kt << 2, vt << 2, kv.pageTokens, n, 0, 0, scale, out.ptr, lse.ptr)
  }

  pageMinMax(kv: HeadView, page: number, outMin: F32Buf, outMax: F32Buf): void {
    float32Rows(kv, 'pageMinMax')
    posInt(page, 'pageMinMax: page')
    const pages = Math.ceil(kv.n / page)
    fits(outMin, pages * kv.d, 'pageMinMax: outMin')
    fits(outMax, pages * kv.d, 'pageMinMax: outMax')
    if (kv.n === 0) return
    this.backend.pageMinMax(kv.kTable, kv.pageTokens, kv.n, kv.d, page, outMin.ptr, outMax.ptr)
  }

  chunkMeans(kv: HeadView, chunk: number, out: F32Buf): void {
    float32Rows(kv, 'chunkMeans')
    posInt(chunk, 'chunkMeans: chunk')
    fits(out, Math.ceil(kv.n / chunk) * kv.d, 'chunkMeans: out')
    if (kv.n === 0) return
    this.backend.chunkMeans(kv.kTable, kv.pageTokens, kv.n, kv.d, chunk, out.ptr)
  }
}
