import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBackend } from '../src/backend/index.js'
import { Ops } from '../src/backend/ops.js'
import { ATTEND_SPLIT, attendScratchWords, attendSplit, flashScratchWords, flashSplit, WebGpuKernels, type DecodeKernels } from '../src/backend/webgpu/kernels.js'
import { expectClose, normals, pagedStream, pagedView, rng, type PagedStream } from './kernels-helpers.js'
import { expectCausalThreeWays, expectDenseAndGathered, onGpu, testGpu } from './webgpu-helpers.js'

// The WGSL kernels against the same TypeScript twins the wasm kernels are tested against (kernels.test.ts),
// on a GPU copy of the same heap, once with subgroup reductions and once with the workgroup-memory path.
const gpu = await testGpu()
const ref = await createBackend('reference')
const R = new Ops(ref)
const heap = ref.heap
const variants = gpu ? [true, false].filter((sg) => !sg || gpu.subgroups) : []

afterAll(() => gpu?.destroy())

const f32 = (b: ArrayBuffer) => new Float32Array(b)
const i32 = (b: ArrayBuffer) => new Int32Array(b)

describe.skipIf(!gpu).each(variants.map((subgroups) => ({ subgroups })))('WGSL kernels (subgroups: $subgroups)', ({ subgroups }) => {
  let K: WebGpuKernels
  beforeAll(async () => {
    K = await WebGpuKernels.create({ ...gpu!, subgroups })
    // the GPU's decode kernels, whatever the adapter; the CPU-shaped ones are tested by name below
    K.decodeKernels = 'workgroup'
  })

  it.each([
    // qHeads, d, n, pageTokens
    [1, 64, 1, 16], [3, 64, 100, 16], [1, 5, 7, 3], [4, 13, 33, 32], [8, 7, 61, 5], [2, 64, 3000, 32], [12, 16, 70, 64], [4, 128, 131, 64],
    // d past one staged chunk of 256 channels (Quest's bounds of head dim 256 are 512 wide), 5 heads (two groups of 4)
    [5, 512, 70, 16], [2, 300, 9, 4], [4, 258, 66, 64],
    // more keys than 4096 workgroups x 64 cover in one pass: the workgroups stride
    [1, 4, 300000, 1024],
  ])('scoreKeys matches the reference for qHeads=%i d=%i n=%i pageTokens=%i', async (qHeads, d, n, pageTokens) => {
    const rand = rng(qHeads * 1000 + d * 10 + n)
    const keys = pagedStream(heap, normals(rand, n * d), n, d, pageTokens)
    const view = pagedView(keys, keys, n, d, pageTokens)
    const q = heap.f32From(normals(rand, qHeads * d))
    const out = heap.allocF32(qHeads * n)
    const [got] = await onGpu(K, heap, [[out.ptr, qHeads * n * 4]], () => K.scoreKeys(q.ptr, qHeads, d, keys.table.ptr, pageTokens, n, 0.125, out.ptr))
    R.scoreKeys(q, qHeads, view, 0.125, out)
    expectClose(f32(got), out.view, 1e-4, 1e-5 * Math.sqrt(d), 'scores')
    q.free(); out.free(); keys.free()
  })

  it.each([[1, 1], [3, 5], [2, 1000], [4, 4099]])('softmaxRows, logSumExp and softVote match the reference for rows=%i n=%i', async (rows, n) => {
    const x = heap.f32From(normals(rng(rows * n), rows * n).map((v) => v * 8 + 300))
    const sm = heap.f32From(x.view)
    const vote = heap.allocF32(n)
    const lse = heap.allocF32(1)
    const scratch = heap.allocF32(2 * rows)
    const [gs, gv, gl] = await onGpu(K, heap, [[sm.ptr, rows * n * 4], [vote.ptr, n * 4], [lse.ptr, 4]], () => {
      K.softVote(x.ptr, rows, n, vote.ptr, scratch.ptr)
      K.logSumExp(x.ptr, rows * n, lse.ptr)
      K.softmaxRows(sm.ptr, rows, n)
    })
    R.softmaxRows(sm, rows, n)
    expectClose(f32(gs), sm.view, 1e-4, 1e-7, 'softmax')
    R.softVote(x, rows, n, vote)
    expectClose(f32(gv), vote.view, 1e-4, 1e-7, 'vote')
    expectClose(f32(gl), [R.logSumExp(x, rows * n)], 1e-6, 1e-4, 'lse')
    for (const t of [x, sm, vote, lse, scratch]) t.free()
  })

  it('softmaxRows zeroes an all -inf row and logSumExp of all -inf is -inf', async () => {
    const a = heap.f32From([-Infinity, -Infinity, -Infinity, 1, 2, 3])
    const l = heap.allocF32(1)
    const [ga, gl] = await onGpu(K, heap, [[a.ptr, 24], [l.ptr, 4]], () => {
      K.logSumExp(a.ptr, 3, l.ptr)
      K.softmaxRows(a.ptr, 2, 3)
    })
    expect(Array.from(f32(ga).subarray(0, 3))).toEqual([0, 0, 0])
    expect(f32(ga)[3] + f32(ga)[4] + f32(ga)[5]).toBeCloseTo(1, 6)
    expect(f32(gl)[0]).toBe(-Infinity)
    a.free(); l.free()
  })

  async function topK(x: Float32Array, k: number): Promise<number[]> {
    const n = x.length
    const buf = heap.f32From(x)
    const a = heap.allocI32(Math.max(k, 1))
    const scratch = heap.allocI32(n)
    const [got] = await onGpu(K, heap, [[a.ptr, k * 4]], () => K.topK(buf.ptr, n, k, a.ptr))
    R.topK(buf, n, k, a, scratch)
    expect(Array.from(i32(got))).toEqual(Array.from(a.view.subarray(0, k)))
    for (const t of [buf, a, scratch]) t.free()
    return Array.from(i32(got))
  }

  it.each([[1, 1], [5, 2], [100, 1], [100, 100], [1001, 500], [4099, 17], [50000, 2048]])(
    'topK picks exactly the reference indices for n=%i k=%i', async (n, k) => {
      await topK(normals(rng(n + k), n), k)
    })

  it('topK breaks ties toward the lower index, treats -0 as +0 and ranks NaN below -Infinity', async () => {
    const rand = rng(7)
    const x = Float32Array.from({ length: 5000 }, () => Math.floor(rand() * 5))
    for (const k of [1, 999, 1000, 1001, 4999]) await topK(x, k)
    expect(await topK(new Float32Array(10).fill(3), 4)).toEqual([0, 1, 2, 3])
    const y = Float32Array.from([-0, 0, Number.NaN, -Infinity, -0, 1, Number.NaN, -1])
    expect(await topK(y, 3)).toEqual([0, 1, 5])
    expect(await topK(y, 7)).toEqual([0, 1, 2, 3, 4, 5, 7])
    const bits = new Uint32Array(1)
    const z = Float32Array.from({ length: 3000 }, () => {
      bits[0] = 0x3f800000 + Math.floor(rand() * 40)
      return new Float32Array(bits.buffer)[0] * (rand() < 0.5 ? -1 : 1)
    })
    for (const k of [1, 1500, 2999]) await topK(z, k)
  })

  it.each([[1, 1], [5, 3], [17, 7], [1000, 31], [600, 5]])('max and avg pooling match the reference for n=%i kernel=%i', async (n, kernel) => {
    const x = heap.f32From(normals(rng(n * kernel), n))
    const a = heap.allocF32(n)
    const b = heap.allocF32(n)
    const [ga, gb] = await onGpu(K, heap, [[a.ptr, n * 4], [b.ptr, n * 4]], () => {
      K.maxPool1d(x.ptr, n, kernel, a.ptr)
      K.avgPool1d(x.ptr, n, kernel, b.ptr)
    })
    R.pool1d('max', x, n, kernel, a)
    R.pool1d('avg', x, n, kernel, b)
    expectClose(f32(ga), a.view, 1e-5, 1e-6, 'max')
    expectClose(f32(gb), b.view, 1e-5, 1e-6, 'avg')
    for (const t of [x, a, b]) t.free()
  })

  /** pagedStream with every page `shift` bytes into its own allocation (rows not 16-byte aligned when shift % 16 != 0) */
  function shiftedStream(rows: Float32Array, n: number, d: number, pageTokens: number, shift: number): PagedStream {
    if (shift === 0) return pagedStream(heap, rows, n, d, pageTokens)
    const pages = Array.from({ length: Math.ceil(n / pageTokens) }, (_, p) => {
      const buf = heap.allocF32(pageTokens * d + shift / 4)
      buf.view.set(rows.subarray(p * pageTokens * d, Math.min(n, (p + 1) * pageTokens) * d), shift / 4)
      return buf
    })
    const table = heap.i32From(pages.map((b) => b.ptr + shift))
    return { table, pages, free: () => [table, ...pages].forEach((b) => b.free()) }
  }

  /** dense and gathered (unsorted, repeated indices) attention on the GPU against the reference */
  async function attendBoth(qHeads: number, d: number, n: number, pageTokens: number, split: number | undefined, rowShift = 0, kernels: DecodeKernels = 'workgroup'): Promise<void> {
    const rand = rng(qHeads + d + n + (split ?? 0))
    const keys = shiftedStream(normals(rand, n * d), n, d, pageTokens, rowShift)
    const vals = shiftedStream(normals(rand, n * d), n, d, pageTokens, rowShift)
    const view = pagedView(keys, vals, n, d, pageTokens)
    const q = heap.f32From(normals(rand, qHeads * d).map((v) => v * 2))
    const nIdx = Math.max(1, Math.floor(n / 3))
    const idx = heap.i32From(Array.from({ length: nIdx }, () => Math.floor(rand() * n))) // unsorted, repeats
    const [out, out2] = [heap.allocF32(qHeads * d), heap.allocF32(qHeads * d)]
    const [lse, lse2] = [heap.allocF32(qHeads), heap.allocF32(qHeads)]
    const scratch = heap.allocF32(Math.max(attendScratchWords(qHeads, d, n, split), attendScratchWords(qHeads, d, nIdx, split)))
    const scale = 1 / Math.sqrt(d)
    const [go, gl, go2, gl2] = await onGpu(K, heap, [[out.ptr, qHeads * d * 4], [lse.ptr, qHeads * 4], [out2.ptr, qHeads * d * 4], [lse2.ptr, qHeads * 4]], () => {
      K.decodeKernels = kernels
      K.attend(q.ptr, qHeads, d, keys.table.ptr, vals.table.ptr, pageTokens, n, 0, 0, scale, out.ptr, lse.ptr, scratch.ptr, split)
      K.attend(q.ptr, qHeads, d, keys.table.ptr, vals.table.ptr, pageTokens, n, idx.ptr, nIdx, scale, out2.ptr, lse2.ptr, scratch.ptr, split)
      K.decodeKernels = 'workgroup'
    })
    R.attend(q, qHeads, view, null, 0, scale, out, lse)
    R.attend(q, qHeads, view, idx, nIdx, scale, out2, lse2)
    expect([go, go2].some((g) => f32(g).some(Number.isNaN)), 'NaN in the output').toBe(false)
    expectDenseAndGathered([go, gl, go2, gl2], [out, lse, out2, lse2])
    for (const t of [q, idx, out, out2, lse, lse2, scratch]) t.free()
    keys.free(); vals.free()
  }

  it.each([
    // qHeads, d, n, pageTokens
    [1, 64, 1, 16], [3, 64, 200, 16], [1, 5, 7, 3], [4, 13, 33, 32], [12, 8, 50, 8], [2, 1, 9, 4], [4, 128, 1500, 64],
  ])('attend dense and gathered match the reference for qHeads=%i d=%i n=%i pageTokens=%i', async (qHeads, d, n, pageTokens) => {
    await attendBoth(qHeads, d, n, pageTokens, undefined)
  })

  it.each([
    // qHeads, d, n, pageTokens, split: one token per split, a split that does not divide n, 64 (one quad
    // pass of scores), more than 64 (several), the largest; 5 heads take two passes of the 4-head group
    [4, 128, 700, 64, 1], [4, 128, 700, 64, 7], [4, 128, 700, 64, 64], [4, 128, 700, 64, 100], [4, 128, 700, 64, 256],
    [5, 64, 300, 16, 33], [2, 256, 129, 32, 128], [3, 12, 90, 8, 256], [1, 5, 40, 3, 13],
  ])('attend with qHeads=%i d=%i n=%i pageTokens=%i matches the reference for split=%i', async (qHeads, d, n, pageTokens, split) => {
    await attendBoth(qHeads, d, n, pageTokens, split)
  })

  // the CPU rasteriser's kernel (attend_rows: a thread a query head, online softmax) on the same shapes,
  // d = 256 (its accumulator's size), more heads than one 64-thread workgroup, and unaligned rows
  it.each([
    // qHeads, d, n, pageTokens, row shift (floats)
    [1, 64, 1, 16, 0], [3, 64, 200, 16, 0], [1, 5, 7, 3, 0], [4, 13, 33, 32, 0], [12, 8, 50, 8, 0], [2, 1, 9, 4, 0], [4, 128, 1500, 64, 0],
    [2, 256, 129, 32, 0], [70, 16, 40, 8, 0], [4, 128, 300, 16, 4], [2, 64, 40, 16, 4],
  ])('attend_rows (a thread a query head) matches the reference for qHeads=%i d=%i n=%i pageTokens=%i row shift %i', async (qHeads, d, n, pageTokens, shift) => {
    await attendBoth(qHeads, d, n, pageTokens, undefined, shift, 'thread')
  })

  it.each([[4, 128, 300], [2, 64, 40]])('attend and scoreKeys read rows that are not 16-byte aligned (qHeads=%i d=%i n=%i)', async (qHeads, d, n) => {
    await attendBoth(qHeads, d, n, 16, undefined, 4)
    const rand = rng(d + n)
    const keys = shiftedStream(normals(rand, n * d), n, d, 16, 4)
    const q = heap.f32From(normals(rand, qHeads * d))
    const out = heap.allocF32(qHeads * n)
    const [got] = await onGpu(K, heap, [[out.ptr, qHeads * n * 4]], () => K.scoreKeys(q.ptr, qHeads, d, keys.table.ptr, 16, n, 0.5, out.ptr))
    R.scoreKeys(q, qHeads, pagedView(keys, keys, n, d, 16), 0.5, out)
    expectClose(f32(got), out.view, 1e-4, 1e-5 * Math.sqrt(d), 'scores')
    expect(f32(got).some(Number.isNaN)).toBe(false)
    for (const t of [q, out]) t.free()
    keys.free()
  })

  it('attendSplit keeps a 2048-token list on 128 workgroups and long lists at 512 splits or fewer', () => {
    expect(attendSplit(1)).toBe(16)
    expect(2048 / attendSplit(2048)).toBe(128)
    expect(32768 / attendSplit(32768)).toBe(512)
    expect(attendSplit(131072)).toBe(ATTEND_SPLIT)
    expect(attendSplit(1 << 20)).toBe(ATTEND_SPLIT)
    for (let c = 1; c < 1 << 18; c = Math.ceil(c * 1.7)) expect(Math.ceil(c / attendSplit(c)) <= 512 || attendSplit(c) === ATTEND_SPLIT).toBe(true)
  })

  it('attendScratchWords(count) covers every list of at most count tokens at its default split', () => {
    const need = (c: number) => attendScratchWords(4, 128, c, attendSplit(c))
    let most = 0
    for (let c = 1; c <= 300000; c++) {
      most = Math.max(most, need(c))
      if (c % 97 === 0 || c < 20000) expect(attendScratchWords(4, 128, c)).toBe(most)
    }
    expect(attendScratchWords(4, 128, 10000)).toBeGreaterThan(need(10000)) // 8192 tokens have more splits
    expect(attendScratchWords(4, 128, 0)).toBe(0)
  })

  it.each([0, -1, 1.5, ATTEND_SPLIT + 1])('attend refuses split=%s before encoding anything', (split) => {
    expect(() => K.attend(0, 1, 4, 0, 0, 16, 4, 0, 0, 1, 0, 0, 0, split)).toThrow(/split/)
  })

  it.each([
    // qHeads, d, pages, shift: a GQA group of 4, 5 heads (two passes), Quest's bounds of head dim 256 (two
    // stages), odd d, more pages than 4096 workgroups x 64 cover in one pass, summaries 4 bytes off 16-byte alignment
    [4, 128, 200, 0], [5, 64, 33, 0], [2, 320, 17, 0], [3, 7, 50, 0], [1, 4, 270000, 0], [4, 128, 30, 4],
  ])('pageUpperBound matches Quest\'s bound for qHeads=%i d=%i pages=%i shift=%i', async (qHeads, d, pages, shift) => {
    const rand = rng(qHeads * 7 + d + pages)
    const a = normals(rand, pages * d)
    const b = normals(rand, pages * d)
    const lo = heap.allocF32(pages * d + 1)
    const hi = heap.allocF32(pages * d + 1)
    lo.view.set(a.map((x, i) => Math.min(x, b[i])), shift / 4)
    hi.view.set(a.map((x, i) => Math.max(x, b[i])), shift / 4)
    const qv = normals(rand, qHeads * d)
    const q = heap.f32From(qv)
    const out = heap.allocF32(pages)
    const [got] = await onGpu(K, heap, [[out.ptr, pages * 4]], () => K.pageUpperBound(q.ptr, qHeads, d, lo.ptr + shift, hi.ptr + shift, pages, out.ptr))
    const L = lo.view.subarray(shift / 4)
    const H = hi.view.subarray(shift / 4)
    // twin 1: the formula, in float64
    const want = new Float64Array(pages)
    for (let p = 0; p < pages; p++) {
      for (let h = 0; h < qHeads; h++) {
        for (let c = 0; c < d; c++) {
          const x = qv[h * d + c]
          want[p] += Math.max(x * L[p * d + c], x * H[p * d + c])
        }
      }
    }
    expectClose(f32(got), want, 1e-4, 2e-5 * Math.sqrt(d * qHeads), 'bound')
    // twin 2 (spot check): Quest's CPU path, [max(q, 0) | min(q, 0)] . [kmax | kmin] through scoreKeys
    const rows = Math.min(pages, 64)
    const kk = heap.allocF32(rows * 2 * d)
    for (let p = 0; p < rows; p++) {
      kk.view.set(H.subarray(p * d, (p + 1) * d), p * 2 * d)
      kk.view.set(L.subarray(p * d, (p + 1) * d), p * 2 * d + d)
    }
    const table = heap.i32From([kk.ptr])
    const qq = heap.f32From(Array.from({ length: qHeads * 2 * d }, (_, i) => {
      const h = Math.floor(i / (2 * d))
      const c = i % (2 * d)
      const x = qv[h * d + (c % d)]
      return c < d ? Math.max(x, 0) : Math.min(x, 0)
    }))
    const per = heap.allocF32(qHeads * rows)
    R.scoreKeys(qq, qHeads, { kTable: table.ptr, vTable: table.ptr, pageTokens: rows, n: rows, d: 2 * d }, 1, per)
    const summed = Array.from({ length: rows }, (_, p) => {
      let t = 0
      for (let h = 0; h < qHeads; h++) t += per.view[h * rows + p]
      return t
    })
    expectClose(f32(got).subarray(0, rows), summed, 1e-4, 2e-5 * Math.sqrt(d * qHeads), 'bound vs quest')
    for (const t of [lo, hi, q, out, kk, table, qq, per]) t.free()
  })

  it.each([[1, 16, 16], [3, 16, 40], [5, 4, 17], [130, 1, 130]])('pageTokenIndices expands %i pages of %i tokens into the first %i token indices', async (k, page, count) => {
    const pagesIdx = Int32Array.from({ length: k }, (_, i) => (i * 37 + 5) % 1000)
    const idx = heap.i32From(pagesIdx)
    const out = heap.allocI32(count)
    const [got] = await onGpu(K, heap, [[out.ptr, count * 4]], () => K.pageTokenIndices(idx.ptr, count, page, out.ptr))
    expect(Array.from(i32(got))).toEqual(Array.from({ length: count }, (_, i) => pagesIdx[Math.floor(i / page)] * page + (i % page)))
    idx.free(); out.free()
  })

  it.each([[1, 1], [7, 1], [4096, 2], [100003, 3], [1 << 20, 64]])('streamSum threads together add up all n=%i floats (%i workgroups)', async (n, groups) => {
    const x = heap.f32From(normals(rng(n), n))
    const threads = groups * 256
    const out = heap.allocF32(threads)
    const [got] = await onGpu(K, heap, [[out.ptr, threads * 4]], () => K.streamSum(x.ptr, n, out.ptr, groups))
    let want = 0
    for (const v of x.view) want += v
    const total = f32(got).reduce((a, b) => a + b, 0)
    expect(Math.abs(total - want)).toBeLessThan(1e-4 * Math.sqrt(n) + 1e-5)
    x.free(); out.free()
  })

  it('streamSum refuses a buffer that is not 16-byte aligned', () => {
    expect(() => K.streamSum(4, 8, 64, 1)).toThrow(RangeError)
  })

  it.each([
    // n, d, pageTokens, page
    [1, 4, 16, 16], [100, 64, 64, 16], [33, 5, 8, 16], [1000, 7, 32, 32], [70, 3, 70, 32],
  ])('pageMinMax and chunkMeans match the reference for n=%i d=%i pageTokens=%i page=%i', async (n, d, pageTokens, page) => {
    const keys = pagedStream(heap, normals(rng(n * d + page), n * d), n, d, pageTokens)
    const view = pagedView(keys, keys, n, d, pageTokens)
    const count = Math.ceil(n / page) * d
    const [lo, hi, m] = [heap.allocF32(count), heap.allocF32(count), heap.allocF32(count)]
    const [glo, ghi, gm] = await onGpu(K, heap, [[lo.ptr, count * 4], [hi.ptr, count * 4], [m.ptr, count * 4]], () => {
      K.pageMinMax(keys.table.ptr, pageTokens, n, d, page, lo.ptr, hi.ptr)
      K.chunkMeans(keys.table.ptr, pageTokens, n, d, page, m.ptr)
    })
    R.pageMinMax(view, page, lo, hi)
    R.chunkMeans(view, page, m)
    expect(Array.from(f32(glo))).toEqual(Array.from(lo.view))
    expect(Array.from(f32(ghi))).toEqual(Array.from(hi.view))
    expectClose(f32(gm), m.view, 1e-5, 1e-6, 'means')
    for (const t of [lo, hi, m]) t.free()
    keys.free()
  })

  it.each([
    // T, inDim, outDim, bias
    [1, 64, 10, 0], [1, 300, 33, 1], [5, 17, 9, 1], [40, 64, 48, 0], [33, 100, 70, 1],
  ])('matmul matches the reference for T=%i inDim=%i outDim=%i bias=%i', async (T, inDim, outDim, bias) => {
    const rand = rng(T * inDim + outDim)
    const x = heap.f32From(normals(rand, T * inDim))
    const w = heap.f32From(normals(rand, outDim * inDim))
    const b = heap.f32From(normals(rand, outDim))
    const y = heap.allocF32(T * outDim)
    const bp = bias ? b.ptr : 0
    const [gy] = await onGpu(K, heap, [[y.ptr, T * outDim * 4]], () => K.matmul(x.ptr, w.ptr, bp, y.ptr, T, inDim, outDim))
    ref.matmul(x.ptr, w.ptr, bp, y.ptr, T, inDim, outDim)
    expectClose(f32(gy), y.view, 1e-4, 1e-5 * Math.sqrt(inDim), 'matmul')
    for (const t of [x, w, b, y]) t.free()
  })

  // The tiled (64 x 64, register-blocked) and the simple (16 x 16) kernels on rows across the tile
  // edges; shapes with odd K and O (4-byte loads and stores), K a multiple of 4 but not of the 16 of a
  // stage, and x off 16-byte alignment (so the 16-byte loads must give way).
  it.each([1, 3, 17, 64, 65, 130])('matmul (tiled and simple) matches the reference for T=%i over ragged shapes', async (T) => {
    const rand = rng(7 * T)
    const shapes = [[17, 9, 1, 0], [64, 130, 0, 0], [100, 67, 1, 0], [64, 12, 1, 1]] // inDim, outDim, bias, x offset (floats)
    const bufs = shapes.map(([inDim, outDim, , off]) => ({
      x: heap.f32From(normals(rand, off + T * inDim)),
      w: heap.f32From(normals(rand, outDim * inDim)),
      b: heap.f32From(normals(rand, outDim)),
      y: [heap.allocF32(T * outDim), heap.allocF32(T * outDim)],
    }))
    const outs = bufs.flatMap(({ y }, i) => y.map((yb) => [yb.ptr, T * shapes[i][1] * 4] as [number, number]))
    const got = await onGpu(K, heap, outs, () => {
      for (const [v, kernels] of (['tiled', 'simple'] as const).entries()) {
        K.chunkKernels = kernels
        shapes.forEach(([inDim, outDim, bias, off], i) => K.matmul(bufs[i].x.ptr + off * 4, bufs[i].w.ptr, bias ? bufs[i].b.ptr : 0, bufs[i].y[v].ptr, T, inDim, outDim))
      }
      K.chunkKernels = 'tiled'
    })
    shapes.forEach(([inDim, outDim, bias, off], i) => {
      const want = bufs[i].y[0]
      ref.matmul(bufs[i].x.ptr + off * 4, bufs[i].w.ptr, bias ? bufs[i].b.ptr : 0, want.ptr, T, inDim, outDim)
      expectClose(f32(got[2 * i]), want.view, 1e-4, 1e-5 * Math.sqrt(inDim), `tiled matmul ${inDim}x${outDim}`)
      expectClose(f32(got[2 * i + 1]), want.view, 1e-4, 1e-5 * Math.sqrt(inDim), `simple matmul ${inDim}x${outDim}`)
    })
    for (const { x, w, b, y } of bufs) for (const t of [x, w, b, ...y]) t.free()
  })

  // One token's matmul both ways: a workgroup a row (a GPU's) and a thread a row (a CPU rasteriser's,
  // matvec_rows): odd inDim (the 16-byte loads give way to 4-byte ones), x off 16-byte alignment, outDim
  // across the 64-row workgroups, and more rows than one grid row of 65535 workgroups (matvec's 2-D grid).
  it('matmul of one token (matvec a workgroup a row, matvec_rows a thread a row) matches the reference', async () => {
    // a new instance picks by the adapter (this block's K is set to the GPU's kernels)
    const fresh = await WebGpuKernels.create(gpu!)
    expect(fresh.decodeKernels).toBe(gpu!.software ? 'thread' : 'workgroup')
    fresh.destroy()
    const rand = rng(91)
    const shapes = [[17, 9, 1, 0], [64, 130, 0, 0], [100, 67, 1, 1], [384, 64, 0, 3], [8, 65537, 1, 0]] // inDim, outDim, bias, x offset (floats)
    const bufs = shapes.map(([inDim, outDim, , off]) => ({
      x: heap.f32From(normals(rand, off + inDim)),
      w: heap.f32From(normals(rand, outDim * inDim)),
      b: heap.f32From(normals(rand, outDim)),
      y: [heap.allocF32(outDim), heap.allocF32(outDim)],
    }))
    const outs = bufs.flatMap(({ y }, i) => y.map((yb) => [yb.ptr, shapes[i][1] * 4] as [number, number]))
    const before = K.decodeKernels
    const got = await onGpu(K, heap, outs, () => {
      for (const [v, kernel] of (['workgroup', 'thread'] as const).entries()) {
        K.decodeKernels = kernel
        shapes.forEach(([inDim, outDim, bias, off], i) => K.matmul(bufs[i].x.ptr + off * 4, bufs[i].w.ptr, bias ? bufs[i].b.ptr : 0, bufs[i].y[v].ptr, 1, inDim, outDim))
      }
    })
    K.decodeKernels = before
    shapes.forEach(([inDim, outDim, bias, off], i) => {
      const want = bufs[i].y[0]
      ref.matmul(bufs[i].x.ptr + off * 4, bufs[i].w.ptr, bias ? bufs[i].b.ptr : 0, want.ptr, 1, inDim, outDim)
      expectClose(f32(got[2 * i]), want.view, 1e-4, 1e-5 * Math.sqrt(inDim), `matvec ${inDim}x${outDim}`)
      expectClose(f32(got[2 * i + 1]), want.view, 1e-4, 1e-5 * Math.sqrt(inDim), `matvec_rows ${inDim}x${outDim}`)
    })
    for (const { x, w, b, y } of bufs) for (const t of [x, w, b, ...y]) t.free()
  })

  it('flashSplit splits the keys only for chunks of few query tiles, 512 keys or more a split', () => {
    expect(flashSplit(4096, 6, 4096)).toEqual({ splits: 1, splitKeys: 4096 }) // 768 tiles
    expect(flashSplit(128, 6, 4096)).toEqual({ splits: 8, splitKeys: 512 }) // 24 tiles
    expect(flashSplit(128, 6, 300)).toEqual({ splits: 1, splitKeys: 320 })
    expect(flashSplit(512, 32, 8192)).toEqual({ splits: 1, splitKeys: 8192 }) // 512 tiles
    expect(flashSplit(128, 32, 8192)).toEqual({ splits: 4, splitKeys: 2048 })
    for (const [T, hq, keys] of [[2, 1, 100000], [33, 3, 5000], [128, 6, 8320]]) {
      const { splits, splitKeys } = flashSplit(T, hq, keys)
      expect(splitKeys % 64).toBe(0)
      expect(splitKeys >= 512 || splits === 1).toBe(true)
      expect((splits - 1) * splitKeys < keys && splits * splitKeys >= keys).toBe(true)
    }
    expect(flashScratchWords(128, 6, 64, 4096)).toBe(8 * 128 * 6 * 68)
    expect(flashScratchWords(4096, 6, 64, 300)).toBe(0)
  })

  it.each([0, 32, 100])('attendCausal refuses splitKeys=%i before encoding anything', (splitKeys) => {
    expect(() => K.attendCausal(0, 64, 1, 1, 2, 64, 0, 16, 1, 0, 64, 100, 64, splitKeys)).toThrow(RangeError)
  })

  // The chunk's causal attention over per-KV-head paged caches of ragged lengths (first_g keys already
  // cached, then the chunk's T): the FlashAttention-2 kernel and the one-row-a-workgroup kernel against
  // the reference ModelKernels.attendCausal per KV head (visible0 = first_g + 1). Chunks and caches
  // cross the 32-row query tiles, the 64-key tiles and page boundaries; several query heads per KV head.
  it.each([
    // T, qHeads, group, d, pageTokens, first per KV head
    [5, 4, 2, 64, 16, [0, 3]],
    [33, 6, 3, 64, 16, [40, 17]],
    [70, 2, 2, 128, 32, [100]],
    [17, 3, 3, 13, 5, [9]],
    [9, 8, 4, 100, 8, [0, 130]],
  ] as [number, number, number, number, number, number[]][])('attendCausal (flash, flash with split keys, simple) matches the reference for T=%i qHeads=%i group=%i d=%i pageTokens=%i first=%j', async (T, hq, group, d, pt, firsts) => {
    const rand = rng(T * 31 + hq * 7 + d)
    const kvHeads = hq / group
    const heads = firsts.map((first) => {
      const n = first + T
      return { first, n, k: pagedStream(heap, normals(rand, n * d), n, d, pt), v: pagedStream(heap, normals(rand, n * d), n, d, pt) }
    })
    expect(heads.length).toBe(kvHeads)
    const q = heap.f32From(normals(rand, T * hq * d))
    const tables = heads.map((h) => ({ ...h, kTable: h.k.table.ptr, vTable: h.v.table.ptr, refK: h.k.table.ptr, refV: h.v.table.ptr }))
    await expectCausalThreeWays(K, heap, ref, false, T, hq, group, d, pt, tables, q.ptr)
    q.free()
    for (const h of heads) { h.k.free(); h.v.free() }
  })

  it.each([[1, 64, 2, 16], [3, 300, 4, 8], [7, 2048, 3, 64]])('rmsnorm, rope, swiglu and addInPlace match the reference for T=%i dim=%i heads=%i d=%i', async (T, dim, heads, d) => {
    const rand = rng(T + dim + heads + d)
    const x = heap.f32From(normals(rand, T * dim))
    const g = heap.f32From(normals(rand, dim))
    const normed = heap.allocF32(T * dim)
    const r = heap.f32From(normals(rand, T * heads * d))
    const cos = heap.f32From(normals(rand, T * (d >> 1)))
    const sin = heap.f32From(normals(rand, T * (d >> 1)))
    const gate = heap.f32From(normals(rand, T * dim).map((v) => v * 6))
    const up = heap.f32From(normals(rand, T * dim))
    const act = heap.allocF32(T * dim)
    const sum = heap.f32From(x.view)
    const [gn, gr, ga, gs] = await onGpu(K, heap, [[normed.ptr, T * dim * 4], [r.ptr, T * heads * d * 4], [act.ptr, T * dim * 4], [sum.ptr, T * dim * 4]], () => {
      K.rmsnorm(x.ptr, g.ptr, normed.ptr, T, dim, 1e-5)
      K.rope(r.ptr, T, heads, d, cos.ptr, sin.ptr)
      K.swiglu(gate.ptr, up.ptr, act.ptr, T * dim)
      K.addInPlace(sum.ptr, up.ptr, T * dim)
    })
    ref.rmsnorm(x.ptr, g.ptr, normed.ptr, T, dim, 1e-5)
    ref.rope(r.ptr, T, heads, d, cos.ptr, sin.ptr)
    ref.swiglu(gate.ptr, up.ptr, act.ptr, T * dim)
    ref.addInPlace(sum.ptr, up.ptr, T * dim)
    expectClose(f32(gn), normed.view, 1e-5, 1e-6, 'rmsnorm')
    expectClose(f32(gr), r.view, 1e-5, 1e-6, 'rope')
    expectClose(f32(ga), act.view, 1e-5, 1e-6, 'swiglu')
    expectClose(f32(gs), sum.view, 1e-6, 1e-7, 'add')
    for (const t of [x, g, normed, r, cos, sin, gate, up, act, sum]) t.free()
  })
})
