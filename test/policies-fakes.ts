/**
 * Test doubles for the policy tests: kernels written as plain loops over the arena (until the kernels
 * branch's reference backend is merged) and a KVCache over contiguous arrays (until runtime's lands).
 * Both implement the real interfaces, so the policies run unchanged against them.
 */
import { Heap } from '../src/backend/heap.js'
import { Ops } from '../src/backend/ops.js'
import type { Backend } from '../src/backend/backend.js'
import type { CacheBytes, Decision, HeadView, KVCache, KVCacheOptions } from '../src/cache/types.js'

function rowPtr(heap: Heap, table: number, pageTokens: number, d: number, i: number): number {
  const page = heap.I32[(table >> 2) + Math.floor(i / pageTokens)]
  return (page >> 2) + (i % pageTokens) * d
}

export function loopBackend(heap = new Heap()): Backend {
  return {
    name: 'reference',
    heap,
    scoreKeys(q, qHeads, d, table, pageTokens, n, scale, out) {
      const F = heap.F32
      for (let h = 0; h < qHeads; h++)
        for (let i = 0; i < n; i++) {
          const k = rowPtr(heap, table, pageTokens, d, i)
          let s = 0
          for (let c = 0; c < d; c++) s += F[(q >> 2) + h * d + c] * F[k + c]
          F[(out >> 2) + h * n + i] = s * scale
        }
    },
    softmaxRows(x, rows, n) {
      const F = heap.F32
      for (let r = 0; r < rows; r++) {
        const o = (x >> 2) + r * n
        let m = -Infinity
        for (let i = 0; i < n; i++) m = Math.max(m, F[o + i])
        let s = 0
        for (let i = 0; i < n; i++) s += F[o + i] = Math.exp(F[o + i] - m)
        for (let i = 0; i < n; i++) F[o + i] /= s
      }
    },
    logSumExp(x, n) {
      const F = heap.F32
      let m = -Infinity
      for (let i = 0; i < n; i++) m = Math.max(m, F[(x >> 2) + i])
      let s = 0
      for (let i = 0; i < n; i++) s += Math.exp(F[(x >> 2) + i] - m)
      return m + Math.log(s)
    },
    softVote(x, rows, n, out) {
      const F = heap.F32
      for (let i = 0; i < n; i++) F[(out >> 2) + i] = 0
      for (let r = 0; r < rows; r++) {
        const o = (x >> 2) + r * n
        let m = -Infinity
        for (let i = 0; i < n; i++) m = Math.max(m, F[o + i])
        let s = 0
        for (let i = 0; i < n; i++) s += Math.exp(F[o + i] - m)
        for (let i = 0; i < n; i++) F[(out >> 2) + i] += Math.exp(F[o + i] - m) / s
      }
    },
    topK(x, n, k, outIdx, _scratch) {
      const F = heap.F32
      const idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => F[(x >> 2) + b] - F[(x >> 2) + a] || a - b)
      const top = idx.slice(0, k).sort((a, b) => a - b)
      heap.I32.set(top, outIdx >> 2)
    },
    maxPool1d(x, n, kernel, out) {
      const F = heap.F32
      const r = kernel >> 1
      for (let i = 0; i < n; i++) {
        let m = -Infinity
        for (let j = Math.max(0, i - r); j <= Math.min(n - 1, i + r); j++) m = Math.max(m, F[(x >> 2) + j])
        F[(out >> 2) + i] = m
      }
    },
    avgPool1d(x, n, kernel, out) {
      const F = heap.F32
      const r = kernel >> 1
      for (let i = 0; i < n; i++) {
        let s = 0
        for (let j = Math.max(0, i - r); j <= Math.min(n - 1, i + r); j++) s += F[(x >> 2) + j]
        F[(out >> 2) + i] = s / kernel
      }
    },
    attend() {
      throw new Error('attend: not needed by the policy tests')
    },
    pageMinMax() {
      throw new Error('pageMinMax: not needed by the policy tests')
    },
    chunkMeans() {
      throw new Error('chunkMeans: not needed by the policy tests')
    },
    copyBytes(dst, src, n) {
      heap.U8.copyWithin(dst, src, src + n)
    },
  } as Backend
}

