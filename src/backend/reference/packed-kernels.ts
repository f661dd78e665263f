import type { Heap } from '../heap.js'
import type { PackedKernels } from '../backend.js'
import { packedLayout, type PageFormat } from '../../cache/formats.js'
import { unpackKeyRow, unpackValueRow } from '../../cache/packing.js'

/** the page format of a kernel bits code (formats.ts kernelBits): int of `bits` bits, 0 ternary, hi > 0 int2+sign */
export function intFormat(bits: number, hi = 0): PageFormat {
  if (hi > 0 && bits === 1) return 'int2+sign'
  if (bits === 0) return 'ternary'
  if (bits === 8) return 'int8'
  if (bits === 4) return 'int4'
  if (bits === 2) return 'int2'
  if (bits === 1) return 'int1'
  throw new RangeError(`packed kernels read 8, 4, 2 or 1 bit codes or ternary (0), got ${bits}`)
}

/**
 * The plain TypeScript twins of the fused packed kernels: dequantize each row to float32 (packing.ts),
 * then score and attend as the float kernels' twins do (float64 sums). The fused kernels must equal
 * these within float32 rounding.
 */
export function referencePackedKernels(heap: Heap): PackedKernels {
  const page = (table: number, pageTokens: number, i: number) => {
    const ptr = heap.I32[(table >>> 2) + Math.floor(i / pageTokens)]
    return { bytes: heap.U8.subarray(ptr), row: i % pageTokens }
  }
  const keys = (table: number, pageTokens: number, n: number, d: number, bits: number, hi: number): Float32Array => {
    const lay = packedLayout(intFormat(bits, hi), 'key', pageTokens, d, undefined, hi)
    const k = new Float32Array(n * d)
    for (let i = 0; i < n; i++) {
      const p = page(table, pageTokens, i)
      unpackKeyRow(p.bytes, lay, p.row, k, i * d)
    }
    return k
  }
  const score = (q: number, qHeads: number, d: number, k: Float32Array, n: number, scale: number, out: (h: number, i: number, s: number) => void) => {
    const F = heap.F32
    for (let h = 0; h < qHeads; h++) {
      for (let i = 0; i < n; i++) {
        let s = 0
        for (let c = 0; c < d; c++) s += F[(q >>> 2) + h * d + c] * k[i * d + c]
        out(h, i, scale * s)
      }
    }
  }
  return {
    scorePackedKeys(q, qHeads, d, table, pageTokens, n, bits, hi, scale, out) {
      const k = keys(table, pageTokens, n, d, bits, hi)
      score(q, qHeads, d, k, n, scale, (h, i, s) => (heap.F32[(out >>> 2) + h * n + i] = s))
    },
    attendPacked(q, rows, d, vd, kTable, vTable, pageTokens, n, kBits, kHi, vBits, scale, out, outStride, lse) {
      const k = keys(kTable, pageTokens, n, d, kBits, kHi)
      const vLay = packedLayout(intFormat(vBits), 'value', pageTokens, vd)
      const v = new Float32Array(n * vd)
      for (let i = 0; i < n; i++) {
        const p = page(vTable, pageTokens, i)
        unpackValueRow(p.bytes, vLay, p.row, v, i * vd)
      }
      const s = new Float64Array(rows * n)
      score(q, rows, d, k, n, scale, (h, i, x) => (s[h * n + i] = Math.fround(x)))
      const F = heap.F32
      for (let r = 0; r < rows; r++) {
        let m = -Infinity
        for (let i = 0; i < n; i++) m = Math.max(m, s[r * n + i])
        let sum = 0
        for (let i = 0; i < n; i++) sum += s[r * n + i] = Math.exp(s[r * n + i] - m)
        for (let c = 0; c < vd; c++) {
          let acc = 0
          for (let i = 0; i < n; i++) acc += s[r * n + i] * v[i * vd + c]
          F[(out >>> 2) + r * outStride + c] = acc / sum
        }
        if (lse) F[(lse >>> 2) + r] = m + Math.log(sum)
      }
    },
  }
}
