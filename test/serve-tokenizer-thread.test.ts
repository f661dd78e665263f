/**
 * `kvkit serve` tokenizes requests' text in a worker thread (src/serve/tokenizer-thread.ts). A prompt
 * between the context and the tokenizer's lower bound (token-bound.ts: the bound cannot refuse it, so
 * it must be counted) is tokenized there while the event loop goes on, and refused with its exact
 * count; the ids of prompts that fit are the model's tokenizer's, documents included.
 */
import { describe, expect, it } from 'vitest'
import { ApiError } from '../src/serve/errors.js'
import { templateMessages } from '../src/serve/engine.js'
import { ID, useServer } from './serve-helpers.js'

const served = useServer()

/** 12,000 short made-up words: few letters a token for the bound, several tokens a word for encode */
const between = Array.from({ length: 12000 }, (_, i) => `w${(i * 7919) % 977}q`).join(' ')

describe('kvkit serve: the tokenizer thread', () => {
  it('a prompt between the context and the bound: refused with its exact count, the event loop turning while it is tokenized', async () => {
    const { engine } = served.server
    const tok = served.model.tokenizer
    const ctx = served.model.config.maxPositions
    const messages = [{ role: 'user' as const, content: between }]
    const rendered = engine.template.render(templateMessages(messages))
    // the case: the bound says it may fit, the count says it does not
    expect(tok.minTokens!(rendered, ctx)).toBeLessThan(ctx)
    const n = tok.encode(rendered).length
    expect(n).toBeGreaterThan(ctx)
    let turns = 0
    const tick = setInterval(() => turns++, 0)
    let refusal: unknown
    try {
      await engine.chatJob({ model: ID, messages } as never)
    } catch (e) {
      refusal = e
    } finally {
      clearInterval(tick)
    }
    expect(refusal).toBeInstanceOf(ApiError)
    expect((refusal as ApiError).message).toBe(`messages: this model's maximum context length is ${ctx} tokens; your messages resulted in ${n} tokens`)
    // other clients' timers and sockets ran meanwhile (the event loop was not held by encode)
    expect(turns).toBeGreaterThan(0)
    // over HTTP: the same 400
    const r = await fetch(`${served.server.url}/v1/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ model: ID, prompt: between }) })
    expect(r.status).toBe(400)
    const body = (await r.json()) as { error: { message: string; code: string } }
    expect(body.error.code).toBe('context_length_exceeded')
    expect(body.error.message).toBe(`prompt: this model's maximum context length is ${ctx} tokens; your prompt resulted in ${1 + tok.encode(between).length} tokens`)
  })

  it("a prompt that fits, and documents: the ids are the model's tokenizer's", async () => {
    const { engine } = served.server
    const tok = served.model.tokenizer
    const text = between.slice(0, 4000) + ' ünïcödé, emoji 🦀 and\ttabs\n'
    const messages = [{ role: 'user' as const, content: text }]
    const chat = await engine.chatJob({ model: ID, messages, documents: [{ text: 'A note.' }, { text: 'Another, longer note about the passkey 58213.' }] } as never)
    expect(chat.ids).toEqual([...tok.encode('A note.\n'), ...tok.encode('Another, longer note about the passkey 58213.\n'), ...tok.encode(engine.template.render(templateMessages(messages)))])
    const completion = await engine.completionJob({ model: ID, prompt: text } as never)
    expect(completion.ids).toEqual([served.model.config.bosTokenId!, ...tok.encode(text)])
  })
})

describe('TokenizerThread', () => {
  it('a worker that cannot build the tokenizer rejects, says it is broken, and the engine then tokenizes on the event loop', async () => {
    const { TokenizerThread } = await import('../src/serve/tokenizer-thread.js')
    const bad = new TokenizerThread({ json: { model: { type: 'NoSuchModel' } }, config: {} })
    await expect(bad.encode('hello')).rejects.toThrow()
    expect(bad.broken).toBe(true)
    await bad.close()
    // the engine's fallback: a broken thread in place of its own
    const engine = served.server.engine as unknown as { tokenizerThread: unknown; encode(t: string): Promise<number[]> }
    const own = engine.tokenizerThread
    const broken = new TokenizerThread({ json: {}, config: {} })
    await broken.encode('x').catch(() => undefined)
    engine.tokenizerThread = broken
    try {
      expect(await engine.encode('hello there')).toEqual(served.model.tokenizer.encode('hello there'))
    } finally {
      engine.tokenizerThread = own
      await broken.close()
    }
  })
})
