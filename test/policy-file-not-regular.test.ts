/**
 * A trained part's file (TRIM-KV gates, NOSA scores) that names a folder is the file's fault: its typed
 * file error, naming the path, when the policy is made; not the runtime's raw EISDIR wrapped as an
 * option error without the path.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createPolicy, PolicyFileError } from '../src/index.js'
import { readModelFacts } from '../src/eval/model-facts.js'
import { GateFileError } from '../src/policies/trimkv-gates.js'
import { NosaScoresFileError } from '../src/policies/nosa-scores.js'

const dir = mkdtempSync(join(tmpdir(), 'kvkit-policy-dir-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const shape = readModelFacts('models/fixture-14m').shape

describe('a folder where a policy file is expected', () => {
  const folder = join(dir, 'gates.safetensors')
  mkdirSync(folder)
  it('trimkv gatesFile: GateFileError naming the path', () => {
    const make = () => createPolicy(`trimkv:budget=0.25,gatesFile=${folder}`, shape)
    expect(make).toThrow(GateFileError)
    expect(make).toThrow(PolicyFileError)
    expect(make).toThrow(`trimkv gates: "${folder}" is not a regular file`)
  })
  it('nosa scoresFile: NosaScoresFileError naming the path', () => {
    const make = () => createPolicy(`nosa:tokens=128,scoresFile=${folder}`, shape)
    expect(make).toThrow(NosaScoresFileError)
    expect(make).toThrow(`nosa scores: "${folder}" is not a regular file`)
  })
})
