/**
 * registerPolicy refuses a definition that would fail later, untyped (a TypeError at the first
 * createPolicy or listPolicies): no options array, an unknown stage, no create, a malformed option.
 * A create that returns no policy is a PolicySpecError naming the policy at createPolicy.
 */
import { describe, expect, it } from 'vitest'
import { createPolicy, listPolicies, PolicySpecError, registerPolicy, type PolicyDefinition } from '../src/policies/registry.js'

const shape = { layers: 2, qHeads: 2, kvHeads: 1, headDim: 8, group: 2 }
const base = { description: 'keeps all', stage: 'eviction', options: [], create: () => ({ name: 'x', needs: {} }) }

describe('registerPolicy refuses a malformed definition by name', () => {
  it.each([
    ['no options', { options: undefined }, /tryout_a's options must be an array/],
    ['an unknown stage', { stage: 'prefill' }, /tryout_a's stage must be one of eviction, channels, quantization, selection, got "prefill"/],
    ['no create', { create: undefined }, /tryout_a's create must be a function/],
    ['a check that is not a function', { check: 1 }, /tryout_a's check must be a function, got 1/],
    ['no description', { description: undefined }, /tryout_a's description must be a string/],
    ['an option of no type', { options: [{ name: 'k', default: 1, description: 'k' }] }, /options must each have a name and a type/],
  ])('%s', (_, change, message) => {
    const def = { ...base, ...change, name: 'tryout_a' } as unknown as PolicyDefinition
    expect(() => registerPolicy(def)).toThrow(PolicySpecError)
    expect(() => registerPolicy(def)).toThrow(message)
    // nothing was registered: the registry still lists and builds every policy
    expect(listPolicies().some((p) => p.name === 'tryout_a')).toBe(false)
  })

  it('a create that returns no policy is refused at createPolicy, typed', () => {
    registerPolicy({ ...base, name: 'tryout_null', create: () => null } as unknown as PolicyDefinition)
    expect(() => createPolicy('tryout_null', shape)).toThrow(PolicySpecError)
    expect(() => createPolicy('tryout_null', shape)).toThrow('policy tryout_null: create returned null, not a Policy')
  })
})
