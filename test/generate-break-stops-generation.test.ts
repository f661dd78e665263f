/**
 * Leaving a `for await` over a streamed generation early (`break`) stops the generation once no other
 * loop iterates it: `result` resolves with the tokens so far, finishReason 'cancelled', and the request's
 * cache is freed. The loop's return() was ignored and the model decoded to maxNewTokens for nobody
 * (documented as a limitation). Another loop still iterating keeps it running to its end.
 */
import { describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import { makeTinyModel } from './tiny-model.js'

const folder = makeTinyModel({ eos_token_id: null })
const prompt = [0, 11, 12, 13, 14]
const MAX = 40

describe('break out of a streamed generation', () => {
  it('the only loop breaks after 3 tokens: the decode stops there, result holds them, the cache is freed', async () => {
    const model = await loadModel(folder, { backend: 'wasm', threads: 1 })
    const live = model.backend.heap.bytesLive
    const gen = model.generate(prompt, { maxNewTokens: MAX })
    const seen: number[] = []
    for await (const t of gen) {
      seen.push(t.id)
      if (seen.length === 3) break
    }
    const r = await gen.result
    expect(r.finishReason).toBe('cancelled')
    expect(r.ids.slice(0, 3)).toEqual(seen)
    // the step running when the loop left may finish (its token held back as text), no more
    expect(r.ids.length).toBeLessThanOrEqual(4)
    expect(r.stats.newTokens).toBe(r.ids.length)
    expect(model.backend.heap.bytesLive).toBe(live)
    model.dispose()
  })

  it('one of two loops breaks: the other gets every token and the generation runs to its end', async () => {
    const model = await loadModel(folder, { backend: 'wasm', threads: 1 })
    const gen = model.generate(prompt, { maxNewTokens: 12 })
    const early = (async () => {
      for await (const _ of gen) break
    })()
    const all: number[] = []
    for await (const t of gen) all.push(t.id)
    await early
    const r = await gen.result
    expect(r.finishReason).toBe('length')
    expect(all).toEqual(r.ids)
    expect(r.ids).toHaveLength(12)
    model.dispose()
  })
})
