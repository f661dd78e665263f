import { beforeAll, describe, expect, it } from 'vitest'
import type { CreatedBackend } from '../src/backend/index.js'
import type { Ops } from '../src/backend/ops.js'
import type { Heap } from '../src/backend/heap.js'
import { expectClose, normals, pagedStream, pagedView, rng, wasmAndReference } from './kernels-helpers.js'

// Every wasm kernel against its TypeScript twin, on the same arena (both backends share one heap).
let wasm: CreatedBackend
let ref: CreatedBackend
let W: Ops
let R: Ops
let heap: Heap

beforeAll(async () => {
  ;({ wasm, ref, W, R, heap } = await wasmAndReference())
})

describe('scoreKeys', () => {
  const shapes = [
    // qHeads, d, n, pageTokens
    [1, 64, 1, 16], [3, 64, 100, 16], [1, 5, 7, 3], [4, 13, 33, 32], [2, 1, 9, 4],
    [6, 128, 1000, 64], [3, 64, 4097, 4097], [1, 3, 2, 1], [8, 7, 61, 5], [2, 64, 20000, 32],
    [3, 13, 37, 5], [3, 6, 9, 1], [4, 130, 65, 64], [3, 128, 67, 16], [4, 128, 131, 64], [4, 128, 9, 3], [3, 128, 11, 1],
  ]
  it.each(shapes)('matches the reference for qHeads=%i d=%i n=%i pageTokens=%i', (qHeads, d, n, pageTokens) => {
    const rand = rng(qHeads * 1000 + d * 10 + n)
    const keys = pagedStream(heap, normals(rand, n * d), n, d, pageTokens)
    const view = pagedView(keys, keys, n, d, pageTokens)
    const q = heap.f32From(normals(rand, qHeads * d))
    const a = heap.allocF32(qHeads * n)
    const b = heap.allocF32(qHeads * n)
    W.scoreKeys(q, qHeads, view, 0.125, a)
    R.scoreKeys(q, qHeads, view, 0.125, b)
    expectClose(a.view, b.view, 1e-4, 1e-5 * Math.sqrt(d), 'scores')
    for (const x of [q, a, b]) x.free()
    keys.free()
  })
})

describe('softmax family', () => {
  it.each([[1, 1], [3, 5], [2, 1000], [4, 4099], [1, 3]])('softmaxRows matches the reference for rows=%i n=%i', (rows, n) => {
    const x = normals(rng(rows * n), rows * n).map((v) => v * 8 + 300)
    const a = heap.f32From(x)
    const b = heap.f32From(x)
    W.softmaxRows(a, rows, n)
    R.softmaxRows(b, rows, n)
    expectClose(a.view, b.view, 1e-4, 1e-7, 'softmax')
    a.free()
    b.free()
  })

  it('softmaxRows turns an all -inf row into zeros and leaves other rows normalised', () => {
    const a = heap.f32From([-Infinity, -Infinity, -Infinity, 1, 2, 3])
    W.softmaxRows(a, 2, 3)
    expect(Array.from(a.view.subarray(0, 3))).toEqual([0, 0, 0])
    expect(a.view[3] + a.view[4] + a.view[5]).toBeCloseTo(1, 6)
    a.free()
  })

  it.each([1, 7, 10001])('logSumExp matches the reference for n=%i, even with large offsets', (n) => {
    const a = heap.f32From(normals(rng(n), n).map((v) => v * 3 + 1000))
    expectClose([W.logSumExp(a, n)], [R.logSumExp(a, n)], 1e-6, 1e-4, 'lse')
    a.free()
  })

  it('logSumExp of [0, 0] is log 2 and of all -inf is -inf', () => {
    const a = heap.f32From([0, 0])
    const b = heap.f32From([-Infinity, -Infinity, -Infinity])
    expect(W.logSumExp(a)).toBeCloseTo(Math.LN2, 6)
    expect(W.logSumExp(b)).toBe(-Infinity)
    a.free()
    b.free()
  })

  it.each([[1, 1], [6, 37], [3, 4096], [2, 5]])('softVote matches the reference for rows=%i n=%i and leaves x unchanged', (rows, n) => {
    const x = normals(rng(rows + n), rows * n).map((v) => v * 4)
    const a = heap.f32From(x)
    const outW = heap.allocF32(n)
    const outR = heap.allocF32(n)
    W.softVote(a, rows, n, outW)
    R.softVote(a, rows, n, outR)
    expectClose(outW.view, outR.view, 1e-4, 1e-7, 'vote')
    expect(Array.from(a.view)).toEqual(Array.from(x))
    for (const t of [a, outW, outR]) t.free()
  })
})

