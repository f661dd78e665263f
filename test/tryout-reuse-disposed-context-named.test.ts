/**
 * A generation on an assembled context (CacheBlend.prepare, graphKV) that was disposed is refused with a
 * ReuseError saying it was disposed; it said "the assembled context was used by a generation already",
 * which no generation had, sending the caller looking for one. A used context still says it was used.
 */
import { describe, expect, it } from 'vitest'
import { useFixtureModel } from './fixture-model-helpers.js'
import { CacheBlend } from '../src/reuse/cacheblend.js'
import { graphKV } from '../src/reuse/graph-kv.js'
import { ReuseError } from '../src/reuse/errors.js'

const fixture = useFixtureModel()
const chunks = [[11, 12, 13], [21, 22]]

describe('an assembled context after dispose', () => {
  it.each(['CacheBlend', 'graphKV'] as const)('%s: ReuseError saying it was disposed; used, it says used', async (how) => {
    const make = async () => (how === 'CacheBlend' ? await new CacheBlend(fixture.model).prepare(chunks) : graphKV(fixture.model, { sources: chunks }))
    const ctx = await make()
    ctx.dispose()
    const call = () => fixture.model.generate([...ctx.ids, 5], { maxNewTokens: 2, reuse: ctx })
    expect(call).toThrow(ReuseError)
    expect(call).toThrow('the assembled context was disposed: assemble it again (prepare, graphKV)')
    const used = await make()
    await fixture.model.generate([...used.ids, 5], { maxNewTokens: 2, reuse: used }).result
    expect(() => fixture.model.generate([...used.ids, 5], { maxNewTokens: 2, reuse: used })).toThrow('the assembled context was used by a generation already')
  })
})
