import { beforeAll, describe, expect, it } from 'vitest'
import { createBackend } from '../src/backend/index.js'
import { Ops, ShapeError } from '../src/backend/ops.js'
import type { Backend } from '../src/backend/backend.js'
import type { Heap } from '../src/backend/heap.js'
import { contiguousView } from '../src/backend/views.js'

// Bad shapes must be refused by Ops with a ShapeError naming the bad value, before the backend is entered.
let ops: Ops
let heap: Heap
let calls: string[]

beforeAll(async () => {
  const wasm = await createBackend('wasm', { relaxed: false })
  calls = []
  // count every kernel call that gets through to the backend
  const spy = new Proxy(wasm, {
    get(target, prop, recv) {
      const v = Reflect.get(target, prop, recv)
      if (typeof v === 'function') return (...args: unknown[]) => { calls.push(String(prop)); return (v as (...a: unknown[]) => unknown).apply(target, args) }
      return v
    },
  }) as Backend
  ops = new Ops(spy)
  heap = wasm.heap
})

function refused(f: () => void, message: RegExp): void {
  calls.length = 0
  expect(f).toThrow(ShapeError)
  expect(f).toThrow(message)
  expect(calls).toEqual([])
}

describe('Ops refuses bad shapes before any kernel runs', () => {
  it('scoreKeys: an output too small for qHeads x n, and a non-integer head count', () => {
    const keys = heap.allocF32(10 * 8)
    const view = contiguousView(keys, 10, 8)
    const q = heap.allocF32(16)
    const out = heap.allocF32(19)
    refused(() => ops.scoreKeys(q, 2, view, 1, out), /out holds 19 elements, needs 20/)
    refused(() => ops.scoreKeys(q, 1.5, view, 1, out), /qHeads must be a positive integer, got 1.5/)
    refused(() => ops.scoreKeys(q, 3, view, 1, heap.allocF32(30)), /q holds 16 elements, needs 24/)
    refused(() => ops.scoreKeys(q, 1, view, Number.NaN, out), /scale must be finite, got NaN/)
    view.free()
  })

  it('topK: k larger than n, negative k, and a scratch buffer shorter than n', () => {
    const x = heap.allocF32(100)
    const idx = heap.allocI32(100)
    refused(() => ops.topK(x, 50, 51, idx, heap.allocI32(50)), /k must be an integer in \[0, 50\], got 51/)
    refused(() => ops.topK(x, 50, -1, idx, heap.allocI32(50)), /got -1/)
    refused(() => ops.topK(x, 100, 5, idx, heap.allocI32(99)), /scratch holds 99 elements, needs 100/)
    refused(() => ops.topK(x, 101, 5, idx, heap.allocI32(101)), /x holds 100 elements, needs 101/)
  })

  it('attend: gathered indices outside the cache and an empty cache', () => {
    const keys = heap.allocF32(4 * 8)
    const view = contiguousView(keys, 4, 8)
    const q = heap.allocF32(8)
    const out = heap.allocF32(8)
    const lse = heap.allocF32(1)
    refused(() => ops.attend(q, 1, view, heap.i32From([0, 4]), 2, 1, out, lse), /idx\[1\] = 4 is outside \[0, 4\)/)
    refused(() => ops.attend(q, 1, view, heap.i32From([-1]), 1, 1, out, lse), /idx\[0\] = -1/)
    refused(() => ops.attend(q, 1, contiguousView(keys, 0, 8), null, 0, 1, out, lse), /n \(an empty cache has nothing to attend to\) must be a positive integer, got 0/)
    refused(() => ops.attend(q, 2, view, null, 0, 1, out, lse), /q holds 8 elements, needs 16/)
  })

  it('pool1d: even kernels, aliasing output and unknown kinds', () => {
    const x = heap.allocF32(10)
    const out = heap.allocF32(10)
    refused(() => ops.pool1d('max', x, 10, 4, out), /kernel must be an odd positive integer, got 4/)
    refused(() => ops.pool1d('avg', x, 10, 3, x), /out must not alias x/)
    refused(() => ops.pool1d('median' as 'max', x, 10, 3, out), /kind must be 'max' or 'avg', got median/)
  })

  it('softmax, soft vote, page summaries: buffers too small for the shape asked', () => {
    const x = heap.allocF32(12)
    refused(() => ops.softmaxRows(x, 3, 5), /x holds 12 elements, needs 15/)
    refused(() => ops.softVote(x, 2, 6, heap.allocF32(5)), /out holds 5 elements, needs 6/)
    refused(() => ops.logSumExp(x, 0), /n must be a positive integer, got 0/)
    const keys = heap.allocF32(33 * 4)
    const view = contiguousView(keys, 33, 4)
    refused(() => ops.pageMinMax(view, 16, heap.allocF32(8), heap.allocF32(12)), /outMin holds 8 elements, needs 12/)
    refused(() => ops.chunkMeans(view, 0, heap.allocF32(12)), /chunk must be a positive integer, got 0/)
  })

  it('contiguousView: key buffers shorter than n x d', () => {
    expect(() => contiguousView(heap.allocF32(10), 3, 4)).toThrow(/keys hold 10 floats, need n\*d = 12/)
  })
})
