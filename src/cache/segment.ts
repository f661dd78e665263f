import type { Kernels } from '../backend/reference/kernels.js'
import type { CompactCall } from '../backend/backend.js'
import { CacheError } from './errors.js'
import { DEFAULT_GROUP, elementBytes, formatInfo, kernelBits, packedLayout, valueGroupFor, type KVDtype, type PackedLayout, type PageFormat } from './formats.js'
import { checkPackable, unpackKeyRow, unpackValueRow } from './packing.js'
import { referencePackKernels, type PackKernels } from '../backend/reference/pack-kernels.js'
import { floatToHalf, halfToFloat } from '../backend/half.js'
import type { Page, PageStore, Tier } from './page-store.js'
import { fromBasis, toBasis, type KeyBasis } from './basis.js'

/**
 * A run of pages holding rows [0, n) of one (layer, KV head) stream in one format and one tier: key rows
 * of kd values (fewer than head_dim after channel pruning: `channels` lists the ones kept), value rows of
 * vd. Pages come from a PageStore and may be shared with other segments (a forked sequence, a shared
 * prefix); every write goes through `writable`, which gives the segment private copies first
 * (copy-on-write). Arena-tier segments keep int32 page tables in the arena, so the kernels read the rows
 * in place. A packed segment (keys in `format`, values in `valueFormat`, both integer formats) is
 * written only by `appendPacked`, a whole key group of `group` tokens (32 unless int2+sign keys ask for
 * 64 or 128) at a time, and read by the fused kernels or dequantized by `fetchRows`.
 */
export type SegmentKernels = Pick<Kernels, 'compactRowsKV' | 'gatherChannels' | 'moveRows' | 'gatherChannelsF16' | 'toFloat16' | 'fromFloat16' | 'getPackedKeyRows' | 'getSignKeyRows' | 'getPackedValueRows' | 'packKeys' | 'packSignKeys' | 'packValues' | 'firstUnpackable'>

/** the slots a keep list (strictly ascending) leaves where they are: its leading keep[i] = i */
export function keptInPlace(keep: Int32Array): number {
  let first = 0
  while (first < keep.length && keep[first] === first) first++
  return first
}

export class Segment {
  n = 0
  private kPages: Page[] = []
  private vPages: Page[] = []
  private kTab = 0
  private vTab = 0
  private tabCap = 0

  constructor(
    private readonly store: PageStore,
    private readonly kernels: SegmentKernels,
    readonly format: PageFormat,
    readonly kd: number,
    readonly vd: number,
    readonly channels: Int32Array | null,
    private tierOf: Tier = 'wasm',
    readonly valueFormat: PageFormat = format,
    /** int2+sign keys: which channels the two parts hold (the rows are stored in this basis: basis.ts) */
    readonly keyBasis: KeyBasis | null = null,
    /** packed segments: tokens per key group (values: valueGroupFor(group, vd) channels per group) */
    readonly group: number = DEFAULT_GROUP,
  ) {
    if ((format === 'int2+sign') !== (keyBasis !== null)) throw new CacheError(`Segment: int2+sign keys need a key basis and only they take one (keys ${format})`)
  }

  /** whether the rows are packed codes (an integer or ternary format) */
  get packed(): boolean {
    return formatInfo(this.format).scaled || formatInfo(this.valueFormat).scaled
  }
  private get kLayout(): PackedLayout {
    return packedLayout(this.format, 'key', this.pt, this.kd, this.group, this.keyHi)
  }
  /** int2+sign keys: the channels held as int2 (the leading ones of each stored row); else 0 */
  get keyHi(): number {
    return this.keyBasis?.hi.length ?? 0
  }
  private get vLayout(): PackedLayout {
    return packedLayout(this.valueFormat, 'value', this.pt, this.vd, this.valueGroup)
  }
  /** channels per value group */
  get valueGroup(): number {
    return valueGroupFor(this.group, this.vd)
  }

