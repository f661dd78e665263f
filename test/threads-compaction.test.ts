import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import type { CompactCall } from '../src/backend/backend.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import type { HeadDecision } from '../src/cache/types.js'
import { nodeWorkerSpawner } from '../src/node/threads.js'
import { ThreadPoolError, type Job, type ThreadPool } from '../src/backend/threads/pool.js'
import { JobKind, MAX_SUB, MAX_TASKS } from '../src/backend/threads/protocol.js'
import { BYTES_PER_MAC, threadedCompaction } from '../src/backend/threads/compaction.js'
import { MIN_PART_MACS } from '../src/backend/threads/kernels.js'
import { sameBits, values } from './threads-helpers.js'

// The store's compaction on the worker pool (threads/compaction.ts): whole heads a thread, cut by the
// bytes they move; a batch too small for a region stays on the calling thread. A one-shot compaction to
// a quarter of a fixture-shaped 4096-token cache on 4 threads (the default part size) leaves every
// head's rows, positions and page bytes as one thread does; so does one of 2240 heads, whose tasks fill
// more than one region (MAX_TASKS).

/** a call moving `moved` rows of 256-byte keys and values */
const call = (i: number, moved: number): CompactCall => ({ kTable: 1000 + i, vTable: 2000 + i, pageTokens: 64, kRowBytes: 256, vRowBytes: 256, keep: 3000 + i, nKeep: moved, moved })

/** threadedCompaction over a pool of `threads` that records its regions, and the calls left on the calling thread */
function recording(threads: number) {
  const regions: (readonly Job[])[][] = []
  const direct: number[] = []
  // a region holds at most MAX_TASKS tasks, as ThreadPool.run enforces
  const run = (tasks: readonly (readonly Job[])[]) => {
    if (tasks.length > MAX_TASKS) throw new ThreadPoolError(`run: ${tasks.length} tasks, at most ${MAX_TASKS} a region`)
    regions.push([...tasks])
  }
  const pool = { threads, run } as unknown as ThreadPool
  const base = { compactRowsKV: (kTable: number) => (direct.push(kTable - 1000), 0) }
  return { regions, direct, batch: threadedCompaction(base, pool).compactRowsKVBatch }
}

describe('threadedCompaction splits a batch by heads', () => {
  it('16 equal heads on 4 threads: one region of 4 tasks of 4 whole calls, in order, with the kernel arguments', () => {
    const { regions, direct, batch } = recording(4)
    batch(Array.from({ length: 16 }, (_, i) => call(i, 1024)))
    expect(direct).toEqual([])
    expect(regions).toHaveLength(1)
    expect(regions[0].map((t) => t.map((j) => j.args[0] - 1000))).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]])
    expect(regions[0][1][2]).toEqual({ kind: JobKind.CompactRowsKV, args: [1006, 2006, 64, 256, 256, 3006, 1024] })
  })

  it('heads of unequal cost: pieces of near-equal bytes, at most MAX_SUB calls a task', () => {
    const { regions, batch } = recording(2)
    // one head moving as much as the 20 others together
    batch([call(0, 2000), ...Array.from({ length: 20 }, (_, i) => call(i + 1, 100))])
    const tasks = regions[0].map((t) => t.map((j) => j.args[0] - 1000))
    expect(tasks[0]).toEqual([0])
    expect(tasks.slice(1).flat()).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
    expect(Math.max(...tasks.map((t) => t.length))).toBe(MAX_SUB)
  })

  it('2100 equal heads on 4 threads (264 tasks, more than one region holds) run in regions of at most MAX_TASKS tasks, every call once, in order', () => {
    const { regions, direct, batch } = recording(4)
    batch(Array.from({ length: 2100 }, (_, i) => call(i, 64)))
    expect(direct).toEqual([])
    // hand-computed: 4 pieces of 525 heads, each 65 tasks of 8 calls and one of 5: 264 tasks, cut 256 + 8
    expect(regions.map((r) => r.length)).toEqual([256, 8])
    expect(regions.flat().map((t) => t.length)).toEqual(Array.from({ length: 4 }, () => [...Array(65).fill(8), 5]).flat())
    expect(regions.flat().flat().map((j) => j.args[0] - 1000)).toEqual(Array.from({ length: 2100 }, (_, i) => i))
  })

  it('a batch moving less than two parts\' bytes, or a single head, runs on the calling thread', () => {
    const rows = (2 * MIN_PART_MACS * BYTES_PER_MAC) / 512
    for (const calls of [[call(0, rows / 2 - 1), call(1, rows / 2)], [call(0, 100000)]]) {
      const { regions, direct, batch } = recording(8)
      batch(calls)
      expect(regions).toEqual([])
      expect(direct).toEqual(calls.map((_, i) => i))
    }
    // exactly two parts' bytes: a region of two tasks
    const at = recording(8)
    at.batch([call(0, rows / 2), call(1, rows / 2)])
    expect(at.direct).toEqual([])
    expect(at.regions[0]).toHaveLength(2)
  })
})

