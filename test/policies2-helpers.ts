/**
 * Test doubles for the second policy family: a small KVCache over contiguous arrays (one page per head,
 * which HeadView allows) that carries out decisions by the contract in src/cache/types.ts, a plain
 * TypeScript kernel backend for the few kernels the policies call, and a seeded RNG.
 */
import { Heap, type F32Buf, type I32Buf } from '../src/backend/heap.js'
import { Ops } from '../src/backend/ops.js'
import type { Backend } from '../src/backend/backend.js'
import type { CacheBytes, Decision, HeadView, KVCache, KVCacheOptions } from '../src/cache/types.js'
import type { LayerHooks, ModelShape, PolicyContext } from '../src/policies/types.js'

export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
export function randn(r: () => number): number {
  return Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r())
}
export function randArray(r: () => number, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n)
  for (let i = 0; i < n; i++) a[i] = randn(r) * scale
  return a
}

/** The kernels the policies use, in plain TypeScript over the arena. */
export function plainBackend(heap: Heap): Backend {
  const rowPtr = (table: number, pageTokens: number, d: number, i: number) =>
    heap.I32[(table >> 2) + Math.floor(i / pageTokens)] + (i % pageTokens) * d * 4
  const missing = (name: string) => () => {
    throw new Error(`plainBackend: ${name} is not needed by these tests`)
  }
  return {
    name: 'reference',
    heap,
    scoreKeys(q, qHeads, d, table, pageTokens, n, scale, out) {
      const F = heap.F32
      for (let h = 0; h < qHeads; h++) {
        for (let i = 0; i < n; i++) {
          const k = rowPtr(table, pageTokens, d, i) >> 2
          let s = 0
          for (let c = 0; c < d; c++) s += F[(q >> 2) + h * d + c] * F[k + c]
          F[(out >> 2) + h * n + i] = scale * s
        }
      }
    },
    softmaxRows(x, rows, n) {
      const F = heap.F32
      for (let r = 0; r < rows; r++) {
        const o = (x >> 2) + r * n
        let m = -Infinity
        for (let i = 0; i < n; i++) m = Math.max(m, F[o + i])
        let z = 0
        for (let i = 0; i < n; i++) {
          F[o + i] = Math.exp(F[o + i] - m)
          z += F[o + i]
        }
        for (let i = 0; i < n; i++) F[o + i] /= z
      }
    },
    logSumExp: missing('logSumExp') as never,
    softVote: missing('softVote'),
    topK: missing('topK'),
    maxPool1d: missing('maxPool1d'),
    avgPool1d: missing('avgPool1d'),
    attend: missing('attend'),
    pageMinMax: missing('pageMinMax'),
    chunkMeans: missing('chunkMeans'),
    copyBytes: missing('copyBytes'),
  }
}

interface Stream {
  keys: number[][]
  values: number[][]
  positions: number[]
  /** ThinK: rows [0, upto) keep only these channels */
  channels: Int32Array | null
  upto: number
  buf: { k: F32Buf; v: F32Buf; kt: I32Buf; vt: I32Buf } | null
}

/**
 * A KVCache over plain arrays, one contiguous page per head. Merge weights follow the contract's reading
 * used by kvkit's cache: the pivot's new K/V = sum_i w_i x_i / sum_i w_i over `members`, and members list the
 * pivot itself with its own weight.
 */
