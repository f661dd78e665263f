import { describe, expect, it } from 'vitest'
import { Heap } from '../src/backend/heap.js'
import { createBackend } from '../src/backend/index.js'
import { Ops } from '../src/backend/ops.js'
import { contiguousView } from '../src/backend/views.js'
import { rng } from './kernels-helpers.js'

describe('Heap', () => {
  it('stays bounded over gigabytes of interleaved allocations and frees', () => {
    const heap = new Heap()
    const rand = rng(42)
    const live = new Map<number, number>()
    let total = 0
    let maxLive = 0
    while (total < 4 * 2 ** 30) {
      if (live.size < 24 && (live.size === 0 || rand() < 0.55)) {
        const bytes = 16 + Math.floor(rand() * rand() * 8 * 2 ** 20)
        const ptr = heap.alloc(bytes, rand() < 0.1 ? 64 : 16)
        // the new block overlaps no live one and lies above the base
        expect(ptr).toBeGreaterThanOrEqual(heap.base)
        for (const [p, s] of live) if (ptr < p + s && p < ptr + bytes) throw new Error(`block ${ptr}+${bytes} overlaps ${p}+${s}`)
        live.set(ptr, bytes)
        total += bytes
      } else {
        const keys = [...live.keys()]
        const ptr = keys[Math.floor(rand() * keys.length)]
        heap.release(ptr)
        live.delete(ptr)
      }
      maxLive = Math.max(maxLive, heap.bytesLive)
    }
    // peak live is at most 24 x 8 MiB; fragmentation may add some, growth never tracks the total
    expect(heap.bytesReserved).toBeLessThan(3 * maxLive + (16 << 20))
    expect(heap.bytesReserved).toBeLessThan(total / 8)
    for (const ptr of live.keys()) heap.release(ptr)
    expect(heap.bytesLive).toBe(0)
  })

  it('refuses double frees and foreign pointers', () => {
    const heap = new Heap()
    const p = heap.alloc(100)
    heap.release(p)
    expect(() => heap.release(p)).toThrow(/is not a live allocation/)
    expect(() => heap.release(12345)).toThrow(/12345 is not a live allocation/)
  })

  it('keeps buffer views and head views valid across memory.grow', async () => {
    const wasm = await createBackend('wasm', { relaxed: false })
    const ops = new Ops(wasm)
    const heap = wasm.heap
    const keys = heap.f32From([1, 0, 0, 1, 2, 2])
    const view = contiguousView(keys, 3, 2)
    const q = heap.f32From([1, 2])
    const out = heap.allocF32(3)
    const before = heap.bytesReserved
    const big = heap.alloc(64 << 20) // forces memory.grow: old ArrayBuffers detach
    expect(heap.bytesReserved).toBeGreaterThan(before)
    expect(Array.from(keys.view)).toEqual([1, 0, 0, 1, 2, 2])
    ops.scoreKeys(q, 1, view, 1, out)
    expect(Array.from(out.view)).toEqual([1, 2, 6])
    heap.release(big)
    view.free()
  })
})
