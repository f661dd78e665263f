/**
 * kvkit/node's loadModel given a `.gguf` path that does not exist says the GGUF file was not found: it
 * said "model folder not found", sending the caller looking for a folder. A missing path of any other
 * name keeps the folder message. readModelFacts (the eval's and the commands' model check) said "model
 * folder not found" for a file that is there, a .gguf file among them; it now says the path is a file.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { loadModel, ModelLoadError } from '../src/node/index.js'
import { EvalArgumentError } from '../src/eval/index.js'
import { readModelFacts } from '../src/eval/model-facts.js'

const dir = mkdtempSync(join(tmpdir(), 'kvkit-missing-gguf-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** what loadModel rejects with: [class, message] */
async function refused(path: string): Promise<[unknown, string]> {
  const e = await loadModel(path, { backend: 'reference', threads: 1 }).then(() => undefined, (err: unknown) => err)
  return [(e as Error)?.constructor, (e as Error)?.message]
}

describe('a model path that is not there', () => {
  it.each(['model-q8_0.gguf', 'Model.Q4_K_M.GGUF'])('%s: "GGUF file not found", a ModelLoadError', async (name) => {
    const path = join(dir, name)
    expect(await refused(path)).toEqual([ModelLoadError, `GGUF file not found: ${path}`])
  })

  it('any other name: still "model folder not found"', async () => {
    const path = join(dir, 'no-such-model')
    expect(await refused(path)).toEqual([ModelLoadError, `model folder not found: ${path}`])
  })

  it('readModelFacts of a file that is there says it is a file, not that the folder is missing', () => {
    const file = join(dir, 'present.gguf')
    writeFileSync(file, 'GGUF')
    expect(() => readModelFacts(file)).toThrow(EvalArgumentError)
    expect(() => readModelFacts(file)).toThrow(`model ${file} is a file, not a model folder`)
  })
})
