import type { Heap } from '../backend/heap.js'
import type { CacheBytes, Decision, HeadDecision, HeadSegment, HeadView, KVCache, KVCacheOptions } from './types.js'
import { CacheError } from './errors.js'
import { checkPositions } from './validate.js'
import { PagePool, PagedRows } from './pages.js'
import { validateDecision } from './validate.js'

/** One (layer, KV head) stream: an optional channel-pruned prefix, the whole rows, original positions. */
class Stream {
  pruned: PagedRows | null = null
  whole: PagedRows
  pos = new Int32Array(64)

  constructor(
    private readonly pool: PagePool,
    readonly d: number,
  ) {
    this.whole = new PagedRows(pool, d, d, null)
  }

  get n(): number {
    return (this.pruned?.n ?? 0) + this.whole.n
  }

  pushPositions(p: ArrayLike<number>, from: number, count: number, stride: number): void {
    const n = this.n
    if (n + count > this.pos.length) {
      const grown = new Int32Array(Math.max(n + count, this.pos.length * 2))
      grown.set(this.pos.subarray(0, n))
      this.pos = grown
    }
    for (let i = 0; i < count; i++) this.pos[n + i] = p[from + i * stride]
  }

  segments(pageTokens: number): HeadSegment[] {
    const out: HeadSegment[] = []
    const seg = (r: PagedRows, start: number): HeadSegment => ({
      kTable: r.kTable, vTable: r.vTable, pageTokens, n: r.n, d: r.kd, vd: r.vd, start, channels: r.channels,
    })
    if (this.pruned && this.pruned.n > 0) out.push(seg(this.pruned, 0))
    out.push(seg(this.whole, this.pruned?.n ?? 0))
    return out
  }
}

/**
 * The KV cache: per layer and KV head, keys and values in pages of `pageTokens` rows from a shared pool,
 * ragged per-head lengths, each token's original position. A decision compacts a head into fresh pages
 * and returns the old ones to the pool, so a smaller budget really holds less memory.
 */
export class PagedKVCache implements KVCache {
  readonly options: Required<KVCacheOptions>
  readonly bytesPerToken: number
  private readonly pool: PagePool
  private readonly streams: Stream[]
  private disposed = false

  constructor(
    readonly heap: Heap,
    options: KVCacheOptions,
  ) {
    const { layers, kvHeads, headDim } = options
    const pageTokens = options.pageTokens ?? 64
    const keys = options.keys ?? 'post-rope'
    for (const [name, v] of [['layers', layers], ['kvHeads', kvHeads], ['headDim', headDim], ['pageTokens', pageTokens]] as const) {
      if (!Number.isInteger(v) || v <= 0) throw new CacheError(`KVCache: ${name} must be a positive integer, got ${v}`)
    }
    if (keys !== 'post-rope' && keys !== 'pre-rope') throw new CacheError(`KVCache: keys must be 'post-rope' or 'pre-rope', got ${String(keys)}`)
    this.options = { layers, kvHeads, headDim, pageTokens, keys }
    this.bytesPerToken = layers * kvHeads * 2 * headDim * 4
    this.pool = new PagePool(heap, pageTokens)
    this.streams = Array.from({ length: layers * kvHeads }, () => new Stream(this.pool, headDim))
  }

  private stream(layer: number, head: number): Stream {
    if (this.disposed) throw new CacheError('KVCache: used after dispose()')
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
    const s = this.stream(layer, head)
    if (s.pruned && s.pruned.n > 0) throw new CacheError(`KVCache.view: (layer ${layer}, head ${head}) is channel-pruned and has two segments: use segments()`)
    return s.segments(this.options.pageTokens)[0]
  }

  segments(layer: number, head: number): HeadSegment[] {
    return this.stream(layer, head).segments(this.options.pageTokens)
  }

  readKeys(layer: number, head: number): Float32Array {
    const s = this.stream(layer, head)
    const d = this.options.headDim
    const out = new Float32Array(s.n * d)
    const F = this.heap.F32
    let row = 0
    if (s.pruned) {
      const ch = s.pruned.channels!
      for (let i = 0; i < s.pruned.n; i++, row++) {
        const p = s.pruned.keyPtr(i) >> 2
        for (let c = 0; c < ch.length; c++) out[row * d + ch[c]] = F[p + c]
      }
    }
    for (let i = 0; i < s.whole.n; i++, row++) out.set(F.subarray(s.whole.keyPtr(i) >> 2, (s.whole.keyPtr(i) >> 2) + d), row * d)
    return out
  }

  readValues(layer: number, head: number): Float32Array {
    const s = this.stream(layer, head)
    const d = this.options.headDim
    const out = new Float32Array(s.n * d)
    const F = this.heap.F32
    let row = 0
    for (const r of [s.pruned, s.whole]) {
      if (!r) continue
      for (let i = 0; i < r.n; i++, row++) out.set(F.subarray(r.valuePtr(i) >> 2, (r.valuePtr(i) >> 2) + d), row * d)
    }
    return out
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
    for (let h = 0; h < kvHeads; h++) this.stream(layer, h).whole.reserve(T)
    for (let h = 0; h < kvHeads; h++) {
      const s = this.stream(layer, h)
      s.pushPositions(positions, 0, T, 1)
      for (let t = 0; t < T; t++) s.whole.pushRow(k, t * rowFloats + h * headDim, v, t * rowFloats + h * headDim)
    }
  }

