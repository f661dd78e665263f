/**
 * graphKV's input (and each target) and CacheBlend.prepare's options refuse a field they do not know,
 * with a ReuseError naming it, as the reuse constructors do: `graphKV(model, { sources, target: [...] })`
 * built the graph without its targets and answered from the sources alone, silently, and
 * `prepare(chunks, { alway: [0] })` recomputed nothing more; `always: 3` (one slot, not a list) was a
 * TypeError ("find is not a function"). Null input is a ReuseError too, where it was a TypeError.
 */
import { describe, expect, it } from 'vitest'
import { useFixtureModel } from './fixture-model-helpers.js'
import { graphKV } from '../src/reuse/graph-kv.js'
import { CacheBlend } from '../src/reuse/cacheblend.js'
import { ReuseError } from '../src/reuse/errors.js'

const fixture = useFixtureModel()
const sources = [[11, 12, 13], [21, 22]]

describe('reuse calls with fields they do not know', () => {
  it.each([
    [{ sources, target: [{ ids: [31], sources: [0] }] }, 'graphKV: unknown option "target"; options: prefix, sources, targets'],
    [{ sources, targets: [{ ids: [31], source: [0] }] }, 'graphKV: targets[0]: unknown option "source"; options: ids, sources'],
    [{ sources, targets: { ids: [31], sources: [0] } }, 'graphKV: targets must be an array of { ids, sources }, got object'],
    [null, 'graphKV: options must be an object, got null'],
  ] as [unknown, string][])('graphKV(model, %j): ReuseError', (input, message) => {
    // nothing returned: a graph built by mistake is disposed, not printed by the failing expect
    const call = () => void graphKV(fixture.model, input as never)
    expect(call).toThrow(ReuseError)
    expect(call).toThrow(message)
  })

  it.each([
    [{ alway: [0] }, 'CacheBlend.prepare: unknown option "alway"; options: always'],
    [{ always: 3 }, 'CacheBlend.prepare: always must be an array of slots, got number'],
  ] as [unknown, string][])('CacheBlend.prepare(chunks, %j): ReuseError', async (options, message) => {
    const blend = new CacheBlend(fixture.model)
    const run = () => blend.prepare(sources, options as never).then((ctx) => void ctx.dispose())
    await expect(run()).rejects.toThrow(ReuseError)
    await expect(run()).rejects.toThrow(message)
  })

  it('the fields they know still work', async () => {
    const g = await graphKV(fixture.model, { prefix: [0], sources, targets: [{ ids: [31, 32], sources: [1] }] })
    expect(g.layout.targetStarts.length).toBe(1)
    g.dispose()
    const ctx = await new CacheBlend(fixture.model).prepare(sources, { always: [0, 3] })
    expect(ctx.ids).toEqual(sources.flat())
  })
})
