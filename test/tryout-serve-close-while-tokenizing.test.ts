/**
 * A request still being tokenized (in the tokenizer thread, or its body still being read) when the
 * server starts shutting down is answered 503 and never runs: close() waits only for the jobs running
 * when it starts, then disposes the prefix cache, so a job made after that ran on a closing engine
 * (its generation started after close() had returned, on a disposed prefix cache).
 */
import { describe, expect, it, vi } from 'vitest'
import type { ChatRequest } from '../src/serve/schema.js'
import { serve } from '../src/serve/http.js'
import { ID, useServer } from './serve-helpers.js'

const served = useServer()

describe('kvkit serve: shutdown while a request is tokenized', () => {
  it('the request gets a 503 and no generation runs', async () => {
    const s = await serve(served.model, { port: 0, modelId: ID })
    const chatJob = s.engine.chatJob.bind(s.engine)
    let tokenized!: () => void
    const inside = new Promise<void>((r) => (tokenized = r))
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    // the job is ready only once close() has begun: the window a long prompt's tokenizing leaves open
    s.engine.chatJob = async (req: ChatRequest) => {
      const job = await chatJob(req)
      tokenized()
      await gate
      return job
    }
    const run = vi.spyOn(s.engine, 'run')
    const answer = fetch(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ model: ID, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 4 }) })
    await inside
    const closed = s.close()
    await new Promise((r) => setTimeout(r, 50))
    release()
    const r = await answer
    await closed
    expect(r.status).toBe(503)
    expect(((await r.json()) as { error: { message: string } }).error.message).toBe('the server is shutting down')
    expect(run).not.toHaveBeenCalled()
  })
})