  get tier(): Tier {
    return this.tierOf
  }
  get kTable(): number {
    return this.tierOf === 'wasm' ? this.kTab : 0
  }
  get vTable(): number {
    return this.tierOf === 'wasm' ? this.vTab : 0
  }
  get pages(): number {
    return this.kPages.length
  }
  get pageList(): readonly Page[] {
    return [...this.kPages, ...this.vPages]
  }
  private get pt(): number {
    return this.store.pageTokens
  }
  /** whether rows are float16 (2 bytes a value) rather than float32 */
  private get half(): boolean {
    return this.format === 'float16'
  }
  /** bytes of one key row and one value row */
  get keyRowBytes(): number {
    return this.kd * elementBytes(this.format as KVDtype)
  }
  get valueRowBytes(): number {
    return this.vd * elementBytes(this.format as KVDtype)
  }
  /** bytes of the pages and the tables held (shared pages included: the store counts them once) */
  get reservedBytes(): number {
    let b = this.tabCap * 8
    for (const p of this.kPages) b += p.bytes
    for (const p of this.vPages) b += p.bytes
    return b
  }
  /** bytes the n rows need (float rows exactly; packed pages pro rata, group metadata included) */
  get usedBytes(): number {
    return this.rowsBytes(this.n)
  }

  /** of usedBytes, the share in pages other segments reference too */
  get sharedBytes(): number {
    let rows = 0
    for (let p = 0; p < this.kPages.length; p++) {
      if (this.kPages[p].refs > 1) rows += Math.min(this.pt, this.n - p * this.pt)
    }
    return this.rowsBytes(rows)
  }

  private rowsBytes(rows: number): number {
    const part = (format: PageFormat, role: 'key' | 'value', width: number, hi: number, group: number) =>
      formatInfo(format).scaled ? (rows / this.pt) * this.store.bytesOf(format, role, width, hi, group) : (rows * width * formatInfo(format).bits) / 8
    return part(this.format, 'key', this.kd, this.keyHi, this.group) + part(this.valueFormat, 'value', this.vd, 0, this.valueGroup)
  }

  private arenaOnly(what: string): void {
    if (this.tierOf !== 'wasm') throw new CacheError(`${what}: the segment lives in the '${this.tierOf}' tier; move it to 'wasm' first`)
    if (this.packed) throw new CacheError(`${what}: ${this.format}/${this.valueFormat} pages are written only by packing whole key groups (appendPacked)`)
    if (this.format !== 'float32' && this.format !== 'float16') throw new CacheError(`${what}: the kernels of this build do not write ${this.format} pages`)
  }

  /** makes room for `more` rows (allocating may grow memory: take views only after this) */
  reserve(more: number): void {
    this.arenaOnly('append')
    const need = Math.ceil((this.n + more) / this.pt)
    if (need > this.tabCap) this.growTables(Math.max(need, this.tabCap * 2, 4))
    this.writable(this.n)
    this.addPages(need)
  }

  private addPages(need: number): void {
    while (this.kPages.length < need) {
      this.kPages.push(this.store.take(this.format, 'key', this.kd, 'wasm', this.keyHi, this.group))
      this.vPages.push(this.store.take(this.valueFormat, 'value', this.vd, 'wasm', 0, this.valueGroup))
      this.setTable(this.kPages.length - 1)
    }
  }

