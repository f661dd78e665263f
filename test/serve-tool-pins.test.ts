import type OpenAI from 'openai'
import { describe, expect, it } from 'vitest'
import { KVScheduler } from '../src/serve/scheduler.js'
import { ToolPins } from '../src/serve/tool-pins.js'
import { chooseTtl } from '../src/reuse/continuum.js'
import { ID, useServer } from './serve-helpers.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('KVScheduler pins', () => {
  it('a waiting request reclaims pins soonest expiry first, only as many as it needs', async () => {
    const s = new KVScheduler(100, 4)
    const reclaimed: string[] = []
    const a = s.pin(30, 50, () => reclaimed.push('a'))
    const b = s.pin(30, 20, () => reclaimed.push('b'))
    expect(a && b).toBeTruthy()
    expect(s.reserved).toBe(60)
    // 60 + 50 > 100: b (expires at 20) goes, a stays
    const release = await s.acquire(50)
    expect(reclaimed).toEqual(['b'])
    expect(s.reserved).toBe(80)
    expect(s.pinned).toBe(30)
    // a pin that does not fit is refused, and so is one while a request waits
    expect(s.pin(30, 99, () => {})).toBeNull()
    const waiting = s.acquire(60)
    expect(reclaimed).toEqual(['b', 'a'])
    release()
    const r2 = await waiting
    expect(s.pin(1, 99, () => {})).not.toBeNull()
    r2()
    // a release after a reclaim is a no-op
    b!()
    expect(s.reserved).toBe(1)
  })
})

describe('ToolPins', () => {
  function fakeHold(tokens: number) {
    const h = { tokens, released: 0, release: () => void h.released++ }
    return h
  }

  it('pins nothing before a duration is known, then a TTL chosen by chooseTtl from what was observed', async () => {
    let clock = 0
    const s = new KVScheduler(10_000, 4)
    const pins = new ToolPins(s, 10_000, () => clock)
    const h1 = fakeHold(160)
    expect(pins.paused([{ id: 'c1', tool: 'search' }], h1, 170, 500)).toBe(0)
    expect(h1.released).toBe(1)
    clock = 40
    pins.resumed(['c1'])()
    expect(pins.observed('search')).toEqual([40])
    // one observation of 40 ms: worth pinning for 40 ms while 500 ms of reload beats 40 x 170/10000
    const h2 = fakeHold(160)
    const ttl = pins.paused([{ id: 'c2', tool: 'search' }], h2, 170, 500)
    expect(ttl).toBe(chooseTtl([40], 500, 170 / 10_000))
    expect(ttl).toBe(40)
    expect(h2.released).toBe(0)
    expect(s.pinned).toBe(160)
    clock = 45
    pins.resumed(['c2'])()
    expect(h2.released).toBe(1)
    expect(s.pinned).toBe(0)
    expect(pins.stats).toMatchObject({ pinned: 1, resumed: 1, expired: 0 })
    expect(pins.observed('search')).toEqual([40, 5])
  })

  it('frees a pin when its TTL runs out, and pins nothing when reloading is cheaper than holding', async () => {
    let clock = 0
    const s = new KVScheduler(10_000, 4)
    const pins = new ToolPins(s, 10_000, () => clock)
    pins.paused([{ id: 'a', tool: 'slow' }], fakeHold(16), 20, 100)
    clock = 30
    pins.resumed(['a'])
    const h = fakeHold(16)
    expect(pins.paused([{ id: 'b', tool: 'slow' }], h, 20, 100)).toBe(30)
    await sleep(80)
    expect(h.released).toBe(1)
    expect(pins.stats.expired).toBe(1)
    expect(s.pinned).toBe(0)
    // a context holding the whole memory costs more to keep for 30 ms than 10 ms of reload
    const big = fakeHold(16)
    expect(pins.paused([{ id: 'c', tool: 'slow' }], big, 10_000, 10)).toBe(0)
    expect(big.released).toBe(1)
  })
})

// end to end: a prefix cache that keeps only 4 blocks between requests, so a paused session's KV is
// evicted at once unless it is pinned
const served = useServer({ cacheTokens: 64, kvBudget: 8192 })
const tools = [{ type: 'function' as const, function: { name: 'lookup', parameters: { type: 'object', properties: { key: { type: 'string' } } } } }]

async function callTool(question: string) {
  const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [{ role: 'user', content: question }]
  const r = await served.client.chat.completions.create({ model: ID, messages, tools, tool_choice: { type: 'function', function: { name: 'lookup' } }, temperature: 0, max_tokens: 6 })
  const call = r.choices[0].message.tool_calls![0] as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall
  return { messages, call, promptTokens: r.usage!.prompt_tokens }
}

async function sendResult(turn: Awaited<ReturnType<typeof callTool>>) {
  const r = await served.client.chat.completions.create({
    model: ID, temperature: 0, max_tokens: 2, tools,
    messages: [...turn.messages, { role: 'assistant', content: null, tool_calls: [turn.call] }, { role: 'tool', tool_call_id: turn.call.id, content: 'found' }],
  })
  return r.usage!.prompt_tokens_details!.cached_tokens!
}

describe('kvkit serve: Continuum pins for tool calls', () => {
  it('keeps a paused session whose tool returns within the TTL, and lets it go when the tool outlasts it', async () => {
    const pins = served.server.engine.pins
    const topic = (i: number) => `Case ${i}: ${'the ledger lists the shipments of the spring season in order. '.repeat(8)}Look up entry ${i}.`
    // first call of the tool: nothing is known, nothing pinned; its result after 300 ms teaches the TTL
    const t1 = await callTool(topic(1))
    await sleep(300)
    const cold = await sendResult(t1)
    expect(cold).toBeLessThanOrEqual(64)
    expect(pins.observed('lookup')).toHaveLength(1)
    expect(pins.stats.pinned).toBe(0)
    // second session: pinned for about 300 ms; its result comes back at once and finds the whole turn
    const t2 = await callTool(topic(2))
    expect(pins.stats.pinned).toBe(1)
    const warm = await sendResult(t2)
    // all but the block the forced call prefix ends in (its last space may tokenize with what follows)
    expect(warm).toBeGreaterThanOrEqual(Math.floor((t2.promptTokens - 1) / 16) * 16)
    expect(pins.stats.resumed).toBe(1)
    // third: the tool outlasts the TTL, the pin expires, the session is evicted like an unpinned one
    const t3 = await callTool(topic(3))
    expect(pins.stats.pinned).toBe(2)
    await sleep(1200)
    expect(pins.stats.expired).toBe(1)
    expect(await sendResult(t3)).toBeLessThanOrEqual(64)
    expect(served.server.engine.scheduler.pinned).toBe(0)
  })
})
