import { describe, expect, it } from 'vitest'
import { createBackend } from '../src/backend/index.js'
import { Ops } from '../src/backend/ops.js'
import { contiguousView } from '../src/backend/views.js'
import { normals, rng } from './kernels-helpers.js'

// wasm32 addresses run to 4 GiB; above 2 GiB they no longer fit a signed int32, which is what JavaScript
// bit operators and Int32Array page tables give. Kernels and twins must treat pointers as unsigned.
describe('buffers above 2 GiB', () => {
  it('wasm and reference kernels agree on buffers placed past the 2 GiB line', async () => {
    const wasm = await createBackend('wasm', { relaxed: false })
    const ref = await createBackend('reference', { heap: wasm.heap })
    const heap = wasm.heap
    const filler = heap.alloc(2 ** 31 + (1 << 20)) // never touched: the OS commits no pages for it
    const n = 300
    const d = 20
    const rand = rng(5)
    const keys = heap.f32From(normals(rand, n * d))
    const values = heap.f32From(normals(rand, n * d))
    expect(keys.ptr).toBeGreaterThan(2 ** 31)
    const view = contiguousView(keys, n, d, values)
    const q = heap.f32From(normals(rand, 3 * d))
    const W = new Ops(wasm)
    const R = new Ops(ref)
    const outs = [heap.allocF32(3 * n), heap.allocF32(3 * n)]
    W.scoreKeys(q, 3, view, 0.5, outs[0])
    R.scoreKeys(q, 3, view, 0.5, outs[1])
    for (let i = 0; i < 3 * n; i++) expect(outs[0].view[i]).toBeCloseTo(outs[1].view[i], 4)
    const o = [heap.allocF32(3 * d), heap.allocF32(3 * d)]
    const l = [heap.allocF32(3), heap.allocF32(3)]
    const idx = heap.i32From([5, 1, 299, 5])
    W.attend(q, 3, view, idx, 4, 0.5, o[0], l[0])
    R.attend(q, 3, view, idx, 4, 0.5, o[1], l[1])
    for (let i = 0; i < 3 * d; i++) expect(o[0].view[i]).toBeCloseTo(o[1].view[i], 5)
    heap.release(filler)
  })
})
