/**
 * `kvkit serve` refuses a prompt that cannot fit the context before tokenizing it (the tokenizer's lower
 * bound, src/model/token-bound.ts): a 10 MB message gets the context-length 400 without encode running
 * on it, and the event loop stays free for another client's request meanwhile (before, encode held it
 * for about 10 s). Prompts just under, at and over the limit get what they got before: 200 with the
 * exact prompt_tokens, or the same 400 (its count exact, or 'at least' a bound on it).
 * A tiny model on the fixture's tokenizer, max_position_embeddings 96.
 */
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { serve, type KvkitServer } from '../src/serve/http.js'
import { templateMessages } from '../src/serve/engine.js'
import { makeTinyModel } from './tiny-model.js'
import { longestStall } from '../bench/event-loop-stall.js'

const CTX = 96
const ID = 'tiny'
let model: LlamaModel
let server: KvkitServer
let client: OpenAI
beforeAll(async () => {
  model = await loadModel(makeTinyModel({ eos_token_id: null, max_position_embeddings: CTX }), { backend: 'wasm' })
  server = await serve(model, { port: 0, modelId: ID })
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 })
})
afterAll(async () => {
  await server?.close()
  model?.dispose()
})

type ErrorBody = { error: { message: string; type: string; param: string | null; code: string | null } }

async function post(path: string, body: unknown): Promise<{ status: number; body: ErrorBody & { usage?: { prompt_tokens: number } } }> {
  const r = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) })
  return { status: r.status, body: await r.json() }
}

/** the 400 of a prompt past the context, whose count is n exactly or a bound on it (at least the limit) */
function expectContextRefusal(body: ErrorBody, param: string, n: number): void {
  expect(body.error).toMatchObject({ type: 'invalid_request_error', param, code: 'context_length_exceeded' })
  const m = new RegExp(`^${param.replace(/[[\]]/g, '\\$&')}: this model's maximum context length is ${CTX} tokens; your ${param} resulted in (at least )?(\\d+) tokens$`).exec(body.error.message)
  expect(m, body.error.message).not.toBeNull()
  const named = Number(m![2])
  expect(named).toBeGreaterThanOrEqual(CTX)
  expect(named).toBeLessThanOrEqual(n)
  if (!m![1]) expect(named).toBe(n)
}

const BIG = 10 * 2 ** 20

type Answer = Awaited<ReturnType<typeof post>>

/** a prompt of n tokens answered as before: 200 with prompt_tokens n under the limit, else the 400; which of them */
function expectAsBefore(r: Answer, param: string, n: number): 'ok' | 'bound' | 'count' {
  if (n < CTX) {
    expect(r.status, `${n} tokens`).toBe(200)
    expect(r.body.usage?.prompt_tokens).toBe(n)
    return 'ok'
  }
  expect(r.status, `${n} tokens`).toBe(400)
  expectContextRefusal(r.body, param, n)
  return r.body.error.message.includes('at least') ? 'bound' : 'count'
}

