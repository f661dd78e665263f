import { afterAll, beforeAll, expect, it } from 'vitest'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { nodeWorkerSpawner } from '../src/node/threads.js'
import { sameBits, values } from './threads-helpers.js'

// scoreKeysF16 gives scoreKeys' bits over the widened rows (assembly/kernels/score.ts), for every query
// group size and head size. Its group-of-three tile took the second and third query rows at the key
// row stride, which for float16 keys is half the query row stride: with 3 query heads a KV head (the
// fixture model's group) and a head size other than 128, heads 1 and 2 were scored with the wrong
// query, on one thread and split across the worker pool alike.

let one: CreatedBackend
let threaded: CreatedBackend
beforeAll(async () => {
  threaded = await createBackend('wasm', { threads: 3, spawnWorker: nodeWorkerSpawner, minPartMacs: 1 })
  one = await createBackend('wasm', { heap: threaded.heap })
})
afterAll(() => threaded.close?.())

it.each([32, 64, 96, 128])('head size %i: query groups of 1 to 6 on float16 pages score as float32 pages of the widened rows, on 1 and 3 threads', (d) => {
  const n = 200
  const pos = Int32Array.from({ length: n }, (_, i) => i)
  const half = new PagedKVCache(one, { layers: 1, kvHeads: 1, headDim: d, kvDtype: 'float16' })
  const wide = new PagedKVCache(one, { layers: 1, kvHeads: 1, headDim: d })
  try {
    half.append(0, values(n * d, 7 + d, 2), values(n * d, 11), pos)
    wide.append(0, half.readKeys(0, 0), half.readValues(0, 0), pos)
    const [h, w] = [half.segments(0, 0)[0], wide.segments(0, 0)[0]]
    for (let group = 1; group <= 6; group++) {
      const heap = one.heap
      const q = heap.f32From(values(group * d, 5 + group, 1.5))
      const outs = [heap.allocF32(group * n), heap.allocF32(group * n), heap.allocF32(group * n)]
      try {
        one.scoreKeys(q.ptr, group, d, w.kTable, w.pageTokens, n, 0.125, outs[0].ptr)
        one.scoreKeysF16(q.ptr, group, d, h.kTable, h.pageTokens, n, 0.125, outs[1].ptr)
        threaded.scoreKeysF16(q.ptr, group, d, h.kTable, h.pageTokens, n, 0.125, outs[2].ptr)
        expect(sameBits(outs[1].view, outs[0].view), `d ${d}, group ${group}, one thread`).toBe(true)
        expect(sameBits(outs[2].view, outs[0].view), `d ${d}, group ${group}, 3 threads`).toBe(true)
      } finally {
        for (const x of [q, ...outs]) x.free()
      }
    }
  } finally {
    half.dispose()
    wide.dispose()
  }
})
