/**
 * evaluate's `signal` reaches the model load of an in-process evaluation (workers: 1): an abort during
 * the load rejects with its reason at the load's next file read, and no model is made. The load ran
 * without the signal, so an abort during it waited for the whole load (seconds for a large model), and
 * the loaded model was then disposed unused.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import { evaluate } from '../src/eval/runner.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { LlamaModel } from '../src/model/model.js'

afterEach(() => {
  vi.restoreAllMocks()
})

describe('evaluate signal during the model load', () => {
  it('an abort while the model loads rejects with the reason before any model is made', async () => {
    const disposed = vi.spyOn(LlamaModel.prototype, 'dispose')
    const ac = new AbortController()
    const reason = new Error('stopped while loading')
    const run = evaluate({ model: defaultModelDir(), backend: 'wasm', policies: ['full'], tasks: ['passkey'], lengths: [128], samples: 1, threads: 1, workers: 1, signal: ac.signal })
    // evaluate is now in the load's first await (a stat or a file read): nothing of the model exists yet
    ac.abort(reason)
    await expect(run).rejects.toBe(reason)
    expect(disposed).not.toHaveBeenCalled()
  }, 60_000)
})