  /**
   * Packs rows [0, count) of the float32 or float16 arena segment `src` (same key channels: ThinK's pruned keys
   * pack as they are) after this segment's rows:
   * keys per channel in groups of `group` tokens, values per token in groups of `valueGroup` channels (KIVI). Rows held
   * so far must fill whole key groups; a last partial group closes the segment to further packing.
   * Values beyond float16's range are refused before anything is written.
   */
  appendPacked(src: Segment, count: number): void {
    if (!this.packed || this.tierOf !== 'wasm') throw new CacheError(`appendPacked: the segment must be packed and in the arena, it is ${this.format} in '${this.tierOf}'`)
    if (this.n % this.group) throw new CacheError(`appendPacked: the segment's ${this.n} rows end inside a key group of ${this.group}; pack whole groups`)
    if ((src.format !== 'float32' && src.format !== 'float16') || src.tier !== 'wasm' || count > src.n || src.kd !== this.kd || String(src.channels) !== String(this.channels)) {
      throw new CacheError('appendPacked: the source must be an arena float32 or float16 segment holding the rows, with the same key channels')
    }
    // the rows as float32 in the arena first (float16 widened by the compute core), checked before anything is written
    const heap = this.store.heap
    const kBuf = heap.alloc(Math.max(1, count * this.kd) * 4)
    const vBuf = heap.alloc(Math.max(1, count * this.vd) * 4)
    try {
      src.rowsAsFloat32(count, kBuf, vBuf)
      const F = heap.F32
      if (this.keyBasis) {
        for (let i = 0; i < count; i++) {
          const at = (kBuf >> 2) + i * this.kd
          toBasis(this.keyBasis, F.slice(at, at + this.kd), 0, F, at)
        }
      }
      // the compute core's packing kernels where the backend has them, else their TypeScript twins
      // (packing.ts): the same bytes either way
      const k = this.kernels
      const pack: PackKernels = k.packKeys && k.packSignKeys && k.packValues && k.firstUnpackable ? (k as PackKernels) : referencePackKernels(heap)
      // a value the float16 metadata cannot hold is found by the kernel, named by checkPackable's error
      for (const [buf, len, what] of [[kBuf, count * this.kd, 'keys'], [vBuf, count * this.vd, 'values']] as const) {
        const bad = pack.firstUnpackable(buf, len)
        if (bad < len) checkPackable(F, buf >> 2, (buf >> 2) + bad + 1, `appendPacked: ${what}`)
      }
      const need = Math.ceil((this.n + count) / this.pt)
      if (need > this.tabCap) this.growTables(Math.max(need, this.tabCap * 2, 4))
      this.writable(this.n)
      const fresh = this.kPages.length
      this.addPages(need)
      for (let p = fresh; p < need; p++) {
        heap.U8.fill(0, this.kPages[p].ptr, this.kPages[p].ptr + this.kPages[p].bytes)
        heap.U8.fill(0, this.vPages[p].ptr, this.vPages[p].ptr + this.vPages[p].bytes)
      }
      if (this.keyBasis) pack.packSignKeys(kBuf, count, this.kd, this.kTab, this.pt, this.n, this.keyHi, this.group)
      else pack.packKeys(kBuf, count, this.kd, this.kTab, this.pt, this.n, kernelBits(this.format), this.group)
      pack.packValues(vBuf, count, this.vd, this.vTab, this.pt, this.n, kernelBits(this.valueFormat), this.valueGroup)
    } finally {
      heap.release(vBuf)
      heap.release(kBuf)
    }
    this.n += count
  }

  /**
   * Rows [0, count) of this float32 or float16 arena segment as float32 rows: keys [count][kd] at kDst,
   * values [count][vd] at vDst (float16 widened exactly by the compute core's fromFloat16).
   */
  rowsAsFloat32(count: number, kDst: number, vDst: number): void {
    // a page's rows are contiguous: one copy (or one widening) per page and stream
    const U8 = this.store.heap.U8
    for (let r = 0; r < count; r += this.pt) {
      const rows = Math.min(this.pt, count - r)
      const p = r / this.pt
      if (this.format === 'float16') {
        this.kernels.fromFloat16(this.kPages[p].ptr, kDst + r * this.kd * 4, rows * this.kd)
        this.kernels.fromFloat16(this.vPages[p].ptr, vDst + r * this.vd * 4, rows * this.vd)
      } else {
        U8.copyWithin(kDst + r * this.kd * 4, this.kPages[p].ptr, this.kPages[p].ptr + rows * this.kd * 4)
        U8.copyWithin(vDst + r * this.vd * 4, this.vPages[p].ptr, this.vPages[p].ptr + rows * this.vd * 4)
      }
    }
  }

