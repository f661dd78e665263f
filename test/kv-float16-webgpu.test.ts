import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { floatToHalf } from '../src/backend/half.js'
import { attendScratchWords, WebGpuKernels } from '../src/backend/webgpu/kernels.js'
import type { CreatedBackend } from '../src/backend/index.js'
import type { Heap } from '../src/backend/heap.js'
import type { Ops } from '../src/backend/ops.js'
import { expectClose, halfStreams, normals, rng, wasmAndReference } from './kernels-helpers.js'
import { expectCausalThreeWays, expectDenseAndGathered, onGpu, testGpu } from './webgpu-helpers.js'

// The WGSL kernels over float16 pages (wgsl/kv.f16.wgsl, wgsl/append_f16.wgsl) on lavapipe, once with
// shader-f16 (halves widened through vec2<f16>) and once without (unpack2x16float), against the
// TypeScript reference twins: the F16 twins where the reference has them (scoreKeysF16), else the float32
// twins over the same rows widened (widening is exact). The append's rounding against the TypeScript
// twin of the compute core's toFloat16 (src/backend/half.ts) and the wasm kernel, byte for byte.
const gpu = await testGpu()
let ref: CreatedBackend
let wasm: CreatedBackend
let R: Ops
let heap: Heap
beforeAll(async () => {
  ;({ ref, wasm, R, heap } = await wasmAndReference())
})
afterAll(() => gpu?.destroy())

const variants = gpu ? [true, false].filter((f16) => !f16 || gpu.shaderF16) : []
const f32 = (b: ArrayBuffer) => new Float32Array(b)
const bitsOf = (xs: Float32Array) => new Uint32Array(xs.buffer, xs.byteOffset, xs.length)

