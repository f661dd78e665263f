// apply()'s compaction paths (a head of one segment takes its keep list as it is; a head of several
// segments splits it by binary search; pages past the new end go back in bulk: PageStore.releaseTail)
// against a TypeScript twin: every head's rows and positions read before the decision, then picked by
// the keep list. Over a grid of keep lists and head layouts: one arena segment (float32, float16), a
// host segment followed by an arena one, a channel-pruned prefix, a packed prefix, pages shared with a fork.
// On one thread (a head at a time) and on a pool of 4 (heads of one arena segment compacted at once,
// every batch split across threads: minPartMacs 1).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { nodeWorkerSpawner } from '../src/node/threads.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { CacheError } from '../src/cache/errors.js'
import type { HeadDecision } from '../src/cache/types.js'
import type { KVDtype } from '../src/cache/formats.js'
import { rng } from './kernels-helpers.js'

const backends: Record<string, CreatedBackend> = {}
beforeAll(async () => {
  backends['one thread'] = await createBackend('wasm')
  backends['4 threads'] = await createBackend('wasm', { threads: 4, spawnWorker: nodeWorkerSpawner, minPartMacs: 1 })
  expect(backends['4 threads'].threads).toBe(4)
})
afterAll(() => backends['4 threads']?.close?.())
let be: CreatedBackend

const L = 2, H = 2, D = 8

interface Snapshot {
  k: Float32Array
  v: Float32Array
  pos: Int32Array
}

/** every head's rows and positions as read through the public API (any tier, any format) */
function snapshot(cache: PagedKVCache): Snapshot[] {
  const out: Snapshot[] = []
  for (let l = 0; l < L; l++) for (let h = 0; h < H; h++) out.push({ k: cache.readKeys(l, h), v: cache.readValues(l, h), pos: cache.positions(l, h) })
  return out
}

/** the twin: the rows and positions a keep list leaves, picked from the snapshot */
function picked(s: Snapshot, keep: Int32Array): Snapshot {
  const k = new Float32Array(keep.length * D)
  const v = new Float32Array(keep.length * D)
  keep.forEach((slot, i) => {
    k.set(s.k.subarray(slot * D, (slot + 1) * D), i * D)
    v.set(s.v.subarray(slot * D, (slot + 1) * D), i * D)
  })
  return { k, v, pos: Int32Array.from(keep, (slot) => s.pos[slot]) }
}

/** appends n random tokens to every layer at positions from `first` (a gap of 1000 after 0 shows moved positions) */
function appendRandom(cache: PagedKVCache, n: number, first: number, seed: number): void {
  const r = rng(seed)
  for (let l = 0; l < L; l++) {
    const k = Float32Array.from({ length: n * H * D }, () => Math.round(r() * 64) / 32 - 1)
    const v = Float32Array.from({ length: n * H * D }, () => Math.round(r() * 64) / 32 - 1)
    cache.append(l, k, v, Int32Array.from({ length: n }, (_, i) => first + 7 * i))
  }
}

function newCache(pageTokens: number, kvDtype: KVDtype = 'float32'): PagedKVCache {
  return new PagedKVCache(be, { layers: L, kvHeads: H, headDim: D, pageTokens, kvDtype })
}

/** the keep lists of the grid over n slots (`from`: slots below it are always kept, e.g. packed ones) */
function keepLists(n: number, seed: number, from = 0): Record<string, Int32Array> {
  const r = rng(seed)
  const prefix = Array.from({ length: from }, (_, i) => i)
  const list = (rest: number[]) => Int32Array.from([...prefix, ...rest.filter((x) => x >= from)])
  return {
    'keep all': list(Array.from({ length: n }, (_, i) => i)),
    'keep one (the middle slot)': list([Math.max(from, n >> 1)]),
    'keep the first third': list(Array.from({ length: Math.ceil(n / 3) }, (_, i) => i)),
    'keep the last third': list(Array.from({ length: n }, (_, i) => i).slice(n - Math.ceil(n / 3))),
    'keep a random quarter': list(Array.from({ length: n }, (_, i) => i).filter(() => r() < -0.5)),
    'keep a random three quarters': list(Array.from({ length: n }, (_, i) => i).filter(() => r() < 0.5)),
    'keep every other slot': list(Array.from({ length: n }, (_, i) => i).filter((i) => i % 2 === 1)),
  }
}

/** applies the same keep list to every head and checks each head against the twin */
function applyAndCheck(cache: PagedKVCache, keep: Int32Array, what: string): void {
  const before = snapshot(cache)
  cache.apply({ heads: everyHead((layer, head) => ({ layer, head, keep })) })
  const after = snapshot(cache)
  before.forEach((s, i) => {
    const want = picked(s, keep)
    expect(after[i].pos, `${what}: positions of head ${i}`).toEqual(want.pos)
    expect(after[i].k, `${what}: keys of head ${i}`).toEqual(want.k)
    expect(after[i].v, `${what}: values of head ${i}`).toEqual(want.v)
    expect(cache.length(Math.floor(i / H), i % H)).toBe(keep.length)
  })
  // every page past a head's new end went back to the heap (the store's pool is drained)
  expect(cache.store.pooledBytes, what).toBe(0)
}

