/**
 * graphKV, Sequence.feed, model.logits and perplexity take `signal`, as generate, prefillPrompt and the
 * reuse prepares do: each runs its prefill a chunk at a time on later turns of the event loop, and an
 * abort rejects with its reason at the next chunk, with nothing left allocated and the sequence as it
 * was. They ran synchronously to the end, so a long prefill (a large document graph, a long feed, a
 * perplexity run) could not be stopped. A signal that is not an AbortSignal is refused at the call.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { ModelInputError } from '../src/model/errors.js'
import { graphKV } from '../src/reuse/graph-kv.js'
import { Sequence } from '../src/reuse/sequence.js'
import { ReuseError } from '../src/reuse/errors.js'
import { perplexity } from '../src/eval/perplexity.js'
import { EvalArgumentError } from '../src/eval/runner.js'
import { defaultModelDir } from '../src/eval/paths.js'

const CHUNK = 16
const words = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 5 + ((i * 31 + seed * 17) % 3000))
let model: LlamaModel

beforeAll(async () => {
  model = (await loadModel(defaultModelDir(), { backend: 'wasm', threads: 1, chunk: CHUNK })) as LlamaModel
})
afterAll(() => model.dispose())

/** runs `start` with a signal aborted one turn of the event loop later (after the first chunk), counting prefill chunks */
async function abortedAfterOneChunk<T>(start: (signal: AbortSignal) => Promise<T>): Promise<{ chunks: number; error: unknown }> {
  const prefill = vi.spyOn(model, 'prefill')
  const ac = new AbortController()
  const reason = new Error('stop')
  try {
    const run = start(ac.signal)
    setImmediate(() => ac.abort(reason))
    const error = await run.then(() => 'finished', (e: unknown) => e)
    expect(error).toBe(reason)
    return { chunks: prefill.mock.calls.length, error }
  } finally {
    prefill.mockRestore()
  }
}

describe('long calls abort between their prefill chunks', () => {
  it('graphKV: rejects with the reason after one chunk, nothing stays allocated', async () => {
    const live = model.backend.heap.bytesLive
    const input = { prefix: words(20, 1), sources: [words(100, 2), words(100, 3)], targets: [{ ids: words(40, 4), sources: [0, 1] }] }
    const { chunks } = await abortedAfterOneChunk((signal) => graphKV(model, input, { signal }))
    expect(chunks).toBe(1)
    expect(model.backend.heap.bytesLive).toBe(live)
    // unaborted, the same graph assembles
    const ctx = await graphKV(model, input, { signal: new AbortController().signal })
    expect(ctx.ids).toHaveLength(260)
    ctx.dispose()
  })

  it('Sequence.feed: rejects with the reason after one chunk, the sequence keeps its tokens and cache; the next feed gives what it gives alone', async () => {
    const seq = Sequence.create(model)
    const first = words(30, 5)
    await seq.feed(first)
    const { chunks } = await abortedAfterOneChunk((signal) => seq.feed(words(200, 6), { signal }))
    expect(chunks).toBe(1)
    expect(seq.tokens).toEqual(first)
    expect(seq.cachedTokens).toBe(first.length)
    const after = await seq.feed([7, 8, 9])
    const fresh = Sequence.create(model)
    const want = await fresh.feed([...first, 7, 8, 9])
    expect(after).toEqual(want)
    seq.dispose()
    fresh.dispose()
  })

  it('logits(ids, { signal }): rejects with the reason after one chunk; without an abort it equals logits(ids)', async () => {
    const ids = words(150, 7)
    const { chunks } = await abortedAfterOneChunk((signal) => model.logits(ids, { signal }))
    expect(chunks).toBe(1)
    expect(await model.logits(ids, {})).toEqual(model.logits(ids))
  })

  it('perplexity: rejects with the reason after one chunk', async () => {
    const books = [{ name: 'b', sentences: Array.from({ length: 200 }, (_, i) => ` The river ${i} runs past the mill.`) }]
    const { chunks } = await abortedAfterOneChunk((signal) => perplexity(model, { books, length: 200, samples: 3, seed: 1, bosId: 0, signal }))
    expect(chunks).toBe(1)
  })

  it('aborted before the call: each rejects with the reason and runs no chunk', async () => {
    const reason = new Error('before')
    const signal = AbortSignal.abort(reason)
    const prefill = vi.spyOn(model, 'prefill')
    try {
      await expect(graphKV(model, { sources: [words(20, 1)] }, { signal })).rejects.toBe(reason)
      const seq = Sequence.create(model)
      await expect(seq.feed(words(20, 1), { signal })).rejects.toBe(reason)
      expect(seq.tokens).toEqual([])
      seq.dispose()
      await expect(model.logits(words(20, 1), { signal })).rejects.toBe(reason)
      expect(prefill).not.toHaveBeenCalled()
    } finally {
      prefill.mockRestore()
    }
  })

  it('a signal that is not an AbortSignal: refused at the call with the call\'s typed error', () => {
    const bad = { signal: 'stop' } as unknown as { signal: AbortSignal }
    expect(() => graphKV(model, { sources: [[5, 6]] }, bad)).toThrow(new ReuseError('graphKV: signal must be an AbortSignal'))
    const seq = Sequence.create(model)
    expect(() => seq.feed([5, 6], bad)).toThrow(new ReuseError('Sequence.feed: signal must be an AbortSignal'))
    seq.dispose()
    expect(() => model.logits([5, 6], bad)).toThrow(new ModelInputError('logits: signal must be an AbortSignal'))
    const books = [{ name: 'b', sentences: [' A line.'] }]
    expect(() => perplexity(model, { books, length: 8, samples: 1, seed: 1, bosId: 0, ...bad })).toThrow(new EvalArgumentError('perplexity: signal must be an AbortSignal, got "stop"'))
  })
})
