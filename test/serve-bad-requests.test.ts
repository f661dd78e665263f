import { describe, expect, it } from 'vitest'
import { ID, useServer } from './serve-helpers.js'
import { ServeEngine, type EngineOptions } from '../src/serve/engine.js'
import { ModelInputError } from '../src/model/errors.js'

// Every malformed or unservable request gets OpenAI's error shape with the field named, before any
// work: no generation starts (engine.stats.requests stays put) and the server goes on serving.
const KEY = 'sk-test-key'
const served = useServer({ apiKey: KEY, kvBudget: 4096, cacheTokens: 1024 })

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const r = await fetch(`${served.server.url}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}`, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  return { status: r.status, body: (await r.json()) as { error?: { message: string; type: string; param: string | null; code: string | null } } }
}

const user = [{ role: 'user', content: 'Hello' }]
const chat = (extra: Record<string, unknown>) => ({ model: ID, messages: user, ...extra })
const tool = { type: 'function', function: { name: 'lookup', parameters: { type: 'object' } } }

describe('kvkit serve: bad requests', () => {
  it('chat body x fault: 400 naming the field, nothing run', async () => {
    const CASES: [Record<string, unknown>, string][] = [
      [{ messages: user }, 'model'],
      [{ model: ID }, 'messages'],
      [{ model: ID, messages: [] }, 'messages'],
      [chat({ messages: [{ role: 'robot', content: 'x' }] }), 'messages[0].role'],
      [chat({ messages: [{ role: 'user', content: 7 }] }), 'messages[0].content'],
      [chat({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }), 'messages[0].content'],
      [chat({ messages: [{ role: 'tool', content: 'x' }] }), 'messages[0].tool_call_id'],
      [chat({ messages: [...user, { role: 'system', content: 'late' }] }), 'messages'],
      [chat({ temperature: 3 }), 'temperature'],
      [chat({ temperature: 'warm' }), 'temperature'],
      [chat({ top_p: 0 }), 'top_p'],
      [chat({ top_k: -1 }), 'top_k'],
      [chat({ max_tokens: 0 }), 'max_tokens'],
      [chat({ max_tokens: 1.5 }), 'max_tokens'],
      [chat({ max_completion_tokens: -3 }), 'max_completion_tokens'],
      [chat({ max_tokens: 9000 }), 'max_tokens'],
      [chat({ max_tokens: 3500 }), 'max_tokens'],
      [chat({ n: 2 }), 'n'],
      [chat({ stream: 'yes' }), 'stream'],
      [chat({ stream_options: { include_usage: 1 } }), 'stream_options.include_usage'],
      [chat({ stop: ['a', 'b', 'c', 'd', 'e'] }), 'stop'],
      [chat({ stop: '' }), 'stop'],
      [chat({ presence_penalty: 0.5 }), 'presence_penalty'],
      [chat({ logprobs: true }), 'logprobs'],
      [chat({ response_format: { type: 'json_object' } }), 'response_format.type'],
      [chat({ kv_policy: 'nosuchpolicy' }), 'kv_policy'],
      [chat({ kv_policy: 'snapkv:budget=7' }), 'kv_policy'],
      [chat({ cache_salt: '' }), 'cache_salt'],
      [chat({ cache_salt: 5 }), 'cache_salt'],
      [chat({ tools: [{ type: 'function', function: { name: 'bad name!' } }] }), 'tools[0].function.name'],
      [chat({ tool_choice: 'auto' }), 'tool_choice'],
      [chat({ tools: [tool], tool_choice: { type: 'function', function: { name: 'other' } } }), 'tool_choice.function.name'],
      [chat({ tools: [tool, { ...tool, function: { name: 'second' } }], tool_choice: 'required' }), 'tool_choice'],
      [chat({ frobnicate: true }), 'frobnicate'],
      [chat({ messages: [{ role: 'user', content: 'x', extra: 1 }] }), 'messages[0].extra'],
      [chat({ messages: [{ role: 'user', content: 'word '.repeat(9000) }] }), 'messages'],
    ]
    const before = served.server.engine.stats.requests
    for (const [body, param] of CASES) {
      const r = await post('/v1/chat/completions', body)
      expect(r.status, JSON.stringify(body).slice(0, 120)).toBe(400)
      expect(r.body.error?.param, JSON.stringify(body).slice(0, 120)).toBe(param)
      expect(r.body.error?.type).toBe('invalid_request_error')
      expect(r.body.error?.message).toContain(param.split(/[.[]/)[0])
    }
    expect(served.server.engine.stats.requests).toBe(before)
  })

  it('names the budget or the context in the code of a request too large to serve', async () => {
    const ctx = await post('/v1/chat/completions', chat({ max_tokens: 9000 }))
    expect(ctx.body.error?.code).toBe('context_length_exceeded')
    // 3500 tokens fit the context (8192) but not the 3072 KV tokens this server leaves to requests
    const budget = await post('/v1/chat/completions', chat({ max_tokens: 3500 }))
    expect(budget.body.error?.code).toBe('kv_budget_exceeded')
  })

  it('completion body x fault: 400 naming the field', async () => {
    const CASES: [Record<string, unknown>, string][] = [
      [{ model: ID }, 'prompt'],
      [{ model: ID, prompt: '' }, 'prompt'],
      [{ model: ID, prompt: [5, 999999] }, 'prompt'],
      [{ model: ID, prompt: ['a', 'b'] }, 'prompt'],
      [{ model: ID, prompt: 'x', echo: true }, 'echo'],
      [{ model: ID, prompt: 'x', best_of: 3 }, 'best_of'],
      [{ model: ID, prompt: 'x', max_tokens: 0 }, 'max_tokens'],
    ]
    for (const [body, param] of CASES) {
      const r = await post('/v1/completions', body)
      expect(r.status, JSON.stringify(body)).toBe(400)
      expect(r.body.error?.param, JSON.stringify(body)).toBe(param)
    }
  })

  it('refuses a body that is not JSON, an unknown model, a missing key, and unknown routes, OpenAI-style', async () => {
    const notJson = await post('/v1/chat/completions', '{"model": ')
    expect(notJson.status).toBe(400)
    expect(notJson.body.error?.message).toMatch(/not valid JSON/)
    const array = await post('/v1/chat/completions', '[]')
    expect(array.status).toBe(400)
    const unknown = await post('/v1/chat/completions', { model: 'gpt-4o', messages: user })
    expect(unknown.status).toBe(404)
    expect(unknown.body.error).toMatchObject({ param: 'model', code: 'model_not_found' })
    const noKey = await post('/v1/chat/completions', chat({}), { Authorization: 'Bearer wrong' })
    expect(noKey.status).toBe(401)
    expect(noKey.body.error?.type).toBe('authentication_error')
    const models = await fetch(`${served.server.url}/v1/models`)
    expect(models.status).toBe(401)
    const route = await post('/v1/embeddings', { model: ID, input: 'x' })
    expect(route.status).toBe(404)
    const method = await fetch(`${served.server.url}/v1/chat/completions`, { headers: { Authorization: `Bearer ${KEY}` } })
    expect(method.status).toBe(405)
    // and it still serves
    const ok = await post('/v1/chat/completions', chat({ max_tokens: 2, temperature: 0 }))
    expect(ok.status).toBe(200)
  })
})

describe('kvkit serve: bad server options', () => {
  it.each([
    [{ kvBudget: 0 }, /kvBudget must be a positive integer, got 0/],
    [{ parallel: 1.5 }, /parallel must be a positive integer, got 1.5/],
    [{ blockTokens: -16 }, /blockTokens must be a positive integer/],
    [{ defaultMaxTokens: 0 }, /defaultMaxTokens must be a positive integer/],
    [{ kvBudget: 1000, cacheTokens: 1000 }, /cacheTokens must be an integer in \[blockTokens, kvBudget\) = \[16, 1000\), got 1000/],
    [{ cacheTokens: 8 }, /cacheTokens must be an integer in \[blockTokens, kvBudget\)/],
    [{ policy: 'nosuchpolicy' }, /policy: .*nosuchpolicy/],
  ] as [EngineOptions, RegExp][])('%j is refused with a ModelInputError naming it', (options, message) => {
    expect(() => new ServeEngine(served.model, options)).toThrow(ModelInputError)
    expect(() => new ServeEngine(served.model, options)).toThrow(message)
  })
})
