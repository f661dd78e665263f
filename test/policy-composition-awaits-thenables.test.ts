/**
 * A composition awaits a part's prefill-end answer that is any thenable, not only this realm's Promise
 * (a promise library's, another realm's): it took `instanceof Promise`, so such an answer was handed on
 * as if it were a Decision, where the same part alone worked (generate awaits whatever it gets).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { composePolicies } from '../src/policies/compose.js'
import { statelessPolicy } from '../src/policies/stateless.js'
import type { Decision } from '../src/cache/types.js'
import type { PolicyContext } from '../src/policies/types.js'
import { makeTinyModel } from './tiny-model.js'

let model: LlamaModel
beforeAll(async () => {
  model = await loadModel(makeTinyModel({ eos_token_id: null }), { backend: 'wasm' })
})
afterAll(() => model?.dispose())
const prompt = Array.from({ length: 20 }, (_, i) => 30 + i * 11)

const newest = (keep: number, ctx: PolicyContext): Decision => ({
  heads: Array.from({ length: ctx.model.layers * ctx.model.kvHeads }, (_, i) => {
    const layer = Math.floor(i / ctx.model.kvHeads), head = i % ctx.model.kvHeads
    const n = ctx.cache.length(layer, head)
    return { layer, head, keep: Int32Array.from({ length: Math.min(n, keep) }, (_, j) => n - Math.min(n, keep) + j) }
  }),
})

/** a thenable that is no Promise: resolves on a later microtask */
const thenable = <T>(v: T): PromiseLike<T> => ({ then: (ok, no) => Promise.resolve(v).then(ok, no) as never })

describe('composition and thenables', () => {
  it('a part whose onPrefillEndAsync answers a non-Promise thenable is awaited, and the next part sees its decision applied', async () => {
    const seen: number[] = []
    const first = statelessPolicy({ name: 'first', needs: {}, traits: {}, onPrefillEndAsync: (ctx) => thenable(newest(12, ctx)) as never })
    const second = statelessPolicy({ name: 'second', needs: {}, traits: {}, onPrefillEnd: (ctx) => (seen.push(ctx.cache.length(0, 0)), newest(8, ctx)) })
    const composed = composePolicies([first, second])
    const r = await model.generate(prompt, { policy: composed, maxNewTokens: 3 }).result
    expect(seen).toEqual([12])
    expect(r.ids).toHaveLength(3)
  })
})
