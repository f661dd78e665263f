/**
 * Kind 6 of issue 8: a generation never outlives its model or its abort signal.
 * - dispose() while a generation streams: the generation stops with ModelDisposedError before its next
 *   step; the tokens it streamed before are those of an undisturbed run.
 * - an abort during prefill is seen between prefill chunks, not when the prefill ends.
 * Grids: dispose after {0, 1, 3} tokens x {iterating, awaiting result}; abort after {0, 1, 2, 5} turns of
 * the event loop during a 25-chunk prefill, and a signal aborted before the call.
 */
import { describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import { ModelDisposedError } from '../src/model/errors.js'
import { makeTinyModel } from './tiny-model.js'

const folder = makeTinyModel({ eos_token_id: null })
const prompt = Array.from({ length: 200 }, (_, i) => 10 + ((i * 53) % 3000))
const turn = () => new Promise<void>((r) => setImmediate(r))

describe('dispose during generation', () => {
  it('dispose after {0, 1, 3} tokens x {iterate, await result}: ModelDisposedError, earlier tokens intact', async () => {
    const base = await loadModel(folder, { backend: 'wasm' })
    const want = (await base.generate(prompt.slice(0, 20), { maxNewTokens: 8 }).result).ids
    base.dispose()
    let cases = 0
    for (const after of [0, 1, 3]) {
      for (const mode of ['iterate', 'result'] as const) {
        const model = await loadModel(folder, { backend: 'wasm' })
        const got: number[] = []
        const gen = model.generate(prompt.slice(0, 20), {
          maxNewTokens: 8,
          onToken: (t) => {
            got.push(t.id)
            if (got.length === after) model.dispose()
          },
        })
        if (after === 0) model.dispose()
        if (mode === 'iterate') {
          await expect((async () => {
            for await (const _ of gen) void _
          })()).rejects.toThrow(ModelDisposedError)
        } else {
          await expect(gen.result).rejects.toThrow(ModelDisposedError)
        }
        expect(got, `${mode} after ${after}`).toEqual(want.slice(0, after))
        cases++
      }
    }
    expect(cases).toBe(6)
  })
})

describe('abort during prefill', () => {
  it('abort after {0, 1, 2, 5} turns of a 25-chunk prefill: rejected before the prefill ends', async () => {
    const model = await loadModel(folder, { backend: 'wasm', chunk: 8 })
    const steps = model.forward.step.bind(model.forward)
    let calls = 0
    model.forward.step = ((...a: Parameters<typeof steps>) => {
      calls++
      return steps(...a)
    }) as typeof model.forward.step
    for (const turns of [0, 1, 2, 5]) {
      calls = 0
      const ac = new AbortController()
      const gen = model.generate(prompt, { maxNewTokens: 4, signal: ac.signal })
      for (let i = 0; i < turns; i++) await turn()
      ac.abort()
      await expect(gen.result, `after ${turns} turns`).rejects.toThrow(/abort/i)
      // 199 prompt tokens in chunks of 8 are 25 forward calls: the abort is seen after at most `turns` of them
      expect(calls, `after ${turns} turns`).toBeLessThanOrEqual(turns)
    }
    const ac = new AbortController()
    ac.abort()
    calls = 0
    await expect(model.generate(prompt, { signal: ac.signal }).result).rejects.toThrow(/abort/i)
    expect(calls).toBe(0)
    model.dispose()
  })
})
