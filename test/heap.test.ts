import { describe, expect, it } from 'vitest'
import { Heap } from '../src/backend/heap.js'
import { createBackend } from '../src/backend/index.js'
import { Ops } from '../src/backend/ops.js'
import { contiguousView } from '../src/backend/views.js'
import { rng } from './kernels-helpers.js'

/** two heaps given the same allocations: one to free by releaseMany, one block by block */
function twinHeaps(sizes: number[]): { batched: Heap; oneByOne: Heap; a: number[]; b: number[] } {
  const batched = new Heap()
  const oneByOne = new Heap()
  const a = sizes.map((s) => batched.alloc(s))
  const b = sizes.map((s) => oneByOne.alloc(s))
  expect(a).toEqual(b)
  return { batched, oneByOne, a, b }
}

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

  it('frees a batch (releaseMany) into the same free list as one release after another', () => {
    const rand = rng(7)
    const sizes = Array.from({ length: 300 }, () => 16 + Math.floor(rand() * 5000))
    const { batched, oneByOne, a, b } = twinHeaps(sizes)
    // every other block and a run at the top (which lowers the bump pointer), in no particular order
    const gone = a.map((_, i) => i).filter((i) => i % 2 === 0 || i > 280).sort(() => rand() - 0.5)
    batched.releaseMany(gone.map((i) => a[i]))
    for (const i of gone) oneByOne.release(b[i])
    expect(batched.bytesLive).toBe(oneByOne.bytesLive)
    // the same first-fit answers afterwards: the free lists are the same
    for (const s of sizes.slice(0, 200)) expect(batched.alloc(s)).toBe(oneByOne.alloc(s))
    expect(batched.bytesReserved).toBe(oneByOne.bytesReserved)
  })

  it('refuses a batch with a foreign or repeated pointer before freeing any of it', () => {
    const heap = new Heap()
    const ps = Array.from({ length: 10 }, () => heap.alloc(64))
    const live = heap.bytesLive
    expect(() => heap.releaseMany([...ps, 12345])).toThrow(/12345 is not a live allocation/)
    expect(() => heap.releaseMany([...ps, ps[3]])).toThrow(new RegExp(`${ps[3]} is not a live allocation`))
    // fewer than 8 pointers take the one-by-one path: it checks the whole batch first too
    expect(() => heap.releaseMany([ps[1], ps[2], ps[1]])).toThrow(new RegExp(`${ps[1]} is not a live allocation`))
    expect(() => heap.releaseMany([ps[1], 12345])).toThrow(/12345 is not a live allocation/)
    // a fraction or a negative is refused, not truncated onto the block below it; the bad pointer sorts
    // last or in the middle, after blocks the batch already took out of the size table, which go back
    expect(() => heap.releaseMany([...ps, ps[9] + 0.5])).toThrow(new RegExp(`${ps[9] + 0.5} is not a live allocation`))
    expect(() => heap.releaseMany([...ps, -16])).toThrow(/-16 is not a live allocation/)
    expect(() => heap.releaseMany([...ps, ps[9] + 16])).toThrow(new RegExp(`${ps[9] + 16} is not a live allocation`))
    expect(() => heap.releaseMany([...ps.slice(0, 5), ps[4] + 16, ...ps.slice(5)])).toThrow(new RegExp(`${ps[4] + 16} is not a live allocation`))
    expect(heap.bytesLive).toBe(live)
    for (const p of ps) expect(heap.sizeOf(p)).toBe(64)
    heap.releaseMany(ps)
    expect(heap.bytesLive).toBe(0)
  })

  it('takes a Uint32Array batch (PageStore.drain) as it takes an array: same free list, same refusals, input untouched', () => {
    const rand = rng(9)
    const sizes = Array.from({ length: 200 }, () => 16 + Math.floor(rand() * 3000))
    const { batched, oneByOne, a, b } = twinHeaps(sizes)
    const gone = a.map((_, i) => i).filter((i) => i % 3 !== 1 || i > 190).sort(() => rand() - 0.5)
    const typed = Uint32Array.from(gone, (i) => a[i])
    const copy = typed.slice()
    batched.releaseMany(typed)
    expect(typed).toEqual(copy)
    for (const i of gone) oneByOne.release(b[i])
    expect(batched.bytesLive).toBe(oneByOne.bytesLive)
    for (const s of sizes.slice(0, 150)) expect(batched.alloc(s)).toBe(oneByOne.alloc(s))
    const heap = new Heap()
    const ps = Array.from({ length: 10 }, () => heap.alloc(64))
    expect(() => heap.releaseMany(Uint32Array.from([...ps, ps[9] + 16]))).toThrow(new RegExp(`${ps[9] + 16} is not a live allocation`))
    expect(() => heap.releaseMany(Uint32Array.from([...ps, ps[2]]))).toThrow(new RegExp(`${ps[2]} is not a live allocation`))
    expect(() => heap.releaseMany(Uint32Array.from([...ps, 0]))).toThrow(/\b0 is not a live allocation/)
    for (const p of ps) expect(heap.sizeOf(p)).toBe(64)
  })

  it('merges a batch into a free list that already holds blocks on both sides of it, as one release after another', () => {
    const rand = rng(11)
    const sizes = Array.from({ length: 120 }, () => 16 + Math.floor(rand() * 3000))
    const { batched, oneByOne, a, b } = twinHeaps(sizes)
    // blocks freed earlier one at a time (every third), then a batch of neighbours and far blocks
    for (let i = 0; i < a.length; i += 3) {
      batched.release(a[i])
      oneByOne.release(b[i])
    }
    const gone = a.map((_, i) => i).filter((i) => i % 3 === 1 || (i % 3 === 2 && i % 5 === 0)).sort(() => rand() - 0.5)
    batched.releaseMany(gone.map((i) => a[i]))
    for (const i of gone) oneByOne.release(b[i])
    expect(batched.bytesLive).toBe(oneByOne.bytesLive)
    for (const s of sizes) expect(batched.alloc(s)).toBe(oneByOne.alloc(s))
    expect(batched.bytesReserved).toBe(oneByOne.bytesReserved)
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
