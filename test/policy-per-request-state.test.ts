/**
 * Kind 3 of issue 8: a policy is a configuration. One policy object reused by requests one after the
 * other, or by concurrent requests, gives each request exactly what that request gets alone with a
 * fresh policy: same tokens, same cache size. Grid: every registered policy's specs x
 * {sequential reuse, concurrent reuse} on two different prompts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { createPolicy } from '../src/policies/registry.js'
import { randomGatesFile, randomScoresFile, specsPerPolicy } from './policy-grid-helpers.js'
import { rng } from './kernels-helpers.js'
import { makeTinyModel } from './tiny-model.js'

let model: LlamaModel
let specs: string[] = []
const r = rng(11)
const prompts = [40, 33].map((n) => Array.from({ length: n }, () => 1 + Math.floor(r() * 4000)))
const run = async (spec: string, prompt: number[], policy = createPolicy(spec, model.config)!) => {
  const r = await model.generate(prompt, { maxNewTokens: 5, policy }).result
  return { ids: r.ids, kv: r.stats.kvBytes.total }
}

beforeAll(async () => {
  model = await loadModel(makeTinyModel({ eos_token_id: null }), { backend: 'wasm' })
  specs = [...specsPerPolicy(randomGatesFile(model.config), randomScoresFile(model.config)).values()].flat()
})
afterAll(() => model?.dispose())

describe('a policy object holds no request state', () => {
  it('every registered policy: reused one request after another, each request gets what it gets alone', async () => {
    let cases = 0
    for (const spec of specs) {
      const alone = [await run(spec, prompts[0]), await run(spec, prompts[1])]
      const shared = createPolicy(spec, model.config)!
      // the first prompt twice, then the second: state left by a request must not reach the next
      const seq = [await run(spec, prompts[0], shared), await run(spec, prompts[1], shared), await run(spec, prompts[0], shared)]
      expect(seq, spec).toEqual([alone[0], alone[1], alone[0]])
      cases++
    }
    expect(cases).toBe(specs.length)
  })

  it('every registered policy: shared by concurrent requests, each request gets what it gets alone', async () => {
    for (const spec of specs) {
      const alone = [await run(spec, prompts[0]), await run(spec, prompts[1])]
      const shared = createPolicy(spec, model.config)!
      const both = await Promise.all([run(spec, prompts[0], shared), run(spec, prompts[1], shared)])
      expect(both, spec).toEqual(alone)
    }
  })
})