describe('topK', () => {
  function check(x: Float32Array, k: number): Int32Array {
    const n = x.length
    const buf = heap.f32From(x)
    const a = heap.allocI32(Math.max(k, 1))
    const b = heap.allocI32(Math.max(k, 1))
    const scratch = heap.allocI32(n)
    W.topK(buf, n, k, a, scratch)
    R.topK(buf, n, k, b, scratch)
    const got = Int32Array.from(a.view.subarray(0, k))
    expect(Array.from(got)).toEqual(Array.from(b.view.subarray(0, k)))
    for (const t of [buf, a, b, scratch]) t.free()
    return got
  }

  it.each([[1, 1], [5, 2], [100, 1], [100, 100], [1001, 500], [4099, 17], [200000, 2048]])(
    'picks exactly the reference indices for n=%i k=%i', (n, k) => {
      check(normals(rng(n + k), n), k)
    })

  it('breaks ties toward the lower index when many values are equal', () => {
    const rand = rng(7)
    const x = Float32Array.from({ length: 5000 }, () => Math.floor(rand() * 5))
    for (const k of [1, 999, 1000, 1001, 2500, 4999]) check(x, k)
    expect(Array.from(check(new Float32Array(10).fill(3), 4))).toEqual([0, 1, 2, 3])
  })

  it('treats -0 as equal to +0 and ranks NaN below -Infinity', () => {
    const x = Float32Array.from([-0, 0, Number.NaN, -Infinity, -0, 1, Number.NaN, -1])
    expect(Array.from(check(x, 3))).toEqual([0, 1, 5])
    expect(Array.from(check(x, 6))).toEqual([0, 1, 3, 4, 5, 7])
    expect(Array.from(check(x, 7))).toEqual([0, 1, 2, 3, 4, 5, 7])
    const y = Float32Array.from([-0, 0, -0, 0])
    expect(Array.from(check(y, 2))).toEqual([0, 1])
  })

  it('selects exactly on n = 3 million (checked by the selection properties, in O(n))', () => {
    const n = 3_000_000
    const k = 40_000
    const rand = rng(99)
    // quantised values: many ties at the threshold, so the lower-index rule is exercised at scale
    const x = heap.f32From(normals(rand, n).map((g) => Math.round(g * 200) / 50))
    const out = heap.allocI32(k)
    const scratch = heap.allocI32(n)
    W.topK(x, n, k, out, scratch)
    const v = x.view
    const idx = out.view
    const chosen = new Uint8Array(n)
    let threshold = Infinity
    let unordered = 0
    for (let j = 0; j < k; j++) {
      if (j > 0 && idx[j] <= idx[j - 1]) unordered++
      chosen[idx[j]] = 1
      threshold = Math.min(threshold, v[idx[j]])
    }
    // every value above the threshold is chosen, none below; at the threshold, exactly the lowest indices
    let wrong = 0
    let lastChosenTie = -1
    let firstSkippedTie = n
    for (let i = 0; i < n; i++) {
      if (v[i] > threshold) wrong += 1 - chosen[i]
      else if (v[i] < threshold) wrong += chosen[i]
      else if (chosen[i]) lastChosenTie = i
      else if (firstSkippedTie === n) firstSkippedTie = i
    }
    expect(unordered).toBe(0)
    expect(wrong).toBe(0)
    expect(firstSkippedTie).toBeLessThan(n) // the threshold really is tied
    expect(lastChosenTie).toBeLessThan(firstSkippedTie)
    for (const t of [x, out, scratch]) t.free()
  })

  it('handles values that share all but their lowest bits', () => {
    const base = new Float32Array(1)
    const bits = new Uint32Array(base.buffer)
    const x = new Float32Array(3000)
    const rand = rng(3)
    for (let i = 0; i < x.length; i++) {
      bits[0] = 0x3f800000 + Math.floor(rand() * 40)
      x[i] = base[0] * (rand() < 0.5 ? -1 : 1)
    }
    for (const k of [1, 10, 1499, 1500, 2999]) check(x, k)
  })
})

describe('pooling', () => {
  const cases: [number, number][] = []
  for (const n of [1, 2, 5, 17, 1000]) for (const kernel of [1, 3, 5, 7, 31]) cases.push([n, kernel])
  it.each(cases)('max and avg pooling match the reference for n=%i kernel=%i', (n, kernel) => {
    const x = heap.f32From(normals(rng(n * kernel), n))
    const a = heap.allocF32(n)
    const b = heap.allocF32(n)
    for (const kind of ['max', 'avg'] as const) {
      W.pool1d(kind, x, n, kernel, a)
      R.pool1d(kind, x, n, kernel, b)
      expectClose(a.view, b.view, 1e-5, 1e-6, kind)
    }
    for (const t of [x, a, b]) t.free()
  })

  it('avg pooling counts the padding as zeros, as torch count_include_pad=True', () => {
    const x = heap.f32From([3, 3, 3, 3])
    const out = heap.allocF32(4)
    W.pool1d('avg', x, 4, 3, out)
    expectClose(out.view, [2, 3, 3, 2], 0, 1e-6, 'avg')
    x.free()
    out.free()
  })
})

