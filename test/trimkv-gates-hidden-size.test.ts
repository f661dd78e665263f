/**
 * TRIM-KV's gates read the hidden state entering each layer: gates written for another hidden size must
 * be refused when the policy is made (PolicyOptionValueError naming both widths), not read as several
 * rows of the wrong width (64 divides 384: the fixture's rows would be cut in six and scored silently).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createPolicy, PolicyOptionValueError } from '../src/index.js'
import { readModelFacts } from '../src/eval/model-facts.js'
import { planEvaluation } from '../src/eval/runner.js'
import { safetensorsF32 } from '../tools/safetensors-writer.js'

const MODEL = 'models/fixture-14m' // 8 layers, 2 KV heads, hidden 384
const dir = mkdtempSync(join(tmpdir(), 'kvkit-trimkv-hidden-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** gates for 8 layers and 2 KV heads reading `hidden` values */
function gates(hidden: number): string {
  const tensors = Array.from({ length: 8 }, (_, l) => [
    { name: `gates.${l}.weight`, shape: [2, hidden], data: new Float32Array(2 * hidden) },
    { name: `gates.${l}.bias`, shape: [2], data: Float32Array.from([8, 8]) },
  ]).flat()
  const p = join(dir, `gates-h${hidden}.safetensors`)
  writeFileSync(p, safetensorsF32(tensors))
  return p
}

describe('trimkv refuses gates of another hidden size', () => {
  const facts = readModelFacts(MODEL)
  it('the folder facts carry the hidden size', () => {
    expect(facts.shape.hidden).toBe(384)
  })
  for (const h of [64, 192]) {
    it(`gates reading ${h} values on a hidden size of 384`, () => {
      const spec = `trimkv:budget=0.25,gatesFile=${gates(h)}`
      expect(() => createPolicy(spec, facts.shape)).toThrow(PolicyOptionValueError)
      expect(() => createPolicy(spec, facts.shape)).toThrow(`trimkv: gates read hidden states of ${h} values, the model's hidden size is 384`)
      expect(() => planEvaluation({ model: MODEL, policies: [spec], tasks: ['passkey'], lengths: [512], samples: 1 })).toThrow(`hidden states of ${h} values`)
    })
  }
  it('gates of the right width pass', () => {
    expect(createPolicy(`trimkv:budget=0.25,gatesFile=${gates(384)}`, facts.shape)?.name).toBe('trimkv')
  })
})
