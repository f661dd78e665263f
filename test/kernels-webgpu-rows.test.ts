import { describe, expect, it } from 'vitest'
import { normals, pagedStream, rng } from './kernels-helpers.js'
import { gpuBesideWasm, onGpu, testGpu } from './webgpu-helpers.js'

// The store's row moves on the GPU (wgsl/pages.wgsl) against the compute core's compactRows and
// moveRows on the same paged stream: random keep lists (runs, gaps, page boundaries, keep-all, keep-one,
// keep-none), float32 rows and float16 rows (half the bytes), hole-filling move lists.
const gpu = await testGpu()
const ctx = gpuBesideWasm(gpu)

/** the stream's n rows of rowBytes, read through its page table */
function rowsOf(bytes: Uint8Array, table: Int32Array, pt: number, rowBytes: number, n: number): number[] {
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const at = table[Math.floor(i / pt)] + (i % pt) * rowBytes
    out.push(...bytes.subarray(at, at + rowBytes))
  }
  return out
}

describe.skipIf(!gpu)('WebGPU row moves equal the compute core', () => {
  it.each([
    // n, words a row (64: a float32 row of 64, 32: a float16 row of 64), pageTokens, share kept
    [300, 64, 64, 0.25], [300, 32, 64, 0.5], [129, 64, 16, 1], [1, 64, 64, 1], [200, 16, 32, 0.05], [70, 64, 64, 0],
  ])('compactRows: %i rows of %i words, pages of %i, %f kept', async (n, w, pt, share) => {
    const r = rng(n * w + pt)
    const s = pagedStream(ctx.heap, normals(r, n * w), n, w, pt)
    const keep = Array.from({ length: n }, (_, i) => i).filter((i) => (share === 1 ? true : r() < share))
    const keepBuf = ctx.heap.i32From(Int32Array.from(keep))
    const scratch = ctx.heap.allocF32(Math.max(1, keep.length * w))
    const table = Int32Array.from(s.table.view)
    const [gpuBytes] = await onGpu(ctx.K, ctx.heap, [[0, ctx.heap.U8.byteLength]], () => ctx.K.compactRows(s.table.ptr, pt, w * 4, keepBuf.ptr, keep.length, scratch.ptr))
    const moved = ctx.wasm.compactRows(s.table.ptr, pt, w * 4, keepBuf.ptr, keep.length)
    expect(moved).toBeLessThanOrEqual(keep.length)
    expect(rowsOf(new Uint8Array(gpuBytes), table, pt, w * 4, keep.length)).toEqual(rowsOf(ctx.heap.U8, table, pt, w * 4, keep.length))
    for (const b of [s, keepBuf, scratch]) b.free()
  })

  it.each([[300, 64, 64, 40], [129, 32, 16, 7], [64, 16, 64, 1]])('moveRows: %i rows of %i words, pages of %i, %i holes filled from the end', async (n, w, pt, holes) => {
    const r = rng(n + holes)
    const s = pagedStream(ctx.heap, normals(r, n * w), n, w, pt)
    // holes before the new end n - holes, filled by rows past it: no target is a source
    const end = n - holes
    const targets = new Set<number>()
    while (targets.size < holes) targets.add(Math.floor(r() * end))
    const pairs = ctx.heap.i32From(Int32Array.from([...targets].flatMap((t, i) => [t, end + i])))
    const table = Int32Array.from(s.table.view)
    const [gpuBytes] = await onGpu(ctx.K, ctx.heap, [[0, ctx.heap.U8.byteLength]], () => ctx.K.moveRows(s.table.ptr, pt, w * 4, pairs.ptr, holes))
    ctx.wasm.moveRows(s.table.ptr, pt, w * 4, pairs.ptr, holes)
    expect(rowsOf(new Uint8Array(gpuBytes), table, pt, w * 4, n)).toEqual(rowsOf(ctx.heap.U8, table, pt, w * 4, n))
    for (const b of [s, pairs]) b.free()
  })

  it('refuses rows that are not whole words, naming the size', () => {
    expect(() => ctx.K.moveRows(0, 64, 6, 0, 1)).toThrow(/rows of 6 bytes/)
    expect(() => ctx.K.compactRows(0, 64, 0, 0, 1, 0)).toThrow(/rows of 0 bytes/)
  })
})
