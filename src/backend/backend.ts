import type { Heap } from './heap.js'
import type { ModelKernels } from './model-kernels.js'

/**
 * The compute surface every backend implements: the same kernels over the same arena memory.
 * Arguments are byte pointers into `heap` and element counts, exactly as the AssemblyScript exports take
 * them. Nothing here checks shapes: `Ops` (ops.ts) validates sizes against the buffers before calling in,
 * so a wrong shape is a clear error and never a wild read inside wasm.
 *
 * Keys and values are read through a page table so that the paged KV cache needs no copy: `table` points
 * to `ceil(n / pageTokens)` int32 byte pointers, page p holding rows p*pageTokens .. of `d` floats each.
 * A contiguous [n][d] array is a one-entry table with pageTokens >= n.
 */
export interface KernelBackend {
  readonly name: 'wasm' | 'reference' | 'webgpu'
  readonly heap: Heap

  /** out[h*n + i] = scale * (q[h] . k_i) for h < qHeads (query heads that share this KV head), i < n. */
  scoreKeys(q: number, qHeads: number, d: number, table: number, pageTokens: number, n: number, scale: number, out: number): void
  /** scoreKeys over float16 key rows (2 bytes a value), widened inside the kernel: no float32 copy */
  scoreKeysF16(q: number, qHeads: number, d: number, table: number, pageTokens: number, n: number, scale: number, out: number): void

  /** Numerically stable softmax of each of `rows` rows of n floats, in place. A row of all -inf becomes zeros. */
  softmaxRows(x: number, rows: number, n: number): void
  /** log(sum(exp(x_i))) over n floats, stable. */
  logSumExp(x: number, n: number): number
  /** out[i] = sum over rows r of softmax(x[r])[i]: the per-head soft vote. x is left unchanged. */
  softVote(x: number, rows: number, n: number, out: number): void
  /**
   * KVzip's column max (ABI 1.9): out[c] = max(out[c], max over r < rows of x[r*n + from + c]) for
   * c < count; with rowNorm / colWeight nonzero (KVzip+) the value is (x * (1 / rowNorm[r])) * colWeight[c]
   * in float64, rounded to float32 at the store. rowNorm [rows], colWeight [count], out [count] floats.
   */
  columnMax(x: number, rows: number, n: number, from: number, count: number, rowNorm: number, colWeight: number, out: number): void

  /**
   * Indices of the k largest of n floats (ties to the lower index), written ascending to outIdx.
   * -0 and +0 are equal; NaN ranks below every number, -Infinity included (chosen only when fewer than
   * k numbers exist, then by lower index). Exact: radix select on the float bits, O(n).
   * scratch: n int32 of working space (kernels allocate nothing).
   */
  topK(x: number, n: number, k: number, outIdx: number, scratch: number): void

  /** Centered 1-D pooling over positions (odd kernel, stride 1, same length). Max pads with -inf. */
  maxPool1d(x: number, n: number, kernel: number, out: number): void
  /** Average pooling as torch avg_pool1d(padding=kernel>>1, count_include_pad=True): pads count as zeros. */
  avgPool1d(x: number, n: number, kernel: number, out: number): void

  /**
   * Decode attention of qHeads query heads over one KV head, online softmax.
   * idx = 0 attends to all n tokens; otherwise idx points to nIdx int32 token indices (gathered).
   * Writes out[h*d ..] and lse[h] = log-sum-exp of the scaled scores.
   */
  attend(
    q: number, qHeads: number, d: number,
    kTable: number, vTable: number, pageTokens: number, n: number,
    idx: number, nIdx: number, scale: number, out: number, lse: number,
  ): void

  /** Per page of `page` tokens: per-channel min and max of the keys, out [ceil(n/page)][d] each. */
  pageMinMax(table: number, pageTokens: number, n: number, d: number, page: number, outMin: number, outMax: number): void
  /** Per chunk of `chunk` tokens: mean key, out [ceil(n/chunk)][d] (the last chunk averages what it has). */
  chunkMeans(table: number, pageTokens: number, n: number, d: number, chunk: number, out: number): void

