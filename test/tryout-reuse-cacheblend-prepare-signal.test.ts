/**
 * CacheBlend.prepare takes `signal`: an abort is seen between the chunks it computes and before the
 * recompute, and prepare rejects with its reason, the chunks computed so far kept in the store. It
 * refused `signal` as an unknown option (and, before that check, ignored it): a context of many long
 * chunks, each prefilled alone, could not be stopped. Chunks are still fetched from the store at once.
 */
import { describe, expect, it } from 'vitest'
import { useFixtureModel } from './fixture-model-helpers.js'
import { CacheBlend } from '../src/reuse/cacheblend.js'
import { MemoryChunkStore } from '../src/reuse/chunk-kv.js'
import { ReuseError } from '../src/reuse/errors.js'

const fixture = useFixtureModel()
const chunks = [[11, 12, 13, 14], [21, 22, 23], [31, 32, 33, 34, 35], [41, 42]]

describe('CacheBlend.prepare signal', () => {
  it('aborted before: rejects with the reason, nothing computed; not a signal: ReuseError', async () => {
    const store = new MemoryChunkStore()
    const reason = new Error('stopped before')
    await expect(new CacheBlend(fixture.model, { store }).prepare(chunks, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason)
    expect(store.size).toBe(0)
    await expect(new CacheBlend(fixture.model).prepare(chunks, { signal: 'stop' as never })).rejects.toThrow(ReuseError)
  })

  it('aborted after the first chunk is computed: rejects with the reason, that chunk kept, the rest never computed', async () => {
    const inner = new MemoryChunkStore()
    const ac = new AbortController()
    const reason = new Error('stopped during')
    const store = { get: (k: string) => inner.get(k), set: (k: string, kv: Parameters<MemoryChunkStore['set']>[1]) => { inner.set(k, kv); ac.abort(reason) } }
    await expect(new CacheBlend(fixture.model, { store }).prepare(chunks, { signal: ac.signal })).rejects.toBe(reason)
    expect(inner.size).toBe(1)
  })

  it('a signal never aborted: the same context and report as without it', async () => {
    const a = await new CacheBlend(fixture.model).prepare(chunks, { signal: new AbortController().signal })
    const b = await new CacheBlend(fixture.model).prepare(chunks)
    expect(a.report).toEqual(b.report)
    const q = [51, 52]
    expect((await fixture.model.generate([...a.ids, ...q], { maxNewTokens: 3, reuse: a }).result).ids).toEqual((await fixture.model.generate([...b.ids, ...q], { maxNewTokens: 3, reuse: b }).result).ids)
  })
})
