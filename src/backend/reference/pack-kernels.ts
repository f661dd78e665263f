import type { Heap } from '../heap.js'
import type { KernelBackend } from '../backend.js'
import { packedLayout } from '../../cache/formats.js'
import { packKeyGroup, packValueRow } from '../../cache/packing.js'
import { intFormat } from './packed-kernels.js'
import { PACKABLE_MAX } from '../../cache/half.js'

/** The packing kernels (KernelBackend.packKeys, packSignKeys, packValues) and their precondition check */
export type PackKernels = Required<Pick<KernelBackend, 'packKeys' | 'packSignKeys' | 'packValues' | 'firstUnpackable'>>

/**
 * The plain TypeScript twins of the packing kernels (assembly/kernels/packed-quantize.ts): each group
 * through src/cache/packing.ts's quantizeGroup and quantizeSignGroup, page by page through the table.
 * The kernels must write the same bytes. Arguments as KernelBackend.packKeys says.
 */
export function referencePackKernels(heap: Heap): PackKernels {
  /** page of slot `row` of a paged stream, as bytes, and the slot inside it */
  const page = (table: number, pageTokens: number, row: number, bytes: number) => {
    const ptr = heap.I32[(table >>> 2) + Math.floor(row / pageTokens)]
    return { bytes: heap.U8.subarray(ptr, ptr + bytes), slot: row % pageTokens }
  }
  const keys = (x: number, n: number, d: number, table: number, pageTokens: number, row0: number, lay: ReturnType<typeof packedLayout>) => {
    for (let t = 0; t < n; t += lay.group) {
      const p = page(table, pageTokens, row0 + t, lay.bytes)
      packKeyGroup(heap.F32, (x >>> 2) + t * d, d, Math.min(lay.group, n - t), lay, p.bytes, p.slot)
    }
  }
  return {
    packKeys(x, n, d, table, pageTokens, row0, bits, group) {
      keys(x, n, d, table, pageTokens, row0, packedLayout(intFormat(bits), 'key', pageTokens, d, group))
    },
    packSignKeys(x, n, d, table, pageTokens, row0, hi, group) {
      keys(x, n, d, table, pageTokens, row0, packedLayout('int2+sign', 'key', pageTokens, d, group, hi))
    },
    packValues(x, n, vd, table, pageTokens, row0, bits, vGroup) {
      const lay = packedLayout(intFormat(bits), 'value', pageTokens, vd, vGroup)
      for (let t = 0; t < n; t++) {
        const p = page(table, pageTokens, row0 + t, lay.bytes)
        packValueRow(heap.F32, (x >>> 2) + t * vd, lay, p.bytes, p.slot)
      }
    },
    firstUnpackable(x, n) {
      const F = heap.F32
      for (let i = 0; i < n; i++) if (!(Math.abs(F[(x >>> 2) + i]) <= PACKABLE_MAX)) return i
      return n
    },
  }
}