/** one entry per (layer, head), layer-major */
function everyHead<T>(f: (layer: number, head: number) => T): T[] {
  const out: T[] = []
  for (let l = 0; l < L; l++) for (let h = 0; h < H; h++) out.push(f(l, h))
  return out
}

/** the grid of keep lists (slots below `from` always kept) on fresh caches whose every head holds two segments */
function twoSegmentsOverGrid(n: number, seed: number, from: number, build: () => PagedKVCache): void {
  for (const [what, keep] of Object.entries(keepLists(n, seed, from))) {
    const cache = build()
    for (let l = 0; l < L; l++) for (let h = 0; h < H; h++) expect(cache.segments(l, h).length, what).toBe(2)
    expect(cache.length(0, 0), what).toBe(n)
    applyAndCheck(cache, keep, what)
    cache.dispose()
  }
}

for (const on of ['one thread', '4 threads']) describe(`apply() compaction against a TypeScript twin, ${on}`, () => {
  beforeAll(() => {
    be = backends[on]
  })

  for (const kvDtype of ['float32', 'float16'] as const) {
    it(`one arena segment a head (${kvDtype} pages): rows, positions and pages over the grid of keep lists`, () => {
      for (const [what, keep] of Object.entries(keepLists(53, 3))) {
        const cache = newCache(8, kvDtype)
        appendRandom(cache, 53, 5, 11)
        applyAndCheck(cache, keep, what)
        // pages held: ceil(kept / pageTokens) key and value pages a head, nothing else live
        const rowBytes = D * (kvDtype === 'float16' ? 2 : 4)
        expect(cache.store.liveBytes.wasm, what).toBe(L * H * 2 * Math.ceil(keep.length / 8) * 8 * rowBytes)
        // appends land after the kept rows, at the next slot
        appendRandom(cache, 3, 5000, 12)
        expect(cache.positions(1, 1).subarray(keep.length)).toEqual(Int32Array.of(5000, 5007, 5014))
        cache.dispose()
      }
    })
  }

  it('keeping none empties every head and returns all its pages', () => {
    const cache = newCache(8)
    appendRandom(cache, 30, 0, 2)
    applyAndCheck(cache, new Int32Array(0), 'keep none')
    expect(cache.store.liveBytes.wasm).toBe(0)
    cache.dispose()
  })

  it('a head of a host segment then an arena segment (the keep list split across them)', () => {
    twoSegmentsOverGrid(37, 5, 0, () => {
      const cache = newCache(8)
      appendRandom(cache, 21, 0, 21)
      cache.moveTo('host')
      appendRandom(cache, 16, 1000, 22)
      return cache
    })
  })

  it('a head with a channel-pruned prefix then whole rows (two segments)', () => {
    twoSegmentsOverGrid(30, 6, 0, () => {
      const cache = newCache(4)
      appendRandom(cache, 34, 0, 31)
      const first = Int32Array.from({ length: 34 }, (_, i) => i).filter((i) => i !== 3 && i !== 20 && i !== 33 && i !== 9)
      cache.apply({ heads: everyHead((layer, head) => ({ layer, head, keep: first, keyChannels: { channels: Int32Array.of(0, 2, 3, 7), upto: 13 } })) })
      return cache
    })
  })

  it('a head with a packed prefix (kept whole) then float rows', () => {
    twoSegmentsOverGrid(100, 7, 64, () => {
      const cache = newCache(32)
      appendRandom(cache, 100, 0, 41)
      cache.apply({ heads: [], quantize: everyHead((layer, head) => ({ layer, head, upto: 64, keys: 'int4' as const, values: 'int4' as const })) })
      return cache
    })
  })

  it('pages shared with a fork: the fork compacts its own copies, the original keeps its rows, every page is returned once', () => {
    for (const [what, keep] of Object.entries(keepLists(45, 8))) {
      const cache = newCache(8)
      appendRandom(cache, 45, 0, 51)
      const original = snapshot(cache)
      const fork = cache.fork()
      applyAndCheck(fork, keep, what)
      expect(snapshot(cache), `${what}: the original`).toEqual(original)
      fork.dispose()
      expect(snapshot(cache), `${what}: the original after the fork is gone`).toEqual(original)
      cache.dispose()
      expect(cache.store.liveBytes.wasm, what).toBe(0)
    }
  })

  it('heads with extra tokens and merges go through the same paths (positions of the extra rows after the kept ones)', () => {
    const cache = newCache(8)
    appendRandom(cache, 20, 0, 61)
    const before = snapshot(cache)
    const keep = Int32Array.of(0, 4, 5, 11, 19)
    const key = Float32Array.from({ length: D }, (_, c) => c / 8)
    const value = Float32Array.from({ length: D }, (_, c) => -c / 8)
    cache.apply({ heads: [
      { layer: 0, head: 0, keep, extra: [{ key, value, position: 777 }] },
      { layer: 1, head: 1, keep, merges: [{ pivot: 4, members: Int32Array.of(6), weights: Float32Array.of(1) }] },
    ] })
    expect(cache.positions(0, 0)).toEqual(Int32Array.of(...picked(before[0], keep).pos, 777))
    expect(cache.readKeys(0, 0).subarray(5 * D)).toEqual(key)
    // the merged pivot (slot 4, now at 1): the mean of rows 4 and 6
    const mean = before[3].k.subarray(4 * D, 5 * D).map((x, c) => (x + before[3].k[6 * D + c]) / 2)
    expect(cache.readKeys(1, 1).subarray(D, 2 * D)).toEqual(mean)
    expect(cache.positions(1, 1)).toEqual(picked(before[3], keep).pos)
    // heads not in the decision are untouched
    expect(snapshot(cache)[1]).toEqual(before[1])
    cache.dispose()
  })

  it('one decision mixing heads of one arena segment (compacted at once), a merge, a host segment and a fork\'s shared pages, each head its own keep list', () => {
    for (const pageTokens of [4, 8, 13]) {
      const cache = newCache(pageTokens)
      appendRandom(cache, 40, 0, 81 + pageTokens)
      cache.moveTo('host', { layer: 1, head: 0 })
      const fork = cache.fork()
      const before = snapshot(fork)
      const original = snapshot(cache)
      const lists = Object.values(keepLists(40, pageTokens))
      const keeps = everyHead((l, h) => lists[(l * H + h + pageTokens) % lists.length])
      fork.apply({ heads: everyHead((layer, head) => ({
        layer, head, keep: keeps[layer * H + head],
        ...(layer === 0 && head === 1 && keeps[1].length > 1 ? { merges: [{ pivot: keeps[1][0], members: Int32Array.of(keeps[1][1]), weights: Float32Array.of(1) }] } : {}),
      })) })
      const after = snapshot(fork)
      before.forEach((s, i) => {
        const want = picked(s, keeps[i])
        if (i === 1 && keeps[1].length > 1) {
          // the merged pivot, now slot 0: the mean of its row and its member's (weights 1 and 1)
          const [p, m] = keeps[1]
          for (const [role, rows] of [['k', s.k], ['v', s.v]] as const) want[role].set(rows.subarray(p * D, (p + 1) * D).map((x, c) => (x + rows[m * D + c]) / 2))
        }
        expect(after[i].pos, `pages of ${pageTokens}: positions of head ${i}`).toEqual(want.pos)
        expect(after[i].k, `pages of ${pageTokens}: keys of head ${i}`).toEqual(want.k)
        expect(after[i].v, `pages of ${pageTokens}: values of head ${i}`).toEqual(want.v)
      })
      expect(snapshot(cache), `pages of ${pageTokens}: the original`).toEqual(original)
      fork.dispose()
      cache.dispose()
      expect(cache.store.liveBytes.wasm).toBe(0)
    }
  })
})

