import type { KVDtype, PageFormat } from './formats.js'
import type { Tier } from './page-store.js'
import type { KeyBasis } from './basis.js'

/**
 * The KV cache's public surface and the decisions it carries out. Policies import these types; the cache
 * imports no policy. A decision says what to keep, merge, add or prune; the cache does it and frees memory.
 */

/** A read-only window on one (layer, KV head) stream, ready for the kernels: page table and sizes. */
export interface HeadView {
  /** byte pointer to ceil(n / pageTokens) int32 page pointers (keys) */
  readonly kTable: number
  /** byte pointer to the value page table */
  readonly vTable: number
  readonly pageTokens: number
  /** tokens stored */
  readonly n: number
  /** values per key row (head_dim, or fewer after channel pruning of this segment) */
  readonly d: number
  /**
   * element type of the rows (default float32): float16 rows are 2 bytes a value, and the kernels that
   * read a view (Ops.scoreKeys, the attention family) take their F16 variants for them
   */
  readonly format?: PageFormat
  /** packed views: tokens per key group (32, 64 or 128; 32 when absent) */
  readonly group?: number
}

/**
 * One segment of a head: a run of pages in one format and one tier holding slots start..start+n-1. A
 * head is one segment until something splits it: ThinK channel pruning (the pruned prefix: key rows of
 * `channels.length` floats, values whole), a move of its pages to another tier (appends then start a new
 * arena segment). kTable and vTable are 0 for segments outside the arena (fetch their rows first).
 */
export interface HeadSegment extends HeadView {
  /** the keys' page format (a packed segment's values may use another: valueFormat) */
  readonly format: PageFormat
  readonly valueFormat: PageFormat
  readonly tier: Tier
  /** first slot of the segment within the head */
  readonly start: number
  /** floats per value row (head_dim) */
  readonly vd: number
  /** the key channels the rows hold (ascending), or null for all head_dim channels */
  readonly channels: Int32Array | null
  /** int2+sign keys: the basis the rows are stored in (src/cache/basis.ts); else null */
  readonly keyBasis: KeyBasis | null
  /** packed segments: tokens per key group (values: formats.ts valueGroupFor(group, vd) channels a group); 32 otherwise */
  readonly group: number
}

export type KeyStorage = 'post-rope' | 'pre-rope'

/**
 * Moves post-RoPE keys to new positions in place: rows [first, first + oldPositions.length) of the
 * paged key stream at kTable (rows of the layer's head_dim floats), row first + r from oldPositions[r]
 * to newPositions[r]. The cache calls it from `reposition`; src/reuse/rerotate.ts makes one per model.
 */
export type KeyRotation = (kTable: number, pageTokens: number, first: number, oldPositions: Int32Array, newPositions: Int32Array, layer: number) => void

export interface KVCacheOptions {
  layers: number
  kvHeads: number
  headDim: number
  /** tokens per page (default 64) */
  pageTokens?: number
  /** keys as stored: after RoPE (default) or before, rotated at attention time from cache positions */
  keys?: KeyStorage
  /**
   * element type of the rows appended (default 'float32'): 'float16' halves the bytes (llama.cpp's
   * `--cache-type-k f16`, a Hugging Face cache in torch.float16). Rows are rounded to nearest, ties to
   * even, as PyTorch's `.half()`, saturating at +-65504 (src/backend/half.ts), and attended in place.
   */
  kvDtype?: KVDtype
}

/**
 * Bytes held, per tier: what the stored tokens need (a partly filled last page counts its used rows).
 * Pages shared with forked sequences count in full here and once in `PageStore.liveBytes`.
 */
export interface CacheBytes {
  /** float K/V rows in wasm memory */
  hot: number
  /** rows in packed integer formats (any tier), codes and group metadata, pro rata for a partly filled page */
  quantized: number
  /** float rows outside wasm memory (host ArrayBuffers) */
  offloaded: number
  /** hot + quantized + offloaded */
  total: number
  /** of total, bytes in pages that other sequences of the same store reference too */
  shared: number
  /** bytes really allocated: whole pages (a partly filled last page counts whole), page tables, pooled pages */
  reserved: number
}

/**
 * Merge a set of tokens into a pivot: k_p = sum w_i k_i / sum w_i (pivot included with its own weight: list
 * it among the members with its weight, or it counts with weight 1). The pivot must be kept.
 */
export interface MergeSpec {
  pivot: number
  members: Int32Array
  weights: Float32Array
}

/** An extra token (for example RazorAttention's compensation token), appended after compaction. */
export interface ExtraToken {
  key: Float32Array
  value: Float32Array
  /** position label (for RoPE when keys are pre-RoPE, and for reporting) */
  position: number
}

/** What to do to one (layer, KV head). Indices are slots in the cache as it stands before the decision. */
export interface HeadDecision {
  layer: number
  head: number
  /** slots to keep, ascending; the rest are evicted and their pages freed */
  keep: Int32Array
  /** applied before eviction; members need not be in keep */
  merges?: MergeSpec[]
  extra?: ExtraToken[]
  /**
   * ThinK: after compaction, the keys of slots [0, upto) keep only these channels (ascending) and are
   * stored with channels.length floats per row; later slots and new tokens stay whole.
   */
  keyChannels?: { channels: Int32Array; upto: number }
}

/**
 * Eviction of a few slots of one (layer, KV head) without keeping slot order: each hole is filled by a
 * kept row from the end, so the store copies at most evict.length rows however long the head is (a
 * decode-time policy evicting a token a step pays O(1), not O(n)). Slots after the holes change: a
 * policy that asks for this refers to tokens by position (`KVCache.positions`), not by slot.
 */
