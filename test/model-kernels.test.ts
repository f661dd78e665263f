import { beforeAll, describe, expect, it } from 'vitest'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import type { Heap } from '../src/backend/heap.js'
import { attendScratchFloats } from '../src/backend/model-kernels.js'

// Every runtime kernel (wasm SIMD) against its plain TypeScript twin on the same arena.
let wasm: CreatedBackend
let ref: CreatedBackend
let heap: Heap

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1
  return () => {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5
    return ((s >>> 0) / 4294967296) * 2 - 1
  }
}
function fill(n: number, r: () => number, scale = 1): number {
  const p = heap.alloc(n * 4)
  const F = heap.F32
  for (let i = 0; i < n; i++) F[(p >> 2) + i] = r() * scale
  return p
}
function copyOf(p: number, n: number): Float32Array {
  return heap.F32.slice(p >> 2, (p >> 2) + n)
}
function close(a: Float32Array, b: Float32Array, tol: number): void {
  expect(a.length).toBe(b.length)
  let worst = 0
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])))
  expect(worst).toBeLessThan(tol)
}
/** a paged copy of rows [n][d] with pageTokens rows a page; returns the table pointer */
function paged(rows: number, n: number, d: number, pageTokens: number): number {
  const pages = Math.ceil(n / pageTokens)
  const table = heap.alloc(pages * 4)
  for (let p = 0; p < pages; p++) {
    const page = heap.alloc(pageTokens * d * 4)
    heap.I32[(table >> 2) + p] = page
    const cnt = Math.min(pageTokens, n - p * pageTokens)
    heap.F32.copyWithin(page >> 2, (rows >> 2) + p * pageTokens * d, (rows >> 2) + (p * pageTokens + cnt) * d)
  }
  return table
}

beforeAll(async () => {
  wasm = await createBackend('wasm')
  ref = await createBackend('reference', { heap: wasm.heap })
  heap = wasm.heap
})

describe('matmul', () => {
  it.each([
    [1, 384, 1024, true], [5, 384, 128, false], [64, 64, 7, false], [3, 7, 5, true], [9, 1024, 384, false],
  ])('matches the twin for T=%i in=%i out=%i bias=%s', (T, inDim, outDim, withBias) => {
    const r = rng(T * 31 + inDim)
    const x = fill(T * inDim, r), w = fill(outDim * inDim, r, 0.1), b = withBias ? fill(outDim, r) : 0
    const y1 = heap.alloc(T * outDim * 4), y2 = heap.alloc(T * outDim * 4)
    wasm.matmul(x, w, b, y1, T, inDim, outDim)
    ref.matmul(x, w, b, y2, T, inDim, outDim)
    close(copyOf(y1, T * outDim), copyOf(y2, T * outDim), 1e-5)
  })

  // a decode step (T = 1) runs 8 output rows a pass, a prefill chunk 4 tokens x 2 rows: a token's logits
  // must not depend on which path computed them (sessions, reuse and the threads' splits rely on it)
  it.each([
    [384, 1024, false], [384, 1030, true], [1024, 384, false], [7, 13, true], [5, 8, false], [6, 2, true], [384, 1, true],
  ])('gives a token alone the bits it gets in a block of 4 tokens: in=%i out=%i bias=%s', (inDim, outDim, withBias) => {
    const r = rng(inDim * 7 + outDim)
    const w = fill(outDim * inDim, r, 0.1), b = withBias ? fill(outDim, r) : 0
    const x4 = fill(4 * inDim, r)
    const y4 = heap.alloc(4 * outDim * 4), y1 = heap.alloc(outDim * 4)
    wasm.matmul(x4, w, b, y4, 4, inDim, outDim)
    for (let t = 0; t < 4; t++) {
      wasm.matmul(x4 + t * inDim * 4, w, b, y1, 1, inDim, outDim)
      const alone = copyOf(y1, outDim)
      const inBlock = copyOf(y4 + t * outDim * 4, outDim)
      expect(Array.from(alone).every((v, i) => Object.is(v, inBlock[i]))).toBe(true)
    }
    // and the last T % 4 tokens of a chunk take the decode path: T = 3 equals T = 4's first three rows
    const y3 = heap.alloc(3 * outDim * 4)
    wasm.matmul(x4, w, b, y3, 3, inDim, outDim)
    const three = copyOf(y3, 3 * outDim), four = copyOf(y4, 3 * outDim)
    expect(Array.from(three).every((v, i) => Object.is(v, four[i]))).toBe(true)
  })
})

