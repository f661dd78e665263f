import type { Heap } from '../backend/heap.js'
import type { CompactCall, KernelBackend } from '../backend/backend.js'
import { referenceKernels, type Kernels } from '../backend/reference/kernels.js'
import type { CacheBytes, Decision, HeadDecision, HeadEviction, HeadQuantization, HeadSegment, HeadView, KVCache, KVCacheOptions, KeyRotation, RowChanges } from './types.js'
import { CacheError } from './errors.js'
import { checkKeyGroup, DEFAULT_GROUP, elementBytes, formatInfo, KV_DTYPES, type KVDtype } from './formats.js'
import { PageStore, type Page, type Tier, TIERS } from './page-store.js'
import { keptInPlace, Segment, type SegmentKernels } from './segment.js'
import { keyBasis } from './basis.js'
import { checkPositions, validateDecision } from './validate.js'

type StoreKernels = SegmentKernels & Pick<Kernels, 'fromFloat16'> & Pick<KernelBackend, 'compactRowsKVBatch'>

/** appends go to an arena segment of whole key rows in the cache's kvDtype */
function isAppendSegment(s: Segment, kvDtype: KVDtype): boolean {
  return s.tier === 'wasm' && s.format === kvDtype && s.channels === null
}

/** changes a stream remembers (KVCache.changes): a consumer further behind redoes every slot */
const CHANGE_LOG = 16

/** One (layer, KV head) stream: segments in slot order, each slot's original position. */
class Stream {
  segs: Segment[] = []
  pos = new Int32Array(64)
  /** counts the changes to existing rows; log holds the newest CHANGE_LOG of them */
  version = 0
  log: RowChanges[] = []

  /** slots [from, to) now hold other rows (nothing when from >= to) */
  changed(from: number, to: number): void {
    if (from >= to) return
    this.version++
    this.log.push({ version: this.version, from, to })
    if (this.log.length > CHANGE_LOG) this.log.shift()
  }

  get n(): number {
    let n = 0
    for (const s of this.segs) n += s.n
    return n
  }

  /** rows of the packed prefix (0 if none) */
  get packedRows(): number {
    let n = 0
    for (const s of this.segs) {
      if (!s.packed) break
      n += s.n
    }
    return n
  }

  /** rows of the channel-pruned prefix (0 if none) */
  get pruned(): number {
    return this.segs[0]?.channels ? this.segs[0].n : 0
  }

  /** the segment appends go to: the cache's kvDtype, whole channels, in the arena (a new one if the last is not) */
  tail(make: () => Segment, kvDtype: KVDtype): Segment {
    const last = this.segs[this.segs.length - 1]
    if (last && isAppendSegment(last, kvDtype)) return last
    const s = make()
    this.segs.push(s)
    return s
  }

  pushPositions(p: ArrayLike<number>, count: number): void {
    const n = this.n
    if (n + count > this.pos.length) {
      const grown = new Int32Array(Math.max(n + count, this.pos.length * 2))
      grown.set(this.pos.subarray(0, n))
      this.pos = grown
    }
    for (let i = 0; i < count; i++) this.pos[n + i] = p[i]
  }

  /** the segment holding slot i and i's row within it */
  locate(i: number): { seg: Segment; row: number } {
    let start = 0
    for (const seg of this.segs) {
      if (i < start + seg.n) return { seg, row: i - start }
      start += seg.n
    }
    throw new CacheError(`slot ${i} is outside [0, ${start})`)
  }

  /** the segments holding rows, in slot order (an empty head shows one empty arena segment) */
  views(pageTokens: number, headDim: number, kvDtype: KVDtype): HeadSegment[] {
    let start = 0
    const out: HeadSegment[] = []
    for (const s of this.segs) {
      if (s.n === 0) continue
      out.push({ kTable: s.kTable, vTable: s.vTable, pageTokens, n: s.n, d: s.kd, vd: s.vd, start, channels: s.channels, format: s.format, valueFormat: s.valueFormat, tier: s.tier, keyBasis: s.keyBasis, group: s.group })
      start += s.n
    }
    if (out.length === 0) out.push({ kTable: 0, vTable: 0, pageTokens, n: 0, d: headDim, vd: headDim, start: 0, channels: null, format: kvDtype, valueFormat: kvDtype, tier: 'wasm', keyBasis: null, group: DEFAULT_GROUP })
    return out
  }

  /** disposes and drops the segments left without rows, except an empty append segment at the end (its tables are reused) */
  dropEmpty(kvDtype: KVDtype): void {
    if (this.segs.length === 1 && this.segs[0].n > 0) return
    const last = this.segs[this.segs.length - 1]
    const keepTail = last && last.n === 0 && isAppendSegment(last, kvDtype)
    for (const g of this.segs) if (g.n === 0 && !(keepTail && g === last)) g.dispose()
    this.segs = this.segs.filter((g) => g.n > 0 || (keepTail && g === last))
  }

  fork(): Stream {
    const f = new Stream()
    f.segs = this.segs.map((s) => s.fork())
    f.pos = this.pos.slice()
    f.version = this.version
    f.log = this.log.slice()
    return f
  }
}

/**
 * The KV store as one sequence sees it: per layer and KV head, a list of segments (runs of pages in one
 * format and tier, see segment.ts) with ragged per-head lengths and each token's original position.
 * Pages belong to a PageStore shared by the sequence and its forks: reference-counted, copy-on-write,
 * counted once there. A decision is carried out inside the store: each kept row moves at most once, by
 * the compaction kernel, and pages past the new end go back to the store.
 */
export class PagedKVCache implements KVCache {
  readonly options: Required<KVCacheOptions>
  readonly bytesPerToken: number
  readonly heap: Heap
  readonly store: PageStore
  private readonly kernels: StoreKernels
  private readonly compute: Heap | KernelBackend
  private streams: Stream[]
  private disposed = false

