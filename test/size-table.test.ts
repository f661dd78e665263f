import { describe, expect, it } from 'vitest'
import { SizeTable } from '../src/backend/size-table.js'
import { rng } from './kernels-helpers.js'

// The heap's typed-array table of live blocks against a Map doing the same operations: random inserts
// and deletes through several growths, with pointers chosen to collide (close multiples of 16) and far
// apart, so probe runs wrap around the table's end and deletions shift entries back across it.
describe('SizeTable', () => {
  it.each([[1, 16], [2, 4096], [3, 1 << 20]])('agrees with a Map over 20000 random sets and deletes (seed %i, pointer spread %i x 16)', (seed, spread) => {
    const r = rng(seed)
    const t = new SizeTable(4)
    const m = new Map<number, number>()
    for (let op = 0; op < 20000; op++) {
      const ptr = 16 * (1 + Math.floor(r() * spread))
      if (r() < 0.55 && !m.has(ptr)) {
        const size = 16 * (1 + Math.floor(r() * 1000))
        t.set(ptr, size)
        m.set(ptr, size)
      } else {
        expect(t.delete(ptr)).toBe(m.get(ptr) ?? 0)
        m.delete(ptr)
      }
      if (op % 4999 === 0) for (const [p, s] of m) expect(t.get(p)).toBe(s)
    }
    expect(t.size).toBe(m.size)
    for (const [p, s] of m) expect(t.get(p)).toBe(s)
    for (let i = 0; i < 200; i++) {
      const p = 16 * (1 + Math.floor(r() * spread))
      expect(t.get(p)).toBe(m.get(p) ?? 0)
    }
  })

  it('reads 0 for pointers no block can start at, and refuses to record them', () => {
    const t = new SizeTable()
    t.set(64, 32)
    for (const p of [0, -16, 8, 65, 2 ** 36, NaN]) {
      expect(t.get(p)).toBe(0)
      expect(t.delete(p)).toBe(0)
    }
    expect(t.size).toBe(1)
    expect(() => t.set(0, 16)).toThrow(/pointer 0 and size 16 must be positive multiples of 16/)
    expect(() => t.set(32, 20)).toThrow(/size 20/)
  })
})