  /** copy-on-write: the pages holding rows [fromRow, untilRow) become this segment's own */
  writable(fromRow: number, untilRow = Infinity): void {
    const end = Math.min(this.kPages.length, Math.ceil(untilRow / this.pt))
    for (let p = Math.floor(fromRow / this.pt); p < end; p++) {
      // the common case (no fork, no shared prefix) costs two loads a page and no call
      if (this.kPages[p].refs === 1 && this.vPages[p].refs === 1) continue
      const k = this.store.unshare(this.kPages[p])
      const v = this.store.unshare(this.vPages[p])
      if (k !== this.kPages[p] || v !== this.vPages[p]) {
        this.kPages[p] = k
        this.vPages[p] = v
        this.setTable(p)
      }
    }
  }

  /** byte pointers of row i's key and value (arena tier) */
  keyPtr(i: number): number {
    return this.kPages[Math.floor(i / this.pt)].ptr + (i % this.pt) * this.keyRowBytes
  }
  valuePtr(i: number): number {
    return this.vPages[Math.floor(i / this.pt)].ptr + (i % this.pt) * this.valueRowBytes
  }

  /** appends a row from float arrays (after reserve); float16 rows refuse NaN (see writeRow) */
  pushRow(k: Float32Array, kOff: number, v: Float32Array, vOff: number): void {
    this.writeRow(this.n, k.subarray(kOff, kOff + this.kd), v.subarray(vOff, vOff + this.vd))
    this.n++
  }

  /**
   * Writes row `row` (float32 as given; float16 rounded by the compute core's toFloat16) from arena
   * pointers, without counting it yet: `commitRows` does, once every row of an append is written, so a
   * refused append leaves n as it was. Returns how many of the values were NaN (float16 rows cannot hold
   * NaN; float32 rows take any value and return 0).
   */
  writeRowFromHeap(row: number, kPtr: number, vPtr: number): number {
    if (!this.half) {
      const F = this.store.heap.F32
      F.copyWithin(this.keyPtr(row) >> 2, kPtr >> 2, (kPtr >> 2) + this.kd)
      F.copyWithin(this.valuePtr(row) >> 2, vPtr >> 2, (vPtr >> 2) + this.vd)
      return 0
    }
    return this.kernels.toFloat16(kPtr, this.keyPtr(row), this.kd) + this.kernels.toFloat16(vPtr, this.valuePtr(row), this.vd)
  }

  /** counts `count` rows written past n by writeRowFromHeap */
  commitRows(count: number): void {
    this.n += count
  }

  /** overwrites row i in place (copy-on-write first if its page is shared) */
  overwriteRow(i: number, k: Float32Array, v: Float32Array): void {
    this.arenaOnly('overwrite')
    if (this.half && (k.some(Number.isNaN) || v.some(Number.isNaN))) throw new CacheError('overwrite: float16 pages cannot hold NaN')
    this.writable(i, i + 1)
    this.writeRow(i, k, v)
  }

  /** row i's values at float32 array(s) k and v (float16 pages: rounded as toFloat16, by its TypeScript twin) */
  private writeRow(i: number, k: Float32Array, v: Float32Array): void {
    const heap = this.store.heap
    if (!this.half) {
      heap.F32.set(k, this.keyPtr(i) >> 2)
      heap.F32.set(v, this.valuePtr(i) >> 2)
      return
    }
    const H = heap.U16
    const kp = this.keyPtr(i) >> 1
    const vp = this.valuePtr(i) >> 1
    for (let c = 0; c < k.length; c++) H[kp + c] = floatToHalf(k[c])
    for (let c = 0; c < v.length; c++) H[vp + c] = floatToHalf(v[c])
  }