export class ArrayKVCache implements KVCache {
  readonly options: Required<KVCacheOptions>
  private streams: Stream[]
  constructor(readonly heap: Heap, opts: KVCacheOptions) {
    this.options = { pageTokens: 64, keys: 'post-rope', ...opts }
    this.streams = Array.from({ length: opts.layers * opts.kvHeads }, () => ({ keys: [], values: [], positions: [], channels: null, upto: 0, buf: null }))
  }
  get bytesPerToken(): number {
    return this.options.layers * this.options.kvHeads * this.options.headDim * 8
  }
  private s(layer: number, head: number): Stream {
    const st = this.streams[layer * this.options.kvHeads + head]
    if (!st) throw new RangeError(`no stream (${layer}, ${head})`)
    return st
  }
  private dirty(st: Stream): void {
    if (st.buf) for (const b of Object.values(st.buf)) b.free()
    st.buf = null
  }
  length(layer: number, head: number): number {
    return this.s(layer, head).keys.length
  }
  positions(layer: number, head: number): Int32Array {
    return Int32Array.from(this.s(layer, head).positions)
  }
  view(layer: number, head: number): HeadView {
    const st = this.s(layer, head)
    const n = st.keys.length
    const widths = new Set(st.keys.map((k) => k.length))
    if (widths.size > 1) throw new Error('ArrayKVCache.view: mixed key widths after channel pruning are not viewable')
    const d = n ? st.keys[0].length : this.options.headDim
    if (!st.buf) {
      const k = this.heap.f32From(st.keys.flat())
      const v = this.heap.f32From(st.values.flat())
      st.buf = { k, v, kt: this.heap.i32From([k.ptr]), vt: this.heap.i32From([v.ptr]) }
    }
    return { kTable: st.buf.kt.ptr, vTable: st.buf.vt.ptr, pageTokens: Math.max(1, n), n, d }
  }
  readKeys(layer: number, head: number): Float32Array {
    return Float32Array.from(this.s(layer, head).keys.flat())
  }
  readValues(layer: number, head: number): Float32Array {
    return Float32Array.from(this.s(layer, head).values.flat())
  }
  /** the stored key rows as they are (pruned rows are shorter) */
  keyRows(layer: number, head: number): number[][] {
    return this.s(layer, head).keys.map((r) => r.slice())
  }
  channelState(layer: number, head: number): { channels: Int32Array | null; upto: number } {
    const st = this.s(layer, head)
    return { channels: st.channels, upto: st.upto }
  }
  append(layer: number, k: Float32Array, v: Float32Array, positions: Int32Array): void {
    const { kvHeads, headDim } = this.options
    const T = positions.length
    if (k.length !== T * kvHeads * headDim || v.length !== k.length) throw new RangeError('append: bad sizes')
    for (let h = 0; h < kvHeads; h++) {
      const st = this.s(layer, h)
      for (let t = 0; t < T; t++) {
        const o = (t * kvHeads + h) * headDim
        st.keys.push(Array.from(k.subarray(o, o + headDim)))
        st.values.push(Array.from(v.subarray(o, o + headDim)))
        st.positions.push(positions[t])
      }
      this.dirty(st)
    }
  }
  /** fills one head directly: keys/values [n][d] */
  setHead(layer: number, head: number, keys: Float32Array, values: Float32Array, positions: ArrayLike<number>): void {
    const st = this.s(layer, head)
    const d = this.options.headDim
    const n = positions.length
    st.keys = Array.from({ length: n }, (_, i) => Array.from(keys.subarray(i * d, (i + 1) * d)))
    st.values = Array.from({ length: n }, (_, i) => Array.from(values.subarray(i * d, (i + 1) * d)))
    st.positions = Array.from(positions)
    this.dirty(st)
  }
  apply(decision: Decision): void {
    for (const hd of decision.heads) {
      const st = this.s(hd.layer, hd.head)
      const n = st.keys.length
      for (let i = 0; i < hd.keep.length; i++) {
        if (hd.keep[i] < 0 || hd.keep[i] >= n || (i > 0 && hd.keep[i] <= hd.keep[i - 1])) throw new RangeError(`apply: bad keep at ${i}`)
      }
      for (const m of hd.merges ?? []) {
        if (m.members.length !== m.weights.length) throw new RangeError('apply: merge members/weights differ')
        for (const x of m.members) if (x < 0 || x >= n) throw new RangeError(`apply: merge member ${x}`)
      }
    }
    for (const hd of decision.heads) {
      const st = this.s(hd.layer, hd.head)
      for (const m of hd.merges ?? []) {
        const d = st.keys[m.pivot].length
        const k = new Array(d).fill(0)
        const v = new Array(st.values[m.pivot].length).fill(0)
        let z = 0
        m.members.forEach((x, i) => {
          const w = m.weights[i]
          z += w
          for (let c = 0; c < d; c++) k[c] += w * st.keys[x][c]
          for (let c = 0; c < v.length; c++) v[c] += w * st.values[x][c]
        })
        st.keys[m.pivot] = k.map((x) => x / z)
        st.values[m.pivot] = v.map((x) => x / z)
      }
      const keep = Array.from(hd.keep)
      st.keys = keep.map((i) => st.keys[i])
      st.values = keep.map((i) => st.values[i])
      st.positions = keep.map((i) => st.positions[i])
      for (const e of hd.extra ?? []) {
        st.keys.push(Array.from(e.key))
        st.values.push(Array.from(e.value))
        st.positions.push(e.position)
      }
      if (hd.keyChannels) {
        const { channels, upto } = hd.keyChannels
        st.channels = channels
        st.upto = upto
        for (let i = 0; i < upto; i++) st.keys[i] = Array.from(channels, (c) => st.keys[i][c])
      }
      this.dirty(st)
    }
  }
  bytes(): CacheBytes {
    let floats = 0
    for (const st of this.streams) for (let i = 0; i < st.keys.length; i++) floats += st.keys[i].length + st.values[i].length
    const hot = floats * 4
    return { hot, quantized: 0, offloaded: 0, total: hot, reserved: hot }
  }
  clear(): void {
    for (const st of this.streams) {
      this.dirty(st)
      st.keys = []
      st.values = []
      st.positions = []
    }
  }
  dispose(): void {
    this.clear()
  }
}

