import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LlamaModel } from '../src/model/model.js'
import { loadModel } from '../src/node/load.js'
import { PolicyFileError } from '../src/policies/errors.js'
import { fixturePrompt } from './threads-helpers.js'

// RazorAttention's calibrationFile with too little text (an empty file, one character) failed the
// generation with a plain Error, where the README says a file an option names is a PolicyFileError (a
// PolicySpecError): a caller sorting policy mistakes from runtime failures by class could not. It is
// now a PolicyFileError naming the file, before any prefill.

const dir = mkdtempSync(join(tmpdir(), 'kvkit-tryout-razor-'))

describe('RazorAttention calibration text too short to calibrate on', () => {
  let model: LlamaModel
  beforeAll(async () => {
    model = await loadModel('models/fixture-14m', { threads: 1, wasm: { relaxed: false } })
  })
  afterAll(() => model?.dispose())

  it.each([['empty', ''], ['one character', 'a']])('an %s file is a PolicyFileError naming it, no token streamed', async (_what, text) => {
    const file = join(dir, `calibration-${text.length}.txt`)
    writeFileSync(file, text)
    const seen: number[] = []
    const run = model.generate(fixturePrompt(64), { maxNewTokens: 2, policy: `razorattention:calibrationFile=${file}`, onToken: (t) => { seen.push(t.id) } }).result
    await expect(run).rejects.toThrow(PolicyFileError)
    await expect(model.generate(fixturePrompt(64), { maxNewTokens: 2, policy: `razorattention:calibrationFile=${file}` }).result).rejects.toThrow(/calibrationFile ".*calibration-\d\.txt" has fewer than 2 tokens/)
    expect(seen).toEqual([])
  })
})