describe('a one-shot compaction on the pool', () => {
  let threaded: CreatedBackend
  let one: CreatedBackend
  beforeAll(async () => {
    threaded = await createBackend('wasm', { threads: 4, spawnWorker: nodeWorkerSpawner })
    one = await createBackend('wasm')
  })
  afterAll(() => threaded.close?.())

  it('a one-shot compaction of 2240 heads (70 layers x 32 KV heads: more tasks than one region holds) leaves every head as one thread does', () => {
    const layers = 70, kvHeads = 32, d = 8, n = 64
    const caches = [threaded, one].map((b) => new PagedKVCache(b, { layers, kvHeads, headDim: d, pageTokens: 16 }))
    for (const c of caches) {
      for (let l = 0; l < layers; l++) c.append(l, values(n * kvHeads * d, 5 + l), values(n * kvHeads * d, 500 + l), Int32Array.from({ length: n }, (_, i) => 2 * i))
    }
    // every head keeps its odd slots, and head h of a layer drops its last h of them too (heads of different costs)
    const heads = []
    for (let l = 0; l < layers; l++) for (let h = 0; h < kvHeads; h++) heads.push({ layer: l, head: h, keep: Int32Array.from({ length: n / 2 - h }, (_, i) => 2 * i + 1) })
    for (const c of caches) c.apply({ heads })
    for (const { layer, head, keep } of heads) {
      expect(caches[0].positions(layer, head)).toEqual(Int32Array.from(keep, (s) => 2 * s))
      expect(sameBits(caches[0].readKeys(layer, head), caches[1].readKeys(layer, head)), `keys of (${layer}, ${head})`).toBe(true)
      expect(sameBits(caches[0].readValues(layer, head), caches[1].readValues(layer, head)), `values of (${layer}, ${head})`).toBe(true)
    }
    // the rows are the kept ones: head (69, 31)'s values against the generated ones
    const all = values(n * kvHeads * d, 500 + 69)
    const want = new Float32Array((n / 2 - 31) * d)
    heads[heads.length - 1].keep.forEach((s, i) => want.set(all.subarray((s * kvHeads + 31) * d, (s * kvHeads + 32) * d), i * d))
    expect(sameBits(caches[0].readValues(69, 31), want)).toBe(true)
    caches.forEach((c) => c.dispose())
  })

  it('one decision over heads of every layout (one arena segment of ragged lengths, host then arena, merges, extra tokens, channel pruning), pages of 3 and 17 rows: every head as on one thread, the plain ones in one batch', async () => {
    // every batch on the pool, however small
    const fine = await createBackend('wasm', { threads: 2, spawnWorker: nodeWorkerSpawner, minPartMacs: 1 })
    try {
      for (const kvDtype of ['float32', 'float16'] as const) for (const pageTokens of [3, 17]) {
        const layers = 3, kvHeads = 3, d = 16, n = 90
        const batches: number[] = []
        const counted = { ...fine, compactRowsKVBatch: (calls: readonly CompactCall[]) => (batches.push(calls.length), fine.compactRowsKVBatch!(calls)) }
        const caches = [counted, one].map((b) => new PagedKVCache(b, { layers, kvHeads, headDim: d, pageTokens, kvDtype }))
        for (const c of caches) {
          for (let l = 0; l < layers; l++) c.append(l, values(n * kvHeads * d, 5 + l), values(n * kvHeads * d, 50 + l), Int32Array.from({ length: n }, (_, i) => i))
          // ragged heads: head i of the 9 keeps its last n - 7i slots; two go to the host, then get new rows
          const trim = []
          for (let i = 0; i < layers * kvHeads; i++) trim.push({ layer: Math.floor(i / kvHeads), head: i % kvHeads, keep: Int32Array.from({ length: n - 7 * i }, (_, j) => j + 7 * i) })
          c.apply({ heads: trim })
          c.moveTo('host', { layer: 1, head: 1 })
          c.moveTo('host', { layer: 2, head: 0 })
          for (let l = 0; l < layers; l++) c.append(l, values(5 * kvHeads * d, 9 + l), values(5 * kvHeads * d, 90 + l), Int32Array.from({ length: 5 }, (_, i) => 1000 + i))
        }
        batches.length = 0
        const r = values(layers * kvHeads * n, 3)
        const heads = []
        // layers in reverse: the batch takes its heads out of the decision's order
        for (let l = layers - 1; l >= 0; l--) for (let h = 0; h < kvHeads; h++) {
          const m = caches[1].length(l, h)
          const keep = Int32Array.from({ length: m }, (_, i) => i).filter((i) => r[(l * kvHeads + h) * n + i] > 0)
          heads.push({
            layer: l, head: h, keep,
            ...(l === 0 && h === 2 ? { merges: [{ pivot: keep[3], members: Int32Array.of(keep[3] + 1), weights: Float32Array.of(0.5) }] } : {}),
            ...(l === 0 && h === 1 ? { keyChannels: { channels: Int32Array.of(0, 5, 9), upto: 20 } } : {}),
            ...(l === 1 && h === 2 ? { extra: [{ key: values(d, 77), value: values(d, 78), position: 9999 }] } : {}),
          })
        }
        for (const c of caches) c.apply({ heads })
        // 9 heads less two on the host, one with merges and one channel-pruned
        expect(batches).toEqual([5])
        expect(caches[0].bytes()).toEqual(caches[1].bytes())
        for (const { layer, head } of heads) {
          const at = `(${layer}, ${head}) ${kvDtype} pages of ${pageTokens}`
          expect(caches[0].positions(layer, head), at).toEqual(caches[1].positions(layer, head))
          expect(sameBits(caches[0].readKeys(layer, head), caches[1].readKeys(layer, head)), `keys of ${at}`).toBe(true)
          expect(sameBits(caches[0].readValues(layer, head), caches[1].readValues(layer, head)), `values of ${at}`).toBe(true)
        }
        caches.forEach((c) => c.dispose())
      }
    } finally {
      fine.close?.()
    }
  })

  /** a cache of 2 layers x 2 KV heads x `n` rows of head dim 64 on `b`, and a decision keeping every `stride`-th slot of each head */
  const filled = (b: CreatedBackend, n: number) => {
    const layers = 2, kvHeads = 2, d = 64
    const cache = new PagedKVCache(b, { layers, kvHeads, headDim: d, pageTokens: 64 })
    for (let l = 0; l < layers; l++) cache.append(l, values(n * kvHeads * d, 7 + l), values(n * kvHeads * d, 70 + l), Int32Array.from({ length: n }, (_, i) => 3 * i))
    const keeping = (stride: number): HeadDecision[] => {
      const heads: HeadDecision[] = []
      for (let l = 0; l < layers; l++) for (let h = 0; h < kvHeads; h++) heads.push({ layer: l, head: h, keep: Int32Array.from({ length: Math.ceil(n / stride) }, (_, i) => stride * i) })
      return heads
    }
    return { cache, keeping }
  }
  const sameHeads = (a: PagedKVCache, b: PagedKVCache, heads: readonly HeadDecision[], at: string) => {
    for (const { layer, head } of heads) {
      expect(a.positions(layer, head), `${at} (${layer}, ${head})`).toEqual(b.positions(layer, head))
      expect(sameBits(a.readKeys(layer, head), b.readKeys(layer, head)), `${at}: keys of (${layer}, ${head})`).toBe(true)
      expect(sameBits(a.readValues(layer, head), b.readValues(layer, head)), `${at}: values of (${layer}, ${head})`).toBe(true)
      expect(a.changes(layer, head, 0).version, `${at}: version of (${layer}, ${head})`).toBe(b.changes(layer, head, 0).version)
    }
  }

  it('after close, a batch over two parts\' bytes runs on the calling thread as a small one does: every head, change version and byte count as one thread leaves them', async () => {
    const closed = await createBackend('wasm', { threads: 2, spawnWorker: nodeWorkerSpawner })
    closed.close!()
    // what runs now: the calling thread alone
    expect(closed.threads).toBe(1)
    // 1024 rows of 512 bytes (key and value) a head: keeping every other one moves 4 x 511 rows, about
    // 1 MiB, past the 2 x MIN_PART_MACS x BYTES_PER_MAC = 128 KiB that goes to the pool; keeping all but
    // the first two rows of 40 (38 x 4 rows, 76 KiB) stays below it
    for (const [n, stride] of [[1024, 2], [40, 1]] as const) {
      const threaded = filled(closed, n)
      const single = filled(one, n)
      const heads = stride === 1 ? threaded.keeping(1).map((h) => ({ ...h, keep: h.keep.subarray(2) })) : threaded.keeping(stride)
      threaded.cache.apply({ heads })
      single.cache.apply({ heads })
      sameHeads(threaded.cache, single.cache, heads, `${n} rows`)
      expect(threaded.cache.bytes()).toEqual(single.cache.bytes())
      expect(threaded.cache.store.rowsMoved).toBe(single.cache.store.rowsMoved)
      threaded.cache.dispose()
      single.cache.dispose()
    }
  })

  it('apply on a fork after the pool closed: the fork\'s heads and the shared store\'s bytes as on one thread, the cache it was forked from untouched', async () => {
    const closed = await createBackend('wasm', { threads: 2, spawnWorker: nodeWorkerSpawner })
    const [threaded, single] = [closed, one].map((b) => filled(b, 1024))
    const heads = threaded.keeping(2)
    const forks = [threaded, single].map((c) => c.cache.fork())
    const before = heads.map(({ layer, head }) => ({ k: threaded.cache.readKeys(layer, head), v: threaded.cache.readValues(layer, head), pos: threaded.cache.positions(layer, head) }))
    closed.close!()
    for (const f of forks) f.apply({ heads })
    sameHeads(forks[0], forks[1], heads, 'fork')
    // the pages the fork compacted are its own copies, counted once in the store they share: as on one thread
    expect(forks[0].store.liveBytes).toEqual(forks[1].store.liveBytes)
    expect(forks[0].bytes()).toEqual(forks[1].bytes())
    expect(heads.map(({ layer, head }) => ({ k: threaded.cache.readKeys(layer, head), v: threaded.cache.readValues(layer, head), pos: threaded.cache.positions(layer, head) }))).toEqual(before)
    for (const c of [...forks, threaded.cache, single.cache]) c.dispose()
  })

  for (const kvDtype of ['float32', 'float16'] as const) {
    it(`keeps a random quarter of each head of a 4096-token cache (8 layers x 2 KV heads x 64, ${kvDtype}) as one thread does`, () => {
      const n = 4096, layers = 8, kvHeads = 2, d = 64
      // the threaded backend, counting its batches: the 16 heads go to the pool as one
      const batches: number[] = []
      const counted = { ...threaded, compactRowsKVBatch: (calls: readonly CompactCall[]) => (batches.push(calls.length), threaded.compactRowsKVBatch!(calls)) }
      const caches = [counted, one].map((b) => new PagedKVCache(b, { layers, kvHeads, headDim: d, kvDtype }))
      for (const c of caches) {
        for (let l = 0; l < layers; l++) c.append(l, values(n * kvHeads * d, 5 + l), values(n * kvHeads * d, 50 + l), Int32Array.from({ length: n }, (_, i) => 3 * i))
      }
      const r = values(layers * kvHeads * n, 9)
      const heads = []
      for (let l = 0; l < layers; l++) {
        for (let h = 0; h < kvHeads; h++) {
          const score = r.subarray((l * kvHeads + h) * n, (l * kvHeads + h + 1) * n)
          const keep = Int32Array.from(Array.from(score.keys()).sort((a, b) => score[b] - score[a]).slice(0, n / 4)).sort()
          heads.push({ layer: l, head: h, keep })
        }
      }
      for (const c of caches) c.apply({ heads })
      expect(batches).toEqual([layers * kvHeads])
      expect(caches[0].store.rowsMoved).toBe(caches[1].store.rowsMoved)
      expect(caches[0].bytes()).toEqual(caches[1].bytes())
      for (const { layer, head, keep } of heads) {
        expect(caches[0].positions(layer, head)).toEqual(Int32Array.from(keep, (s) => 3 * s))
        expect(sameBits(caches[0].readKeys(layer, head), caches[1].readKeys(layer, head)), `keys of (${layer}, ${head})`).toBe(true)
        expect(sameBits(caches[0].readValues(layer, head), caches[1].readValues(layer, head)), `values of (${layer}, ${head})`).toBe(true)
      }
      // the rows are the kept ones: head (3, 1)'s keys against the generated values (float32 only: float16 rounds them)
      if (kvDtype === 'float32') {
        const all = values(n * kvHeads * d, 5 + 3)
        const want = new Float32Array(n / 4 * d)
        heads[7].keep.forEach((s, i) => want.set(all.subarray((s * kvHeads + 1) * d, (s * kvHeads + 2) * d), i * d))
        expect(sameBits(caches[0].readKeys(3, 1), want)).toBe(true)
      }
      caches.forEach((c) => c.dispose())
    })
  }
})
