import { beforeAll, describe, expect, it } from 'vitest'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { Ops } from '../src/backend/ops.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { keyView } from '../src/policies/selection.js'
import type { PolicyContext } from '../src/policies/types.js'
import { fixtureModelsOnThreads } from './fixture-models-helper.js'
import { fixturePrompt, sameBits, values } from './threads-helpers.js'

// TokenSelect and DELTA score every key of a head at each decode step. On a float16 cache they used to
// copy every key to float32 first (keyView's contiguous copy, on the calling thread), so they never
// reached scoreKeysF16 nor its split across the worker pool; they now score the float16 pages in place.
// scoreKeysF16 gives scoreKeys' bits over the widened rows, so the selections are unchanged.

const D = 64
const GROUP = 3

describe('keyView of a float16 head', () => {
  let b: CreatedBackend
  beforeAll(async () => {
    b = await createBackend('wasm')
  })

  it('for scoring: the cache\'s own float16 pages, scored with the bits of float32 pages of the widened rows; for other readers still a float32 copy', () => {
    const ops = new Ops(b)
    const n = 333
    const opts = { layers: 1, kvHeads: 1, headDim: D }
    const cache = new PagedKVCache(b, { ...opts, kvDtype: 'float16' })
    // the reference: a float32 cache of the same pages holding the float16 rows widened
    const wide = new PagedKVCache(b, opts)
    const ctx = { cache, ops, model: { layers: 1, kvHeads: 1, qHeads: GROUP, headDim: D, group: GROUP } } as unknown as PolicyContext
    const q = b.heap.f32From(values(GROUP * D, 5, 1.5))
    const outs = [b.heap.allocF32(GROUP * n), b.heap.allocF32(GROUP * n)]
    try {
      const pos = Int32Array.from({ length: n }, (_, i) => i)
      cache.append(0, values(n * D, 7, 2), values(n * D, 11), pos)
      wide.append(0, cache.readKeys(0, 0), cache.readValues(0, 0), pos)
      const seg = cache.segments(0, 0)[0]
      const inPlace = keyView(ctx, 0, 0, { float16: true })
      const copy = keyView(ctx, 0, 0)
      try {
        expect(inPlace.view.kTable).toBe(seg.kTable)
        expect(inPlace.view.format).toBe('float16')
        // page bounds (pageMinMax) read float32 rows: without the option, a float32 copy as before
        expect(copy.view.kTable).not.toBe(seg.kTable)
        expect(copy.view.format ?? 'float32').toBe('float32')
        ops.scoreKeys(q, GROUP, inPlace.view, 0.125, outs[0])
        ops.scoreKeys(q, GROUP, wide.segments(0, 0)[0], 0.125, outs[1])
        expect(sameBits(outs[0].view, outs[1].view)).toBe(true)
      } finally {
        inPlace.done()
        copy.done()
      }
    } finally {
      for (const x of [q, ...outs]) x.free()
      cache.dispose()
      wide.dispose()
    }
  })
})

describe('TokenSelect and DELTA on float16 KV through generate', () => {
  const models = fixtureModelsOnThreads([1, 2])

  it.each(['tokenselect:tokens=128,first=16,last=16', 'delta:tokens=128'])('%s scores the float16 pages (scoreKeysF16, not a float32 copy), the same tokens on 1 and 2 threads', async (policy) => {
    const ids = fixturePrompt(400)
    const opts = { kvDtype: 'float16' as const, policy, maxNewTokens: 4, temperature: 0 }
    const ran: Record<string, number>[] = []
    const results = []
    for (const m of models) {
      const calls: Record<string, number> = { scoreKeys: 0, scoreKeysF16: 0 }
      const backend = m.backend as unknown as Record<string, (...a: number[]) => void>
      const saved = { scoreKeys: backend.scoreKeys, scoreKeysF16: backend.scoreKeysF16 }
      for (const name of ['scoreKeys', 'scoreKeysF16'] as const) {
        backend[name] = (...a: number[]) => {
          calls[name]++
          saved[name](...a)
        }
      }
      try {
        results.push(await m.generate(ids, opts).result)
      } finally {
        Object.assign(backend, saved)
      }
      ran.push(calls)
    }
    for (const calls of ran) {
      expect(calls.scoreKeysF16, policy).toBeGreaterThan(0)
      expect(calls.scoreKeys, policy).toBe(0)
    }
    expect(results[1].ids).toEqual(results[0].ids)
  })
})
