import type { Heap } from '../heap.js'
import type { KernelBackend } from '../backend.js'
import { floatToHalf, halfToFloat } from '../half.js'

/** The kernel methods of a backend, without its name and heap. */
export type Kernels = Omit<KernelBackend, 'name' | 'heap'>

/**
 * Plain TypeScript twins of the wasm kernels: the obviously-right version the tests compare against.
 * They read and write the same arena memory through the same pointers (page tables included), so a test
 * can run both on identical inputs. Written for clarity, not speed: one element at a time, float64
 * arithmetic where JavaScript gives it for free.
 */
export function referenceKernels(heap: Heap): Kernels {
  /** float index (not byte) of row i of a paged [n][d] stream */
  const row = (table: number, pageTokens: number, d: number, i: number): number => {
    const page = heap.I32[(table >>> 2) + Math.floor(i / pageTokens)]
    return (page >>> 2) + (i % pageTokens) * d
  }
  /** half index (not byte) of row i of a paged [n][d] float16 stream */
  const row16 = (table: number, pageTokens: number, d: number, i: number): number => {
    const page = heap.I32[(table >>> 2) + Math.floor(i / pageTokens)]
    return (page >>> 1) + (i % pageTokens) * d
  }
  const dot = (a: number, b: number, d: number): number => {
    const F = heap.F32
    let s = 0
    for (let c = 0; c < d; c++) s += F[a + c] * F[b + c]
    return s
  }
  const rowMax = (x: number, n: number): number => {
    const F = heap.F32
    let m = -Infinity
    for (let i = 0; i < n; i++) m = Math.max(m, F[x + i])
    return m
  }

  /** compactRows: row keep[j] copied onto row j wherever they differ, one row at a time */
  const compactStream = (table: number, pageTokens: number, rowBytes: number, keep: number, nKeep: number): number => {
    const I = heap.I32
    const at = (i: number) => I[(table >>> 2) + Math.floor(i / pageTokens)] + (i % pageTokens) * rowBytes
    let moved = 0
    for (let j = 0; j < nKeep; j++) {
      const s = I[(keep >>> 2) + j]
      if (s === j) continue
      heap.U8.copyWithin(at(j), at(s), at(s) + rowBytes)
      moved++
    }
    return moved
  }

  return {
    scoreKeys(q, qHeads, d, table, pageTokens, n, scale, out) {
      const F = heap.F32
      for (let h = 0; h < qHeads; h++) {
        for (let i = 0; i < n; i++) {
          F[(out >>> 2) + h * n + i] = scale * dot((q >>> 2) + h * d, row(table, pageTokens, d, i), d)
        }
      }
    },

    scoreKeysF16(q, qHeads, d, table, pageTokens, n, scale, out) {
      const F = heap.F32
      const H = heap.U16
      for (let h = 0; h < qHeads; h++) {
        for (let i = 0; i < n; i++) {
          const k = row16(table, pageTokens, d, i)
          let s = 0
          for (let c = 0; c < d; c++) s += F[(q >>> 2) + h * d + c] * halfToFloat(H[k + c])
          F[(out >>> 2) + h * n + i] = scale * s
        }
      }
    },

    softmaxRows(x, rows, n) {
      const F = heap.F32
      for (let r = 0; r < rows; r++) {
        const base = (x >>> 2) + r * n
        const m = rowMax(base, n)
        // a row with nothing attendable (all -inf) becomes all zeros rather than NaN
        if (m === -Infinity) {
          for (let i = 0; i < n; i++) F[base + i] = 0
          continue
        }
        let s = 0
        for (let i = 0; i < n; i++) s += Math.exp(F[base + i] - m)
        for (let i = 0; i < n; i++) F[base + i] = Math.exp(F[base + i] - m) / s
      }
    },

    logSumExp(x, n) {
      const F = heap.F32
      const m = rowMax(x >>> 2, n)
      if (m === -Infinity || m === Infinity) return m
      let s = 0
      for (let i = 0; i < n; i++) s += Math.exp(F[(x >>> 2) + i] - m)
      return m + Math.log(s)
    },

    softVote(x, rows, n, out) {
      const F = heap.F32
      for (let i = 0; i < n; i++) F[(out >>> 2) + i] = 0
      for (let r = 0; r < rows; r++) {
        const base = (x >>> 2) + r * n
        const m = rowMax(base, n)
        if (m === -Infinity) continue
        let s = 0
        for (let i = 0; i < n; i++) s += Math.exp(F[base + i] - m)
        for (let i = 0; i < n; i++) F[(out >>> 2) + i] += Math.exp(F[base + i] - m) / s
      }
    },

    columnMax(x, rows, n, from, count, rowNorm, colWeight, out) {
      const F = heap.F32
      for (let r = 0; r < rows; r++) {
        const rs = rowNorm ? 1 / F[(rowNorm >>> 2) + r] : 1
        for (let c = 0; c < count; c++) {
          const v = F[(x >>> 2) + r * n + from + c] * rs * (colWeight ? F[(colWeight >>> 2) + c] : 1)
          if (v > F[(out >>> 2) + c]) F[(out >>> 2) + c] = v
        }
      }
    },

    topK(x, n, k, outIdx, _scratch) {
      const v = heap.f32(x, n)
      // rank: larger first; NaN below every number; -0 equals +0 (=== says so); ties to the lower index
      const rank = (a: number, b: number): number => {
        const na = Number.isNaN(v[a])
        const nb = Number.isNaN(v[b])
        if (na !== nb) return na ? 1 : -1
        if (!na && v[a] !== v[b]) return v[a] > v[b] ? -1 : 1
        return a - b
      }
      const order = Array.from({ length: n }, (_, i) => i).sort(rank)
      const chosen = order.slice(0, k).sort((a, b) => a - b)
      heap.i32(outIdx, k).set(chosen)
    },

    maxPool1d(x, n, kernel, out) {
      const F = heap.F32
      const r = kernel >> 1
      for (let i = 0; i < n; i++) {
        let m = -Infinity
        for (let j = Math.max(0, i - r); j <= Math.min(n - 1, i + r); j++) m = Math.max(m, F[(x >>> 2) + j])
        F[(out >>> 2) + i] = m
      }
    },

    avgPool1d(x, n, kernel, out) {
      const F = heap.F32
      const r = kernel >> 1
      for (let i = 0; i < n; i++) {
        let s = 0
        for (let j = Math.max(0, i - r); j <= Math.min(n - 1, i + r); j++) s += F[(x >>> 2) + j]
        F[(out >>> 2) + i] = s / kernel // padding counts as zeros in the divisor (count_include_pad)
      }
    },

    attend(q, qHeads, d, kTable, vTable, pageTokens, n, idx, nIdx, scale, out, lse) {
      const F = heap.F32
      const tokens = idx === 0 ? Array.from({ length: n }, (_, i) => i) : Array.from(heap.i32(idx, nIdx))
      for (let h = 0; h < qHeads; h++) {
        const s = tokens.map((t) => scale * dot((q >>> 2) + h * d, row(kTable, pageTokens, d, t), d))
        const m = Math.max(...s)
        const p = s.map((x) => Math.exp(x - m))
        const sum = p.reduce((a, b) => a + b, 0)
        for (let c = 0; c < d; c++) {
          let acc = 0
          for (let j = 0; j < tokens.length; j++) acc += p[j] * F[row(vTable, pageTokens, d, tokens[j]) + c]
          F[(out >>> 2) + h * d + c] = acc / sum
        }
        F[(lse >>> 2) + h] = m + Math.log(sum)
      }
    },

    pageMinMax(table, pageTokens, n, d, page, outMin, outMax) {
      const F = heap.F32
      const pages = Math.ceil(n / page)
      for (let p = 0; p < pages; p++) {
        for (let c = 0; c < d; c++) {
          let lo = Infinity
          let hi = -Infinity
          for (let i = p * page; i < Math.min(n, (p + 1) * page); i++) {
            const v = F[row(table, pageTokens, d, i) + c]
            lo = Math.min(lo, v)
            hi = Math.max(hi, v)
          }
          F[(outMin >>> 2) + p * d + c] = lo
          F[(outMax >>> 2) + p * d + c] = hi
        }
      }
    },

    chunkMeans(table, pageTokens, n, d, chunk, out) {
      const F = heap.F32
      const chunks = Math.ceil(n / chunk)
      for (let p = 0; p < chunks; p++) {
        const end = Math.min(n, (p + 1) * chunk)
        for (let c = 0; c < d; c++) {
          let s = 0
          for (let i = p * chunk; i < end; i++) s += F[row(table, pageTokens, d, i) + c]
          F[(out >>> 2) + p * d + c] = s / (end - p * chunk)
        }
      }
    },

    copyBytes(dst, src, n) {
      heap.U8.copyWithin(dst, src, src + n)
    },

    compactRows: compactStream,

    // the two streams one after the other: row by row each is compactRows, and they share no page
    compactRowsKV(kTable, vTable, pageTokens, kRowBytes, vRowBytes, keep, nKeep) {
      const moved = compactStream(kTable, pageTokens, kRowBytes, keep, nKeep)
      compactStream(vTable, pageTokens, vRowBytes, keep, nKeep)
      return moved
    },

    moveRows(table, pageTokens, rowBytes, pairs, count) {
      const I = heap.I32
      const at = (i: number) => I[(table >>> 2) + Math.floor(i / pageTokens)] + (i % pageTokens) * rowBytes
      for (let i = 0; i < count; i++) {
        const dst = I[(pairs >>> 2) + 2 * i]
        const src = I[(pairs >>> 2) + 2 * i + 1]
        heap.U8.copyWithin(at(dst), at(src), at(src) + rowBytes)
      }
    },

    gatherChannels(src, dst, pageTokens, d, channels, nch, rows) {
      const F = heap.F32
      const I = heap.I32
      for (let i = 0; i < rows; i++) {
        const s = row(src, pageTokens, d, i)
        const t = row(dst, pageTokens, nch, i)
        for (let c = 0; c < nch; c++) F[t + c] = F[s + I[(channels >>> 2) + c]]
      }
    },

    gatherChannelsF16(src, dst, pageTokens, d, channels, nch, rows) {
      const H = heap.U16
      const I = heap.I32
      for (let i = 0; i < rows; i++) {
        const s = row16(src, pageTokens, d, i)
        const t = row16(dst, pageTokens, nch, i)
        for (let c = 0; c < nch; c++) H[t + c] = H[s + I[(channels >>> 2) + c]]
      }
    },

    toFloat16(src, dst, n) {
      const F = heap.F32
      const H = heap.U16
      let nan = 0
      for (let i = 0; i < n; i++) {
        const x = F[(src >>> 2) + i]
        if (Number.isNaN(x)) nan++
        H[(dst >>> 1) + i] = floatToHalf(x)
      }
      return nan
    },

    fromFloat16(src, dst, n) {
      const F = heap.F32
      const H = heap.U16
      for (let i = 0; i < n; i++) F[(dst >>> 2) + i] = halfToFloat(H[(src >>> 1) + i])
    },
  }
}