  /**
   * The KV store's compaction: in a paged stream of rows of rowBytes, row keep[j] moves to row j wherever
   * keep[j] != j (keep: nKeep int32, strictly ascending). Order-preserving and in place; rows before the
   * first gap do not move. Returns the rows moved.
   */
  compactRows(table: number, pageTokens: number, rowBytes: number, keep: number, nKeep: number): number
  /**
   * compactRows of a head's key and value streams in one pass over keep (ABI 1.6): the same runs moved in
   * both, key rows kRowBytes and value rows vRowBytes, both tables of pageTokens rows. Returns the rows
   * moved in each stream.
   */
  compactRowsKV(kTable: number, vTable: number, pageTokens: number, kRowBytes: number, vRowBytes: number, keep: number, nKeep: number): number
  /**
   * compactRowsKV of several heads at once, in any order: the calls' pages and keep lists must be
   * disjoint (one call a head). The threaded backend runs them as one parallel region, whole calls a
   * thread (a head's compaction is in place and ordered, so one call is never split); absent elsewhere,
   * where the store calls compactRowsKV a head at a time. Each call's rows end exactly as compactRowsKV
   * leaves them.
   */
  compactRowsKVBatch?(calls: readonly CompactCall[]): void
  /** For each of count (dst, src) int32 pairs at `pairs`: row src copied onto row dst (no dst is a later src). */
  moveRows(table: number, pageTokens: number, rowBytes: number, pairs: number, count: number): void
  /** dst row i = src row i's listed channels (nch int32 at `channels`) for rows [0, rows); src rows d floats, dst nch. */
  gatherChannels(src: number, dst: number, pageTokens: number, d: number, channels: number, nch: number, rows: number): void

  /** gatherChannels over float16 rows (src rows d halves, dst rows nch) */
  gatherChannelsF16(src: number, dst: number, pageTokens: number, d: number, channels: number, nch: number, rows: number): void
  /**
   * dst[i] (u16) = float16 bits of the float32 src[i], round to nearest, ties to even, saturating at
   * +-65504 (src/backend/half.ts says why), for i < n. Returns how many src values were NaN.
   */
  toFloat16(src: number, dst: number, n: number): number
  /** dst[i] (f32) = the float16 src[i] widened exactly, for i < n */
  fromFloat16(src: number, dst: number, n: number): void

  /** memory.copy of n bytes: the bandwidth yardstick for the benchmarks. */
  copyBytes(dst: number, src: number, n: number): void

  /** The fused packed-page kernels (PackedKernels); absent on a backend without them (the cache then uses the twins). */
  scorePackedKeys?: PackedKernels['scorePackedKeys']
  attendPacked?: PackedKernels['attendPacked']
  scoreSignKeys?: PackedKernels['scoreSignKeys']
  attendSign?: PackedKernels['attendSign']
  scorePackedKeysInt?: PackedKernels['scorePackedKeysInt']
  packedIntDotAdd?: PackedKernels['packedIntDotAdd']

  /**
   * Packed rows read back as float32 (ggml's get_rows; ABI 1.9): the nIdx rows listed at idx (int32 token
   * indices, any order) written as [nIdx][d] floats at out, each value scale * code + min by one float32
   * multiply and one add, so equal bit for bit to src/cache/packing.ts's unpackKeyRow / unpackValueRow.
   * Keys `bits`-bit (8, 4, 2, 1) in groups of `group` tokens (32 by default, 64, 128); scratch 2 * d
   * floats. Absent on a backend without them (the store then dequantizes in TypeScript).
   */
  getPackedKeyRows?(table: number, pageTokens: number, idx: number, nIdx: number, d: number, bits: number, out: number, scratch: number, group?: number): void
  /** getPackedKeyRows over int2+sign keys (scoreSignKeys' hi, group), left in their stored basis; scratch 2 * d floats */
  getSignKeyRows?(table: number, pageTokens: number, idx: number, nIdx: number, d: number, hi: number, group: number, out: number, scratch: number): void
  /** getPackedKeyRows over values: vBits (0 ternary) in groups of vGroup channels a row, vd channels */
  getPackedValueRows?(table: number, pageTokens: number, idx: number, nIdx: number, vd: number, bits: number, vGroup: number, out: number): void

