/**
 * A factory's setting is written as a spec string, and refused only where the spec parser could not read
 * it back as the same setting. It refused more than that:
 * - numbers JavaScript prints with an exponent sign (`snapkv({ tokens: 1e21 })`, 1e+21), though the
 *   spec `snapkv:tokens=1e21` is accepted;
 * - file paths with a space or a colon (`trimkv({ gatesFile: 'C:/My Models/gates.safetensors' })`),
 *   though the same path in a spec string is read as written.
 * Commas, a + before a letter and spaces at either end still cannot be carried, and are refused.
 * policyFromSpec read string options as numbers where they look like one: `razorattention:heads=1.10`
 * (layer 1, head 10) became heads=1.1 (layer 1, head 1), silently another policy.
 */
import { describe, expect, it } from 'vitest'
import { policyFromSpec, snapkv, compose, think, trimkv, razorattention } from '../src/policies/factories.js'
import { resolvePolicy, type PolicyConfig } from '../src/policies/config.js'
import { createPolicy } from '../src/policies/registry.js'
import { PolicySpecError } from '../src/policies/errors.js'

const shape = { layers: 4, qHeads: 6, kvHeads: 2, headDim: 64, group: 3 }
const readsBack = (config: PolicyConfig) => expect(policyFromSpec(config.spec).parts, config.spec).toEqual(config.parts)

describe('policy settings written as spec strings', () => {
  it('tokens 1e21 and budget 1e-7 write a spec that reads back as the same setting', () => {
    for (const config of [snapkv({ tokens: 1e21 }), snapkv({ budget: 1e-7, window: 4 }), compose(snapkv({ tokens: 2e300 }), think({ ratio: 0.5 }))]) {
      expect(config.spec).not.toMatch(/e\+/)
      readsBack(config)
      expect(resolvePolicy(config, shape)?.name).toBe(resolvePolicy(policyFromSpec(config.spec), shape)?.name)
    }
    expect(snapkv({ tokens: 1e21 }).spec).toBe('snapkv:tokens=1e21')
  })

  it('file paths with spaces, colons, = or a + before a digit are written as given and read back', () => {
    for (const path of ['/tmp/My Models/gates.safetensors', 'C:/models/gates.safetensors', 'C:\\Users\\me\\gates.json', '/tmp/a=b/g+1.json']) {
      const config = trimkv({ gatesFile: path })
      expect(config.spec).toBe(`trimkv:gatesFile=${path}`)
      readsBack(config)
      expect(policyFromSpec(config.spec).parts[0].options.gatesFile).toBe(path)
    }
    readsBack(compose(snapkv({ budget: 0.5 }), razorattention({ calibrationFile: '/tmp/a book.txt' })))
  })

  it('values the parser would split or trim are refused, naming the value', () => {
    for (const path of ['/tmp/a,b.json', '/tmp/a+b.json', '/tmp/a +b.json', ' /tmp/g.json', '/tmp/g.json ', ' ']) {
      expect(() => trimkv({ gatesFile: path }), path).toThrow(PolicySpecError)
      expect(() => trimkv({ gatesFile: path }), path).toThrow(`gatesFile=${JSON.stringify(path)} cannot be written in a spec string`)
    }
  })

  it('policyFromSpec keeps string options as written: heads=1.10 stays layer 1, head 10', () => {
    const config = policyFromSpec('razorattention:heads=1.10;0.1')
    expect(config.spec).toBe('razorattention:heads=1.10;0.1')
    expect(config.parts[0].options.heads).toBe('1.10;0.1')
    // a 2-KV-head model has no head 10: refused alike from the spec and from the setting read from it
    const head10 = policyFromSpec('razorattention:heads=1.10')
    expect(() => createPolicy('razorattention:heads=1.10', shape)).toThrow(/head 1\.10 is not in/)
    expect(() => resolvePolicy(head10, shape)).toThrow(/head 1\.10 is not in/)
    expect(resolvePolicy(policyFromSpec('razorattention:heads=1.1'), shape)?.name).toBe('razorattention')
  })
})
