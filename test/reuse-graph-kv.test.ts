import { beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { graphKV, type GraphInput } from '../src/reuse/graph-kv.js'
import { ReuseError } from '../src/reuse/errors.js'
import { ModelInputError } from '../src/model/errors.js'

// Graph-KV on the fixture model: a target's KV depends on its sources and on nothing else (its attention
// to other segments is exactly zero), sources share one position range, and a one-source graph is
// sequential encoding bit for bit.
let model: LlamaModel
beforeAll(async () => {
  model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
})

const words = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 2 + ((i * 7919 + seed * 104729) % 4000))

/** every layer's keys and values of the context's slots [from, to) */
function rows(ctx: Awaited<ReturnType<typeof graphKV>>, from: number, to: number): Float32Array[] {
  const out: Float32Array[] = []
  const d = model.config.headDim
  for (let l = 0; l < model.config.layers; l++) {
    for (let h = 0; h < model.config.kvHeads; h++) {
      out.push(ctx.cache.readKeys(l, h).slice(from * d, to * d), ctx.cache.readValues(l, h).slice(from * d, to * d))
    }
  }
  return out
}

describe('Graph-KV', () => {
  const prefix = [0, ...words(15, 1)]
  const sources = [words(30, 2), words(45, 3), words(20, 4)]
  const target = { ids: words(12, 5), sources: [0, 2] }
  const input: GraphInput = { prefix, sources, targets: [target] }
  const targetSlot = prefix.length + 95

  it('a target does not see a segment outside its sources: changing that segment leaves its KV bit-identical', async () => {
    const a = await graphKV(model, input)
    const b = await graphKV(model, { ...input, sources: [sources[0], words(45, 77), sources[2]] })
    expect(rows(b, targetSlot, targetSlot + 12)).toEqual(rows(a, targetSlot, targetSlot + 12))
    // ... while changing one of its sources changes it
    const c = await graphKV(model, { ...input, sources: [words(30, 78), sources[1], sources[2]] })
    expect(rows(c, targetSlot, targetSlot + 12)).not.toEqual(rows(a, targetSlot, targetSlot + 12))
    for (const x of [a, b, c]) x.dispose()
  })

  it('sources share the positions after the prefix; targets follow the longest source', async () => {
    const ctx = await graphKV(model, input)
    expect(ctx.layout).toEqual({ sourceStart: 16, targetStarts: [16 + 45], end: 16 + 45 + 12 })
    const pos = Array.from(ctx.cache.positions(4, 1))
    const want = [
      ...prefix.map((_, i) => i),
      ...sources.flatMap((s) => s.map((_, i) => 16 + i)),
      ...target.ids.map((_, i) => 61 + i),
    ]
    expect(pos).toEqual(want)
    ctx.dispose()
  })

  it.each([[6, 65], [3, 100], [1, 40]])('%i sources of %i tokens use prefix + one source of positions, not their sum', async (k, n) => {
    const ctx = await graphKV(model, { prefix, sources: Array.from({ length: k }, (_, i) => words(n, 10 + i)) })
    expect(ctx.layout.end).toBe(prefix.length + n)
    expect(ctx.ids.length).toBe(prefix.length + k * n)
    ctx.dispose()
  })

  it('one source and no target is sequential encoding: the same greedy answer, the question at the next position', async () => {
    const q = words(7, 6)
    const ctx = await graphKV(model, { prefix, sources: [sources[1]] })
    const ids = [...prefix, ...sources[1], ...q]
    const r = await model.generate(ids, { reuse: ctx, maxNewTokens: 6 }).result
    expect(r.stats.cachedTokens).toBe(61)
    expect(r.ids).toEqual((await model.generate(ids, { maxNewTokens: 6 }).result).ids)
  })

  it('the question after several sources runs at the position after the shared range (the handle shifts it back by the sources it overlaps)', async () => {
    const ctx = await graphKV(model, { prefix, sources })
    const q = words(3, 7)
    const h = ctx.open([...ctx.ids, ...q], model)
    expect(h.positionOffset).toBe(16 + 45 - ctx.ids.length)
    h.close([], false)
  })

  it.each([
    ['no sources', { sources: [] }],
    ['a target naming source 3 of 3', { sources, targets: [{ ids: [5], sources: [3] }] }],
    ['an empty source', { sources: [[1], []] }],
  ])('%s is refused', (_n, bad) => {
    expect(() => graphKV(model, bad as GraphInput)).toThrow(_n === 'an empty source' ? ModelInputError : ReuseError)
  })
})
