/**
 * loadModel's bad values are shown as given (shownValue) and the chunk refusal names loadModel:
 * `threads: '1'` read "got 1", as if 1 were refused; `contextLimit: NaN` read "got null" (JSON's NaN);
 * `chunk: '64'` said "chunk must be ..." without the call.
 */
import { describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import { ModelInputError } from '../src/model/errors.js'

describe('loadModel values of the wrong type', () => {
  it.each([
    [{ threads: '1' }, 'loadModel: threads must be an integer in [1, 256], got "1"'],
    [{ contextLimit: NaN }, 'loadModel: contextLimit must be an integer of at least 2 tokens, got NaN'],
    [{ contextLimit: '9000' }, 'loadModel: contextLimit must be an integer of at least 2 tokens, got "9000"'],
    [{ chunk: '64' }, 'loadModel: chunk must be an integer in [1, 4096], got "64"'],
  ] as [Record<string, unknown>, string][])('%j: ModelInputError before any file is read', async (options, message) => {
    await expect(loadModel('/nonexistent-folder', options)).rejects.toThrow(ModelInputError)
    await expect(loadModel('/nonexistent-folder', options)).rejects.toThrow(message)
  })
})
