import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { Ops } from '../src/backend/ops.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import type { PageFormat } from '../src/cache/formats.js'
import { nodeWorkerSpawner } from '../src/node/threads.js'
import type { Job, ThreadPool } from '../src/backend/threads/pool.js'
import { JobKind } from '../src/backend/threads/protocol.js'
import { threadedScoring } from '../src/backend/threads/scoring.js'
import { headPages, sameBits, values } from './threads-helpers.js'

// Key scoring split across worker threads by keys (threads/scoring.ts) gives the one-thread scores bit
// for bit, for every page format a cache holds (float32, float16, packed int8/4/2/1 on both the integer
// and the exact fused kernel), query groups of 1 to 5 heads, lengths around page and group edges, and
// pages of 16, 64 and 100 tokens; a call too small to split stays on the calling thread.

const D = 64
const LENGTHS = [1, 31, 32, 33, 64, 65, 200, 999, 2048]
const HEADS = [1, 2, 3, 5]
const PACKED: PageFormat[] = ['int8', 'int4', 'int2', 'int1']

interface Pair {
  relaxed: boolean
  threaded: CreatedBackend
  one: CreatedBackend
}
const pairs: Pair[] = []
beforeAll(async () => {
  for (const relaxed of [false, true]) {
    // minPartMacs 1: every call of more than one piece splits, so the edges are exercised at small sizes
    const threaded = await createBackend('wasm', { relaxed, threads: 4, spawnWorker: nodeWorkerSpawner, minPartMacs: 1 })
    // the same build on the same arena, one thread: reads the very pages the threaded backend scores
    const one = await createBackend('wasm', { relaxed, heap: threaded.heap })
    pairs.push({ relaxed, threaded, one })
  }
})
afterAll(() => pairs.forEach((p) => p.threaded.close?.()))

/** a one-head cache of n seeded keys in `format` (float16 as the cache's kvDtype, packed by quantizing) */
function cacheOf(b: CreatedBackend, n: number, format: PageFormat, pageTokens = 64): PagedKVCache {
  const kvDtype = format === 'float16' ? 'float16' : 'float32'
  const cache = new PagedKVCache(b, { layers: 1, kvHeads: 1, headDim: D, pageTokens, kvDtype })
  cache.append(0, values(n * D, 7 + n, 2), values(n * D, 11 + n), Int32Array.from({ length: n }, (_, i) => i))
  if (format !== 'float32' && format !== 'float16') cache.apply({ heads: [], quantize: [{ layer: 0, head: 0, upto: n, keys: format, values: 'int8' }] })
  return cache
}

/** scores of both backends over the cache's one segment: [threaded, one thread] */
function scoreBoth(p: Pair, cache: PagedKVCache, qHeads: number, exact: boolean): [Float32Array, Float32Array] {
  const seg = cache.segments(0, 0)[0]
  const heap = p.threaded.heap
  const q = heap.f32From(values(qHeads * D, 3 + qHeads, 1.5))
  const outs = [heap.allocF32(qHeads * seg.n), heap.allocF32(qHeads * seg.n)]
  try {
    ;[p.threaded, p.one].forEach((b, i) => new Ops(b).scoreKeys(q, qHeads, seg, 0.125, outs[i], { exact }))
    return [outs[0].view.slice(), outs[1].view.slice()]
  } finally {
    q.free()
    outs.forEach((o) => o.free())
  }
}

