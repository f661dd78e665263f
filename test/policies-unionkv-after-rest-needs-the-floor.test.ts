/**
 * unionkv's afterRest (what fills the budget after LagKV's floor) given where that floor can never bind
 * is a PolicyOptionValueError naming it, as lagShare and blockRank are refused where they cannot act:
 * afterRest=keydiff with agnosticScore=keydiff, mass or keydiff-lag (the floor is LagKV's or the gates'
 * density only) or with afterFloor=0 was taken and did nothing, silently.
 */
import { describe, expect, it } from 'vitest'
import { createPolicy, PolicySpecError } from '../src/policies/registry.js'

const model = { layers: 2, qHeads: 4, kvHeads: 2, headDim: 8, group: 2 }

describe('unionkv afterRest where the floor cannot bind', () => {
  it.each([
    ['unionkv:agnosticScore=keydiff,afterRest=keydiff', 'agnosticScore=keydiff'],
    ['unionkv:agnosticScore=mass,afterRest=votes', 'agnosticScore=mass'],
    ['unionkv:agnosticScore=keydiff-lag,afterRest=keydiff', 'agnosticScore=keydiff-lag'],
    ['unionkv:afterFloor=0,afterRest=keydiff', 'afterFloor=0'],
  ])('%s: refused, naming %s', (spec, named) => {
    expect(() => createPolicy(spec, model)).toThrow(PolicySpecError)
    expect(() => createPolicy(spec, model)).toThrow(`unionkv: afterRest=${spec.split('afterRest=')[1]} acts only where afterFloor binds, which it cannot with ${named}`)
  })

  it.each(['unionkv:afterRest=keydiff', 'unionkv:afterRest=votes', 'unionkv:agnosticScore=keydiff'])('%s: taken', (spec) => {
    expect(createPolicy(spec, model)).not.toBeNull()
  })
})