  /**
   * @param compute the backend whose kernels compact the pages (a bare Heap gets the reference twins)
   * @param store share pages with other sequences (fork() passes its own); a new store by default
   */
  constructor(compute: Heap | KernelBackend, options: KVCacheOptions, store?: PageStore) {
    // checked here: either would otherwise fail as a TypeError (destructuring, the `in` operator)
    if (typeof compute !== 'object' || compute === null) throw new CacheError(`KVCache: compute must be a backend (createBackend) or a Heap, got ${compute === null ? 'null' : typeof compute}`)
    if (typeof options !== 'object' || options === null) throw new CacheError(`KVCache: options must be an object ({ layers, kvHeads, headDim }), got ${options === null ? 'null' : typeof options}`)
    const { layers, kvHeads, headDim } = options
    const pageTokens = options.pageTokens ?? 64
    const keys = options.keys ?? 'post-rope'
    for (const [name, v] of [['layers', layers], ['kvHeads', kvHeads], ['headDim', headDim], ['pageTokens', pageTokens]] as const) {
      if (!Number.isInteger(v) || v <= 0) throw new CacheError(`KVCache: ${name} must be a positive integer, got ${v}`)
    }
    if (keys !== 'post-rope' && keys !== 'pre-rope') throw new CacheError(`KVCache: keys must be 'post-rope' or 'pre-rope', got ${String(keys)}`)
    const kvDtype = options.kvDtype ?? 'float32'
    if (!KV_DTYPES.includes(kvDtype)) throw new CacheError(`KVCache: kvDtype must be one of ${KV_DTYPES.join(', ')}, got ${JSON.stringify(kvDtype)}`)
    this.options = { layers, kvHeads, headDim, pageTokens, keys, kvDtype }
    this.bytesPerToken = layers * kvHeads * 2 * headDim * elementBytes(kvDtype)
    const isBackend = 'heap' in compute && 'compactRows' in compute
    this.heap = isBackend ? (compute as KernelBackend).heap : (compute as Heap)
    this.kernels = isBackend ? (compute as KernelBackend) : referenceKernels(this.heap)
    this.compute = compute
    if (store && (store.heap !== this.heap || store.pageTokens !== pageTokens)) throw new CacheError('KVCache: the page store belongs to another heap or page size')
    this.store = store ?? new PageStore(this.heap, pageTokens)
    this.streams = Array.from({ length: layers * kvHeads }, () => new Stream())
  }

  private newSegment(kd = this.options.headDim, channels: Int32Array | null = null): Segment {
    return new Segment(this.store, this.kernels, this.options.kvDtype, kd, this.options.headDim, channels)
  }

  private alive(): void {
    if (this.disposed) throw new CacheError('KVCache: used after dispose()')
  }

  private stream(layer: number, head: number): Stream {
    this.alive()
    const { layers, kvHeads } = this.options
    if (!Number.isInteger(layer) || layer < 0 || layer >= layers) throw new CacheError(`KVCache: layer ${layer} is outside [0, ${layers})`)
    if (!Number.isInteger(head) || head < 0 || head >= kvHeads) throw new CacheError(`KVCache: head ${head} is outside [0, ${kvHeads})`)
    return this.streams[layer * kvHeads + head]
  }

  length(layer: number, head: number): number {
    return this.stream(layer, head).n
  }

  positions(layer: number, head: number): Int32Array {
    const s = this.stream(layer, head)
    return s.pos.slice(0, s.n)
  }

  view(layer: number, head: number): HeadView {
    const segs = this.segments(layer, head)
    if (segs[0].n === 0) return segs[0]
    if (segs.length > 1) throw new CacheError(`KVCache.view: (layer ${layer}, head ${head}) has ${segs.length} segments (channel-pruned or partly in another tier): use segments()`)
    if (segs[0].tier !== 'wasm') throw new CacheError(`KVCache.view: (layer ${layer}, head ${head}) lives in the '${segs[0].tier}' tier; move it to 'wasm' or fetch its rows`)
    if (formatInfo(segs[0].format).scaled) throw new CacheError(`KVCache.view: (layer ${layer}, head ${head}) is packed (${segs[0].format}); read it through segments() and the packed kernels, or readKeys()`)
    return segs[0]
  }

  segments(layer: number, head: number): HeadSegment[] {
    return this.stream(layer, head).views(this.options.pageTokens, this.options.headDim, this.options.kvDtype)
  }

  readKeys(layer: number, head: number): Float32Array {
    return this.readRows(layer, head, 'key')
  }

  readKeyRange(layer: number, head: number, from: number, to: number): Float32Array {
    this.checkRange('readKeyRange', layer, head, from, to)
    return this.readRows(layer, head, 'key', from, to)
  }

  readValues(layer: number, head: number): Float32Array {
    return this.readRows(layer, head, 'value')
  }

  changes(layer: number, head: number, since: number): RowChanges {
    const s = this.stream(layer, head)
    if (!(Number.isInteger(since) && since >= 0 && since <= s.version)) throw new CacheError(`changes: since = ${since} is not a version of (layer ${layer}, head ${head}) (0..${s.version})`)
    const { version, log } = s
    if (since === version) return { version, from: 0, to: 0 }
    // the oldest change remembered must be the one right after `since`
    if (log[0].version > since + 1) return { version, from: 0, to: Infinity }
    let from = Infinity
    let to = 0
    for (const c of log) {
      if (c.version <= since) continue
      from = Math.min(from, c.from)
      to = Math.max(to, c.to)
    }
    return { version, from, to }
  }

  readKeysInto(layer: number, head: number, from: number, to: number, dst: number): void {
    this.checkRange('readKeysInto', layer, head, from, to)
    if (!(Number.isInteger(dst) && dst > 0 && dst % 4 === 0)) throw new CacheError(`readKeysInto: dst = ${dst} is not a 4-byte aligned arena pointer`)
    this.readRowsTo(layer, head, 'key', from, to, dst)
  }

  /** throws CacheError unless [from, to) is a range of integer slots of the head */
  private checkRange(what: string, layer: number, head: number, from: number, to: number): void {
    const n = this.stream(layer, head).n
    if (!(Number.isInteger(from) && Number.isInteger(to) && from >= 0 && from <= to && to <= n)) throw new CacheError(`${what}: [${from}, ${to}) is not a range of the ${n} slots of (layer ${layer}, head ${head})`)
  }

