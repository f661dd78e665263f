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

  it('a client that leaves while its chunked request runs: the generation ends with the abort (the re-wrapped request\'s signal follows the first)', async () => {
    const e = served.server.engine
    const ends: unknown[] = []
    const run = e.run.bind(e)
    e.run = (...args: Parameters<typeof e.run>) => {
      const p = run(...args)
      p.then((o) => ends.push(o.finishReason), (x: Error) => ends.push(x.message))
      return p
    }
    try {
      const leaving = new AbortController()
      const body = JSON.stringify({ model: ID, messages: [{ role: 'user', content: 'Tell a long story' }], max_tokens: 1000, temperature: 0 })
      const answer = fetch(`${served.server.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: chunked(body), duplex: 'half', signal: leaving.signal } as RequestInit).catch(() => 'left')
      while (e.scheduler.running === 0) await new Promise((r) => setTimeout(r, 5))
      leaving.abort()
      expect(await answer).toBe('left')
      for (let i = 0; i < 300 && e.scheduler.running > 0; i++) await new Promise((r) => setTimeout(r, 10))
      expect(e.scheduler.running).toBe(0)
      expect(ends).toEqual(['the client disconnected'])
    } finally {
      delete (e as { run?: unknown }).run
    }
  })

  it('past maxBodyBytes: 413 in OpenAI\'s shape naming the limit, nothing run', async () => {
    const before = served.server.engine.stats.requests
    const r = await post(JSON.stringify({ model: ID, prompt: 'x'.repeat(LIMIT) }))
    expect(r.status).toBe(413)
    expect(((await r.json()) as { error: unknown }).error).toMatchObject({ message: `the request body is larger than ${LIMIT} bytes`, type: 'invalid_request_error' })
    expect(served.server.engine.stats.requests).toBe(before)
  })
})
