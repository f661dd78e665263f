/**
 * MiKV keeps the important tokens in `hi` bits and the rest in `lo` bits. `mikv:hi=2,lo=8` was accepted
 * and stored the important tokens coarser than the others (the method inverted, silently); it is now
 * refused when the policy is made, from a spec string or a factory's setting.
 */
import { describe, expect, it } from 'vitest'
import { createPolicy } from '../src/policies/registry.js'
import { mikv } from '../src/policies/factories.js'
import { PolicyOptionConflictError } from '../src/policies/errors.js'
import { resolvePolicy } from '../src/policies/config.js'

const shape = { layers: 4, qHeads: 6, kvHeads: 2, headDim: 64, group: 3 }

describe('mikv hi and lo', () => {
  it('hi fewer bits than lo: PolicyOptionConflictError naming both', () => {
    for (const [spec, msg] of [
      ['mikv:hi=2,lo=8', 'hi=2 bits is fewer than lo=8'],
      ['mikv:hi=1', 'hi=1 bits is fewer than lo=2'],
    ] as const) {
      expect(() => createPolicy(spec, shape), spec).toThrow(PolicyOptionConflictError)
      expect(() => createPolicy(spec, shape), spec).toThrow(msg)
    }
    // the factory checks each option alone; the pair is checked when the setting becomes a policy
    expect(() => resolvePolicy(mikv({ hi: 4, lo: 8 }), shape)).toThrow(PolicyOptionConflictError)
  })

  it('hi at least lo is made: the default, equal precisions, 4 over 1', () => {
    for (const spec of ['mikv', 'mikv:hi=4,lo=4', 'mikv:hi=4,lo=1', 'mikv:lo=8']) expect(createPolicy(spec, shape)?.name, spec).toBe('mikv')
  })
})