  /**
   * a head's keys or values of slots [from, to) (all by default) as a fresh [to - from][headDim] array,
   * from any tier (pruned key channels read as 0)
   */
  private readRows(layer: number, head: number, role: 'key' | 'value', from = 0, to = Infinity): Float32Array {
    const d = this.options.headDim
    to = Math.min(to, this.stream(layer, head).n)
    const m = Math.max(0, to - from)
    const buf = this.heap.alloc(m * d * 4 + 16)
    try {
      this.readRowsTo(layer, head, role, from, to, buf)
      return this.heap.F32.slice(buf >> 2, (buf >> 2) + m * d)
    } finally {
      this.heap.release(buf)
    }
  }

  /**
   * readRows into arena memory at dst ([to - from][headDim] floats): float32 rows and packed rows (through
   * the get-rows kernels) land there directly, float16 rows are widened there, channel-pruned keys are
   * scattered with zeros. No JavaScript array in between: a fresh one costs its first-touch page faults
   * (about 14 ms per 4 MiB on the dev machine's VM), more than the copy.
   */
  private readRowsTo(layer: number, head: number, role: 'key' | 'value', from: number, to: number, dst: number): void {
    const s = this.stream(layer, head)
    const d = this.options.headDim
    let row = 0
    let start = 0
    for (const seg of s.segs) {
      // the segment's rows inside [from, to), local to it
      const a = Math.max(from, start) - start
      const b = Math.min(to, start + seg.n) - start
      start += seg.n
      if (b <= a) continue
      const m = b - a
      const rows = new Int32Array(m)
      for (let i = 0; i < m; i++) rows[i] = a + i
      const at = dst + row * d * 4
      row += m
      const whole = role === 'value' || !seg.channels
      if (whole && seg.format !== 'float16') {
        // float32 or packed rows of the role asked for, straight into place (a packed segment dequantizes only it)
        seg.fetchRows(rows, at, at, role === 'key', role === 'value')
        continue
      }
      const values = m * (seg.kd + seg.vd)
      const tmp = this.heap.alloc(values * 4 + 16)
      // float16 rows are fetched into the upper half of tmp, then widened into the whole of it
      const raw = seg.format === 'float16' ? tmp + values * 2 : tmp
      try {
        const kDst = tmp
        const vDst = tmp + m * seg.kd * 4
        seg.fetchRows(rows, raw, raw + m * seg.keyRowBytes, role === 'key', role === 'value')
        if (raw !== tmp) this.kernels.fromFloat16(raw, tmp, values)
        const F = this.heap.F32
        const o = at >> 2
        if (whole) F.copyWithin(o, (role === 'value' ? vDst : kDst) >> 2, ((role === 'value' ? vDst : kDst) >> 2) + m * d)
        else {
          F.fill(0, o, o + m * d)
          for (let i = 0; i < m; i++) for (let c = 0; c < seg.kd; c++) F[o + i * d + seg.channels![c]] = F[(kDst >> 2) + i * seg.kd + c]
        }
      } finally {
        this.heap.release(tmp)
      }
    }
  }

  /** one layer's keys and values of every head as fresh [n][kvHeads][headDim] arrays (append's layout); heads of equal length */
  readLayer(layer: number): { k: Float32Array; v: Float32Array } {
    const { kvHeads, headDim: d } = this.options
    const T = this.length(layer, 0)
    const k = new Float32Array(T * kvHeads * d)
    const v = new Float32Array(T * kvHeads * d)
    for (let h = 0; h < kvHeads; h++) {
      if (this.length(layer, h) !== T) throw new CacheError(`readLayer: the heads of layer ${layer} hold different numbers of tokens`)
      const kh = this.readKeys(layer, h)
      const vh = this.readValues(layer, h)
      for (let t = 0; t < T; t++) {
        k.set(kh.subarray(t * d, (t + 1) * d), (t * kvHeads + h) * d)
        v.set(vh.subarray(t * d, (t + 1) * d), (t * kvHeads + h) * d)
      }
    }
    return { k, v }
  }

  /**
   * Copies rows of one segment of a head (slots relative to the segment, any order) into arena buffers:
   * keys [rows][kd] at kDst, values [rows][vd] at vDst. From the host tier this is the tier fetch.
   * `keys` false fetches the values alone (kDst unused).
   */
  fetchRows(layer: number, head: number, segment: number, rows: ArrayLike<number>, kDst: number, vDst: number, keys = true): void {
    const segs = this.stream(layer, head).segs.filter((s) => s.n > 0)
    const seg = segs[segment]
    if (!seg) throw new CacheError(`fetchRows: (layer ${layer}, head ${head}) has no segment ${segment}`)
    for (let i = 0; i < rows.length; i++) {
      if (!(Number.isInteger(rows[i]) && rows[i] >= 0 && rows[i] < seg.n)) throw new CacheError(`fetchRows: rows[${i}] = ${rows[i]} is outside [0, ${seg.n})`)
    }
    seg.fetchRows(rows, kDst, vDst, keys)
  }

  /**
   * fetchRows as a promise: the seam a decode step awaits for rows outside the arena. Host ArrayBuffers
   * are copied at once (the promise is already settled when returned); a tier whose reads complete later
   * (GPU readback, a worker holding the host pages) resolves when the rows are in the arena.
   */
  fetchRowsAsync(layer: number, head: number, segment: number, rows: ArrayLike<number>, kDst: number, vDst: number, keys = true): Promise<void> {
    try {
      this.fetchRows(layer, head, segment, rows, kDst, vDst, keys)
      return Promise.resolve()
    } catch (e) {
      return Promise.reject(e)
    }
  }