describe('key scoring split by keys across threads equals one thread bit for bit', () => {
  const formats: [PageFormat, boolean][] = [['float32', false], ['float16', false], ...PACKED.map((f): [PageFormat, boolean] => [f, false]), ...PACKED.map((f): [PageFormat, boolean] => [f, true])]
  it.each(formats)('%s keys (exact fused kernel: %s), every length x query group, both builds', (format, exact) => {
    for (const p of pairs) {
      for (const n of LENGTHS) {
        const cache = cacheOf(p.threaded, n, format)
        try {
          expect(cache.segments(0, 0)[0].format).toBe(format)
          for (const qHeads of HEADS) {
            const [threaded, one] = scoreBoth(p, cache, qHeads, exact)
            expect(threaded.every(Number.isFinite), `${format} relaxed=${p.relaxed} n=${n} qHeads=${qHeads}`).toBe(true)
            expect(sameBits(threaded, one), `${format} relaxed=${p.relaxed} n=${n} qHeads=${qHeads}`).toBe(true)
          }
        } finally {
          cache.dispose()
        }
      }
    }
  })

  it.each([16, 100])('float32 pages of %i tokens (pieces cut on whole pages and 32-key multiples)', (pt) => {
    for (const p of pairs) {
      for (const n of [pt - 1, pt, 3 * pt + 5, 40 * pt + 3]) {
        const { tables, bufs } = headPages(p.threaded, 1, n, pt)
        const heap = p.threaded.heap
        const q = heap.f32From(values(3 * D, 5))
        const outs = [heap.allocF32(3 * n), heap.allocF32(3 * n)]
        try {
          ;[p.threaded, p.one].forEach((b, i) => b.scoreKeys(q.ptr, 3, D, tables[0].kTable, pt, n, 0.125, outs[i].ptr))
          expect(sameBits(outs[0].view, outs[1].view), `pt=${pt} n=${n}`).toBe(true)
        } finally {
          for (const x of [q, ...outs, ...bufs]) x.free()
        }
      }
    }
  })
})

describe('which calls split, and where', () => {
  // a pool that records its regions: each task's kernel call (kind, page table, keys, output)
  function recorder(threads: number) {
    const regions: Job[][] = []
    const pool = { threads, run: (tasks: readonly (readonly Job[])[]) => void regions.push(tasks.map((t) => t[0])) } as unknown as ThreadPool
    const calls: string[] = []
    const base = {
      heap: pairs[0].one.heap,
      scoreKeys: () => void calls.push('scoreKeys'),
      scoreKeysF16: () => void calls.push('scoreKeysF16'),
      scorePackedKeysInt: () => void calls.push('scorePackedKeysInt'),
    }
    return { regions, calls, scoring: threadedScoring(base, pool, 1 << 15) }
  }

  it('below 2 x minPartMacs multiply-adds, or within one unit of keys, the call stays on the calling thread', () => {
    const r = recorder(8)
    // 3 heads x 64 dims x 340 keys = 65280 < 2^16
    r.scoring.scoreKeys(0, 3, 64, 4096, 64, 340, 1, 8192)
    // 2^20 multiply-adds but one page of 64 keys (contiguous rows: one table entry)
    r.scoring.scoreKeysF16(0, 64, 256, 4096, 64, 64, 1, 8192)
    expect(r.regions).toEqual([])
    expect(r.calls).toEqual(['scoreKeys', 'scoreKeysF16'])
  })

  it.each([
    // threads, pageTokens, keys: pieces are whole units (lcm of the page and 32 keys), the last takes the rest
    [4, 64, 32768, 64], [16, 64, 32768, 64], [3, 16, 2000, 32], [8, 100, 5000, 800], [16, 64, 8200, 64],
  ])('%i threads, pages of %i, %i keys: contiguous pieces of whole %i-key units, each with its own page table', (threads, pt, n, unit) => {
    const r = recorder(threads)
    const table = 1 << 16
    // one query head: pieces write straight into the output at their first key
    r.scoring.scorePackedKeysInt!(0, 1, 64, table, pt, n, 4, 1, 1 << 20, 0)
    expect(r.calls).toEqual([])
    expect(r.regions.length).toBe(1)
    const jobs = r.regions[0]
    // at least 2^15 multiply-adds (n x 64 of one head) a piece, at most one a thread
    expect(jobs.length).toBe(Math.min(threads, Math.ceil(n / unit), Math.floor((n * 64) / (1 << 15))))
    let k0 = 0
    jobs.forEach((j, i) => {
      expect(j.kind).toBe(JobKind.ScorePackedKeysInt)
      const keys = j.args[5]
      if (i < jobs.length - 1) expect(keys % unit).toBe(0)
      expect(j.args[3]).toBe(table + (k0 / pt) * 4)
      // the key group (32 unless given) before the scale, then the piece's output
      expect(j.args[7]).toBe(32)
      expect(j.args[9]).toBe((1 << 20) + k0 * 4)
      k0 += keys
    })
    expect(k0).toBe(n)
  })
})
