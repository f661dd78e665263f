/**
 * Kind 8 of issue 8: everything a spec says is checked when the policy is created, each kind of mistake
 * with its own exported error class (all PolicySpecError), and everything accepted acts.
 * Grids: bad specs x their error class and the value the message names; compensate=true x every policy
 * that takes it (the decision adds a compensation token); string options keep their written form.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as kvkit from '../src/index.js'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { createPolicy, getPolicyDefinition, listPolicies } from '../src/policies/registry.js'
import type { Decision } from '../src/cache/types.js'
import type { Policy } from '../src/policies/types.js'
import { makeTinyModel } from './tiny-model.js'

let model: LlamaModel
beforeAll(async () => {
  model = await loadModel(makeTinyModel({ eos_token_id: null }), { backend: 'wasm' })
})
afterAll(() => model?.dispose())

const {
  PolicySpecError, PolicySpecSyntaxError, UnknownPolicyError, UnknownPolicyOptionError, PolicyOptionValueError,
  PolicyOptionConflictError, PolicyFileError, PolicyCompositionError,
} = kvkit

describe('bad specs are refused at creation, typed', () => {
  const CASES: [string, typeof PolicySpecError, RegExp][] = [
    ['trimkv', PolicyOptionValueError, /gatesFile/],
    ['trimkv:gatesFile=/no/such/gates.json', PolicyFileError, /\/no\/such\/gates\.json/],
    ['streamingllm:rerotate=true+think', PolicyCompositionError, /streamingllm.*think/],
    ['snapkv:every=8+think', PolicyCompositionError, /snapkv.*think/],
    ['h2o:every=1+think', PolicyCompositionError, /h2o/],
    ['keyformer+think', PolicyCompositionError, /keyformer/],
    ['razorattention:calibrationFile=/missing', PolicyFileError, /\/missing/],
    ['razorattention:heads=3.10', PolicyOptionValueError, /3\.10/],
    ['razorattention:heads=0-1', PolicyOptionValueError, /0-1/],
    ['snapkv:__proto__=1', UnknownPolicyOptionError, /"__proto__"/],
    ['snapkv:constructor=1', UnknownPolicyOptionError, /"constructor"/],
    ['snapkv:toString=x', UnknownPolicyOptionError, /"toString"/],
    ['snapkv:kernel=4', PolicyOptionValueError, /kernel=4/],
    ['snapkv:budget=2', PolicyOptionValueError, /budget=2/],
    ['h2o:normalize=1', PolicyOptionValueError, /normalize=1/],
    ['snapkv:pooling=median', PolicyOptionValueError, /median/],
    ['snapkv:budget=0.5,tokens=3', PolicyOptionConflictError, /budget.*tokens/],
    ['snapky', UnknownPolicyError, /snapky/],
    ['full:x=1', UnknownPolicyOptionError, /x/],
    ['full+snapkv', PolicyCompositionError, /full/],
    ['', PolicySpecSyntaxError, /empty/],
    ['snapkv:budget', PolicySpecSyntaxError, /budget/],
    ['snapkv:a=1,a=2', PolicySpecSyntaxError, /twice/],
    ['9x', PolicySpecSyntaxError, /9x/],
  ]
  it('bad spec x error class x the value named', () => {
    for (const [spec, Kind, names] of CASES) {
      let err: unknown
      try {
        createPolicy(spec, model.config)
      } catch (e) {
        err = e
      }
      expect(err, spec).toBeInstanceOf(Kind)
      expect(err, spec).toBeInstanceOf(PolicySpecError)
      expect((err as Error).message, spec).toMatch(names)
    }
    expect(CASES.length).toBe(24)
  })
})

/** the policy's prefill decision on a 30-token prompt, seen from inside the runtime */
async function prefillDecision(policy: Policy): Promise<Decision | null> {
  let got: Decision | null = null
  const spy: Policy = { ...policy, start: () => {
    const s = policy.start()
    return { ...s, onPrefillEnd: (ctx) => (got = s.onPrefillEnd?.(ctx) ?? null) }
  } }
  await model.generate(Array.from({ length: 30 }, (_, i) => 20 + i * 7), { maxNewTokens: 1, policy: spy }).result
  return got
}

describe('everything accepted acts', () => {
  it('compensate=true x every policy that takes it: each evicting head gets one compensation token', async () => {
    const takers = listPolicies().filter((p) => getPolicyDefinition(p.name).options.some((o) => o.name === 'compensate')).map((p) => p.name)
    expect(takers).toContain('h2o')
    for (const name of takers) {
      const spec = name === 'h2o' || name === 'knorm' || name === 'tova' || name === 'streamingllm' ? `${name}:tokens=8` : `${name}:tokens=8,window=4`
      const plain = (await prefillDecision(createPolicy(spec, model.config)!))!
      const comp = (await prefillDecision(createPolicy(`${spec},compensate=true`, model.config)!))!
      expect(plain.heads.every((h) => !h.extra), name).toBe(true)
      expect(comp.heads.length, name).toBeGreaterThan(0)
      for (const h of comp.heads) expect(h.extra?.length, name).toBe(1)
      // within the budget: 7 kept + the compensation token a head (AdaKV and PyramidKV share it unevenly)
      expect(comp.heads.reduce((a, h) => a + h.keep.length + 1, 0), name).toBeLessThanOrEqual(8 * comp.heads.length)
    }
  })

  it('string options keep their written form: heads=1.10 is layer 1, head 10, never the number 1.1', () => {
    expect(kvkit.parsePolicySpec('razorattention:heads=1.10').written).toEqual({ heads: '1.10' })
    const wide = { layers: 4, qHeads: 12, kvHeads: 12, headDim: 8, group: 1 }
    expect(() => createPolicy('razorattention:heads=1.10', wide)).not.toThrow()
    expect(() => createPolicy('razorattention:heads=1.10', model.config)).toThrow(/1\.10/)
  })
})
