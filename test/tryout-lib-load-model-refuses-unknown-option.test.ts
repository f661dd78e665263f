/**
 * loadModel refuses an option it does not know (a misspelling such as `backnd` or `kv_dtype` would be
 * ignored and its default used, silently), as generate does, with a ModelInputError naming it, before
 * any file is read: from a folder (kvkit/node) and from a map of files (the root entry).
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadModel as loadFolder } from '../src/node/load.js'
import { loadModel } from '../src/model/load.js'
import { ModelInputError } from '../src/model/errors.js'
import { defaultModelDir } from '../src/eval/paths.js'
import type { LoadOptions } from '../src/model/types.js'

const dir = defaultModelDir()
const files = () => Object.fromEntries(readdirSync(dir).filter((f) => /\.(json|safetensors)$/.test(f)).map((f) => [f, new Blob([readFileSync(join(dir, f))])]))

describe('loadModel refuses an unknown option by name', () => {
  // a model that loads anyway is disposed, so that the failure is the test's, not a leaked worker's
  const outcome = async (load: Promise<{ dispose(): void }>): Promise<unknown> => {
    try {
      ;(await load).dispose()
      return 'loaded'
    } catch (e) {
      return e
    }
  }

  it.each([
    ['backnd', { backnd: 'wasm', threads: 1 }],
    ['kv_dtype', { kv_dtype: 'float16', threads: 1 }],
    ['maxNewTokens', { backend: 'wasm', threads: 1, maxNewTokens: 8 }],
  ])('%s, from a folder and from a map of files', async (name, options) => {
    for (const load of [() => loadFolder(dir, options as LoadOptions), () => loadModel(files(), options as LoadOptions)]) {
      const e = await outcome(load())
      expect(e).toBeInstanceOf(ModelInputError)
      expect((e as Error).message).toContain(`loadModel: unknown option "${name}"`)
    }
  })

  it('options that are not an object', async () => {
    await expect(loadFolder(dir, null as unknown as LoadOptions)).rejects.toThrow('loadModel: options must be an object, got null')
  })

  it('known options still load, also given as undefined', async () => {
    const model = await loadFolder(dir, { backend: 'wasm', threads: 1, contextLimit: undefined, kvDtype: undefined })
    expect(model.config.layers).toBe(8)
    model.dispose()
  })
})