describe('elementwise kernels', () => {
  it('rmsnorm, swiglu, addInPlace and rope match their twins', () => {
    const r = rng(7)
    const T = 5, dim = 390, heads = 3, d = 64
    const x = fill(T * dim, r, 3), g = fill(dim, r)
    const a = heap.alloc(T * dim * 4), b = heap.alloc(T * dim * 4)
    wasm.rmsnorm(x, g, a, T, dim, 1e-5)
    ref.rmsnorm(x, g, b, T, dim, 1e-5)
    close(copyOf(a, T * dim), copyOf(b, T * dim), 1e-6)
    const up = fill(T * dim, r, 5)
    wasm.swiglu(x, up, a, T * dim - 3)
    ref.swiglu(x, up, b, T * dim - 3)
    close(copyOf(a, T * dim - 3), copyOf(b, T * dim - 3), 1e-6)
    const before = copyOf(a, T * dim)
    wasm.addInPlace(a, x, T * dim - 1)
    for (let i = 0; i < T * dim - 1; i++) before[i] += heap.F32[(x >> 2) + i]
    close(copyOf(a, T * dim), before, 1e-7)
    const q = fill(T * heads * d, r), cos = fill(T * d / 2, r), sin = fill(T * d / 2, r)
    const q2 = heap.alloc(T * heads * d * 4)
    heap.F32.copyWithin(q2 >> 2, q >> 2, (q >> 2) + T * heads * d)
    wasm.rope(q, T, heads, d, cos, sin)
    ref.rope(q2, T, heads, d, cos, sin)
    close(copyOf(q, T * heads * d), copyOf(q2, T * heads * d), 1e-6)
  })
})

describe('attendCausal', () => {
  it.each([
    // hq, T, kd, vd, n, pageTokens, visible0
    [3, 1, 64, 64, 200, 64, 200],
    [3, 17, 64, 64, 117, 64, 101],
    [1, 70, 38, 64, 300, 16, 231],
    [2, 5, 64, 64, 5, 7, 1],
    [4, 3, 13, 9, 150, 100, 150],
  ])('matches the twin (hq=%i T=%i kd=%i vd=%i n=%i page=%i visible0=%i), lse and mass too', (hq, T, kd, vd, n, pageTokens, visible0) => {
    const r = rng(hq * 100 + T + n)
    const qStride = hq * kd + 3
    const q = fill(T * qStride, r)
    const kt = paged(fill(n * kd, r), n, kd, pageTokens)
    const vt = paged(fill(n * vd, r), n, vd, pageTokens)
    const outStride = hq * vd + 1
    const o1 = heap.alloc(T * outStride * 4), o2 = heap.alloc(T * outStride * 4)
    const l1 = heap.alloc(T * hq * 4), l2 = heap.alloc(T * hq * 4)
    const scratch = heap.alloc(attendScratchFloats(vd, T * hq) * 4)
    heap.F32.fill(0, o1 >> 2, (o1 >> 2) + T * outStride)
    heap.F32.fill(0, o2 >> 2, (o2 >> 2) + T * outStride)
    wasm.attendCausal(q, qStride, hq, T, kd, vd, kt, vt, pageTokens, n, visible0, 0.3, o1, outStride, l1, scratch)
    ref.attendCausal(q, qStride, hq, T, kd, vd, kt, vt, pageTokens, n, visible0, 0.3, o2, outStride, l2, scratch)
    close(copyOf(o1, T * outStride), copyOf(o2, T * outStride), 2e-5)
    close(copyOf(l1, T * hq), copyOf(l2, T * hq), 2e-5)
    const m1 = heap.alloc(n * 4), m2 = heap.alloc(n * 4)
    heap.F32.fill(0, m1 >> 2, (m1 >> 2) + n)
    heap.F32.fill(0, m2 >> 2, (m2 >> 2) + n)
    wasm.attentionMass(q, qStride, hq, T, kd, kt, pageTokens, n, visible0, 0.3, l2, m1, scratch)
    ref.attentionMass(q, qStride, hq, T, kd, kt, pageTokens, n, visible0, 0.3, l2, m2, scratch)
    close(copyOf(m1, n), copyOf(m2, n), 2e-5)
    // every query row's probabilities sum to one
    const total = copyOf(m2, n).reduce((s, x) => s + x, 0)
    expect(total).toBeCloseTo(T * hq, 3)
  })
})
