import { describe, expect, it } from 'vitest'
import { packedAttendScratch } from '../src/backend/backend.js'
import { referencePackedKernels } from '../src/backend/reference/packed-kernels.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import type { PageFormat } from '../src/cache/formats.js'
import { normals, rng } from './kernels-helpers.js'
import { gpuBesideWasm, onGpu, testGpu } from './webgpu-helpers.js'

// The WGSL packed-page kernels (wgsl/packed.wgsl) against the dequantize-then-float32 twins
// (src/backend/reference/packed-kernels.ts) on pages the store packed: every integer format, integer
// keys with ternary values, ragged token counts (a partial last group and page), head dims that
// are not a multiple of 32 (a partial value group), 1 to 5 query rows.
const gpu = await testGpu()
const ctx = gpuBesideWasm(gpu)

const BITS: Record<string, number> = { int8: 8, int4: 4, int2: 2, int1: 1, ternary: 0 }

interface Packed {
  keys: PageFormat
  values: PageFormat
}

/** n random tokens of one KV head of d channels, packed as `p` (pages of 64 tokens) */
function packedSegment(n: number, d: number, p: Packed, seed: number) {
  const cache = new PagedKVCache(ctx.wasm, { layers: 1, kvHeads: 1, headDim: d, pageTokens: 64 })
  const r = rng(seed)
  cache.append(0, normals(r, n * d), normals(r, n * d), Int32Array.from({ length: n }, (_, i) => i))
  cache.apply({ heads: [], quantize: [{ layer: 0, head: 0, upto: n, keys: p.keys, values: p.values }] })
  const seg = cache.segments(0, 0)[0]
  expect([seg.format, seg.valueFormat]).toEqual([p.keys, p.values])
  return { cache, seg, kBits: BITS[p.keys], hi: 0, vBits: BITS[p.values] }
}

const INT: PageFormat[] = ['int8', 'int4', 'int2', 'int1']
const grid = [
  ...INT.flatMap((f) => [[1, 64, 3], [31, 64, 1], [33, 40, 5], [130, 64, 2]].map(([n, d, rows]) => [{ keys: f, values: f }, n, d, rows] as const)),
  ...(['int4', 'int2'] as PageFormat[]).flatMap((f) => [[1, 64, 3], [130, 40, 2]].map(([n, d, rows]) => [{ keys: f, values: 'ternary' as PageFormat }, n, d, rows] as const)),
]

describe.skipIf(!gpu)('WebGPU packed-page kernels equal dequantize-then-float32', () => {
  it.each(grid)('%o: %i tokens of %i channels, %i query rows: scores, attention and log-sum-exp within float32 rounding', async (p, n, d, rows) => {
    const { cache, seg, kBits, hi, vBits } = packedSegment(n, d, p, n * 31 + d + rows)
    const twin = referencePackedKernels(ctx.heap)
    const q = ctx.heap.f32From(normals(rng(7 + n), rows * d))
    const [s, sRef, out, ref, lse, lseRef] = [rows * n, rows * n, rows * d, rows * d, rows, rows].map((len) => ctx.heap.allocF32(len))
    const scratch = ctx.heap.allocF32(packedAttendScratch(rows, d, d, n))
    const [gs, go, gl] = await onGpu(ctx.K, ctx.heap, [[s.ptr, rows * n * 4], [out.ptr, rows * d * 4], [lse.ptr, rows * 4]], () => {
      ctx.K.scorePackedKeys(q.ptr, rows, d, seg.kTable, 64, n, kBits, hi, 0.125, s.ptr)
      ctx.K.attendPacked(q.ptr, rows, d, d, seg.kTable, seg.vTable, 64, n, kBits, hi, vBits, 0.125, out.ptr, d, lse.ptr, scratch.ptr)
    })
    twin.scorePackedKeys(q.ptr, rows, d, seg.kTable, 64, n, kBits, hi, 0.125, sRef.ptr, 0)
    twin.attendPacked(q.ptr, rows, d, d, seg.kTable, seg.vTable, 64, n, kBits, hi, vBits, 0.125, ref.ptr, d, lseRef.ptr, 0)
    const [scores, attn, lses] = [new Float32Array(gs), new Float32Array(go), new Float32Array(gl)]
    for (let i = 0; i < rows * n; i++) expect(Math.abs(scores[i] - sRef.view[i])).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(sRef.view[i])))
    const v = cache.readValues(0, 0)
    const vmax = v.reduce((m, x) => Math.max(m, Math.abs(x)), 0)
    for (let i = 0; i < rows * d; i++) expect(Math.abs(attn[i] - ref.view[i])).toBeLessThanOrEqual(vmax * 2e-5)
    for (let r = 0; r < rows; r++) expect(Math.abs(lses[r] - lseRef.view[r])).toBeLessThanOrEqual(2e-5 * Math.max(1, Math.abs(lseRef.view[r])))
    for (const b of [q, s, sRef, out, ref, lse, lseRef, scratch]) b.free()
    cache.dispose()
  })

  it('refuses int2+sign keys (hi > 0) and unknown code widths, naming them', () => {
    expect(() => ctx.K.scorePackedKeys(0, 1, 64, 0, 64, 1, 1, 3, 0.125, 0)).toThrow(/hi 3/)
    expect(() => ctx.K.scorePackedKeys(0, 1, 64, 0, 64, 1, 3, 0, 0.125, 0)).toThrow(/bits 3/)
    expect(() => ctx.K.attendPacked(0, 1, 64, 64, 0, 0, 64, 1, 4, 0, 5, 0.125, 0, 64, 0, 0)).toThrow(/vBits 5/)
  })

  it('refuses key groups other than 32 tokens (KIVI\'s groupSize 64, 128: the WGSL reads 32-token chunks), naming them', () => {
    expect(() => ctx.K.scorePackedKeys(0, 1, 64, 0, 128, 1, 2, 0, 0.125, 0, 0, 128)).toThrow(RangeError)
    expect(() => ctx.K.scorePackedKeys(0, 1, 64, 0, 128, 1, 2, 0, 0.125, 0, 0, 128)).toThrow(/group 128/)
    expect(() => ctx.K.attendPacked(0, 1, 64, 64, 0, 0, 128, 1, 2, 0, 2, 0.125, 0, 64, 0, 0, 64, 64)).toThrow(/group 64, vGroup 64/)
  })

  it('attention with lse = 0 writes no log-sum-exp (the first words of the arena stay as they were)', async () => {
    const { cache, seg } = packedSegment(70, 64, { keys: 'int4', values: 'int4' }, 5)
    const q = ctx.heap.f32From(normals(rng(1), 64))
    const out = ctx.heap.allocF32(64)
    const scratch = ctx.heap.allocF32(packedAttendScratch(1, 64, 64, 70))
    const before = ctx.heap.U8.slice(0, 16)
    const [o, first] = await onGpu(ctx.K, ctx.heap, [[out.ptr, 256], [0, 16]], () => {
      ctx.K.attendPacked(q.ptr, 1, 64, 64, seg.kTable, seg.vTable, 64, 70, 4, 0, 4, 0.125, out.ptr, 64, 0, scratch.ptr)
    })
    expect(Array.from(new Uint8Array(first))).toEqual(Array.from(before))
    expect(new Float32Array(o).every(Number.isFinite)).toBe(true)
    for (const b of [q, out, scratch]) b.free()
    cache.dispose()
  })
})