  append(layer: number, k: Float32Array, v: Float32Array, positions: Int32Array): void {
    const { kvHeads, headDim } = this.options
    checkPositions('append', positions)
    const T = positions.length
    const rowFloats = kvHeads * headDim
    this.stream(layer, 0)
    if (!(k instanceof Float32Array) || k.length !== T * rowFloats) throw new CacheError(`append: k must be a Float32Array of ${T} x ${kvHeads} x ${headDim} = ${T * rowFloats}, got ${k?.length}`)
    if (!(v instanceof Float32Array) || v.length !== T * rowFloats) throw new CacheError(`append: v must be a Float32Array of ${T * rowFloats}, got ${v?.length}`)
    if (k.buffer === this.heap.memory.buffer || v.buffer === this.heap.memory.buffer) {
      throw new CacheError('append: k and v must not be views of the arena (memory may grow while pages are allocated): use appendFromHeap')
    }
    if (this.options.kvDtype === 'float16') {
      // the compute core converts: the rows go through the arena and appendFromHeap
      const kp = this.heap.alloc(k.length * 4 + 16)
      const vp = this.heap.alloc(v.length * 4 + 16)
      try {
        this.heap.F32.set(k, kp >> 2)
        this.heap.F32.set(v, vp >> 2)
        this.appendFromHeap(layer, kp, vp, positions)
      } finally {
        this.heap.release(kp)
        this.heap.release(vp)
      }
      return
    }
    const tails = this.reserveTails(layer, T)
    for (let h = 0; h < kvHeads; h++) {
      this.stream(layer, h).pushPositions(positions, T)
      for (let t = 0; t < T; t++) tails[h].pushRow(k, t * rowFloats + h * headDim, v, t * rowFloats + h * headDim)
    }
  }

  /**
   * append from arena pointers: k and v at kPtr/vPtr laid out [T][kvHeads][headDim] (the projection
   * output), float32. Float16 caches round them on the way in (the compute core's toFloat16); a NaN
   * among them is refused with a CacheError before any row counts, since no float16 page holds NaN.
   */
  appendFromHeap(layer: number, kPtr: number, vPtr: number, positions: Int32Array): void {
    checkPositions('appendFromHeap', positions)
    const { kvHeads, headDim } = this.options
    const T = positions.length
    const tails = this.reserveTails(layer, T)
    let nan = 0
    for (let h = 0; h < kvHeads; h++) {
      const at = tails[h].n
      for (let t = 0; t < T; t++) {
        const off = (t * kvHeads + h) * headDim * 4
        nan += tails[h].writeRowFromHeap(at + t, kPtr + off, vPtr + off)
      }
    }
    if (nan) throw new CacheError(`append: layer ${layer}'s keys and values hold ${nan} NaN; float16 pages cannot hold NaN (nothing was appended)`)
    for (let h = 0; h < kvHeads; h++) {
      this.stream(layer, h).pushPositions(positions, T)
      tails[h].commitRows(T)
    }
  }

  /**
   * Counts T new rows per KV head of `layer` at `positions` without writing them, for a caller that
   * writes the rows itself into the same pages: the WebGPU runtime, whose GPU twin of the arena
   * (src/backend/webgpu/mirror.ts) holds the pages' newer bytes, in the cache's kvDtype (float16 rows
   * rounded as toFloat16 rounds them: wgsl/append_f16.wgsl). Returns per KV head its append segment's
   * page tables and the row the first new token takes there.
   */
  appendReserved(layer: number, positions: Int32Array): { kTable: number; vTable: number; first: number }[] {
    checkPositions('appendReserved', positions)
    const T = positions.length
    const tails = this.reserveTails(layer, T)
    return tails.map((tail, h) => {
      const at = { kTable: tail.kTable, vTable: tail.vTable, first: tail.n }
      this.stream(layer, h).pushPositions(positions, T)
      tail.commitRows(T)
      return at
    })
  }

  /** every head's append segment with room for T rows (all allocation before any write) */
  private reserveTails(layer: number, T: number): Segment[] {
    const tails: Segment[] = []
    for (let h = 0; h < this.options.kvHeads; h++) {
      const t = this.stream(layer, h).tail(() => this.newSegment(), this.options.kvDtype)
      t.reserve(T)
      tails.push(t)
    }
    return tails
  }

  /**
   * Overwrites the key and value of one slot in place (CacheBlend's partial recompute); a page shared
   * with another sequence is copied first, so the other sequence keeps its row.
   */
  overwrite(layer: number, head: number, slot: number, key: Float32Array, value: Float32Array): void {
    const s = this.stream(layer, head)
    const d = this.options.headDim
    if (!Number.isInteger(slot) || slot < 0 || slot >= s.n) throw new CacheError(`overwrite: slot ${slot} is outside [0, ${s.n})`)
    if (!(key instanceof Float32Array) || key.length !== d) throw new CacheError(`overwrite: key must be a Float32Array of ${d}, got ${key?.length}`)
    if (!(value instanceof Float32Array) || value.length !== d) throw new CacheError(`overwrite: value must be a Float32Array of ${d}, got ${value?.length}`)
    const { seg, row } = s.locate(slot)
    if (seg.channels) throw new CacheError(`overwrite: slot ${slot} of (layer ${layer}, head ${head}) is in the channel-pruned prefix`)
    seg.overwriteRow(row, key, value)
    s.changed(slot, slot + 1)
  }

  /**
   * The key and value pages holding page p of every head (slots [p * pageTokens, (p + 1) * pageTokens)),
   * layer-major then head, key before value, each with one more reference for the caller, who gives it
   * back with `store.release`. Every head must hold the whole page in one arena float32 segment.
   */
  sharePage(p: number): Page[] {
    this.alive()
    const pt = this.options.pageTokens
    const out: Page[] = []
    this.streams.forEach((s, i) => {
      const { seg, row } = s.locate(p * pt)
      if (!isAppendSegment(seg, 'float32') || row + pt > seg.n || row % pt !== 0) {
        throw new CacheError(`sharePage: page ${p} of (layer ${Math.floor(i / this.options.kvHeads)}, head ${i % this.options.kvHeads}) is not a whole arena float32 page`)
      }
      const { k, v } = seg.pageAt(row / pt)
      out.push(this.store.retain(k), this.store.retain(v))
    })
    return out
  }

