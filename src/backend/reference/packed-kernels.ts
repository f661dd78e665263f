import type { Heap } from '../heap.js'
import type { PackedKernels } from '../backend.js'
import { checkKeyGroup, packedLayout, type PackedLayout, type PageFormat } from '../../cache/formats.js'
import { unpackKeyRow, unpackValueRow } from '../../cache/packing.js'

/**
 * the page format of a kernel bits code (formats.ts kernelBits): int of `bits` bits, 0 ternary. hi > 0 (the
 * ABI 1.5 mixed keys, signs with a (scale, min) each) is refused: the store writes int2+sign pages with a
 * scale alone a sign group, which scoreSignKeys and attendSign read.
 */
export function intFormat(bits: number, hi = 0): PageFormat {
  if (hi !== 0) throw new RangeError(`packed kernels' twins: hi = ${hi}; int2+sign pages are read by scoreSignKeys and attendSign`)
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
  /** n rows of a paged stream read back as floats through `lay` */
  const rowsOf = (lay: PackedLayout, table: number, n: number, unpack: typeof unpackKeyRow): Float32Array => {
    const x = new Float32Array(n * lay.width)
    for (let i = 0; i < n; i++) {
      const p = page(table, lay.pageTokens, i)
      unpack(p.bytes, lay, p.row, x, i * lay.width)
    }
    return x
  }
  const keyLayout = (pageTokens: number, d: number, bits: number, hi: number, group = 32) => packedLayout(intFormat(bits, hi), 'key', pageTokens, d, checkKeyGroup(group, 'packed kernels\' twins: group', RangeError))
  const signLayout = (pageTokens: number, d: number, hi: number, group: number) => packedLayout('int2+sign', 'key', pageTokens, d, group, hi)
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
  const attend = (q: number, rows: number, d: number, vd: number, k: Float32Array, v: Float32Array, n: number, scale: number, out: number, outStride: number, lse: number) => {
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
  }
  const store = (out: number, n: number) => (h: number, i: number, s: number) => (heap.F32[(out >>> 2) + h * n + i] = s)
  return {
    scorePackedKeys(q, qHeads, d, table, pageTokens, n, bits, hi, scale, out, _scratch, group) {
      score(q, qHeads, d, rowsOf(keyLayout(pageTokens, d, bits, hi, group), table, n, unpackKeyRow), n, scale, store(out, n))
    },
    attendPacked(q, rows, d, vd, kTable, vTable, pageTokens, n, kBits, kHi, vBits, scale, out, outStride, lse, _scratch, group, vGroup = 32) {
      const k = rowsOf(keyLayout(pageTokens, d, kBits, kHi, group), kTable, n, unpackKeyRow)
      const v = rowsOf(packedLayout(intFormat(vBits), 'value', pageTokens, vd, checkKeyGroup(vGroup, 'packed kernels\' twins: vGroup', RangeError)), vTable, n, unpackValueRow)
      attend(q, rows, d, vd, k, v, n, scale, out, outStride, lse)
    },
    scoreSignKeys(q, qHeads, d, table, pageTokens, n, hi, group, scale, out) {
      score(q, qHeads, d, rowsOf(signLayout(pageTokens, d, hi, group), table, n, unpackKeyRow), n, scale, store(out, n))
    },
    attendSign(q, rows, d, vd, kTable, vTable, pageTokens, n, kHi, group, vBits, vGroup, scale, out, outStride, lse) {
      const k = rowsOf(signLayout(pageTokens, d, kHi, group), kTable, n, unpackKeyRow)
      const v = rowsOf(packedLayout(intFormat(vBits), 'value', pageTokens, vd, vGroup), vTable, n, unpackValueRow)
      attend(q, rows, d, vd, k, v, n, scale, out, outStride, lse)
    },
  }
}
