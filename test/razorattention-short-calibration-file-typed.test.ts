/**
 * RazorAttention's calibrationFile that is there but holds under 2 tokens (an empty file, one word) is
 * a PolicyFileError naming the file and its token count, when the policy prepares (the file is read with
 * the model's tokenizer), before the request's prefill: it was a plain Error.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createPolicy, PolicyFileError } from '../src/index.js'
import { loadModel } from '../src/node/index.js'
import { defaultModelDir } from '../src/eval/paths.js'

const dir = mkdtempSync(join(tmpdir(), 'kvkit-razor-calib-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('a RazorAttention calibration file too short to calibrate on', () => {
  it.each([['empty.txt', '', 0], ['one-word.txt', 'x', 1]])('%s: a PolicyFileError naming it and its token count', async (name, text, tokens) => {
    const file = join(dir, name)
    writeFileSync(file, text)
    const model = await loadModel(defaultModelDir(), { backend: 'reference', threads: 1 })
    try {
      const policy = createPolicy(`razorattention:budget=0.5,calibrationFile=${file}`, model.config)!
      const prepared = policy.prepare!(model)
      await expect(prepared).rejects.toBeInstanceOf(PolicyFileError)
      await expect(prepared).rejects.toThrow(`razorattention: calibrationFile ${JSON.stringify(file)} has ${tokens} tokens`)
    } finally {
      model.dispose()
    }
  })
})