  /**
   * Appends whole pages shared with another holder (as `sharePage` lists them) to every head, with the
   * positions of their rows: no row is copied, each page gains a reference and is copied only when this
   * sequence writes to it. Every head must end on a page boundary.
   */
  appendPages(pages: readonly Page[], positions: Int32Array): void {
    this.alive()
    checkPositions('appendPages', positions)
    const pt = this.options.pageTokens
    const per = this.streams.length * 2
    if (pages.length % per !== 0 || positions.length !== (pages.length / per) * pt) {
      throw new CacheError(`appendPages: ${pages.length} pages and ${positions.length} positions do not make whole pages of ${this.streams.length} heads`)
    }
    for (const s of this.streams) if (s.n % pt !== 0) throw new CacheError(`appendPages: a head holds ${s.n} tokens, not whole pages of ${pt}`)
    const count = pages.length / per
    this.streams.forEach((s, i) => {
      for (let b = 0; b < count; b++) {
        const tail = s.tail(() => this.newSegment(), this.options.kvDtype)
        tail.adoptPage(pages[b * per + 2 * i], pages[b * per + 2 * i + 1])
        s.pushPositions(positions.subarray(b * pt, (b + 1) * pt), pt)
      }
    })
  }

  /**
   * Gives slots [from, from + positions.length) of every head new positions (CacheBlend and Graph-KV
   * moving cached chunks). Pre-RoPE keys are only relabelled (they are rotated from positions at
   * attention time); post-RoPE keys are re-rotated by `rotate`, called once per head on its key page
   * table after the pages are made this sequence's own (copy-on-write). Checked whole before any change.
   */
  reposition(from: number, positions: Int32Array, rotate?: KeyRotation): void {
    this.alive()
    checkPositions('reposition', positions)
    const count = positions.length
    const postRope = this.options.keys === 'post-rope'
    if (postRope && !rotate) throw new CacheError('reposition: keys are stored after RoPE; pass the rotation that moves them')
    this.streams.forEach((s, i) => {
      const at = `(layer ${Math.floor(i / this.options.kvHeads)}, head ${i % this.options.kvHeads})`
      if (!Number.isInteger(from) || from < 0 || from + count > s.n) throw new CacheError(`reposition: slots [${from}, ${from + count}) are outside the ${s.n} of ${at}`)
      if (postRope && s.segs.some((g) => g.n > 0 && !isAppendSegment(g, 'float32'))) throw new CacheError(`reposition: ${at} is not all arena float32 rows with every channel`)
    })
    this.streams.forEach((s, i) => {
      const old = s.pos.slice(from, from + count)
      if (postRope) {
        const seg = s.segs.find((g) => g.n > 0)!
        seg.writable(from, from + count)
        rotate!(seg.kTable, this.options.pageTokens, from, old, positions, Math.floor(i / this.options.kvHeads))
      }
      s.pos.set(positions, from)
      s.changed(from, from + count)
    })
  }

  apply(decision: Decision): void {
    const { layers, kvHeads, headDim } = this.options
    if (this.options.keys === 'pre-rope') {
      const i = decision?.heads?.findIndex((h) => h.keyChannels) ?? -1
      if (i >= 0) throw new CacheError(`apply: heads[${i}].keyChannels: keys stored before RoPE cannot be channel-pruned (rotation needs every channel pair)`)
    }
    validateDecision(decision, layers, kvHeads, headDim, (l, h) => {
      const s = this.stream(l, h)
      return { n: s.n, pruned: s.pruned }
    })
    // the checks below run once a head in code V8 has barely run (a one-shot compaction calls apply a
    // handful of times): indexed loops, and the message prefix built only for an error
    const heads = decision.heads
    for (let i = 0; i < heads.length; i++) {
      const hd = heads[i]
      if (hd.merges?.length || hd.keyChannels || this.stream(hd.layer, hd.head).packedRows) this.checkHead(hd, `apply: heads[${i}]`)
    }
    const evictions = decision.evictions ?? []
    for (let i = 0; i < evictions.length; i++) {
      const ev = evictions[i]
      const packed = this.stream(ev.layer, ev.head).packedRows
      if (packed && ev.evict?.[0] < packed) throw new CacheError(`apply: evictions[${i}] evicts slot ${ev.evict[0]} of (layer ${ev.layer}, head ${ev.head}), inside its ${packed} packed slots`)
    }
    const quantize = this.checkQuantize(decision)
    // one scratch buffer for every head: the longest keep list (or eviction pairs, or channel list)
    let scratchInts = Math.max(4, headDim)
    for (let i = 0; i < heads.length; i++) scratchInts = Math.max(scratchInts, heads[i].keep.length)
    for (let i = 0; i < evictions.length; i++) scratchInts = Math.max(scratchInts, 2 * evictions[i].evict.length)
    const scratch = this.heap.alloc(scratchInts * 4)
    try {
      const rest = this.kernels.compactRowsKVBatch ? this.applyHeadsAtOnce(heads, this.kernels.compactRowsKVBatch, scratch) : heads
      for (let i = 0; i < rest.length; i++) this.applyHead(rest[i], scratch)
      for (let i = 0; i < evictions.length; i++) this.evictHead(evictions[i], scratch)
      for (let i = 0; i < quantize.length; i++) this.quantizeHead(quantize[i])
    } finally {
      this.heap.release(scratch)
    }
    // compaction is done: give the pages no head took back to the heap, so the smaller cache is smaller memory
    this.store.drain()
  }