  /** row i (arena tier) widened to float32: its key (kd values) or value (vd) */
  readRow(i: number, role: 'key' | 'value'): Float32Array {
    const heap = this.store.heap
    const width = role === 'key' ? this.kd : this.vd
    const p = role === 'key' ? this.keyPtr(i) : this.valuePtr(i)
    if (!this.half) return heap.F32.slice(p >> 2, (p >> 2) + width)
    const H = heap.U16
    const out = new Float32Array(width)
    for (let c = 0; c < width; c++) out[c] = halfToFloat(H[(p >> 1) + c])
    return out
  }

  /**
   * Keeps rows keep[0..] (local, strictly ascending) in that order, moving each kept row at most once
   * and none before the first gap, then returns the pages past the new end. Arena pages move by the
   * compaction kernel; host pages by one copy per run of rows. `keepPtr` holds keep in the arena.
   * Returns the rows moved.
   */
  compact(keep: Int32Array, keepPtr: number): number {
    let moved = 0
    if (this.tierOf === 'wasm') {
      const call = this.compactCall(keep, keepPtr)
      if (call) moved = this.kernels.compactRowsKV(call.kTable, call.vTable, call.pageTokens, call.kRowBytes, call.vRowBytes, call.keep, call.nKeep)
    } else {
      const first = this.keptPrefix(keep)
      if (first < keep.length) {
        this.writable(first)
        moved = this.compactHost(keep, first)
      }
    }
    this.compacted(keep.length, moved)
    return moved
  }

  /**
   * compact()'s kernel call for an arena segment, made ready to run (pages made this segment's own, keep
   * written at keepPtr), for a batch of heads (PagedKVCache.apply): null when no row moves. The caller
   * runs it, then calls compacted(keep.length, call.moved).
   */
  compactCall(keep: Int32Array, keepPtr: number): CompactCall | null {
    const first = this.keptPrefix(keep)
    if (first === keep.length) return null
    this.writable(first)
    this.store.heap.I32.set(keep, keepPtr >> 2)
    return { kTable: this.kTab, vTable: this.vTab, pageTokens: this.pt, kRowBytes: this.keyRowBytes, vRowBytes: this.valueRowBytes, keep: keepPtr, nKeep: keep.length, moved: keep.length - first }
  }

  /** after a compaction of `moved` rows: rows [0, kept) stay, later pages go back to the store */
  compacted(kept: number, moved: number): void {
    this.truncate(kept)
    this.store.rowsMoved += moved
  }

  /** the rows keep leaves in place (keptInPlace); throws where a packed row would move */
  private keptPrefix(keep: Int32Array): number {
    const first = keptInPlace(keep)
    if (this.packed && first < keep.length) throw new CacheError(`compact: packed rows are grouped along tokens and cannot be moved one by one (slot ${first} would drop)`)
    return first
  }

  /**
   * Evicts rows evict[0..] (local, strictly ascending) without keeping the order: each hole below the new
   * end is filled by a kept row from past it, by the moveRows kernel, so the cost is at most evict.length
   * row copies whatever n is. Returns the moves as (dst, src) pairs, for the positions to follow.
   * `pairsPtr` has room for 2 x evict.length int32 in the arena.
   */
  evict(evict: Int32Array, pairsPtr: number): Int32Array {
    if (this.packed && evict.length) throw new CacheError(`evict: packed rows are grouped along tokens and cannot be evicted one by one (slot ${evict[0]})`)
    const newN = this.n - evict.length
    let holes = 0
    while (holes < evict.length && evict[holes] < newN) holes++
    const pairs = new Int32Array(2 * holes)
    let e = holes
    let src = newN
    for (let h = 0; h < holes; h++) {
      while (e < evict.length && evict[e] === src) {
        e++
        src++
      }
      pairs[2 * h] = evict[h]
      pairs[2 * h + 1] = src++
    }
    if (holes) {
      for (let h = 0; h < holes; h++) this.writable(evict[h], evict[h] + 1)
      if (this.tierOf === 'wasm') {
        this.store.heap.I32.set(pairs, pairsPtr >> 2)
        this.kernels.moveRows(this.kTab, this.pt, this.keyRowBytes, pairsPtr, holes)
        this.kernels.moveRows(this.vTab, this.pt, this.valueRowBytes, pairsPtr, holes)
      } else for (let h = 0; h < holes; h++) this.copyHostRow(pairs[2 * h], pairs[2 * h + 1])
    }
    this.truncate(newN)
    this.store.rowsMoved += holes
    return pairs
  }