export function shape(layers: number, qHeads: number, kvHeads: number, headDim: number): ModelShape {
  return { layers, qHeads, kvHeads, headDim, group: qHeads / kvHeads }
}

/**
 * A filled cache and context: every head holds n random tokens at positions 0..n-1, and each layer has w
 * random observation queries at positions n-w..n-1.
 */
export function randomContext(seed: number, m: ModelShape, n: number, w: number, extraHooks?: (l: number) => Partial<LayerHooks>): { ctx: PolicyContext; cache: ArrayKVCache } {
  const r = rng(seed)
  const heap = new Heap()
  const ops = new Ops(plainBackend(heap))
  const cache = new ArrayKVCache(heap, { layers: m.layers, kvHeads: m.kvHeads, headDim: m.headDim })
  const pos = Int32Array.from({ length: n }, (_, i) => i)
  for (let l = 0; l < m.layers; l++) {
    cache.append(l, randArray(r, n * m.kvHeads * m.headDim), randArray(r, n * m.kvHeads * m.headDim), pos)
  }
  const hooks: LayerHooks[] = Array.from({ length: m.layers }, (_, l) => ({
    layer: l,
    observationQueries: randArray(r, m.qHeads * w * m.headDim, 2),
    observationPositions: Int32Array.from({ length: w }, (_, i) => n - w + i),
    ...(extraHooks ? extraHooks(l) : {}),
  }))
  return { ctx: { cache, ops, model: m, hooks, promptLength: n, step: 0 }, cache }
}

/** Plain reference: softmax(q . k / sqrt(d)) with causal mask, written without the kernels. */
export function refProbs(q: ArrayLike<number>, qPos: number, keys: ArrayLike<number>, kPos: ArrayLike<number>, d: number): number[] {
  const n = kPos.length
  const s: number[] = []
  for (let j = 0; j < n; j++) {
    let dot = 0
    for (let c = 0; c < d; c++) dot += q[c] * keys[j * d + c]
    s.push(kPos[j] > qPos ? -Infinity : dot / Math.sqrt(d))
  }
  const m = Math.max(...s)
  const e = s.map((x) => Math.exp(x - m))
  const z = e.reduce((a, b) => a + b, 0)
  return e.map((x) => x / z)
}
