/**
 * A policy that needs a model-level preparation (RazorAttention's calibration) works from a spec string
 * through `generate`, as `kvkit eval`, `kvkit generate` and `npm start` use it: generate awaits
 * `policy.prepare(model)`, compositions forward it, and the calibration runs once per model.
 */
import { PolicyFileError } from '../src/policies/errors.js'
import { describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import { createPolicy } from '../src/policies/registry.js'
import type { Policy } from '../src/policies/types.js'
import { defaultModelDir } from '../src/eval/paths.js'

const text = 'The cat sat on the mat. '.repeat(30)

describe('policy preparation through generate', () => {
  it('calibrates RazorAttention from a spec on first use, once per model, and compresses the cache', async () => {
    const model = await loadModel(defaultModelDir())
    let calibrationRuns = 0
    const generate = model.generate.bind(model)
    model.generate = ((prompt: string | number[], o?: Parameters<typeof generate>[1]) => {
      if ((o?.policy as { name?: string } | undefined)?.name === 'razorattention-calibration') calibrationRuns++
      return generate(prompt, o)
    }) as typeof model.generate
    const policy = createPolicy('razorattention:budget=0.25', model.config)!
    const first = await model.generate(text, { maxNewTokens: 2, policy }).result
    const second = await model.generate(text, { maxNewTokens: 2, policy: createPolicy('razorattention:budget=0.25', model.config)! }).result
    expect(calibrationRuns).toBe(1)
    for (const r of [first, second]) expect(r.stats.kvBytesAfterPrefill.hot).toBeLessThan(0.5 * r.stats.kvBytesFull)
    model.dispose()
  })

  it('forwards prepare through a composition, calibrating on a text file when asked', async () => {
    const model = await loadModel(defaultModelDir())
    const composed = createPolicy('razorattention:budget=0.5,calibrationFile=data/books/pg345.txt+think:ratio=0.1', model.config) as Policy
    expect(composed.prepare).toBeTypeOf('function')
    const r = await model.generate(text, { maxNewTokens: 2, policy: composed }).result
    expect(r.stats.kvBytesAfterPrefill.hot).toBeLessThan(r.stats.kvBytesFull)
    // a missing file is refused when the policy is created, before any request
    expect(() => createPolicy('razorattention:calibrationFile=no/such/file.txt', model.config)).toThrow(PolicyFileError)
    model.dispose()
  })
})