describe('kvkit serve: a prompt far past the context', () => {
  it('a 10 MB message: the 400 at once, encode never run on it, another client answered meanwhile', async () => {
    const encode = vi.spyOn(model.tokenizer, 'encode')
    const before = server.engine.stats.requests
    try {
      const { result, stallMs } = await longestStall(() =>
        Promise.all([
          post('/v1/chat/completions', { model: ID, messages: [{ role: 'user', content: 'x'.repeat(BIG) }] }),
          client.chat.completions.create({ model: ID, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 3, temperature: 0 }),
        ]),
      )
      const [big, small] = result
      expect(big.status).toBe(400)
      expectContextRefusal(big.body, 'messages', Infinity)
      // the rendered prompt (the ChatML template's text around the message) over 14 units a token; past the
      // context the letters are not counted (that bound, 13 a token, would say more)
      const rendered = server.engine.template.render([{ role: 'user', content: 'x'.repeat(BIG) }])
      expect(big.body.error.message).toContain(`at least ${Math.ceil(rendered.length / 14)} tokens`)
      expect(small.choices[0].finish_reason).toBe('length')
      expect(small.usage?.completion_tokens).toBe(3)
      // encode ran on the short prompt only
      expect(encode.mock.calls.every(([t]) => t.length < 1000)).toBe(true)
      expect(server.engine.stats.requests).toBe(before + 1)
      // a generous bound: reading and parsing 10 MB of JSON takes well under a second; tokenizing it held the loop ~10 s
      expect(stallMs).toBeLessThan(3000)
    } finally {
      encode.mockRestore()
    }
  })

  it('a 10 MB completion prompt, and a 10 MB document: the same 400 before tokenizing', async () => {
    const encode = vi.spyOn(model.tokenizer, 'encode')
    try {
      const completion = await post('/v1/completions', { model: ID, prompt: 'y'.repeat(BIG), max_tokens: 1 })
      expect(completion.status).toBe(400)
      expectContextRefusal(completion.body, 'prompt', Infinity)
      const listed = await post('/v1/completions', { model: ID, prompt: ['y'.repeat(BIG)], max_tokens: 1 })
      expectContextRefusal(listed.body, 'prompt', Infinity)
      const doc = await post('/v1/chat/completions', { model: ID, messages: [{ role: 'user', content: 'Hi' }], documents: [{ text: 'z'.repeat(BIG) }] })
      expect(doc.status).toBe(400)
      expectContextRefusal(doc.body, 'messages', Infinity)
      expect(encode).not.toHaveBeenCalled()
    } finally {
      encode.mockRestore()
    }
  })
})

describe('kvkit serve: prompts at the limit, as before', () => {
  const PROSE = 'It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. '

  it('chat prompts of 90 to 130 tokens: 200 with the exact prompt_tokens under the limit, the 400 at and over it', async () => {
    // ChatML's text around the message is 31 tokens of this tokenizer: the bound refuses from 123 tokens (92 repeats) on
    const contents: string[] = []
    for (let k = 55; k <= 100; k++) contents.push(' circumstances'.repeat(k))
    for (let end = 240; end <= 420; end += 6) contents.push(PROSE.repeat(4).slice(0, end))
    const seen = { ok: 0, bound: 0, count: 0 }
    for (const content of contents) {
      const messages = [{ role: 'user' as const, content }]
      const n = model.tokenizer.encode(server.engine.template.render(templateMessages(messages))).length
      if (n < CTX - 6 || n > CTX + 35) continue
      seen[expectAsBefore(await post('/v1/chat/completions', { model: ID, messages, max_tokens: 1, temperature: 0 }), 'messages', n)]++
    }
    expect(seen.ok).toBeGreaterThanOrEqual(3)
    expect(seen.bound).toBeGreaterThanOrEqual(3)
    expect(seen.count).toBeGreaterThanOrEqual(3)
  })

  it('completion prompts around the limit (BOS + text): the same split', async () => {
    const seen = { ok: 0, bound: 0, count: 0 }
    for (let k = 90; k <= 100; k++) {
      const prompt = ' circumstances'.repeat(k)
      const n = 1 + model.tokenizer.encode(prompt).length
      seen[expectAsBefore(await post('/v1/completions', { model: ID, prompt, max_tokens: 1, temperature: 0 }), 'prompt', n)]++
    }
    // 90..94 repeats fit with BOS; 95 and on do not, and the bound (k + 1, tight on this text) says so first
    expect(seen).toEqual({ ok: 5, bound: 6, count: 0 })
  })
})

describe('kvkit serve: the bound refuses after the errors the count comes after (tryout-bound)', () => {
  it('a message past the context with a document naming a source that is not there: the documents 400, as with a short message', async () => {
    const documents = [{ text: 'A document.', sources: [3] }]
    const long = await post('/v1/chat/completions', { model: ID, messages: [{ role: 'user', content: ' circumstances'.repeat(150) }], documents, max_tokens: 1 })
    const short = await post('/v1/chat/completions', { model: ID, messages: [{ role: 'user', content: 'Hi' }], documents, max_tokens: 1 })
    expect(short.status).toBe(400)
    expect(short.body.error.param).toBe('documents[0].sources[0]')
    expect([long.status, long.body]).toEqual([short.status, short.body])
  })
})