  /**
   * Float32 rows packed into KIVI pages (Liu et al. 2024, section 3; layout src/cache/formats.ts
   * PackedLayout): n rows x [n][d] at x go to slots row0 .. row0 + n of a paged stream (int32 page
   * pointers at table, pageTokens slots a page). Keys: each channel's token group of `group` (pageTokens
   * and row0 multiples of it; the last group partial when n is not) as `bits`-bit codes (8, 4, 2, 1)
   * with float16 (scale, min). The groups written must be zero (codes are ORed in). Bytes equal
   * src/cache/packing.ts packKeyGroup's (its TypeScript twin). Values must be finite with |x| <= 32752
   * (firstUnpackable, which the caller runs first). Absent on a backend without them (the store
   * then packs in TypeScript).
   */
  packKeys?(x: number, n: number, d: number, table: number, pageTokens: number, row0: number, bits: number, group: number): void
  /** packKeys for VidKV's int2+sign keys (Tao et al. 2025, section 3.2): the first hi channels int2, the rest 1-bit signs with a float16 scale alone */
  packSignKeys?(x: number, n: number, d: number, table: number, pageTokens: number, row0: number, hi: number, group: number): void
  /**
   * packKeys for values: each row in channel groups of vGroup (the last partial when vGroup does not
   * divide d) as `bits`-bit codes with (scale, min), or ternary (bits 0, VidKV section 3.3) with a scale
   * alone; bytes equal packing.ts packValueRow's.
   */
  packValues?(x: number, n: number, vd: number, table: number, pageTokens: number, row0: number, bits: number, vGroup: number): void
  /** the index of the first of n float32 values at x that a packed group cannot hold (NaN, |x| > 32752: packing.ts checkPackable); n if none */
  firstUnpackable?(x: number, n: number): number
}

/** One head's compactRowsKV call (its arguments), for compactRowsKVBatch. */
export interface CompactCall {
  kTable: number
  vTable: number
  pageTokens: number
  kRowBytes: number
  vRowBytes: number
  /** nKeep strictly ascending int32 rows in the arena */
  keep: number
  nKeep: number
  /** rows that move (nKeep less the kept prefix): the call's cost is moved x (kRowBytes + vRowBytes) */
  moved: number
}

/**
 * Kernels over packed KV pages (int8/4/2/1 codes, float16 scale and min per group of 32 tokens, or of
 * `group` = 64 or 128 where a kernel takes one (KIVI's group_size, ABI 1.15); layout in
 * src/cache/formats.ts): the codes meet the query in registers, no float32 copy of the keys or values is
 * made. Page tables as above; pageTokens a multiple of 32 (and of the group).
 */
