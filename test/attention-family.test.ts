import { beforeAll, describe, expect, it } from 'vitest'
import type { CreatedBackend } from '../src/backend/index.js'
import { Ops } from '../src/backend/ops.js'
import type { Heap } from '../src/backend/heap.js'
import { attendScratchFloats } from '../src/backend/model-kernels.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { attendCache } from '../src/cache/attention.js'
import { expectClose, normals, pagedStream, pagedView, rng, wasmAndReference } from './kernels-helpers.js'

// The one attention kernel family: dense, token-gathered and page-gathered decode attention are one
// kernel, so selecting every token is dense attention bit for bit; decode and causal prefill fold their
// scores through one online-softmax step and one exp, so a token far below the max weighs exactly 0 in both.
let wasm: CreatedBackend
let ref: CreatedBackend
let W: Ops
let R: Ops
let heap: Heap

beforeAll(async () => {
  ;({ wasm, ref, W, R, heap } = await wasmAndReference())
})

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength)))

describe('decode attention: dense, token-gathered and page-gathered', () => {
  const shapes = [
    // qHeads, d, n, pageTokens
    [1, 64, 1, 16], [3, 64, 200, 16], [4, 128, 1000, 64], [8, 128, 300, 32], [2, 13, 77, 8], [6, 5, 33, 1], [4, 128, 64, 64],
  ]
  it.each(shapes)('selecting every token or every page is dense attention bit for bit, and pages equal their tokens (qHeads=%i d=%i n=%i pageTokens=%i)', (qHeads, d, n, pageTokens) => {
    const rand = rng(qHeads * 7 + d + n)
    const keys = pagedStream(heap, normals(rand, n * d), n, d, pageTokens)
    const vals = pagedStream(heap, normals(rand, n * d), n, d, pageTokens)
    const view = pagedView(keys, vals, n, d, pageTokens)
    const q = heap.f32From(normals(rand, qHeads * d).map((v) => v * 2))
    const scale = 1 / Math.sqrt(d)
    const run = (f: (out: ReturnType<Heap['allocF32']>, lse: ReturnType<Heap['allocF32']>) => void) => {
      const out = heap.allocF32(qHeads * d)
      const lse = heap.allocF32(qHeads)
      f(out, lse)
      const r = { out: out.view.slice(), lse: lse.view.slice() }
      out.free()
      lse.free()
      return r
    }
    const dense = run((o, l) => W.attend(q, qHeads, view, null, 0, scale, o, l))
    const every = heap.i32From(Array.from({ length: n }, (_, i) => i))
    const gathered = run((o, l) => W.attend(q, qHeads, view, every, n, scale, o, l))
    const pageCount = Math.ceil(n / pageTokens)
    const tables = heap.allocI32(2 * pageCount)
    const allPages = run((o, l) => W.attendPages(q, qHeads, view, Int32Array.from({ length: pageCount }, (_, i) => i), scale, o, l, tables))
    expect(bits(gathered.out)).toEqual(bits(dense.out))
    expect(bits(gathered.lse)).toEqual(bits(dense.lse))
    expect(bits(allPages.out)).toEqual(bits(dense.out))
    expect(bits(allPages.lse)).toEqual(bits(dense.lse))
    // some pages, out of order, the partly filled last page last: the same as gathering their tokens
    const chosen = Array.from({ length: pageCount }, (_, i) => i).filter((p) => p % 3 !== 1).reverse()
    if (chosen.length > 1) [chosen[0], chosen[chosen.length - 1]] = [chosen[chosen.length - 1], chosen[0]]
    const tokens = chosen.flatMap((p) => Array.from({ length: Math.min(pageTokens, n - p * pageTokens) }, (_, i) => p * pageTokens + i))
    const idx = heap.i32From(tokens)
    const byTokens = run((o, l) => W.attend(q, qHeads, view, idx, tokens.length, scale, o, l))
    const byPages = run((o, l) => W.attendPages(q, qHeads, view, Int32Array.from(chosen), scale, o, l, tables))
    expect(bits(byPages.out)).toEqual(bits(byTokens.out))
    expect(bits(byPages.lse)).toEqual(bits(byTokens.lse))
    const twin = run((o, l) => R.attend(q, qHeads, view, idx, tokens.length, scale, o, l))
    expectClose(byPages.out, twin.out, 1e-4, 1e-5, 'page-gathered out')
    for (const t of [q, every, tables, idx]) t.free()
    keys.free()
    vals.free()
  })

  it('refuses a page outside the view and the partly filled last page anywhere but last', () => {
    const n = 10, d = 4, pt = 4
    const rand = rng(1)
    const keys = pagedStream(heap, normals(rand, n * d), n, d, pt)
    const view = pagedView(keys, keys, n, d, pt)
    const q = heap.f32From(normals(rand, d))
    const out = heap.allocF32(d), lse = heap.allocF32(1), tables = heap.allocI32(6)
    expect(() => W.attendPages(q, 1, view, Int32Array.of(0, 3), 1, out, lse, tables)).toThrow(/pages\[1\] = 3 is outside \[0, 3\)/)
    expect(() => W.attendPages(q, 1, view, Int32Array.of(2, 0), 1, out, lse, tables)).toThrow(/pages\[0\] = 2 is the partly filled last page and must be listed last/)
    expect(() => W.attendPages(q, 1, view, Int32Array.of(0, 1), 1, out, lse, heap.allocI32(3))).toThrow(/tables holds 3 elements, needs 4/)
    for (const t of [q, out, lse, tables]) t.free()
    keys.free()
  })
})

