import { beforeAll, describe, expect, it } from 'vitest'
import type { Ops } from '../src/backend/ops.js'
import type { Heap } from '../src/backend/heap.js'
import { rng, wasmAndReference } from './kernels-helpers.js'

// columnMax (ABI 1.9, KVzip's score update) against its TypeScript twin, bit for bit: the wasm kernel
// takes its maxima in float32 (plain) or float64 (KVzip+) exactly as the twin does in JavaScript.
let W: Ops
let R: Ops
let heap: Heap

beforeAll(async () => {
  ;({ W, R, heap } = await wasmAndReference())
})

describe('columnMax', () => {
  // rows, n, from, count
  const shapes = [[1, 1, 0, 1], [3, 10, 2, 7], [128, 300, 4, 250], [5, 9, 0, 9], [2, 64, 13, 33], [17, 2051, 0, 2048]]
  it.each(shapes)('matches the twin exactly for rows=%i n=%i from=%i count=%i, plain and weighted', (rows, n, from, count) => {
    const rand = rng(rows * 7919 + n * 31 + from)
    // softmax-like rows: small non-negative values, some exact zeros (masked keys), some repeated
    const x = heap.f32From(Float32Array.from({ length: rows * n }, () => (rand() < 0.1 ? 0 : rand() * rand() * 0.05)))
    const norms = heap.f32From(Float32Array.from({ length: rows }, () => 0.5 + rand() * 20))
    const weights = heap.f32From(Float32Array.from({ length: count }, () => rand() * 3))
    const prior = Float32Array.from({ length: count }, () => (rand() < 0.5 ? 0 : rand() * 0.02))
    for (const opts of [{}, { rowNorm: norms }, { colWeight: weights }, { rowNorm: norms, colWeight: weights }]) {
      const a = heap.f32From(prior)
      const b = heap.f32From(prior)
      W.columnMax(x, rows, n, from, count, a, opts)
      R.columnMax(x, rows, n, from, count, b, opts)
      expect(Array.from(a.view), JSON.stringify(Object.keys(opts))).toEqual(Array.from(b.view))
      a.free()
      b.free()
    }
    for (const t of [x, norms, weights]) t.free()
  })

  it('takes the largest value of each column, weighted as documented (hand-computed)', () => {
    // rows [0.1 0.5 0.2], [0.4 0.3 0.6]; columns 1..2; row norms 2 and 4; weights 10, 1
    const x = heap.f32From([0.1, 0.5, 0.2, 0.4, 0.3, 0.6])
    const out = heap.f32From([0, 0.55])
    W.columnMax(x, 2, 3, 1, 2, out)
    expect(Array.from(out.view)).toEqual([Math.fround(0.5), Math.fround(0.6)])
    const norms = heap.f32From([2, 4])
    const weights = heap.f32From([10, 1])
    const w = heap.f32From([0, 0])
    // column 1: max(0.5 / 2 x 10, 0.3 / 4 x 10) = 2.5; column 2: max(0.2 / 2, 0.6 / 4) = 0.15
    W.columnMax(x, 2, 3, 1, 2, w, { rowNorm: norms, colWeight: weights })
    expect(Array.from(w.view)).toEqual([2.5, Math.fround(0.6 * 0.25)])
    for (const t of [x, out, norms, weights, w]) t.free()
  })

  it('refuses columns outside the row before any kernel runs', () => {
    const x = heap.allocF32(20)
    const out = heap.allocF32(8)
    expect(() => W.columnMax(x, 2, 10, 4, 8, out)).toThrow(/columns 4\.\.12 are not inside a row of 10/)
    expect(() => W.columnMax(x, 3, 10, 0, 4, out)).toThrow(/columnMax: x holds 20 elements, needs 30/)
    x.free()
    out.free()
  })
})