describe('attend', () => {
  const shapes = [
    // qHeads, d, n, pageTokens
    [1, 64, 1, 16], [3, 64, 200, 16], [1, 5, 7, 3], [4, 13, 33, 32], [12, 8, 50, 8], [2, 1, 9, 4], [6, 128, 2000, 64],
  ]
  it.each(shapes)('dense and gathered match the reference for qHeads=%i d=%i n=%i pageTokens=%i', (qHeads, d, n, pageTokens) => {
    const rand = rng(qHeads + d + n)
    const keys = pagedStream(heap, normals(rand, n * d), n, d, pageTokens)
    const vals = pagedStream(heap, normals(rand, n * d), n, d, pageTokens)
    const view = pagedView(keys, vals, n, d, pageTokens)
    const q = heap.f32From(normals(rand, qHeads * d).map((v) => v * 2))
    const outs = [heap.allocF32(qHeads * d), heap.allocF32(qHeads * d)]
    const lses = [heap.allocF32(qHeads), heap.allocF32(qHeads)]
    const scale = 1 / Math.sqrt(d)
    W.attend(q, qHeads, view, null, 0, scale, outs[0], lses[0])
    R.attend(q, qHeads, view, null, 0, scale, outs[1], lses[1])
    expectClose(outs[0].view, outs[1].view, 1e-4, 1e-5, 'dense out')
    expectClose(lses[0].view, lses[1].view, 1e-5, 1e-5, 'dense lse')
    // gathered: unsorted, with repeats
    const nIdx = Math.max(1, Math.floor(n / 3))
    const idx = heap.i32From(Array.from({ length: nIdx }, () => Math.floor(rand() * n)))
    W.attend(q, qHeads, view, idx, nIdx, scale, outs[0], lses[0])
    R.attend(q, qHeads, view, idx, nIdx, scale, outs[1], lses[1])
    expectClose(outs[0].view, outs[1].view, 1e-4, 1e-5, 'gathered out')
    expectClose(lses[0].view, lses[1].view, 1e-5, 1e-5, 'gathered lse')
    for (const t of [q, idx, ...outs, ...lses]) t.free()
    keys.free()
    vals.free()
  })

  it('attending to every index in order equals dense attention', () => {
    const n = 300
    const d = 16
    const rand = rng(11)
    const keys = pagedStream(heap, normals(rand, n * d), n, d, 32)
    const vals = pagedStream(heap, normals(rand, n * d), n, d, 32)
    const view = pagedView(keys, vals, n, d, 32)
    const q = heap.f32From(normals(rand, 2 * d))
    const idx = heap.i32From(Array.from({ length: n }, (_, i) => i))
    const a = heap.allocF32(2 * d)
    const b = heap.allocF32(2 * d)
    const la = heap.allocF32(2)
    const lb = heap.allocF32(2)
    W.attend(q, 2, view, null, 0, 0.25, a, la)
    W.attend(q, 2, view, idx, n, 0.25, b, lb)
    expect(Array.from(a.view)).toEqual(Array.from(b.view))
    expect(Array.from(la.view)).toEqual(Array.from(lb.view))
    for (const t of [q, idx, a, b, la, lb]) t.free()
    keys.free()
    vals.free()
  })
})

describe('page summaries', () => {
  const shapes = [
    // n, d, pageTokens, page
    [1, 4, 16, 16], [100, 64, 64, 16], [100, 64, 64, 32], [33, 5, 8, 16], [1000, 7, 32, 32], [31, 128, 16, 16], [70, 3, 70, 32],
  ]
  it.each(shapes)('pageMinMax and chunkMeans match the reference for n=%i d=%i pageTokens=%i page=%i', (n, d, pageTokens, page) => {
    const keys = pagedStream(heap, normals(rng(n * d + page), n * d), n, d, pageTokens)
    const view = pagedView(keys, keys, n, d, pageTokens)
    const count = Math.ceil(n / page) * d
    const [lo0, hi0, lo1, hi1, m0, m1] = Array.from({ length: 6 }, () => heap.allocF32(count))
    W.pageMinMax(view, page, lo0, hi0)
    R.pageMinMax(view, page, lo1, hi1)
    expect(Array.from(lo0.view)).toEqual(Array.from(lo1.view))
    expect(Array.from(hi0.view)).toEqual(Array.from(hi1.view))
    W.chunkMeans(view, page, m0)
    R.chunkMeans(view, page, m1)
    expectClose(m0.view, m1.view, 1e-5, 1e-6, 'means')
    for (const t of [lo0, hi0, lo1, hi1, m0, m1]) t.free()
    keys.free()
  })
})