describe('gathered causal attention (the cache\'s selected decode)', () => {
  it.each([
    // hq, kd, n, pageTokens
    [3, 64, 300, 64], [4, 128, 1000, 64], [1, 5, 77, 8], [6, 13, 130, 100], [2, 64, 64, 1],
  ])('listing every token equals attendCausal with T = 1 bit for bit, and a subset matches the twin (hq=%i kd=%i n=%i pageTokens=%i)', (hq, kd, n, pageTokens) => {
    const rand = rng(hq * 31 + kd + n)
    const keys = pagedStream(heap, normals(rand, n * kd), n, kd, pageTokens)
    const vals = pagedStream(heap, normals(rand, n * kd), n, kd, pageTokens)
    const q = heap.f32From(normals(rand, hq * kd))
    const scratch = heap.allocF32(attendScratchFloats(kd, hq))
    const run = (f: (out: number, lse: number) => void) => {
      const out = heap.allocF32(hq * kd)
      const lse = heap.allocF32(hq)
      f(out.ptr, lse.ptr)
      const r = { out: out.view.slice(), lse: lse.view.slice() }
      out.free()
      lse.free()
      return r
    }
    const kt = keys.table.ptr, vt = vals.table.ptr
    const dense = run((o, l) => wasm.attendCausal(q.ptr, hq * kd, hq, 1, kd, kd, kt, vt, pageTokens, n, n, 0.2, o, hq * kd, l, scratch.ptr))
    const every = heap.i32From(Array.from({ length: n }, (_, i) => i))
    const gathered = run((o, l) => wasm.attendGathered(q.ptr, hq, kd, kd, kt, vt, pageTokens, every.ptr, n, 0.2, o, l, scratch.ptr))
    expect(bits(gathered.out)).toEqual(bits(dense.out))
    expect(bits(gathered.lse)).toEqual(bits(dense.lse))
    const some = heap.i32From(Array.from({ length: n }, (_, i) => i).filter((i) => i % 3 !== 1))
    const got = run((o, l) => wasm.attendGathered(q.ptr, hq, kd, kd, kt, vt, pageTokens, some.ptr, some.length, 0.2, o, l, scratch.ptr))
    const want = run((o, l) => ref.attendGathered(q.ptr, hq, kd, kd, kt, vt, pageTokens, some.ptr, some.length, 0.2, o, l, scratch.ptr))
    expectClose(got.out, want.out, 1e-4, 1e-5, 'gathered out')
    expectClose(got.lse, want.lse, 1e-5, 1e-5, 'gathered lse')
    for (const t of [q, scratch, every, some]) t.free()
    keys.free()
    vals.free()
  })
})

