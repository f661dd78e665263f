/**
 * Kind 11 of issue 8: the cache API refuses what it would otherwise carry out with a loss, and a refused
 * call leaves the cache byte-identical.
 * - Merges: each pivot takes one merge (two merges into one pivot each overwrite it, and a member is
 *   lost: values 1, 10, 100 gave 50.5). Grid: pivot x the two members split over two merges; the same
 *   members in one merge give their weighted mean.
 * - Positions: whole numbers >= 0 in an Int32Array; fractions, negatives and other array types (which
 *   would be truncated on the way in) are refused, in append, appendFromHeap and extra tokens.
 */
import { beforeAll, describe, expect, it } from 'vitest'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { CacheError } from '../src/cache/errors.js'

let be: CreatedBackend
beforeAll(async () => {
  be = await createBackend('wasm')
})
const D = 4

/** one layer, one head, three tokens whose keys and values are all 1, 10 and 100 */
function threeTokens(): PagedKVCache {
  const cache = new PagedKVCache(be.heap, { layers: 1, kvHeads: 1, headDim: D, pageTokens: 2 })
  const rows = Float32Array.from([1, 10, 100].flatMap((x) => new Array(D).fill(x)))
  cache.append(0, rows, rows.slice(), Int32Array.of(0, 1, 2))
  return cache
}
const snapshot = (c: PagedKVCache) => [Array.from(c.readKeys(0, 0)), Array.from(c.readValues(0, 0)), Array.from(c.positions(0, 0))]

describe('merges into one pivot', () => {
  it('pivot x split members: two merges into one pivot are refused, the cache unchanged', () => {
    let cases = 0
    for (const pivot of [0, 1, 2]) {
      const others = [0, 1, 2].filter((i) => i !== pivot)
      for (const [a, b] of [[others[0], others[1]], [others[1], others[0]]]) {
        const cache = threeTokens()
        const before = snapshot(cache)
        const merge = (m: number) => ({ pivot, members: Int32Array.of(m), weights: Float32Array.of(1) })
        expect(() => cache.apply({ heads: [{ layer: 0, head: 0, keep: Int32Array.of(pivot), merges: [merge(a), merge(b)] }] }), `pivot ${pivot}`).toThrow(CacheError)
        expect(snapshot(cache)).toEqual(before)
        cache.dispose()
        cases++
      }
    }
    expect(cases).toBe(6)
  })

  it('the issue\'s example as one merge: 1, 10 and 100 into pivot 0 give their mean 37', () => {
    const cache = threeTokens()
    cache.apply({ heads: [{ layer: 0, head: 0, keep: Int32Array.of(0), merges: [{ pivot: 0, members: Int32Array.of(1, 2), weights: Float32Array.of(1, 1) }] }] })
    expect(Array.from(cache.readKeys(0, 0))).toEqual(new Array(D).fill(37))
    expect(Array.from(cache.readValues(0, 0))).toEqual(new Array(D).fill(37))
    cache.dispose()
  })
})

describe('positions are whole numbers', () => {
  const BAD: [string, unknown][] = [
    ['a plain array with a fraction', [0.5]],
    ['a plain array of integers (not an Int32Array)', [1]],
    ['a Float32Array with a fraction', Float32Array.of(1.5)],
    ['a Float64Array', Float64Array.of(2)],
    ['a negative position', Int32Array.of(-1)],
  ]
  it('append and appendFromHeap x bad positions: refused, the cache unchanged', () => {
    let cases = 0
    for (const [what, positions] of BAD) {
      const cache = threeTokens()
      const before = snapshot(cache)
      const row = new Float32Array(D)
      expect(() => cache.append(0, row, row.slice(), positions as Int32Array), what).toThrow(CacheError)
      const p = be.heap.alloc(D * 4)
      try {
        expect(() => cache.appendFromHeap(0, p, p, positions as Int32Array), what).toThrow(CacheError)
      } finally {
        be.heap.release(p)
      }
      expect(snapshot(cache)).toEqual(before)
      cache.dispose()
      cases++
    }
    expect(cases).toBe(5)
  })

  it('extra tokens x bad positions {2.5, NaN, Infinity}: refused; a whole position is stored as given', () => {
    for (const position of [2.5, NaN, Infinity]) {
      const cache = threeTokens()
      const before = snapshot(cache)
      const extra = [{ key: new Float32Array(D), value: new Float32Array(D), position }]
      expect(() => cache.apply({ heads: [{ layer: 0, head: 0, keep: Int32Array.of(0), extra }] }), String(position)).toThrow(CacheError)
      expect(snapshot(cache)).toEqual(before)
      cache.dispose()
    }
    const cache = threeTokens()
    cache.apply({ heads: [{ layer: 0, head: 0, keep: Int32Array.of(0), extra: [{ key: new Float32Array(D), value: new Float32Array(D), position: 7 }] }] })
    expect(Array.from(cache.positions(0, 0))).toEqual([0, 7])
    cache.dispose()
  })
})
