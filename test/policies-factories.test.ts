import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { renderFactories } from '../tools/policy-types.js'
import { adakv, compose, full, policyFromSpec, snapkv, streamingllm, think, type PolicyConfig } from '../src/policies/factories.js'
import * as factories from '../src/policies/factories.js'
import { createPolicy, listPolicies, PolicySpecError } from '../src/policies/registry.js'
import { resolvePolicy } from '../src/policies/config.js'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import type { GenerateOptions } from '../src/model/types.js'

const shape = { layers: 4, qHeads: 6, kvHeads: 2, headDim: 64, group: 3 }
const errorOf = (f: () => unknown): string => {
  try {
    f()
  } catch (e) {
    expect(e).toBeInstanceOf(PolicySpecError)
    return (e as Error).message
  }
  throw new Error('expected a PolicySpecError')
}

describe('typed policy factories', () => {
  it('src/policies/factories.ts is what the registry generates now (npm run gen:policies)', () => {
    expect(readFileSync('src/policies/factories.ts', 'utf8')).toBe(renderFactories())
  })

  it('there is one factory per registered policy, and with no options it builds what the bare name builds', () => {
    for (const { name } of listPolicies()) {
      const make = (factories as unknown as Record<string, (o?: object) => PolicyConfig>)[name.replace(/[-_]([a-z0-9])/g, (_, c: string) => c.toUpperCase())]
      expect(make, name).toBeTypeOf('function')
      const built = (f: () => unknown) => {
        try {
          const p = f() as { name: string; needs: object }
          return { name: p.name, needs: p.needs }
        } catch (e) {
          return { error: (e as Error).message }
        }
      }
      // a policy that cannot work without an option (trimkv's gates) refuses both alike, the factory at its call
      expect(built(() => resolvePolicy(make(), shape))).toEqual(built(() => createPolicy(name, shape)))
      if (!('error' in built(() => createPolicy(name, shape)))) expect(make().spec).toBe(name)
    }
  })

  it('writes the spec string of a setting, and reads it back to the same setting', () => {
    const cases: [PolicyConfig, string][] = [
      [full(), 'full'],
      [snapkv({ budget: 0.25, window: 32 }), 'snapkv:budget=0.25,window=32'],
      [snapkv({ tokens: 512, pooling: 'avg', kernel: 9 }), 'snapkv:tokens=512,pooling=avg,kernel=9'],
      [streamingllm({ budget: 0.5, sinks: 4 }), 'streamingllm:budget=0.5,sinks=4'],
      [compose(snapkv({ budget: 0.5 }), think({ ratio: 0.5 })), 'snapkv:budget=0.5+think:ratio=0.5'],
      [adakv({ budget: 1e-3 }), 'adakv:budget=0.001'],
    ]
    for (const [config, spec] of cases) {
      expect(config.spec).toBe(spec)
      expect(policyFromSpec(spec)).toEqual(config)
    }
  })

  // one validation path: a typed option and the same option in a spec string fail with the same message
  const bad: [string, () => PolicyConfig, string][] = [
    ['a zero budget', () => snapkv({ budget: 0 }), 'snapkv:budget=0'],
    ['a budget above 1', () => snapkv({ budget: 1.5 }), 'snapkv:budget=1.5'],
    ['a fractional window', () => snapkv({ window: 2.5 }), 'snapkv:window=2.5'],
    ['a zero window', () => adakv({ window: 0 }), 'adakv:window=0'],
    ['an unknown pooling', () => snapkv({ pooling: 'median' as 'avg' }), 'snapkv:pooling=median'],
    ['budget and tokens together', () => snapkv({ budget: 0.5, tokens: 100 }), 'snapkv:budget=0.5,tokens=100'],
    ['an unknown option', () => snapkv({ windwo: 8 } as object), 'snapkv:windwo=8'],
    ['a ratio of 1 (exclusive bound)', () => think({ ratio: 1 }), 'think:ratio=1'],
    ['a boolean given as a number', () => adakv({ compensate: 1 as unknown as boolean }), 'adakv:compensate=1'],
  ]
  it.each(bad)('%s fails when the setting is made, with the message the spec string gets', (_name, typed, spec) => {
    const message = errorOf(typed)
    expect(message).toBe(errorOf(() => createPolicy(spec, shape)))
    expect(message).toBe(errorOf(() => policyFromSpec(spec)))
  })

  it('refuses full in a composition, an empty composition, and parts that are not settings', () => {
    expect(errorOf(() => compose(full(), snapkv()))).toMatch(/"full" cannot be composed/)
    expect(errorOf(() => compose())).toMatch(/at least one policy/)
    expect(errorOf(() => compose('snapkv' as unknown as PolicyConfig))).toMatch(/from a policy factory/)
  })
})

describe('generate takes a typed setting', () => {
  let model: LlamaModel
  beforeAll(async () => {
    model = await loadModel('models/fixture-14m', { backend: 'wasm' })
  })
  afterAll(() => model?.dispose())

  it.each([
    ['snapkv:budget=0.25,window=16', snapkv({ budget: 0.25, window: 16 })],
    ['streamingllm:budget=0.25', streamingllm({ budget: 0.25 })],
    ['snapkv:budget=0.5+think:ratio=0.5', compose(snapkv({ budget: 0.5 }), think({ ratio: 0.5 }))],
  ])('%s: the same tokens and KV bytes as the spec string and the built policy', async (spec, typed) => {
    const text = 'The pass key is 42137. Remember it. '.repeat(2) + 'The quick brown fox jumps over the lazy dog. '.repeat(15) + 'What is the pass key? The pass key is'
    const ids = [0, ...model.tokenizer.encode(text)]
    const run = async (policy: GenerateOptions['policy']) => {
      const { ids: out, stats } = await model.generate(ids, { maxNewTokens: 6, policy }).result
      return { out, kv: stats.kvBytes.total }
    }
    const a = await run(typed)
    expect(a.kv).toBeLessThan((await run(full())).kv)
    expect(await run(spec)).toEqual(a)
    expect(await run(createPolicy(spec, model.config)!)).toEqual(a)
  })

  it('a bad setting throws at the generate call, before any work', () => {
    expect(() => model.generate([0, 1, 2], { policy: 'snapkv:budget=2' })).toThrow(PolicySpecError)
  })

  it.each([
    ['a plain options object', { budget: 0.25 }],
    ['a number', 42],
    ['an array of names', ['snapkv']],
    ['an object without start()', { name: 'mine', needs: {} }],
  ])('%s as the policy throws PolicySpecError naming it at the generate call', (_, policy) => {
    const bad = policy as unknown as GenerateOptions['policy']
    expect(errorOf(() => model.generate([0, 1, 2], { policy: bad }))).toContain(JSON.stringify(policy))
    expect(errorOf(() => resolvePolicy(bad, shape))).toMatch(/spec string, a setting from a policy factory .* or a built Policy/)
  })
})