describe('decode attention over the cache', () => {
  it.each([[1, 64], [3, 64], [4, 128]])('selecting every slot equals no selection bit for bit (group %i, d=%i)', (group, d) => {
    const kvHeads = 2, n = 300
    const cache = new PagedKVCache(heap, { layers: 1, kvHeads, headDim: d, pageTokens: 64 })
    const rand = rng(group + d)
    cache.append(0, normals(rand, n * kvHeads * d), normals(rand, n * kvHeads * d), Int32Array.from({ length: n }, (_, i) => i))
    const qHeads = group * kvHeads
    const q = heap.f32From(normals(rand, qHeads * d))
    const decode = (select?: (Int32Array | null)[]) => {
      const out = heap.allocF32(qHeads * d)
      const lse = heap.allocF32(qHeads)
      attendCache(wasm, cache, { layer: 0, q: q.ptr, T: 1, qHeads, out: out.ptr, scale: 0.125, select, lse: lse.ptr })
      const r = [out.view.slice(), lse.view.slice()]
      out.free()
      lse.free()
      return r
    }
    const all = Int32Array.from({ length: n }, (_, i) => i)
    const [dOut, dLse] = decode()
    const [sOut, sLse] = decode([all, all])
    expect(bits(sOut)).toEqual(bits(dOut))
    expect(bits(sLse)).toEqual(bits(dLse))
    q.free()
    cache.dispose()
  })
})

describe('one exp', () => {
  // a token whose score is more than 87.34 below the row's max weighs exactly 0 (exp underflows to 0,
  // not to the 1e-38 a clamped exp gives): the far token's value row is all ones, the near one zeros
  const d = 8
  function farApart(): { q: Float32Array; k: Float32Array; v: Float32Array } {
    const q = new Float32Array(d).fill(1)
    const k = new Float32Array(2 * d)
    k.fill(-12, d, 2 * d) // score 8 * -12 = -96 below the first token's 0
    const v = new Float32Array(2 * d)
    v.fill(1, d, 2 * d)
    return { q, k, v }
  }

  /** runs one kernel on the far-apart pair, returns its output */
  function onFarApart(kernel: (q: number, kTable: number, vTable: number, out: number, lse: number) => void): number[] {
    const { q, k, v } = farApart()
    const keys = pagedStream(heap, k, 2, d, 16)
    const vals = pagedStream(heap, v, 2, d, 16)
    const qb = heap.f32From(q)
    const out = heap.allocF32(d), lse = heap.allocF32(1)
    kernel(qb.ptr, keys.table.ptr, vals.table.ptr, out.ptr, lse.ptr)
    const got = Array.from(out.view)
    for (const t of [qb, out, lse]) t.free()
    keys.free()
    vals.free()
    return got
  }

  it('decode attention gives the far token exactly zero weight', () => {
    expect(onFarApart((q, kt, vt, out, lse) => wasm.attend(q, 1, d, kt, vt, 16, 2, 0, 0, 1, out, lse))).toEqual(new Array(d).fill(0))
  })

  it('causal prefill attention gives the far token exactly zero weight', () => {
    const scratch = heap.allocF32(attendScratchFloats(d, 1))
    expect(onFarApart((q, kt, vt, out, lse) => wasm.attendCausal(q, d, 1, 1, d, d, kt, vt, 16, 2, 2, 1, out, d, lse, scratch.ptr))).toEqual(new Array(d).fill(0))
    scratch.free()
  })

  it('softmax gives exactly zero below exp(-87.34), in SIMD lanes and scalar tails alike', () => {
    const x = heap.f32From([0, -88, -200, -Infinity, 0, -87.5])
    W.softmaxRows(x, 1, 6)
    expect(Array.from(x.view)).toEqual([0.5, 0, 0, 0, 0.5, 0])
    x.free()
  })
})
