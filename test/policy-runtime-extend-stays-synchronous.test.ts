/**
 * PolicyRuntime.extend is synchronous, as before the reconstruction learned to yield (extendAsync): a
 * policy whose synchronous onPrefillEnd extends the cache by more than a prefill chunk sees `visit` run
 * and the cache put back before extend returns, so the decision it then returns is about the prompt's
 * rows alone; the generation equals one whose policy did not extend.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { statelessPolicy } from '../src/policies/stateless.js'
import type { PolicyContext } from '../src/policies/types.js'

let model: LlamaModel
beforeAll(async () => {
  model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
})
afterAll(() => model.dispose())

const prompt = Array.from({ length: 150 }, (_, i) => 2 + ((i * 7919) % 4000))

/** keeps every head's newest 40 rows; with `extendBy`, first extends the cache by that many tokens */
function newest40(extendBy: number, seen: { visited: boolean; lengthsInVisit: number; lengthsAfter: number }[]) {
  return statelessPolicy({
    name: 'newest40', needs: {}, traits: {},
    onPrefillEnd: (ctx: PolicyContext) => {
      if (extendBy > 0) {
        const rt = ctx.runtime!
        const s = { visited: false, lengthsInVisit: 0, lengthsAfter: 0 }
        const back = rt.extend(Array.from({ length: extendBy }, (_, i) => 5 + i), (hooks, c) => {
          s.visited = hooks.length === model.config.layers
          s.lengthsInVisit = c.cache.length(0, 0)
        })
        s.lengthsAfter = ctx.cache.length(0, 0)
        expect(back).toBeUndefined()
        seen.push(s)
      }
      return {
        heads: Array.from({ length: ctx.model.layers * ctx.model.kvHeads }, (_, i) => {
          const layer = Math.floor(i / ctx.model.kvHeads), head = i % ctx.model.kvHeads
          const n = ctx.cache.length(layer, head)
          return { layer, head, keep: Int32Array.from({ length: 40 }, (_, j) => n - 40 + j) }
        }),
      }
    },
  })
}

describe('PolicyRuntime.extend from a synchronous onPrefillEnd', () => {
  it.each([1, 127, 300])('extending by %i tokens: visit has run and the cache is back before extend returns; the answer is the plain policy\'s', async (by) => {
    const seen: { visited: boolean; lengthsInVisit: number; lengthsAfter: number }[] = []
    const a = await model.generate(prompt, { policy: newest40(by, seen), maxNewTokens: 6 }).result
    const b = await model.generate(prompt, { policy: newest40(0, []), maxNewTokens: 6 }).result
    expect(seen).toEqual([{ visited: true, lengthsInVisit: prompt.length - 1 + by, lengthsAfter: prompt.length - 1 }])
    expect(a.ids).toEqual(b.ids)
  })
})
