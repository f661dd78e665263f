/**
 * full() refuses options as the spec does (UnknownPolicyOptionError, "policy full takes no options, got
 * budget"): `full({ budget: 0.25 })` from JavaScript was the full cache, silently, while
 * `createPolicy('full:budget=0.25')` is refused; the README says the factory and the spec string go
 * through one validation. full() and full({}) are the full cache as before.
 */
import { describe, expect, it } from 'vitest'
import { full } from '../src/policies/config.js'
import { createPolicy, UnknownPolicyOptionError } from '../src/policies/registry.js'

const shape = { layers: 8, qHeads: 6, kvHeads: 2, headDim: 64, group: 3 }

describe('full() with options', () => {
  it('options given: UnknownPolicyOptionError naming them, as the spec string', () => {
    expect(() => createPolicy('full:budget=0.25', shape)).toThrow('policy full takes no options, got budget')
    const cases: [unknown[], string][] = [
      [[{ budget: 0.25 }], 'policy full takes no options, got budget'],
      [[{ budget: 0.25, window: 8 }], 'policy full takes no options, got budget, window'],
      [['snapkv'], 'policy full takes no options, got "snapkv"'],
    ]
    for (const [args, msg] of cases) {
      const call = () => (full as (...a: unknown[]) => unknown)(...args)
      expect(call, msg).toThrow(UnknownPolicyOptionError)
      expect(call, msg).toThrow(msg)
    }
  })

  it('none given: the full cache', () => {
    expect(full().spec).toBe('full')
    expect((full as (o: object) => { spec: string })({}).spec).toBe('full')
  })
})
