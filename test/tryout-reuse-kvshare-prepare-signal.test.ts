/**
 * KVShare.prepare takes `signal` (and refuses an option it does not know): on a miss its full prefill of
 * the context runs a chunk at a time with a turn of the event loop between, and an abort there rejects
 * with its reason, nothing cached; before, prepare(ids) had no options, and the prefill of a long
 * context held the thread to its end. A signal never aborted gives the context as before.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { KVShare } from '../src/reuse/kvshare.js'
import { MemoryChunkStore } from '../src/reuse/chunk-kv.js'
import { ReuseError } from '../src/reuse/errors.js'
import { defaultModelDir } from '../src/eval/paths.js'

const ids = [0, ...Array.from({ length: 40 }, (_, i) => 100 + ((i * 37) % 3000))]
let model: LlamaModel
/** prepare, its context disposed: a call that is not refused fails fast, not by printing the context's model */
const prepared = (share: KVShare, options: object) => share.prepare(ids, options as never).then((ctx) => void ctx.dispose())

beforeAll(async () => {
  // 8-token chunks: the context's prefill is six of them
  model = (await loadModel(defaultModelDir(), { backend: 'wasm', threads: 1, chunk: 8 })) as LlamaModel
})
afterAll(() => model?.dispose())

describe('KVShare.prepare signal', () => {
  it('an unknown option or a signal that is not one: ReuseError; aborted before: its reason', async () => {
    await expect(prepared(new KVShare(model), { signl: 1 })).rejects.toThrow('KVShare.prepare: unknown option "signl"; options: signal')
    await expect(prepared(new KVShare(model), { signal: 'stop' })).rejects.toThrow(ReuseError)
    const reason = new Error('stopped before')
    await expect(prepared(new KVShare(model), { signal: AbortSignal.abort(reason) })).rejects.toBe(reason)
  })

  it('aborted during the prefill: rejects with the reason, nothing cached', async () => {
    const store = new MemoryChunkStore()
    const share = new KVShare(model, { store })
    const ac = new AbortController()
    const reason = new Error('stopped during')
    const running = prepared(share, { signal: ac.signal })
    // queued before the turn the prefill yields after its first chunk: the abort is seen before the second
    setImmediate(() => ac.abort(reason))
    await expect(running).rejects.toBe(reason)
    expect(store.size).toBe(0)
  })

  it('a signal never aborted: the same context as without it', async () => {
    const a = await new KVShare(model).prepare(ids, { signal: new AbortController().signal })
    const b = await new KVShare(model).prepare(ids)
    const q = [51, 52]
    const ra = await model.generate([...ids, ...q], { maxNewTokens: 3, reuse: a }).result
    const rb = await model.generate([...ids, ...q], { maxNewTokens: 3, reuse: b }).result
    expect(ra.ids).toEqual(rb.ids)
  })
})