  private copyHostRow(dst: number, src: number): void {
    const pt = this.pt
    const copy = (pages: Page[], rowBytes: number) => {
      const d = pages[Math.floor(dst / pt)].host!
      const s = pages[Math.floor(src / pt)].host!
      d.set(s.subarray((src % pt) * rowBytes, (src % pt + 1) * rowBytes), (dst % pt) * rowBytes)
    }
    copy(this.kPages, this.keyRowBytes)
    copy(this.vPages, this.valueRowBytes)
  }

  private compactHost(keep: Int32Array, first: number): number {
    for (let j = first; j < keep.length; j++) this.copyHostRow(j, keep[j])
    return keep.length - first
  }

  /** keeps rows [0, n): later pages go back to the store */
  truncate(n: number): void {
    if (n > this.n) throw new CacheError(`truncate: ${n} is more than the ${this.n} rows held`)
    this.n = n
    const need = Math.ceil(n / this.pt)
    if (this.kPages.length > need) {
      // all at once: a one-shot compaction returns three quarters of every head's pages here
      this.store.releaseTail(this.kPages, this.vPages, need)
      this.kPages.length = need
      this.vPages.length = need
    }
  }

  /** the key and value pages holding rows [p * pageTokens, (p + 1) * pageTokens) */
  pageAt(p: number): { k: Page; v: Page } {
    return { k: this.kPages[p], v: this.vPages[p] }
  }

  /**
   * Appends one whole page of rows shared with another holder (a prefix-cache block): the pages gain a
   * reference, no row is copied. The segment must end on a page boundary.
   */
  adoptPage(k: Page, v: Page): void {
    this.arenaOnly('adoptPage')
    if (this.n !== this.kPages.length * this.pt) throw new CacheError(`adoptPage: the segment holds ${this.n} rows, not whole pages`)
    if (k.tier !== 'wasm' || v.tier !== 'wasm' || k.width !== this.kd || v.width !== this.vd || k.format !== this.format) {
      throw new CacheError('adoptPage: the pages differ from the segment in tier, format or row width')
    }
    const need = this.kPages.length + 1
    if (need > this.tabCap) this.growTables(Math.max(need, this.tabCap * 2, 4))
    this.kPages.push(this.store.retain(k))
    this.vPages.push(this.store.retain(v))
    this.setTable(this.kPages.length - 1)
    this.n += this.pt
  }

  /** a segment over the same pages (each gains a reference), with its own tables */
  fork(): Segment {
    const s = new Segment(this.store, this.kernels, this.format, this.kd, this.vd, this.channels, this.tierOf, this.valueFormat, this.keyBasis, this.group)
    s.kPages = this.kPages.map((p) => this.store.retain(p))
    s.vPages = this.vPages.map((p) => this.store.retain(p))
    s.n = this.n
    if (this.tierOf === 'wasm' && s.kPages.length) {
      s.growTables(Math.max(4, s.kPages.length))
      for (let p = 0; p < s.kPages.length; p++) s.setTable(p)
    }
    return s
  }

