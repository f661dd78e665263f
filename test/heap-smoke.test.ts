import { describe, expect, it } from 'vitest'
import { Heap, HeapError } from '../src/backend/heap.js'

describe('Heap', () => {
  it('reuses freed blocks so the bump pointer does not creep', () => {
    const h = new Heap()
    const a = h.alloc(1000)
    h.release(a)
    const b = h.alloc(1000)
    expect(b).toBe(a)
    h.release(b)
    expect(h.bytesLive).toBe(0)
  })
  it('rejects a double free by naming the pointer', () => {
    const h = new Heap()
    const a = h.alloc(64)
    h.release(a)
    expect(() => h.release(a)).toThrow(new HeapError(`release: ${a} is not a live allocation`))
  })
})
