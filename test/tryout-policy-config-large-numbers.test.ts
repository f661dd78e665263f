/**
 * A factory's number that JavaScript prints with an exponent sign (`snapkv({ tokens: 1e21 })` prints
 * as 1e+21) was refused as "cannot be written in a spec string", though the spec `snapkv:tokens=1e21`
 * is accepted. Such numbers are written without the sign and read back as the same setting.
 */
import { describe, expect, it } from 'vitest'
import { policyFromSpec, snapkv, compose, think } from '../src/policies/factories.js'
import { resolvePolicy } from '../src/policies/config.js'

const shape = { layers: 4, qHeads: 6, kvHeads: 2, headDim: 64, group: 3 }

describe('policy settings with numbers printed in exponent form', () => {
  it('tokens 1e21 and budget 1e-7 write a spec that reads back as the same setting', () => {
    for (const config of [snapkv({ tokens: 1e21 }), snapkv({ budget: 1e-7, window: 4 }), compose(snapkv({ tokens: 2e300 }), think({ ratio: 0.5 }))]) {
      expect(config.spec).not.toMatch(/e\+/)
      const back = policyFromSpec(config.spec)
      expect(back.parts).toEqual(config.parts)
      expect(resolvePolicy(config, shape)?.name).toBe(resolvePolicy(back, shape)?.name)
    }
    expect(snapkv({ tokens: 1e21 }).spec).toBe('snapkv:tokens=1e21')
  })
})
