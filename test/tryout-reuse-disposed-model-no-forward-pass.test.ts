/**
 * The forward pass refuses a disposed model (ModelDisposedError), also where the reuse API reaches it
 * through a cache made before the dispose: Sequence.feed after model.dispose() ran the prefill over the
 * freed weights on one thread and returned their logits (a ThreadPoolError on the pool).
 */
import { describe, expect, it } from 'vitest'
import { ModelDisposedError } from '../src/model/errors.js'
import { loadModel } from '../src/node/load.js'
import { Sequence } from '../src/reuse/sequence.js'

describe('reuse on a disposed model', () => {
  it.each([1, 2])('Sequence.feed after dispose: ModelDisposedError, the history unchanged (threads %i)', async (threads) => {
    const model = await loadModel('models/fixture-14m', { threads, wasm: { relaxed: false } })
    const seq = Sequence.create(model)
    await seq.feed([0, 5, 6])
    model.dispose()
    expect(() => seq.feed([7, 8])).toThrow(ModelDisposedError)
    expect(seq.tokens).toEqual([0, 5, 6])
  })
})
