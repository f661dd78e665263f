/**
 * A request body sent chunked (no Content-Length: a client streaming its body) is held to maxBodyBytes
 * as it arrives (hono/body-limit) and, within it, served as any other. With Node's own global Request
 * (@hono/node-server's overrideGlobalObjects off), body-limit's re-wrapped request threw and a chunked
 * body within the limit got a 500 "internal error: Cannot read properties of undefined (reading 'window')".
 */
import { describe, expect, it } from 'vitest'
import { ID, useServer } from './serve-helpers.js'

const LIMIT = 2000
const served = useServer({ kvBudget: 4096, cacheTokens: 1024, maxBodyBytes: LIMIT })

/** `text` as a body of 500-byte chunks: fetch sends it with Transfer-Encoding: chunked */
function chunked(text: string): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text)
  return new ReadableStream({
    start(c) {
      for (let i = 0; i < bytes.length; i += 500) c.enqueue(bytes.slice(i, i + 500))
      c.close()
    },
  })
}

const post = (body: string) =>
  fetch(`${served.server.url}/v1/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: chunked(body), duplex: 'half' } as RequestInit)

describe('kvkit serve: a chunked request body', () => {
  it('within maxBodyBytes: answered as with a Content-Length', async () => {
    const body = JSON.stringify({ model: ID, prompt: 'It is a truth universally acknowledged', max_tokens: 4, temperature: 0 })
    const chunkedAnswer = await post(body)
    expect(chunkedAnswer.status).toBe(200)
    const whole = await fetch(`${served.server.url}/v1/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body })
    const text = (r: unknown) => (r as { choices: { text: string }[] }).choices[0].text
    expect(text(await chunkedAnswer.json())).toBe(text(await whole.json()))
  })

  it('past maxBodyBytes: 413 in OpenAI\'s shape naming the limit, nothing run', async () => {
    const before = served.server.engine.stats.requests
    const r = await post(JSON.stringify({ model: ID, prompt: 'x'.repeat(LIMIT) }))
    expect(r.status).toBe(413)
    expect(((await r.json()) as { error: unknown }).error).toMatchObject({ message: `the request body is larger than ${LIMIT} bytes`, type: 'invalid_request_error' })
    expect(served.server.engine.stats.requests).toBe(before)
  })
})
