import { describe, expect, it } from 'vitest'
import { crossEntropySum, perplexity, heldOutText } from '../src/eval/perplexity.js'
import { loadModel } from '../src/node/load.js'
import { loadBooks } from '../src/eval/text.js'
import { defaultBooksDir, defaultModelDir } from '../src/eval/paths.js'

describe('perplexity', () => {
  it('cross-entropy: uniform logits cost log V a prediction; a confident right guess costs ~0', () => {
    const V = 8
    expect(crossEntropySum(new Float32Array(3 * V), [1, 2, 3], V)).toBeCloseTo(2 * Math.log(V), 6)
    const logits = new Float32Array(2 * V)
    logits[5] = 30 // position 0 predicts id 5
    expect(crossEntropySum(logits, [0, 5], V)).toBeLessThan(1e-6)
    expect(crossEntropySum(logits, [0, 4], V)).toBeCloseTo(30, 3)
    expect(() => crossEntropySum(new Float32Array(5), [1, 2], V)).toThrow(/expected 2 x 8/)
  })

  it('of the fixture on held-out text is near what training measured (74 at 2048 tokens), not thousands', async () => {
    const model = await loadModel(defaultModelDir())
    try {
      const books = loadBooks(defaultBooksDir())
      const opts = { books, length: 512, seed: 1, bosId: 0 }
      const ids = heldOutText(model, opts, 0)
      expect(ids).toHaveLength(512)
      expect(ids[0]).toBe(0)
      const ppl = await perplexity(model, { ...opts, samples: 1 })
      expect(ppl).toBeGreaterThan(15)
      expect(ppl).toBeLessThan(250)
    } finally {
      model.dispose()
    }
  })
})
