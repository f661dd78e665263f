import type { Heap } from '../heap.js'
import type { Kernels } from '../reference/kernels.js'
import type { KvkitExports } from './load.js'
import { checkKeyGroup } from '../../cache/formats.js'

/**
 * The wasm kernels bound straight to the module's exports: pointers and sizes go in as numbers, nothing
 * is copied (unlike @assemblyscript/loader, which marshals arrays). Shapes are checked by Ops before.
 */
export function wasmKernels(e: KvkitExports, _heap: Heap): Kernels {
  return {
    scoreKeys: e.scoreKeys,
    scoreKeysF16: e.scoreKeysF16,
    softmaxRows: e.softmaxRows,
    logSumExp: e.logSumExp,
    softVote: e.softVote,
    columnMax: e.columnMax,
    topK: e.topK,
    maxPool1d: e.maxPool1d,
    avgPool1d: e.avgPool1d,
    attend: e.attend,
    pageMinMax: e.pageMinMax,
    chunkMeans: e.chunkMeans,
    copyBytes: e.copyBytes,
    compactRows: e.compactRows,
    compactRowsKV: e.compactRowsKV,
    gatherChannels: e.gatherChannels,
    moveRows: e.moveRows,
    // the mixed exports (ABI 1.5) take int2+sign keys and ternary values besides the 1.4 ones' formats;
    // key groups of 64 and 128 tokens go to the ABI 1.15 exports (KIVI's group_size)
    scorePackedKeys(q, qHeads, d, table, pageTokens, n, bits, hi, scale, out, scratch, group = 32) {
      if (group === 32) return e.scorePackedKeysMixed(q, qHeads, d, table, pageTokens, n, bits, hi, scale, out, scratch)
      groupOnly(group, hi, 'scorePackedKeys')
      e.scorePackedKeysGroupStrided(q, qHeads, d, table, pageTokens, n, bits, group, scale, out, n, scratch)
    },
    attendPacked(q, rows, d, vd, kTable, vTable, pageTokens, n, kBits, kHi, vBits, scale, out, outStride, lse, scratch, group = 32, vGroup = 32) {
      if (group === 32 && vGroup === 32) return e.attendPackedMixed(q, rows, d, vd, kTable, vTable, pageTokens, n, kBits, kHi, vBits, scale, out, outStride, lse, scratch)
      groupOnly(group, kHi, 'attendPacked')
      checkKeyGroup(vGroup, 'attendPacked: vGroup', RangeError)
      e.attendPackedGroup(q, rows, d, vd, kTable, vTable, pageTokens, n, kBits, group, vBits, vGroup, scale, out, outStride, lse, scratch)
    },
    // VidKV's int2+sign keys with a scale alone a sign group, in token groups of 32, 64 or 128 (ABI 1.6)
    scoreSignKeys: e.scoreSignKeys,
    attendSign: e.attendSign,
    // integer dot products on int4/2/1 keys (ABI 1.7): selection's scoring, within a stated bound
    scorePackedKeysInt(q, qHeads, d, table, pageTokens, n, bits, scale, out, scratch, group = 32) {
      if (group === 32) return e.scorePackedKeysInt(q, qHeads, d, table, pageTokens, n, bits, scale, out, scratch)
      groupOnly(group, 0, 'scorePackedKeysInt')
      e.scorePackedKeysIntGroupStrided(q, qHeads, d, table, pageTokens, n, bits, group, scale, out, n, scratch)
    },
    packedIntDotAdd: e.packedIntDotAdd,
    // a selection's packed rows read back as float32 (ABI 1.9): the store's fetch of selected KIVI rows
    getPackedKeyRows(table, pageTokens, idx, nIdx, d, bits, out, scratch, group = 32) {
      if (group === 32) return e.getPackedKeyRows(table, pageTokens, idx, nIdx, d, bits, out, scratch)
      groupOnly(group, 0, 'getPackedKeyRows')
      e.getPackedKeyRowsGroup(table, pageTokens, idx, nIdx, d, bits, group, out, scratch)
    },
    getSignKeyRows: e.getSignKeyRows,
    getPackedValueRows: e.getPackedValueRows,
    // float32 rows quantized into KIVI / VidKV pages (the store's packing; bytes equal packing.ts's)
    packKeys: e.packKeys,
    packSignKeys: e.packSignKeys,
    packValues: e.packValues,
    firstUnpackable: e.firstUnpackable,
    gatherChannelsF16: e.gatherChannelsF16,
    toFloat16: e.toFloat16,
    fromFloat16: e.fromFloat16,
  }
}

/** a key group the ABI 1.15 exports read (64, 128; 32 goes to the older ones), and only for plain int keys */
function groupOnly(group: number, hi: number, what: string): void {
  checkKeyGroup(group, `${what}: group`, RangeError)
  if (hi !== 0) throw new RangeError(`${what}: key groups of ${group} take int keys alone (hi 0), got hi ${hi}`)
}
