import type { Heap } from '../heap.js'
import type { Kernels } from '../reference/kernels.js'
import type { KvkitExports } from './load.js'

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
    // the mixed exports (ABI 1.5) take int2+sign keys and ternary values besides the 1.4 ones' formats
    scorePackedKeys: e.scorePackedKeysMixed,
    attendPacked: e.attendPackedMixed,
    // VidKV's int2+sign keys with a scale alone a sign group, in token groups of 32, 64 or 128 (ABI 1.6)
    scoreSignKeys: e.scoreSignKeys,
    attendSign: e.attendSign,
    // integer dot products on int4/2/1 keys (ABI 1.7): selection's scoring, within a stated bound
    scorePackedKeysInt: e.scorePackedKeysInt,
    packedIntDotAdd: e.packedIntDotAdd,
    // a selection's packed rows read back as float32 (ABI 1.9): the store's fetch of selected KIVI rows
    getPackedKeyRows: e.getPackedKeyRows,
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
