/**
 * kvkit serve makes each KV policy spec once and reuses the policy for every request naming it (a policy
 * is a configuration; its state belongs to one request): it resolved the spec twice a request (once to
 * check it, once in generate), and a policy that costs to make (RazorAttention calibrates: 0.1-1.3 s) paid
 * that on every request. Requests on a reused policy still give the answers of a fresh one.
 */
import { describe, expect, it } from 'vitest'
import { registerPolicy } from '../src/policies/registry.js'
import { createPolicy } from '../src/policies/registry.js'
import { ID, useServer } from './serve-helpers.js'

let made = 0
registerPolicy({
  name: 'counted-snapkv',
  description: 'test: SnapKV at half the prompt, counting how often it is made',
  stage: 'eviction',
  options: [],
  create(_o, model) {
    made++
    return createPolicy('snapkv:budget=0.5', model)!
  },
})

const served = useServer({ policy: 'counted-snapkv' })

describe('serve policies', () => {
  it('are made once a spec, for the server default and for a request naming one, with the same answers', async () => {
    const ask = async (extra: object) => {
      const r = (await served.client.chat.completions.create({ model: ID, messages: [{ role: 'user', content: 'The pass key is 12345. Remember it. What is the pass key?' }], temperature: 0, max_tokens: 8, ...extra } as never)) as { choices: { message: { content: string } }[] }
      return r.choices[0].message.content
    }
    const first = await ask({})
    const after = made
    expect(after).toBe(1)
    expect(await ask({})).toBe(first)
    expect(await ask({ kv_policy: 'counted-snapkv' })).toBe(first)
    expect(made).toBe(after)
    await Promise.all([ask({}), ask({ kv_policy: 'counted-snapkv' })])
    expect(made).toBe(after)
  })
})