  /** the checks of a head with merges, channel pruning or packed slots (`at` names it in errors) */
  private checkHead(hd: HeadDecision, at: string): void {
    const s = this.stream(hd.layer, hd.head)
    if ((hd.merges?.length || hd.keyChannels) && s.segs.some((g) => g.tier !== 'wasm')) {
      throw new CacheError(`${at}: merges and keyChannels need (layer ${hd.layer}, head ${hd.head}) in the 'wasm' tier`)
    }
    const packed = s.packedRows
    if (packed) {
      const j = keptInPlace(hd.keep)
      if (j < packed) throw new CacheError(`${at}: slot ${j} of (layer ${hd.layer}, head ${hd.head}) is packed (its first ${packed} slots are) and cannot be evicted`)
      if (hd.keyChannels) throw new CacheError(`${at}.keyChannels: (layer ${hd.layer}, head ${hd.head}) holds packed keys; prune channels before quantizing`)
      for (const m of hd.merges ?? []) {
        if (m.pivot < packed || m.members.some((x) => x < packed)) throw new CacheError(`${at}.merges: a merge touches the packed slots of (layer ${hd.layer}, head ${hd.head})`)
      }
    }
    if (hd.keyChannels && s.segs.filter((g) => g.n > 0).length > 1) {
      throw new CacheError(`${at}.keyChannels: (layer ${hd.layer}, head ${hd.head}) must be one segment to be channel-pruned`)
    }
  }

  /**
   * The heads of one arena segment with no merges or channel pruning (a one-shot compaction's every
   * head), compacted as one batch of kernel calls (the threaded backend runs them in parallel), each
   * head's rows and positions exactly as applyHead leaves them. No page goes back to the store before the
   * batch has run, so no head's copy-on-write takes a page another head still reads. Returns the heads
   * left for applyHead, in order.
   */
  private applyHeadsAtOnce(heads: readonly HeadDecision[], batch: NonNullable<StoreKernels['compactRowsKVBatch']>, scratch: number): readonly HeadDecision[] {
    const plain: HeadDecision[] = []
    const rest: HeadDecision[] = []
    let ints = 0
    for (let i = 0; i < heads.length; i++) {
      const hd = heads[i]
      const segs = this.stream(hd.layer, hd.head).segs
      if (segs.length === 1 && segs[0].tier === 'wasm' && !hd.merges?.length && !hd.keyChannels) {
        plain.push(hd)
        ints += hd.keep.length
      } else rest.push(hd)
    }
    if (plain.length < 2) return heads
    const keeps = this.heap.alloc(ints * 4)
    try {
      const calls: CompactCall[] = []
      const moved = new Int32Array(plain.length)
      for (let i = 0, at = keeps; i < plain.length; at += plain[i].keep.length * 4, i++) {
        const call = this.stream(plain[i].layer, plain[i].head).segs[0].compactCall(plain[i].keep, at)
        if (call) calls.push(call)
        moved[i] = call?.moved ?? 0
      }
      if (calls.length) batch(calls)
      // changes are marked once the rows have moved (a closed pool does not refuse the batch: its
      // backend then runs every call on the calling thread, ThreadPool.threads)
      for (let i = 0; i < plain.length; i++) {
        const s = this.stream(plain[i].layer, plain[i].head)
        const first = keptInPlace(plain[i].keep)
        this.markChanged(s, plain[i], first)
        s.segs[0].compacted(plain[i].keep.length, moved[i])
        this.afterCompaction(s, plain[i], first, null, scratch)
      }
    } finally {
      this.heap.release(keeps)
    }
    return rest
  }

  private applyHead(hd: HeadDecision, scratch: number): void {
    const s = this.stream(hd.layer, hd.head)
    const keep = hd.keep
    // merged rows are read before any row moves
    const merged = hd.merges?.length ? hd.merges.map((m) => ({ pivot: m.pivot, rows: this.mergeRows(s, m) })) : null
    const first = keptInPlace(keep)
    this.markChanged(s, hd, first)
    if (s.segs.length === 1) {
      // one segment (the common case): its slots are the head's, the keep list goes to it as it is
      s.segs[0].compact(keep, scratch)
    } else {
      // each segment keeps its share of the slots, compacted in place; its share is found by binary search
      // and the first segment's slots are already local (a view, no copy)
      let start = 0
      let j = 0
      for (const seg of s.segs) {
        const from = j
        j = lowerBound(keep, start + seg.n)
        const local = start === 0 ? keep.subarray(from, j) : keep.subarray(from, j).map((x) => x - start)
        start += seg.n
        seg.compact(local, scratch)
      }
    }
    this.afterCompaction(s, hd, first, merged, scratch)
  }

  /**
   * What changes for readers that cache per-page summaries: every slot from the first one not kept in
   * place, or earlier where a merge or a channel pruning rewrites a row
   */
  private markChanged(s: Stream, hd: HeadDecision, first: number): void {
    const keep = hd.keep
    let same = first
    for (const m of hd.merges ?? []) same = Math.min(same, lowerBound(keep, m.pivot))
    if (hd.keyChannels && hd.keyChannels.upto > 0) same = 0
    s.changed(same, s.n)
  }

  /** a head's rows are compacted: its positions follow, then merges, channel pruning and extra tokens */
  private afterCompaction(s: Stream, hd: HeadDecision, first: number, merged: { pivot: number; rows: ReturnType<PagedKVCache['mergeRows']> }[] | null, scratch: number): void {
    const keep = hd.keep
    const nKept = keep.length
    // slots before the first one dropped (`first`) stay where they are, rows and positions alike
    const pos = s.pos
    for (let i = first; i < nKept; i++) pos[i] = pos[keep[i]]
    // merged pivots: written where the pivot now sits (keep is ascending, so a binary search finds it)
    if (merged) {
      for (const m of merged) {
        if (!m.rows) continue
        const { seg, row } = s.locate(lowerBound(keep, m.pivot))
        seg.overwriteRow(row, m.rows.k, m.rows.v)
      }
    }
    if (hd.keyChannels && hd.keyChannels.upto > 0) {
      const whole = s.segs.find((g) => g.n > 0) ?? s.segs[0]
      const upto = hd.keyChannels.upto
      const pruned = whole.pruneChannels(hd.keyChannels.channels, upto, scratch)
      whole.compact(Int32Array.from({ length: whole.n - upto }, (_, i) => upto + i), scratch)
      s.segs = [pruned, whole]
    }
    s.dropEmpty(this.options.kvDtype)
    const extra = hd.extra
    if (extra?.length) {
      const tail = s.tail(() => this.newSegment(), this.options.kvDtype)
      tail.reserve(extra.length)
      for (const x of extra) tail.pushRow(x.key, 0, x.value, 0)
      if (s.pos.length < nKept + extra.length) {
        const grown = new Int32Array(Math.max(64, nKept + extra.length))
        grown.set(s.pos.subarray(0, nKept))
        s.pos = grown
      }
      for (let i = 0; i < extra.length; i++) s.pos[nKept + i] = extra[i].position
    }
  }