describe.skipIf(!gpu).each(variants.map((shaderF16) => ({ shaderF16 })))('WGSL kernels over float16 pages (shader-f16: $shaderF16)', ({ shaderF16 }) => {
  let K: WebGpuKernels
  beforeAll(async () => {
    K = await WebGpuKernels.create({ ...gpu!, shaderF16 })
  })

  it('appendRowsF16 writes the halves the compute core writes, byte for byte (ties, subnormals, saturation, signed zeros, NaN)', async () => {
    const [T, kvh, d, pt] = [41, 3, 258, 16] // 31734 values a stream
    const firsts = [0, 5, 17]
    const r = rng(7)
    const src = new Float32Array(T * kvh * d)
    const u = bitsOf(src)
    for (let i = 0; i < u.length; i++) {
      // every exponent (NaN patterns included), and many near half's range (2^-27 .. 2^18)
      const e = i % 2 ? Math.floor(r() * 255) : 100 + Math.floor(r() * 46)
      u[i] = ((r() < 0.5 ? 0x80000000 : 0) | (e << 23) | Math.floor(r() * 2 ** 23)) >>> 0
      if (i % 7 === 0) u[i] = (u[i] & 0xffffe000) | 0x1000 // an exact tie between two normal halves
    }
    const special = [1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -25, 3 * 2 ** -25, 2 ** -14 - 2 ** -26, -0, 65504, 65519.99, 65520, 1e6, Infinity, -Infinity, 2 ** -24]
    src.set(special, 1)
    // NaN: the CPU store refuses it; the GPU, which cannot refuse mid-batch, writes toFloat16's quiet NaN
    u.set([0x7fc00000, 0xffc00001, 0x7f800001], special.length + 1)
    const k = heap.f32From(src)
    const v = heap.f32From(src.map((x) => -x * 0.5))
    // each head's pages, its first rows already there (left as they are), then the T appended ones
    const heads = firsts.map((first) => {
      const pages = Array.from({ length: Math.ceil((first + T) / pt) }, () => heap.alloc(pt * d * 2, 64))
      const vPages = pages.map(() => heap.alloc(pt * d * 2, 64))
      for (const p of [...pages, ...vPages]) heap.U16.fill(0x1234, p >> 1, (p >> 1) + pt * d)
      return { first, pages, vPages, kt: heap.i32From(pages), vt: heap.i32From(vPages) }
    })
    const tabs = heap.i32From(heads.flatMap((h) => [h.kt.ptr, h.vt.ptr, h.first, h.first + T]))
    const pagesOf = heads.flatMap((h) => [...h.pages, ...h.vPages])
    const got = await onGpu(K, heap, pagesOf.map((p) => [p, pt * d * 2]), () => K.appendRowsF16(k.ptr, v.ptr, T, kvh, d, tabs.ptr, pt))
    // what the CPU writes: the wasm toFloat16 of each row, into the same slots
    const want = new Uint16Array(src.length)
    const vWant = new Uint16Array(src.length)
    const dst = heap.alloc(src.length * 2 + 16)
    wasm.toFloat16(k.ptr, dst, src.length)
    want.set(heap.U16.subarray(dst >> 1, (dst >> 1) + src.length))
    wasm.toFloat16(v.ptr, dst, src.length)
    vWant.set(heap.U16.subarray(dst >> 1, (dst >> 1) + src.length))
    heap.release(dst)
    // (a JavaScript number may drop a NaN's sign: the twin is checked on the rest)
    for (let i = 0; i < src.length; i++) if (!Number.isNaN(src[i]) && want[i] !== floatToHalf(src[i])) throw new Error(`twin at ${i}: 0x${floatToHalf(src[i]).toString(16)}, wasm 0x${want[i].toString(16)}`)
    expect([0, 1, 2].map((j) => want[special.length + 1 + j])).toEqual([0x7e00, 0xfe00, 0x7e00])
    let at = 0
    heads.forEach((h, g) => {
      const pages = got.slice(at, at + 2 * h.pages.length).map((b) => new Uint16Array(b))
      at += 2 * h.pages.length
      for (let slot = 0; slot < h.first + T; slot++) {
        const p = Math.floor(slot / pt)
        const row = (slot % pt) * d
        const t = slot - h.first
        for (let c = 0; c < d; c++) {
          const wk = t < 0 ? 0x1234 : want[(t * kvh + g) * d + c]
          const wv = t < 0 ? 0x1234 : vWant[(t * kvh + g) * d + c]
          if (pages[p][row + c] !== wk) throw new Error(`key head ${g} slot ${slot} channel ${c}: GPU 0x${pages[p][row + c].toString(16)}, CPU 0x${wk.toString(16)}`)
          if (pages[h.pages.length + p][row + c] !== wv) throw new Error(`value head ${g} slot ${slot} channel ${c}: GPU 0x${pages[h.pages.length + p][row + c].toString(16)}, CPU 0x${wv.toString(16)}`)
        }
      }
    })
    for (const h of heads) {
      for (const p of [...h.pages, ...h.vPages]) heap.release(p)
      h.kt.free(); h.vt.free()
    }
    for (const b of [k, v, tabs]) b.free()
  })

  it.each([
    // qHeads, d, n, pageTokens: d a multiple of 4 (two-word loads), d = 2 mod 4 (element loads), past one staged chunk
    [1, 64, 1, 16], [3, 128, 130, 64], [5, 6, 70, 16], [4, 258, 66, 32], [8, 64, 700, 32],
  ])('scoreKeysF16 matches the reference twin for qHeads=%i d=%i n=%i pageTokens=%i', async (qHeads, d, n, pt) => {
    const rand = rng(qHeads * 31 + d * 7 + n)
    const k = halfStreams(heap, normals(rand, n * d), n, d, pt)
    const q = heap.f32From(normals(rand, qHeads * d))
    const out = heap.allocF32(qHeads * n)
    const [got] = await onGpu(K, heap, [[out.ptr, qHeads * n * 4]], () => K.scoreKeysF16(q.ptr, qHeads, d, k.half, pt, n, 0.3, out.ptr))
    ref.scoreKeysF16(q.ptr, qHeads, d, k.half, pt, n, 0.3, out.ptr)
    expectClose(f32(got), out.view, 1e-4, 1e-5 * Math.sqrt(d), 'scores')
    q.free(); out.free(); k.free()
  })

  it.each([
    // qHeads, d, n, pageTokens, split (undefined: attendSplit's)
    [1, 64, 1, 16, undefined], [4, 128, 700, 64, undefined], [4, 128, 300, 64, 64], [5, 6, 90, 8, 33], [2, 130, 129, 32, 256],
  ])('attendF16 dense and gathered match the reference over the widened rows for qHeads=%i d=%i n=%i pageTokens=%i split=%s', async (qHeads, d, n, pt, split) => {
    const rand = rng(qHeads + d + n)
    const k = halfStreams(heap, normals(rand, n * d), n, d, pt)
    const v = halfStreams(heap, normals(rand, n * d), n, d, pt)
    const q = heap.f32From(normals(rand, qHeads * d).map((x) => x * 2))
    const nIdx = Math.max(1, Math.floor(n / 3))
    const idx = heap.i32From(Array.from({ length: nIdx }, () => Math.floor(rand() * n))) // unsorted, repeats
    const [out, out2, lse, lse2] = [heap.allocF32(qHeads * d), heap.allocF32(qHeads * d), heap.allocF32(qHeads), heap.allocF32(qHeads)]
    const scratch = heap.allocF32(Math.max(attendScratchWords(qHeads, d, n, split), attendScratchWords(qHeads, d, nIdx, split)))
    const scale = 1 / Math.sqrt(d)
    const [go, gl, go2, gl2] = await onGpu(K, heap, [[out.ptr, qHeads * d * 4], [lse.ptr, qHeads * 4], [out2.ptr, qHeads * d * 4], [lse2.ptr, qHeads * 4]], () => {
      K.attendF16(q.ptr, qHeads, d, k.half, v.half, pt, n, 0, 0, scale, out.ptr, lse.ptr, scratch.ptr, split)
      K.attendF16(q.ptr, qHeads, d, k.half, v.half, pt, n, idx.ptr, nIdx, scale, out2.ptr, lse2.ptr, scratch.ptr, split)
    })
    const view = { kTable: k.wide, vTable: v.wide, pageTokens: pt, n, d }
    R.attend(q, qHeads, view, null, 0, scale, out, lse)
    R.attend(q, qHeads, view, idx, nIdx, scale, out2, lse2)
    expectDenseAndGathered([go, gl, go2, gl2], [out, lse, out2, lse2])
    for (const b of [q, idx, out, out2, lse, lse2, scratch]) b.free()
    k.free(); v.free()
  })

  // as kernels-webgpu.test.ts's attendCausal case: ragged per-KV-head caches (first_g cached rows, then T)
  it.each([
    // T, qHeads, group, d, pageTokens, first per KV head
    [5, 4, 2, 64, 16, [0, 3]],
    [33, 6, 3, 64, 16, [40, 17]],
    [40, 2, 2, 128, 32, [70]], // both halves of a flash row's output (d > 64)
    [9, 4, 2, 130, 8, [0, 70]],
    [17, 3, 3, 6, 5, [9]],
  ] as [number, number, number, number, number, number[]][])('attendCausalF16 (flash, flash with split keys, simple) matches the reference over the widened rows for T=%i qHeads=%i group=%i d=%i pageTokens=%i first=%j', async (T, hq, group, d, pt, firsts) => {
    const rand = rng(T * 31 + hq * 7 + d)
    const heads = firsts.map((first) => {
      const n = first + T
      return { first, n, k: halfStreams(heap, normals(rand, n * d), n, d, pt), v: halfStreams(heap, normals(rand, n * d), n, d, pt) }
    })
    const q = heap.f32From(normals(rand, T * hq * d))
    const tables = heads.map((h) => ({ ...h, kTable: h.k.half, vTable: h.v.half, refK: h.k.wide, refV: h.v.wide }))
    await expectCausalThreeWays(K, heap, ref, true, T, hq, group, d, pt, tables, q.ptr)
    q.free()
    for (const h of heads) { h.k.free(); h.v.free() }
  })

  it.each([0, 7, 1.5])('the float16 kernels refuse head dim %s (rows of halves must be whole words) before encoding anything', (d) => {
    expect(() => K.appendRowsF16(0, 0, 1, 1, d, 0, 16)).toThrow(RangeError)
    expect(() => K.scoreKeysF16(0, 1, d, 0, 16, 4, 1, 0)).toThrow(/head dim/)
    expect(() => K.attendF16(0, 1, d, 0, 0, 16, 4, 0, 0, 1, 0, 0, 0)).toThrow(/head dim/)
    expect(() => K.attendCausalF16(0, d, 1, 1, 2, d, 0, 16, 1, 0, d)).toThrow(/head dim/)
  })
})
