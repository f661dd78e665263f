import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBackend } from '../src/backend/index.js'
import { WebGpuKernels } from '../src/backend/webgpu/kernels.js'
import { cosine, windowedSelection } from '../src/policies/selection.js'
import { normals, rng } from './kernels-helpers.js'
import { onGpu, testGpu } from './webgpu-helpers.js'

// The GPU pieces of TokenSelect's step around the top-k (wgsl/select.wgsl) against the CPU policy's own
// helpers (src/policies/selection.ts): the Selection Cache test against `cosine`, the windows against
// `windowedSelection`.
const gpu = await testGpu()
const wasm = await createBackend('wasm', { relaxed: false })
const heap = wasm.heap

afterAll(() => gpu?.destroy())

describe.skipIf(!gpu)('TokenSelect step kernels on WebGPU', () => {
  let K: WebGpuKernels
  beforeAll(async () => {
    K = await WebGpuKernels.create(gpu!)
  })

  it('hits the Selection Cache where cosine(q, cached) >= threshold, and refreshes the cached query on a miss', async () => {
    const n = 6 * 64
    const rand = rng(5)
    const base = normals(rand, n)
    const near = base.map((v) => v + 0.1 * normals(rand, 1)[0])
    const far = normals(rand, n)
    const zero = new Float32Array(n)
    // [q, cached, threshold, valid]; an all-zero q has cosine 0, which a threshold of -1 accepts
    const cases: [Float32Array, Float32Array, number, boolean][] = [
      [near, base, 0.9, true], [near, base, 0.9, false], [far, base, 0.9, true], [far, base, -1, true],
      [zero, base, -1, true], [base, base, 0.99999, true], [near, base, cosine(near, base) + 1e-3, true],
    ]
    const q = cases.map(([a]) => heap.f32From(a))
    const cached = cases.map(([, b]) => heap.f32From(b))
    const flags = heap.allocI32(cases.length)
    try {
      const got = await onGpu(K, heap, [[flags.ptr, cases.length * 4], ...cached.map((c): [number, number] => [c.ptr, n * 4])], () => {
        cases.forEach(([, , t, valid], i) => K.selectionCacheTest(q[i].ptr, cached[i].ptr, n, t, flags.ptr + i * 4, valid))
      })
      const hits = Array.from(new Int32Array(got[0]))
      expect(hits).toEqual(cases.map(([a, b, t, valid]) => (valid && cosine(a, b) >= t ? 1 : 0)))
      expect(hits).toEqual([1, 0, 0, 1, 1, 1, 0])
      cases.forEach(([a, b], i) => expect(Array.from(new Float32Array(got[i + 1])), `case ${i}`).toEqual(Array.from(hits[i] ? b : a)))
    } finally {
      for (const b of [flags, ...cached, ...q]) b.free()
    }
  })

  it.each([[20, 2, 3, 5], [9, 0, 4, 2], [9, 4, 0, 3], [1000, 128, 512, 100], [7, 3, 4, 0]])(
    'writes the windows of windowedSelection around the chosen slots: n=%i first=%i last=%i k=%i, two rows', async (n, first, last, k) => {
      const B = first + k + last
      const rows = 2
      const rand = rng(n + k)
      // chosen slots (what the top-k writes between the windows), distinct, in [first, n - last)
      const chosen = Array.from({ length: rows }, () => {
        const pool = Array.from({ length: n - first - last }, (_, i) => i + first).sort(() => rand() - 0.5)
        return pool.slice(0, k).sort((a, b) => a - b)
      })
      const list = heap.allocI32(rows * B)
      chosen.forEach((c, r) => list.view.set(c, r * B + first))
      try {
        const [got] = await onGpu(K, heap, [[list.ptr, rows * B * 4]], () => K.selectionWindows(list.ptr, rows, B, n, first, last, k))
        const all = new Int32Array(got)
        chosen.forEach((c, r) => expect(Array.from(all.subarray(r * B, (r + 1) * B))).toEqual(Array.from(windowedSelection(n, first, last, c))))
      } finally {
        list.free()
      }
    })
})
