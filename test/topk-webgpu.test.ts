import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBackend } from '../src/backend/index.js'
import type { I32Buf } from '../src/backend/heap.js'
import { Ops } from '../src/backend/ops.js'
import { TOP_K_BLOCKS, WebGpuKernels } from '../src/backend/webgpu/kernels.js'
import { normals, rng } from './kernels-helpers.js'
import { onGpu, testGpu } from './webgpu-helpers.js'

// The multi-workgroup WGSL top-k (wgsl/topk_radix.wgsl) against the wasm core's topK, the kernel every
// policy's top-k goes through (src/policies/budget.ts topKIndices, tokenselect.ts softVoteTop): the same
// index set in the same order, ties included, over lengths that are and are not powers of two, past one
// workgroup and past TOP_K_BLOCKS workgroups of the minimum run.
const gpu = await testGpu()
const wasm = await createBackend('wasm', { relaxed: false })
const W = new Ops(wasm)
const heap = wasm.heap

afterAll(() => gpu?.destroy())

const f32bits = (u: number) => new Float32Array(Uint32Array.of(u).buffer)[0]

/** the data shapes: plain normals, few distinct values (ties everywhere), and -Infinity, NaN, -0 mixed in */
function rows(n: number, seed: number): Float32Array[] {
  const rand = rng(seed)
  const ties = Float32Array.from({ length: n }, () => Math.floor(rand() * 4))
  const special = normals(rand, n).map((v) => {
    const u = rand()
    return u < 0.2 ? -Infinity : u < 0.3 ? Number.NaN : u < 0.35 ? f32bits(0xffc00001) : u < 0.45 ? -0 : u < 0.5 ? 0 : u < 0.55 ? Infinity : v
  })
  // keys that differ only in the low bits: every radix pass has work
  const close = Float32Array.from({ length: n }, () => f32bits(0x3f800000 + Math.floor(rand() * 3000)) * (rand() < 0.5 ? -1 : 1))
  return [normals(rand, n), ties, special, close]
}

function wasmTopK(x: Float32Array, k: number): number[] {
  const buf = heap.f32From(x)
  const idx = heap.allocI32(Math.max(k, 1))
  const scratch = heap.allocI32(x.length)
  try {
    W.topK(buf, x.length, k, idx, scratch)
    return Array.from(idx.view.subarray(0, k))
  } finally {
    for (const b of [scratch, idx, buf]) b.free()
  }
}

describe.skipIf(!gpu)('multi-workgroup WGSL top-k', () => {
  let K: WebGpuKernels
  beforeAll(async () => {
    K = await WebGpuKernels.create(gpu!)
  })

  /** every (row, k) on the GPU in one batch: [data row][k] -> indices */
  async function gpuTopK(xs: Float32Array[], ks: number[], add = 0): Promise<number[][][]> {
    const n = xs[0].length
    const x = heap.f32From(xs.flatMap((r) => Array.from(r)))
    const outs: I32Buf[] = ks.map((k) => heap.allocI32(Math.max(1, k) * xs.length))
    try {
      const got = await onGpu(K, heap, outs.map((o, j) => [o.ptr, Math.max(1, ks[j]) * xs.length * 4]), () => {
        ks.forEach((k, j) => K.topKRows(x.ptr, xs.length, n, n, k, outs[j].ptr, k, add))
      })
      return xs.map((_, r) => ks.map((k, j) => Array.from(new Int32Array(got[j])).slice(r * k, (r + 1) * k)))
    } finally {
      for (const b of [...outs, x]) b.free()
    }
  }

  it.each([1, 2, 3, 7, 255, 256, 257, 1000, 1023, 1025, 4097, 65536, 65537, 70000, TOP_K_BLOCKS * 1024 + 3])(
    'picks the indices of the wasm topK for n=%i, k from 1 to n, on normals, ties, -Infinity/NaN/-0 and close keys', async (n) => {
      const ks = [...new Set([1, 2, Math.floor(n / 3), Math.floor(n / 2) + 1, n - 1, n].filter((k) => k >= 1 && k <= n))]
      const xs = rows(n, n)
      const got = await gpuTopK(xs, ks)
      xs.forEach((x, r) => ks.forEach((k, j) => {
        expect(got[r][j], `row kind ${r}, n=${n}, k=${k}`).toEqual(wasmTopK(x, k))
      }))
    })

  it('gives ties to the lower index and ranks NaN below -Infinity on a hand-checked row, adding the offset', async () => {
    const y = Float32Array.from([-0, 0, Number.NaN, -Infinity, -0, 1, Number.NaN, -1])
    const [[k3, k7, k8]] = await gpuTopK([y], [3, 7, 8], 100)
    expect(k3).toEqual([100, 101, 105])
    expect(k7).toEqual([100, 101, 102, 103, 104, 105, 107])
    expect(k8).toEqual([100, 101, 102, 103, 104, 105, 106, 107])
  })

  it('leaves the output untouched while the skip flag is set, and works again after it', async () => {
    const n = 5000
    const [x0] = rows(n, 3)
    const x = heap.f32From(x0)
    const flag = heap.allocI32(1)
    const out = heap.allocI32(2 * 50)
    out.view.fill(-7)
    try {
      flag.view[0] = 1
      const [skipped] = await onGpu(K, heap, [[out.ptr, 400]], () => K.topKRows(x.ptr, 1, n, n, 50, out.ptr, 50, 0, flag.ptr))
      expect(Array.from(new Int32Array(skipped))).toEqual(new Array(100).fill(-7))
      flag.view[0] = 0
      const [ran] = await onGpu(K, heap, [[out.ptr, 400]], () => {
        K.topKRows(x.ptr, 1, n, n, 50, out.ptr, 50, 0, flag.ptr)
        K.topKRows(x.ptr, 1, n, n, 50, out.ptr + 200, 50)
      })
      const want = wasmTopK(x0, 50)
      expect(Array.from(new Int32Array(ran))).toEqual([...want, ...want])
    } finally {
      for (const b of [out, flag, x]) b.free()
    }
  })

  it('refuses k past n and a bad n before encoding, as the wasm topK refuses k past n', () => {
    const x = heap.allocF32(4)
    const idx = heap.allocI32(5)
    const scratch = heap.allocI32(4)
    try {
      expect(() => W.topK(x, 4, 5, idx, scratch)).toThrow(/k must be an integer in \[0, 4\], got 5/)
      K.arena = K.pool.acquire(1 << 16, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST)
      expect(() => K.topKRows(x.ptr, 1, 4, 4, 5, idx.ptr, 5)).toThrow(/k = 5 is not an integer in 0\.\.4/)
      expect(() => K.topKRows(x.ptr, 1, 0, 0, 0, idx.ptr, 0)).toThrow(/n = 0/)
      expect(() => K.topKRows(x.ptr, 0, 4, 4, 1, idx.ptr, 1)).toThrow(/rows = 0/)
      K.pool.release(K.arena)
    } finally {
      for (const b of [scratch, idx, x]) b.free()
    }
  })
})
