/**
 * The fixture model for one test file: loaded on the wasm core with one kernel thread before its
 * tests, disposed after them. `const fixture = useFixtureModel()`, then `fixture.model` inside a test.
 */
import { afterAll, beforeAll } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { defaultModelDir } from '../src/eval/paths.js'

export function useFixtureModel(): { readonly model: LlamaModel } {
  const holder = { model: undefined as unknown as LlamaModel }
  beforeAll(async () => {
    holder.model = (await loadModel(defaultModelDir(), { backend: 'wasm', threads: 1 })) as LlamaModel
  })
  afterAll(() => holder.model?.dispose())
  return holder
}
