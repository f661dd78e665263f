/**
 * A request running when the server shuts down (close(), SIGINT/SIGTERM for the command) is answered:
 * a whole request gets a 503 in OpenAI's error shape, a stream ends with an error event, both saying
 * the server is shutting down, and close() still returns promptly. The connection was cut without a
 * word (the client saw "fetch failed" / "terminated", a network fault, and might retry blindly).
 */
import OpenAI from 'openai'
import { describe, expect, it } from 'vitest'
import { ID, useServer } from './serve-helpers.js'
import { serve } from '../src/serve/http.js'

const served = useServer({ kvBudget: 8192, cacheTokens: 1024 })
const body = (stream: boolean) =>
  JSON.stringify({ model: ID, messages: [{ role: 'user', content: 'Tell a long story' }], max_tokens: 1000, temperature: 0, stream })

describe('kvkit serve: requests running at shutdown', () => {
  it('a whole request gets a 503, a stream an error event; close() is prompt', async () => {
    const s = await serve(served.model, { port: 0, modelId: ID })
    const post = (stream: boolean) => fetch(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: body(stream) })
    const whole = post(false)
    const streamed = await post(true)
    const reader = streamed.body!.getReader()
    let text = ''
    // two events (the role, a token) show that both requests run
    for (let events = 0; events < 2; ) {
      const { value } = await reader.read()
      text += Buffer.from(value!).toString()
      events = text.split('\n\n').length - 1
    }
    const t0 = Date.now()
    await s.close()
    expect(Date.now() - t0).toBeLessThan(5000)
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      text += Buffer.from(value).toString()
    }
    const last = JSON.parse(text.trim().split('\n\n').at(-1)!.slice('data: '.length)) as { error: { message: string } }
    expect(last.error.message).toBe('the server is shutting down')
    const r = await whole
    expect(r.status).toBe(503)
    expect(((await r.json()) as { error: { message: string; type: string } }).error).toMatchObject({ message: 'the server is shutting down', type: 'server_error' })
    expect(s.engine.scheduler.running).toBe(0)
  })

  it('the openai client sees an API error with the reason, not a connection error', async () => {
    const s = await serve(served.model, { port: 0, modelId: ID })
    const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 })
    const pending = c.chat.completions.create({ model: ID, messages: [{ role: 'user', content: 'Tell a long story' }], max_tokens: 1000, temperature: 0 })
    // settled before close() returns or after: its handler is on before, so neither is an unhandled rejection
    const settled = pending.then(() => null, (x: unknown) => x)
    while (s.engine.scheduler.running === 0) await new Promise((r) => setTimeout(r, 5))
    await s.close()
    const e = await settled
    expect(e).toBeInstanceOf(OpenAI.APIError)
    expect((e as InstanceType<typeof OpenAI.APIError>).status).toBe(503)
    expect((e as Error).message).toMatch(/the server is shutting down/)
  })
})
