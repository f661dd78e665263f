/**
 * Two loops iterating one generation at the same time (a UI stream and a log, say) each get every token.
 * The generation kept one waiting iterator: the second loop to wait replaced the first's wake-up, and the
 * first waited forever (`for await` over the same generation in two places hung).
 */
import { describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import { makeTinyModel } from './tiny-model.js'

const folder = makeTinyModel({ eos_token_id: null })
const prompt = [0, 11, 12, 13, 14]

describe('one generation, several iterators', () => {
  it('two and three concurrent loops each yield result.ids in order, and all end', async () => {
    const model = await loadModel(folder, { backend: 'wasm' })
    for (const loops of [2, 3]) {
      const gen = model.generate(prompt, { maxNewTokens: 6 })
      const consume = async () => {
        const ids: number[] = []
        for await (const t of gen) ids.push(t.id)
        return ids
      }
      const timeout = new Promise<string>((r) => setTimeout(() => r('a loop never ended'), 10_000))
      const got = await Promise.race([Promise.all(Array.from({ length: loops }, consume)), timeout])
      const { ids } = await gen.result
      expect(ids).toHaveLength(6)
      expect(got, `${loops} loops`).toEqual(Array.from({ length: loops }, () => ids))
    }
    model.dispose()
  })
})