  /**
   * Moves every page to `tier`: pages only this segment references move in place; shared ones are
   * copied for it (the other sequences keep theirs). Returns the bytes copied.
   */
  moveTo(tier: Tier): number {
    if (tier === this.tierOf) return 0
    const before = this.store.bytesMoved
    this.kPages = this.kPages.map((p) => this.store.moveFor(p, tier))
    this.vPages = this.vPages.map((p) => this.store.moveFor(p, tier))
    const moved = this.store.bytesMoved - before
    this.tierOf = tier
    if (tier === 'wasm') {
      if (this.kPages.length > this.tabCap) this.growTables(Math.max(4, this.kPages.length))
      for (let p = 0; p < this.kPages.length; p++) this.setTable(p)
    }
    return moved
  }

  /**
   * Copies the listed rows (local, any order) into contiguous arena buffers: keys [rows][kd] at kDst,
   * values [rows][vd] at vDst, from any tier. This is the tier fetch: arena rows are one copy inside the
   * arena, host rows one copy from their ArrayBuffer. `keys` false fetches the values alone (kDst unused):
   * a selector that rebuilds the keys itself (ShadowKV) moves only values between tiers. `values` false
   * fetches the keys alone (vDst unused): readKeys of a packed segment then dequantizes only them.
   */
  fetchRows(rows: ArrayLike<number>, kDst: number, vDst: number, keys = true, values = true): void {
    if (this.packed) return this.fetchPacked(rows, kDst, vDst, keys, values)
    const U8 = this.store.heap.U8
    const pt = this.pt
    const kb = this.keyRowBytes
    const vb = this.valueRowBytes
    for (let r = 0; r < rows.length; r++) {
      const i = rows[r]
      const kp = this.kPages[Math.floor(i / pt)]
      const vp = this.vPages[Math.floor(i / pt)]
      const ko = (i % pt) * kb
      const vo = (i % pt) * vb
      if (this.tierOf === 'wasm') {
        if (keys) U8.copyWithin(kDst + r * kb, kp.ptr + ko, kp.ptr + ko + kb)
        if (values) U8.copyWithin(vDst + r * vb, vp.ptr + vo, vp.ptr + vo + vb)
      } else {
        if (keys) U8.set(kp.host!.subarray(ko, ko + kb), kDst + r * kb)
        if (values) U8.set(vp.host!.subarray(vo, vo + vb), vDst + r * vb)
      }
    }
  }

  /**
   * fetchRows of packed rows: each row dequantized to floats (the tier fetch of packed pages). Arena
   * pages go through the compute core's get-rows kernels where the backend has them (a decode step over
   * a selection of KIVI pages fetches its rows here: issue 16); host pages, and backends without them,
   * through the TypeScript twin below. Both give the same bits (packing.ts dequantize).
   */
  private fetchPacked(rows: ArrayLike<number>, kDst: number, vDst: number, keys: boolean, values: boolean): void {
    const k = this.kernels
    if (this.tierOf === 'wasm' && rows.length && k.getPackedKeyRows && k.getSignKeyRows && k.getPackedValueRows) return this.getRowsPacked(rows, kDst, vDst, keys, values)
    this.unpackRows(rows, kDst, vDst, keys, values)
  }

  /** fetchPacked through the kernels: the row list and their scratch in the arena for the call */
  private getRowsPacked(rows: ArrayLike<number>, kDst: number, vDst: number, keys: boolean, values: boolean): void {
    const heap = this.store.heap
    const k = this.kernels as Required<SegmentKernels>
    const idx = heap.alloc(rows.length * 4)
    const scratch = heap.alloc(2 * this.kd * 4)
    try {
      heap.I32.set(rows, idx >> 2)
      if (keys && this.keyBasis) {
        k.getSignKeyRows(this.kTab, this.pt, idx, rows.length, this.kd, this.keyHi, this.group, kDst, scratch)
        // the rows come back in the keys' stored basis (basis.ts): out of it here, as unpackRows does
        const F = heap.F32
        for (let r = 0; r < rows.length; r++) {
          const at = (kDst >> 2) + r * this.kd
          fromBasis(this.keyBasis, F.slice(at, at + this.kd), 0, F, at)
        }
      } else if (keys) k.getPackedKeyRows(this.kTab, this.pt, idx, rows.length, this.kd, kernelBits(this.format), kDst, scratch, this.group)
      if (values) k.getPackedValueRows(this.vTab, this.pt, idx, rows.length, this.vd, kernelBits(this.valueFormat), this.valueGroup, vDst)
    } finally {
      heap.release(scratch)
      heap.release(idx)
    }
  }