describe('apply() refuses a bad decision by name and changes nothing', () => {
  beforeAll(() => {
    be = backends['one thread']
  })
  const bad: [string, (keep: Int32Array) => HeadDecision[], RegExp][] = [
    ['a keep list out of order', () => [{ layer: 0, head: 0, keep: Int32Array.of(0, 5, 3) }], /heads\[0\]\.keep must be strictly ascending without duplicates: \[1\] = 5, \[2\] = 3/],
    ['a slot past the end', () => [{ layer: 0, head: 1, keep: Int32Array.of(0, 12) }], /heads\[0\]\.keep\[1\] = 12 is outside \[0, 12\)/],
    ['a plain array', () => [{ layer: 0, head: 0, keep: [0, 1] as unknown as Int32Array }], /heads\[0\]\.keep must be an Int32Array/],
    ['a head twice', (k) => [{ layer: 1, head: 0, keep: k }, { layer: 1, head: 0, keep: k }], /heads\[1\]: \(layer 1, head 0\) appears twice/],
    ['a layer out of range', (k) => [{ layer: 2, head: 0, keep: k }], /heads\[0\]\.layer = 2 is outside \[0, 2\)/],
    ['an extra token of the wrong width', (k) => [{ layer: 0, head: 0, keep: k }, { layer: 0, head: 1, keep: k, extra: [{ key: new Float32Array(3), value: new Float32Array(D), position: 1 }] }], /heads\[1\]\.extra\[0\]\.key must be a Float32Array of 8, got 3/],
    ['merges that are not an array', (k) => [{ layer: 0, head: 0, keep: k, merges: null as unknown as [] }], /heads\[0\]\.merges must be an array/],
  ]
  for (const [what, heads, message] of bad) {
    it(what, () => {
      const cache = newCache(4)
      appendRandom(cache, 12, 0, 71)
      const before = snapshot(cache)
      expect(() => cache.apply({ heads: heads(Int32Array.of(1, 2)) })).toThrow(CacheError)
      expect(() => cache.apply({ heads: heads(Int32Array.of(1, 2)) })).toThrow(message)
      expect(snapshot(cache)).toEqual(before)
      cache.dispose()
    })
  }
})
