/**
 * close() with requests running returns as soon as their answers (a 503, a stream's error event) have
 * gone out: each such connection is closed when its answer ends. @hono/node-server writes a response a
 * few ticks after the handler settles, after close() had closed the idle connections once, so each
 * kept-alive connection of an answered request waited for the 1 s cut (close() took ~1010 ms, 6-20 ms before).
 */
import { describe, expect, it } from 'vitest'
import { ID, useServer } from './serve-helpers.js'
import { serve } from '../src/serve/http.js'

const served = useServer({ kvBudget: 4096, cacheTokens: 1024 })

describe('kvkit serve: close() with requests running', () => {
  it.each([false, true])('stream: %s: the answer goes out and close() returns well before the 1 s cut', async (stream) => {
    const s = await serve(served.model, { port: 0, modelId: ID })
    const answer = fetch(`${s.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: ID, messages: [{ role: 'user', content: 'Tell a long story' }], max_tokens: 1000, temperature: 0, stream }),
    }).then(async (r) => ({ status: r.status, text: await r.text() }))
    while (s.engine.scheduler.running === 0) await new Promise((r) => setTimeout(r, 5))
    const t0 = performance.now()
    await s.close()
    // 600 ms of slack for a loaded machine, still short of the cut
    expect(performance.now() - t0).toBeLessThan(600)
    const got = await answer
    expect(got.status).toBe(stream ? 200 : 503)
    expect(got.text).toContain('the server is shutting down')
  })
})