  /** the quantization list, checked whole before any work (see HeadQuantization) */
  private checkQuantize(decision: Decision): HeadQuantization[] {
    const list = decision.quantize ?? []
    if (!Array.isArray(list)) throw new CacheError('apply: decision.quantize must be an array')
    if (list.length === 0) return list
    const { pageTokens, keys } = this.options
    if (keys === 'pre-rope') throw new CacheError('apply: quantize: keys stored before RoPE are rotated at attention time and cannot be packed')
    if (pageTokens % DEFAULT_GROUP) throw new CacheError(`apply: quantize: pageTokens ${pageTokens} must be a multiple of the key group (${DEFAULT_GROUP})`)
    // each head's slots once `heads` and `evictions` are applied, and how far it is packed so far
    const after = new Map<string, number>()
    for (const h of decision.heads) after.set(`${h.layer}/${h.head}`, h.keep.length + (h.extra?.length ?? 0))
    for (const e of decision.evictions ?? []) after.set(`${e.layer}/${e.head}`, this.stream(e.layer, e.head).n - e.evict.length)
    const packedSoFar = new Map<string, number>()
    list.forEach((q, i) => {
      const at = `apply: quantize[${i}]`
      const s = this.stream(q?.layer, q?.head)
      const key = `${q.layer}/${q.head}`
      const kInfo = formatInfo(q.keys)
      if (!kInfo.scaled || !kInfo.zeroPoint) throw new CacheError(`${at}.keys: ${q.keys} is not an integer key format (int8, int4, int2, int1, int2+sign)`)
      if (!formatInfo(q.values).scaled || q.values === 'int2+sign') throw new CacheError(`${at}.values: ${q.values} is not an integer or ternary value format (int8, int4, int2, int1, ternary)`)
      if ((q.keys === 'int2+sign') !== (q.keyHiChannels !== undefined)) throw new CacheError(`${at}.keyHiChannels: int2+sign keys need the channels kept in 2 bits, and only they take them`)
      if (q.keyHiChannels !== undefined) {
        if (!(q.keyHiChannels instanceof Int32Array)) throw new CacheError(`${at}.keyHiChannels must be an Int32Array`)
        keyBasis(q.keyHiChannels, this.options.headDim, `${at}.keyHiChannels`)
      }
      // key groups the kernels read (KIVI's 32, 64, 128, for every integer key format), within a page
      const group = checkKeyGroup(q.group ?? DEFAULT_GROUP, `${at}.group`)
      if (pageTokens % group) throw new CacheError(`${at}.group: pageTokens ${pageTokens} must be a multiple of the key group (${group})`)
      const packed = packedSoFar.get(key) ?? s.packedRows
      const n = after.get(key) ?? s.n
      if (!Number.isInteger(q.upto) || q.upto < packed || q.upto > n) throw new CacheError(`${at}.upto = ${q.upto} is outside [${packed}, ${n}] (packed slots so far, slots held)`)
      packedSoFar.set(key, q.upto)
      if (q.upto === packed) return
      // the float rows: whole rows, or ThinK's channel-pruned prefix and then whole rows
      const floats = s.segs.filter((g) => g.n > 0 && !g.packed)
      if (floats.length > 2 || (floats.length === 2 && (!floats[0].channels || floats[1].channels)) || floats.some((g) => (g.format !== 'float32' && g.format !== 'float16') || g.tier !== 'wasm')) throw new CacheError(`${at}: slots [${packed}, ${q.upto}) of (layer ${q.layer}, head ${q.head}) must be float rows in the arena`)
      if (q.keyHiChannels && floats.some((g) => g.channels)) throw new CacheError(`${at}: int2+sign keys take whole key rows; (layer ${q.layer}, head ${q.head}) has channel-pruned rows`)
    })
    return list
  }

  /**
   * packs slots [packed, upto) of a head from its float rows (checked by checkQuantize): after the last
   * packed segment when it has the same formats and ends on a whole key group, else in a new one
   */
  private quantizeHead(q: HeadQuantization): void {
    const s = this.stream(q.layer, q.head)
    const packed = s.packedRows
    // packed rows read back dequantized: other values than the float rows they replace
    s.changed(packed, q.upto)
    let left = q.upto - packed
    while (left > 0) {
      // the first float rows (a channel-pruned prefix first), packed with their own key channels
      const src = s.segs.find((g) => g.n > 0 && !g.packed)!
      const take = Math.min(left, src.n)
      const lead = s.segs.findIndex((g) => !g.packed)
      const packedSegs = lead < 0 ? s.segs.length : lead
      let target = packedSegs ? s.segs[packedSegs - 1] : undefined
      const basis = q.keyHiChannels ? keyBasis(q.keyHiChannels, this.options.headDim) : null
      const group = q.group ?? DEFAULT_GROUP
      if (!target || target.format !== q.keys || target.valueFormat !== q.values || target.group !== group || target.n % group || String(target.channels) !== String(src.channels) || String(target.keyBasis?.hi) !== String(basis?.hi)) {
        target = new Segment(this.store, this.kernels, q.keys, src.kd, this.options.headDim, src.channels, 'wasm', q.values, basis, group)
        s.segs.splice(packedSegs, 0, target)
      }
      target.appendPacked(src, take)
      const keepPtr = this.heap.alloc(Math.max(1, src.n) * 4)
      try {
        src.compact(Int32Array.from({ length: src.n - take }, (_, i) => take + i), keepPtr)
      } finally {
        this.heap.release(keepPtr)
      }
      left -= take
    }
    s.dropEmpty(this.options.kvDtype)
  }