  /** fetchPacked in TypeScript (packing.ts): any tier, one row at a time */
  private unpackRows(rows: ArrayLike<number>, kDst: number, vDst: number, keys: boolean, values: boolean): void {
    const heap = this.store.heap
    const kLay = this.kLayout
    const vLay = this.vLayout
    const bytesOf = (p: Page) => (p.tier === 'wasm' ? heap.U8.subarray(p.ptr, p.ptr + p.bytes) : p.host!)
    for (let r = 0; r < rows.length; r++) {
      const i = rows[r]
      const p = Math.floor(i / this.pt)
      if (keys) {
        unpackKeyRow(bytesOf(this.kPages[p]), kLay, i % this.pt, heap.F32, (kDst >> 2) + r * this.kd)
        if (this.keyBasis) {
          const row = heap.F32.slice((kDst >> 2) + r * this.kd, (kDst >> 2) + (r + 1) * this.kd)
          fromBasis(this.keyBasis, row, 0, heap.F32, (kDst >> 2) + r * this.kd)
        }
      }
      if (values) unpackValueRow(bytesOf(this.vPages[p]), vLay, i % this.pt, heap.F32, (vDst >> 2) + r * this.vd)
    }
  }

  /** a segment of the first `rows` rows with only `channels` of each key (ThinK), values copied whole */
  pruneChannels(channels: Int32Array, rows: number, scratch: number): Segment {
    this.arenaOnly('keyChannels')
    const s = new Segment(this.store, this.kernels, this.format, channels.length, this.vd, channels.slice())
    s.reserve(rows)
    this.store.heap.I32.set(channels, scratch >> 2)
    if (this.half) this.kernels.gatherChannelsF16(this.kTab, s.kTab, this.pt, this.kd, scratch, channels.length, rows)
    else this.kernels.gatherChannels(this.kTab, s.kTab, this.pt, this.kd, scratch, channels.length, rows)
    const U8 = this.store.heap.U8
    for (let p = 0; p * this.pt < rows; p++) {
      const bytes = Math.min(this.pt, rows - p * this.pt) * this.valueRowBytes
      U8.copyWithin(s.vPages[p].ptr, this.vPages[p].ptr, this.vPages[p].ptr + bytes)
    }
    s.n = rows
    return s
  }

  /** returns every page to the store, keeping the tables */
  clearRows(): void {
    this.truncate(0)
  }

  dispose(): void {
    this.clearRows()
    if (this.tabCap) {
      this.store.heap.release(this.kTab)
      this.store.heap.release(this.vTab)
    }
    this.tabCap = 0
    this.kTab = this.vTab = 0
  }

  private setTable(p: number): void {
    const I = this.store.heap.I32
    I[(this.kTab >> 2) + p] = this.kPages[p].ptr
    I[(this.vTab >> 2) + p] = this.vPages[p].ptr
  }

  private growTables(cap: number): void {
    const heap = this.store.heap
    const k = heap.alloc(cap * 4)
    const v = heap.alloc(cap * 4)
    if (this.tabCap) {
      heap.I32.copyWithin(k >> 2, this.kTab >> 2, (this.kTab >> 2) + this.kPages.length)
      heap.I32.copyWithin(v >> 2, this.vTab >> 2, (this.vTab >> 2) + this.vPages.length)
      heap.release(this.kTab)
      heap.release(this.vTab)
    }
    this.kTab = k
    this.vTab = v
    this.tabCap = cap
  }
}