  /** append from arena pointers: k and v at kPtr/vPtr laid out [T][kvHeads][headDim] (the projection output) */
  appendFromHeap(layer: number, kPtr: number, vPtr: number, positions: Int32Array): void {
    checkPositions('appendFromHeap', positions)
    const { kvHeads, headDim } = this.options
    const T = positions.length
    for (let h = 0; h < kvHeads; h++) this.stream(layer, h).whole.reserve(T)
    for (let h = 0; h < kvHeads; h++) {
      const s = this.stream(layer, h)
      s.pushPositions(positions, 0, T, 1)
      for (let t = 0; t < T; t++) {
        const off = (t * kvHeads + h) * headDim * 4
        s.whole.pushRowFromHeap(kPtr + off, vPtr + off)
      }
    }
  }

  apply(decision: Decision): void {
    const { layers, kvHeads, headDim } = this.options
    if (this.options.keys === 'pre-rope') {
      const i = decision?.heads?.findIndex((h) => h.keyChannels) ?? -1
      if (i >= 0) throw new CacheError(`apply: heads[${i}].keyChannels: keys stored before RoPE cannot be channel-pruned (rotation needs every channel pair)`)
    }
    validateDecision(decision, layers, kvHeads, headDim, (l, h) => {
      const s = this.stream(l, h)
      return { n: s.n, pruned: s.pruned?.n ?? 0 }
    })
    for (const hd of decision.heads) this.applyHead(hd)
    // compaction is done: give the pages no head took back to the heap, so the smaller cache is smaller memory
    this.pool.drain()
  }

  private applyHead(hd: HeadDecision): void {
    const s = this.stream(hd.layer, hd.head)
    const d = this.options.headDim
    const F = this.heap.F32
    const P = s.pruned?.n ?? 0
    const oldChannels = s.pruned?.channels ?? null
    const kw = (i: number) => (i < P ? oldChannels!.length : d)
    // copy the old rows out (keys at their stored width), so pages can be returned before the rewrite
    const rowK = (i: number) => {
      const r = i < P ? s.pruned! : s.whole
      const p = r.keyPtr(i < P ? i : i - P) >> 2
      return F.slice(p, p + kw(i))
    }
    const rowV = (i: number) => {
      const r = i < P ? s.pruned! : s.whole
      const p = r.valuePtr(i < P ? i : i - P) >> 2
      return F.slice(p, p + d)
    }
    const keys = new Map<number, Float32Array>()
    const values = new Map<number, Float32Array>()
    for (const i of hd.keep) {
      keys.set(i, rowK(i))
      values.set(i, rowV(i))
    }
    for (const m of hd.merges ?? []) {
      let wSum = 0
      const k = new Float32Array(kw(m.pivot))
      const v = new Float32Array(d)
      const add = (i: number, w: number) => {
        const ki = rowK(i)
        const vi = rowV(i)
        for (let c = 0; c < k.length; c++) k[c] += w * ki[c]
        for (let c = 0; c < d; c++) v[c] += w * vi[c]
        wSum += w
      }
      let pivotListed = false
      for (let j = 0; j < m.members.length; j++) {
        if (m.members[j] === m.pivot) pivotListed = true
        add(m.members[j], m.weights[j])
      }
      if (!pivotListed) add(m.pivot, 1)
      if (wSum > 0) {
        for (let c = 0; c < k.length; c++) k[c] /= wSum
        for (let c = 0; c < d; c++) v[c] /= wSum
        keys.set(m.pivot, k)
        values.set(m.pivot, v)
      }
    }
    const oldPos = s.pos.slice(0, s.n)
    const newPos: number[] = []
    const rows: { k: Float32Array; v: Float32Array; prunedWidth: boolean }[] = []
    for (const i of hd.keep) {
      rows.push({ k: keys.get(i)!, v: values.get(i)!, prunedWidth: i < P })
      newPos.push(oldPos[i])
    }
    for (const x of hd.extra ?? []) {
      rows.push({ k: x.key, v: x.value, prunedWidth: false })
      newPos.push(x.position)
    }
    // the new layout: an already-pruned prefix stays pruned; a new keyChannels prunes the first `upto` rows
    let channels = oldChannels
    let nPruned = rows.filter((r) => r.prunedWidth).length
    if (hd.keyChannels && hd.keyChannels.upto > 0) {
      channels = hd.keyChannels.channels.slice()
      nPruned = hd.keyChannels.upto
      for (let i = 0; i < nPruned; i++) {
        const full = rows[i].k
        const g = new Float32Array(channels.length)
        for (let c = 0; c < channels.length; c++) g[c] = full[channels[c]]
        rows[i] = { k: g, v: rows[i].v, prunedWidth: true }
      }
    }
    s.pruned?.dispose()
    s.pruned = null
    s.whole.clearRows()
    if (nPruned > 0) {
      s.pruned = new PagedRows(this.pool, channels!.length, d, channels)
      s.pruned.reserve(nPruned)
    }
    s.whole.reserve(rows.length - nPruned)
    for (let i = 0; i < rows.length; i++) (i < nPruned ? s.pruned! : s.whole).pushRow(rows[i].k, 0, rows[i].v, 0)
    s.pos = new Int32Array(Math.max(64, newPos.length))
    s.pos.set(newPos)
  }

  bytes(): CacheBytes {
    let hot = 0
    let reserved = this.pool.bytes
    for (const s of this.streams) {
      for (const r of [s.pruned, s.whole]) {
        if (!r) continue
        hot += r.hotBytes
        reserved += r.reservedBytes
      }
    }
    return { hot, quantized: 0, offloaded: 0, total: hot, reserved }
  }

  clear(): void {
    for (const s of this.streams) {
      s.pruned?.dispose()
      s.pruned = null
      s.whole.clearRows()
    }
  }

  dispose(): void {
    if (this.disposed) return
    for (const s of this.streams) {
      s.pruned?.dispose()
      s.whole.dispose()
    }
    this.pool.drain()
    this.disposed = true
  }
}