export interface HeadEviction {
  layer: number
  head: number
  /** slots to evict, strictly ascending */
  evict: Int32Array
}

/**
 * Quantization of one (layer, KV head): afterwards slots [0, upto) are stored packed (KIVI, Liu et al.
 * 2024): keys in `keys` format, per channel in groups of `group` tokens (32 by default); values in `values`
 * format, per token in groups of valueGroupFor(group, head_dim) channels; each group with a float16 scale and min. Slots already packed stay as they
 * are; the rest of [0, upto) are packed from the float rows after them, which must be one float32 arena
 * segment of whole rows (the append segment). Packed rows cannot be evicted, merged or channel-pruned
 * afterwards: a later decision that would is refused.
 */
export interface HeadQuantization {
  layer: number
  head: number
  upto: number
  /**
   * an integer format: int8, int4, int2 or int1; or int2+sign (VidKV, Tao et al. 2025): `keyHiChannels`
   * in int2, the other channels through an orthonormal real DFT in 1-bit signs (src/cache/basis.ts)
   */
  keys: PageFormat
  /** an integer format, or ternary (VidKV's 1.58-bit values: s * t, t in {-1, 0, 1}, s = mean |x|) */
  values: PageFormat
  /** int2+sign keys: the head channels kept in int2 (distinct, in [0, head_dim)) */
  keyHiChannels?: Int32Array
  /**
   * tokens per key group (KIVI's `group_size`, Hugging Face's `q_group_size`; default 32): 32, 64 or
   * 128, and pageTokens a multiple of it. Values group along formats.ts valueGroupFor(group, head_dim) channels.
   */
  group?: number
}

export interface Decision {
  heads: HeadDecision[]
  /** order-free evictions, applied after `heads`; a head appears in at most one of the two lists */
  evictions?: HeadEviction[]
  /** applied last; a head listed here appears in neither `heads` nor `evictions` */
  quantize?: HeadQuantization[]
}

/**
 * A decode step's selection for one layer: per KV head, the slots to attend to (ascending), or null for
 * all of the head's slots. `rebuiltKeys` (ShadowKV): per KV head, 0 or keys the selector rebuilt for the
 * selected slots held outside the arena (see CacheAttention.rebuiltKeys).
 */
export type TokenSelection = (Int32Array | null)[] & { rebuiltKeys?: number[] }

/**
 * What changed in one (layer, KV head) since an earlier `KVCache.changes` answer: slots [from, to) may
 * hold other rows than they did then (an eviction, merge, quantization, overwrite, rollback, channel
 * pruning, re-rotation), every other slot below the old length holds the same row. Appends are not
 * counted: slots at or past the old length are new in any case. from >= to when nothing changed; from 0
 * and to Infinity when the cache no longer remembers that far back.
 */
export interface RowChanges {
  /** pass it to the next `changes` call of the same head */
  version: number
  from: number
  to: number
}

export interface KVCache {
  readonly options: Required<KVCacheOptions>
  /** tokens stored for (layer, head) */
  length(layer: number, head: number): number
  /** original positions of the stored tokens (a copy) */
  positions(layer: number, head: number): Int32Array
  /** kernel-ready view of a head's keys and values (a channel-pruned head has two segments: use segments()) */
  view(layer: number, head: number): HeadView
  /** the head's segments in slot order (one unless its keys were channel-pruned) */
  segments(layer: number, head: number): HeadSegment[]
  /** keys of a head as a fresh [n][d] array (for policies that need a copy; pruned channels read as 0) */
  readKeys(layer: number, head: number): Float32Array
  /** keys of slots [from, to) of a head as a fresh [to - from][d] array (readKeys's rows, bit for bit) */
  readKeyRange(layer: number, head: number, from: number, to: number): Float32Array
  readValues(layer: number, head: number): Float32Array
  /**
   * keys of slots [from, to) of a head written as [to - from][d] floats into arena memory at byte `dst`
   * (4-aligned, room for them): readKeyRange's rows bit for bit, without a JavaScript array between (what
   * selection over packed or multi-segment heads reads every step). CacheError on a bad range or pointer.
   */
  readKeysInto(layer: number, head: number, from: number, to: number, dst: number): void
  /**
   * Appends T tokens to every KV head of a layer. k and v are [T][kvHeads][headDim] (the projection layout),
   * positions has T entries.
   */
  append(layer: number, k: Float32Array, v: Float32Array, positions: Int32Array): void
  /**
   * The slots of a head whose rows changed since `since` (a version an earlier call returned, 0 for the
   * cache as created): a consumer that derives state from the rows (Quest's page bounds) redoes only
   * those. The cache reports what changed and decides nothing.
   */
  changes(layer: number, head: number, since: number): RowChanges
  /** Carries out a decision; validates it whole first, so a bad decision changes nothing. */
  apply(decision: Decision): void
  bytes(): CacheBytes
  /**
   * Moves every segment of the chosen heads (all by default) to `tier`; later appends start a new arena
   * segment. Returns the bytes copied.
   */
  moveTo(tier: Tier, where?: { layer?: number; head?: number }): number
  /** bytes of one token across all layers and heads at full precision */
  readonly bytesPerToken: number
  /** frees every page; the cache is empty and reusable afterwards */
  clear(): void
  /** frees everything for good */
  dispose(): void
}