export interface PackedKernels {
  /**
   * out[h*n + i] = scale * (q[h] . k_i) over n packed keys of d channels with `bits`-bit codes (keys
   * grouped along 32 tokens per channel). hi > 0: ABI 1.5's mixed keys, the first `hi` channels int2
   * and the rest int1, each with a (scale, min); the store's int2+sign pages (signs with a scale alone)
   * go to scoreSignKeys, and the TypeScript twins refuse hi > 0. scratch: qHeads * (d + 1) floats.
   * group: tokens per key group, 32 (the default), 64 or 128 (hi = 0 then); a backend that cannot read
   * a group throws a RangeError naming it before any work.
   */
  scorePackedKeys(q: number, qHeads: number, d: number, table: number, pageTokens: number, n: number, bits: number, hi: number, scale: number, out: number, scratch: number, group?: number): void
  /**
   * scorePackedKeys on int4, int2 or int1 keys (hi = 0, d a multiple of 4) with integer dot products:
   * the query folded with each group's scales is rounded to integers with one step per group and head
   * (assembly/kernels/packed-int.ts). Not exact: |out - exact| <= step / 2 * sum_c code_tc plus float32
   * rounding, step = max_c |q'_c| / intQueryLevels(...). For ranking keys (selection, eviction), where that
   * error is far below the keys' own quantization error. scratch: packedIntScratch(qHeads, d, group)
   * floats; group as scorePackedKeys' (the fold and rounding happen once a group).
   * Absent where the backend has no integer kernel (the twins, WebGPU).
   */
  scorePackedKeysInt?(q: number, qHeads: number, d: number, table: number, pageTokens: number, n: number, bits: number, scale: number, out: number, scratch: number, group?: number): void
  /**
   * 1 when scorePackedKeysInt accumulates with i32x4.relaxed_dot_i8x16_i7x16_add_s on this thread's
   * instance (the relaxed build, on an engine that computes it correctly: checked at its first call),
   * else 0. The sums, and so the scores, are the same either way; the accumulating dot is one VNNI
   * instruction where the engine lowers it so.
   */
  packedIntDotAdd?(): number
  /**
   * softmax(scale q_r . K^T) V for `rows` query rows [rows][d] over n packed tokens (all visible): values
   * vBits-bit (0: ternary, formats.ts kernelBits), grouped along 32 channels per token (a row's last group may be partial); out rows of vd floats at a
   * stride of outStride floats; lse[r] the log-sum-exp of the scaled scores (lse = 0: not written).
   * scratch: packedAttendScratch(rows, d, vd, n) floats. group: the keys' token group as scorePackedKeys'
   * (kHi = 0 unless 32), vGroup the values' channel group (formats.ts valueGroupFor; 32 by default).
   */
  attendPacked(
    q: number, rows: number, d: number, vd: number, kTable: number, vTable: number, pageTokens: number, n: number,
    kBits: number, kHi: number, vBits: number, scale: number, out: number, outStride: number, lse: number, scratch: number,
    group?: number, vGroup?: number,
  ): void
  /**
   * scorePackedKeys over VidKV's int2+sign pages as the store writes them (formats.ts): the first `hi`
   * channels int2 with (scale, min), the rest 1-bit signs with one scale each, in token groups of
   * `group` (32, 64 or 128; pageTokens a multiple of it). scratch: qHeads * (d + 1) floats.
   */
  scoreSignKeys(q: number, qHeads: number, d: number, table: number, pageTokens: number, n: number, hi: number, group: number, scale: number, out: number, scratch: number): void
  /**
   * attendPacked over int2+sign keys (scoreSignKeys' kHi, group) and vBits values (0 ternary) in groups
   * of vGroup channels (formats.ts valueGroupFor). scratch: packedAttendScratch(rows, d, vd, n) floats.
   */
  attendSign(
    q: number, rows: number, d: number, vd: number, kTable: number, vTable: number, pageTokens: number, n: number,
    kHi: number, group: number, vBits: number, vGroup: number, scale: number, out: number, outStride: number, lse: number, scratch: number,
  ): void
}

/**
 * Scratch floats scorePackedKeysInt needs (a token-major tile of a group's codes, the integer and folded
 * queries; for key groups of 64 or 128 the group's interleaved raw bytes too, d * group / 8 floats).
 */
export function packedIntScratch(qHeads: number, d: number, group = 32): number {
  return (qHeads * d) / 2 + 2 * qHeads + 19 * d + 16 + (group > 32 ? (d * group) / 8 : 0)
}

/**
 * The largest |Q| of scorePackedKeysInt's integer query (its step is max |q'| / levels): the relaxed-SIMD
 * build rounds to int8 (every code width), the plain build to int16, capped so that d
 * products of codes below 2^bits sum within int32 (assembly/kernels/packed-int.ts queryLevels).
 */
export function intQueryLevels(build: 'simd' | 'relaxed', bits: number, d: number): number {
  if (build === 'relaxed') return 127
  return Math.min(32767, Math.floor(0x7fffffff / (d * (2 ** bits - 1))))
}

/** Scratch floats attendPacked needs (the scores, the folded queries, the value biases and sums). */
export function packedAttendScratch(rows: number, d: number, vd: number, n: number): number {
  // (and 16 bytes where ternary codes are unpacked)
  return rows * n + rows * (d + 1) + rows * Math.ceil(vd / 32) + rows + 4
}

export type Backend = KernelBackend & ModelKernels & {
  /** threads the kernels run on (1 when absent) */
  readonly threads?: number
  /**
   * stops the backend's worker threads; a model that made its backend calls it on dispose. Its kernels
   * still run after it, on the calling thread (`threads` is then 1), with the same results.
   */
  close?(): void
}

export type BackendName = 'wasm' | 'reference' | 'webgpu' | 'auto'

/** every BackendName, for the checks of createBackend and loadModel */
export const BACKEND_NAMES: readonly BackendName[] = ['wasm', 'reference', 'webgpu', 'auto']