export function loopOps(): Ops {
  return new Ops(loopBackend())
}

interface Stream {
  k: number[][]
  v: number[][]
  pos: number[]
}

/** A KVCache over plain arrays; view() copies a head into the arena as one page. */
export class ArrayCache implements KVCache {
  readonly options: Required<KVCacheOptions>
  private streams: Stream[][]
  private views: number[] = []
  constructor(private readonly heap: Heap, o: KVCacheOptions) {
    this.options = { pageTokens: 64, keys: 'post-rope', ...o }
    this.streams = this.empty()
  }
  private empty(): Stream[][] {
    return Array.from({ length: this.options.layers }, () => Array.from({ length: this.options.kvHeads }, () => ({ k: [], v: [], pos: [] })))
  }
  get bytesPerToken(): number {
    return this.options.layers * this.options.kvHeads * this.options.headDim * 8
  }
  length(layer: number, head: number): number {
    return this.streams[layer][head].pos.length
  }
  positions(layer: number, head: number): Int32Array {
    return Int32Array.from(this.streams[layer][head].pos)
  }
  view(layer: number, head: number): HeadView {
    const s = this.streams[layer][head]
    const n = s.pos.length
    const d = n ? s.k[0].length : this.options.headDim
    const kp = this.heap.alloc(Math.max(1, n * d) * 4)
    const vp = this.heap.alloc(Math.max(1, n * d) * 4)
    const kt = this.heap.alloc(4)
    const vt = this.heap.alloc(4)
    this.views.push(kp, vp, kt, vt)
    s.k.forEach((row, i) => this.heap.F32.set(row, (kp >> 2) + i * d))
    s.v.forEach((row, i) => this.heap.F32.set(row, (vp >> 2) + i * row.length))
    this.heap.I32[kt >> 2] = kp
    this.heap.I32[vt >> 2] = vp
    return { kTable: kt, vTable: vt, pageTokens: Math.max(n, 1), n, d }
  }
  readKeys(layer: number, head: number): Float32Array {
    return Float32Array.from(this.streams[layer][head].k.flat())
  }
  readValues(layer: number, head: number): Float32Array {
    return Float32Array.from(this.streams[layer][head].v.flat())
  }
  append(layer: number, k: Float32Array, v: Float32Array, positions: Int32Array): void {
    const { kvHeads, headDim } = this.options
    positions.forEach((p, t) => {
      for (let h = 0; h < kvHeads; h++) {
        const o = (t * kvHeads + h) * headDim
        const s = this.streams[layer][h]
        s.k.push(Array.from(k.subarray(o, o + headDim)))
        s.v.push(Array.from(v.subarray(o, o + headDim)))
        s.pos.push(p)
      }
    })
  }
  apply(decision: Decision): void {
    for (const hd of decision.heads) {
      const s = this.streams[hd.layer][hd.head]
      for (let i = 1; i < hd.keep.length; i++) if (!(hd.keep[i] > hd.keep[i - 1])) throw new Error(`keep not ascending at ${i}`)
      if (hd.keep.length && (hd.keep[0] < 0 || hd.keep[hd.keep.length - 1] >= s.pos.length)) throw new Error('keep out of range')
    }
    for (const hd of decision.heads) {
      const s = this.streams[hd.layer][hd.head]
      const keep = Array.from(hd.keep)
      this.streams[hd.layer][hd.head] = { k: keep.map((i) => s.k[i]), v: keep.map((i) => s.v[i]), pos: keep.map((i) => s.pos[i]) }
    }
  }
  bytes(): CacheBytes {
    let tokens = 0
    for (const l of this.streams) for (const s of l) tokens += s.pos.length
    const hot = tokens * this.options.headDim * 8
    return { hot, quantized: 0, offloaded: 0, total: hot, reserved: hot }
  }
  /** frees the arena copies made by view() */
  releaseViews(): void {
    for (const p of this.views) this.heap.release(p)
    this.views = []
  }
  clear(): void {
    this.releaseViews()
    this.streams = this.empty()
  }
  dispose(): void {
    this.clear()
  }
}