  /** order-free eviction: each segment fills its holes from its own end; positions follow the rows */
  private evictHead(ev: HeadEviction, scratch: number): void {
    const s = this.stream(ev.layer, ev.head)
    if (ev.evict.length) s.changed(ev.evict[0], s.n)
    let start = 0
    let j = 0
    let removed = 0
    for (const seg of s.segs) {
      const oldN = seg.n
      const from = j
      while (j < ev.evict.length && ev.evict[j] < start + oldN) j++
      if (j > from) {
        const pairs = seg.evict(ev.evict.subarray(from, j).map((x) => x - start), scratch)
        for (let p = 0; p < pairs.length; p += 2) s.pos[start + pairs[p]] = s.pos[start + pairs[p + 1]]
      }
      // the segment's positions move down by the rows earlier segments lost (ints, not rows)
      if (removed) s.pos.copyWithin(start - removed, start, start + seg.n)
      removed += j - from
      start += oldN
    }
    s.dropEmpty(this.options.kvDtype)
  }

  /** the weighted mean of a merge's rows (keys at the pivot's stored width), or null if all weights are 0 */
  private mergeRows(s: Stream, m: NonNullable<HeadDecision['merges']>[number]): { k: Float32Array; v: Float32Array } | null {
    const pivot = s.locate(m.pivot)
    const k = new Float32Array(pivot.seg.kd)
    const v = new Float32Array(pivot.seg.vd)
    let wSum = 0
    const add = (i: number, w: number) => {
      const { seg, row } = s.locate(i)
      const kr = seg.readRow(row, 'key')
      const vr = seg.readRow(row, 'value')
      for (let c = 0; c < k.length; c++) k[c] += w * kr[c]
      for (let c = 0; c < v.length; c++) v[c] += w * vr[c]
      wSum += w
    }
    let pivotListed = false
    for (let j = 0; j < m.members.length; j++) {
      if (m.members[j] === m.pivot) pivotListed = true
      add(m.members[j], m.weights[j])
    }
    if (!pivotListed) add(m.pivot, 1)
    if (!(wSum > 0)) return null
    for (let c = 0; c < k.length; c++) k[c] /= wSum
    for (let c = 0; c < v.length; c++) v[c] /= wSum
    return { k, v }
  }

  /**
   * A second sequence over the same pages: every page gains a reference and is copied only when one of
   * the two writes to it (appends into a shared partly filled page, compaction, overwrite). The fork
   * shares this cache's store, so shared bytes count once in `store.liveBytes`.
   */
  fork(): PagedKVCache {
    this.alive()
    const f = new PagedKVCache(this.compute, this.options, this.store)
    f.streams = this.streams.map((s) => s.fork())
    return f
  }

  /**
   * Rolls the sequence back to its first `tokens` positions: every slot whose position is >= tokens is
   * dropped (speculative decoding's rejected draft, a retried turn). Those slots must be each head's last
   * ones (what was appended after), or nothing changes and a CacheError says which head.
   */
  rollback(tokens: number): void {
    this.alive()
    if (!Number.isInteger(tokens) || tokens < 0) throw new CacheError(`rollback: tokens must be a non-negative integer, got ${tokens}`)
    const keepCounts = this.streams.map((s, i) => {
      const n = s.n
      let keep = n
      while (keep > 0 && s.pos[keep - 1] >= tokens) keep--
      for (let j = 0; j < keep; j++) {
        if (s.pos[j] >= tokens) {
          const { kvHeads } = this.options
          throw new CacheError(`rollback: (layer ${Math.floor(i / kvHeads)}, head ${i % kvHeads}) holds position ${s.pos[j]} at slot ${j}, before tokens it keeps: not a suffix`)
        }
      }
      return keep
    })
    this.streams.forEach((s, i) => {
      s.changed(keepCounts[i], s.n)
      let left = keepCounts[i]
      for (const seg of s.segs) {
        const take = Math.min(seg.n, left)
        seg.truncate(take)
        left -= take
      }
      s.dropEmpty(this.options.kvDtype)
    })
  }

  /**
   * Moves pages between tiers, whole segments at a time: every segment of the chosen heads (all heads by
   * default) goes to `tier`; appends then start a new arena segment. One operation; returns the bytes
   * copied (also added to `store.bytesMoved`).
   */
  moveTo(tier: Tier, where: { layer?: number; head?: number } = {}): number {
    this.alive()
    if (!TIERS.includes(tier)) throw new CacheError(`moveTo: tier must be one of ${TIERS.join(', ')}, got ${JSON.stringify(tier)}`)
    const { layers, kvHeads } = this.options
    if (where.layer !== undefined || where.head !== undefined) this.stream(where.layer ?? 0, where.head ?? 0)
    let moved = 0
    for (let l = 0; l < layers; l++) {
      if (where.layer !== undefined && where.layer !== l) continue
      for (let h = 0; h < kvHeads; h++) {
        if (where.head !== undefined && where.head !== h) continue
        for (const seg of this.stream(l, h).segs) moved += seg.moveTo(tier)
      }
    }
    return moved
  }

  bytes(): CacheBytes {
    let hot = 0
    let quantized = 0
    let offloaded = 0
    let shared = 0
    let reserved = this.store.pooledBytes
    for (const s of this.streams) {
      for (const seg of s.segs) {
        const used = seg.usedBytes
        if (formatInfo(seg.format).scaled) quantized += used
        else if (seg.tier === 'wasm') hot += used
        else offloaded += used
        shared += seg.sharedBytes
        reserved += seg.reservedBytes
      }
    }
    return { hot, quantized, offloaded, total: hot + quantized + offloaded, shared, reserved }
  }

  clear(): void {
    this.alive()
    for (const s of this.streams) {
      s.changed(0, s.n)
      for (const seg of s.segs) seg.truncate(0)
      s.dropEmpty(this.options.kvDtype)
    }
  }

  dispose(): void {
    if (this.disposed) return
    for (const s of this.streams) for (const seg of s.segs) seg.dispose()
    this.store.drain()
    this.disposed = true
  }
}

/** first index i with a[i] >= x in an ascending array */
function lowerBound(a: Int32Array, x: number): number {
  let lo = 0
  let hi = a.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (a[mid] < x) lo = mid + 1
    else hi = mid
  }
  return lo
}
