/**
 * An assembled context (CacheBlend, Graph-KV) serves one generation. A generation whose signal was
 * aborted before it started appends nothing to the context's cache, so it must not use the context
 * up: the next generation on it answers as on a context assembled afresh. One that ran (here, aborted
 * after its first token) still uses it up, as documented.
 */
import { describe, expect, it } from 'vitest'
import { useFixtureModel } from './fixture-model-helpers.js'
import { CacheBlend } from '../src/reuse/cacheblend.js'
import { graphKV } from '../src/reuse/graph-kv.js'
import type { KVReuse } from '../src/model/types.js'

const fixture = useFixtureModel()

const words = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 2 + ((i * 7919 + seed * 104729) % 4000))
const chunks = [[0, ...words(20, 1)], words(30, 2)]
const question = words(6, 3)
const answer = (reuse: KVReuse, prompt: number[]) => fixture.model.generate(prompt, { reuse, maxNewTokens: 5 }).result.then((r) => ({ ids: r.ids, cached: r.stats.cachedTokens }))

describe('an assembled context survives a generation aborted before it started', () => {
  it('CacheBlend: the context answers after an aborted call as a fresh one does', async () => {
    const blend = new CacheBlend(fixture.model, { ratio: 0.3, checkLayer: 1 })
    const prompt = [...chunks.flat(), ...question]
    const expected = await answer(await blend.prepare(chunks), prompt)
    const ctx = await blend.prepare(chunks)
    await expect(fixture.model.generate(prompt, { reuse: ctx, maxNewTokens: 5, signal: AbortSignal.abort() }).result).rejects.toMatchObject({ name: 'AbortError' })
    expect(await answer(ctx, prompt)).toEqual(expected)
    expect(expected.cached).toBe(chunks.flat().length)
  })

  it('Graph-KV: the same', async () => {
    const spec = { prefix: [0, ...words(4, 5)], sources: [words(10, 6), words(12, 7)], targets: [{ ids: words(5, 8), sources: [0, 1] }] }
    const expected = await answer(await graphKV(fixture.model, spec), [...(await graphKV(fixture.model, spec)).ids, ...question])
    const g = await graphKV(fixture.model, spec)
    const prompt = [...g.ids, ...question]
    await expect(fixture.model.generate(prompt, { reuse: g, maxNewTokens: 5, signal: AbortSignal.abort() }).result).rejects.toMatchObject({ name: 'AbortError' })
    expect(await answer(g, prompt)).toEqual(expected)
  })

  it('a generation aborted after it ran still uses the context up', async () => {
    const blend = new CacheBlend(fixture.model, { ratio: 0.3, checkLayer: 1 })
    const ctx = await blend.prepare(chunks)
    const prompt = [...chunks.flat(), ...question]
    const ac = new AbortController()
    await expect(fixture.model.generate(prompt, { reuse: ctx, maxNewTokens: 5, signal: ac.signal, onToken: () => ac.abort() }).result).rejects.toMatchObject({ name: 'AbortError' })
    expect(() => fixture.model.generate(prompt, { reuse: ctx, maxNewTokens: 5 })).toThrow(/used by a generation already/)
  })
})
