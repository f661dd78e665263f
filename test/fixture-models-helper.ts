import { afterAll, beforeAll } from 'vitest'
import { loadModel } from '../src/node/load.js'
import { defaultModelDir } from '../src/eval/paths.js'
import type { LlamaModel } from '../src/model/model.js'

/**
 * The fixture model on the wasm backend, one instance per entry of `threads` (loaded before the
 * enclosing suite's tests, disposed after them); read the array inside the tests.
 */
export function fixtureModelsOnThreads(threads: readonly number[]): LlamaModel[] {
  const models: LlamaModel[] = []
  beforeAll(async () => {
    for (const t of threads) models.push((await loadModel(defaultModelDir(), { backend: 'wasm', threads: t })) as LlamaModel)
  })
  afterAll(() => models.forEach((m) => m.dispose()))
  return models
}
