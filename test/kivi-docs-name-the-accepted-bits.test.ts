/**
 * KIVI's description, its `bits` option and README's row said 2 or 4 bits (`bits=2|4`) while 1 and 8
 * are accepted too (kivi.ts FORMATS): what they name now is exactly what createPolicy accepts.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { createPolicy, getPolicyDefinition } from '../src/policies/registry.js'
import type { ModelShape } from '../src/policies/types.js'

const shape: ModelShape = { layers: 2, qHeads: 4, kvHeads: 2, headDim: 64, group: 2 }
const accepted = [1, 2, 3, 4, 5, 6, 7, 8].filter((b) => {
  try {
    createPolicy(`kivi:bits=${b}`, shape)
    return true
  } catch {
    return false
  }
})

describe('KIVI names the bit widths it accepts', () => {
  it('accepts 1, 2, 4 and 8 bits', () => expect(accepted).toEqual([1, 2, 4, 8]))

  it('its description and its bits option name them all', () => {
    const def = getPolicyDefinition('kivi')
    expect(def.description).toMatch(/1, 2, 4 or 8 bits/)
    expect(def.options.find((o) => o.name === 'bits')!.description).toMatch(/1, 2, 4 or 8/)
  })

  it("README's policy row names them all", () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
    expect(readme).toContain(`\`kivi:bits=${accepted.join('|')},residual=128,`)
  })
})
