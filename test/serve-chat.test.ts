import OpenAI from 'openai'
import { describe, expect, it } from 'vitest'
import { serve } from '../src/serve/http.js'
import { ID, useServer } from './serve-helpers.js'

// `kvkit serve` driven by the official openai client, against served.model.generate on hand-written ChatML
// prompts (the fallback template the fixture gets: it has no chat_template).
const served = useServer()
const END = '<|im_end|>'

type Msg = { role: 'system' | 'user' | 'assistant'; content: string }
const chatml = (messages: Msg[]) => messages.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join('') + '<|im_start|>assistant\n'

/** served.model.generate greedy on the same prompt text, with ChatML's turn end as the stop string, no reuse */
async function alone(prompt: string, maxNewTokens: number, extra: object = {}) {
  return served.model.generate(served.model.tokenizer.encode(prompt), { maxNewTokens, temperature: 0, stop: [END], ...extra }).result
}

async function streamChat(messages: Msg[], maxTokens: number, extra: Record<string, unknown> = {}) {
  const stream = await served.client.chat.completions.create({ model: ID, messages, temperature: 0, max_tokens: maxTokens, stream: true, stream_options: { include_usage: true }, ...extra } as never) as unknown as AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>
  let text = ''
  let finish: string | null = null
  let usage: OpenAI.Completions.CompletionUsage | undefined
  let chunks = 0
  for await (const c of stream) {
    chunks++
    text += c.choices[0]?.delta?.content ?? ''
    finish = c.choices[0]?.finish_reason ?? finish
    usage = c.usage ?? usage
  }
  return { text, finish, usage: usage!, chunks }
}

const system: Msg = { role: 'system', content: 'You keep track of numbers in the text.' }
const turn1: Msg = { role: 'user', content: 'The passkey is 58213. Remember it, it is important. What is the passkey?' }

describe('kvkit serve: chat completions', () => {
  it('lists the model at /v1/models', async () => {
    const list = await served.client.models.list()
    expect(list.data.map((m) => m.id)).toEqual([ID])
    expect((await served.client.models.retrieve(ID)).id).toBe(ID)
  })

  it('streams the tokens model.generate gives greedily on the rendered prompt, with usage', async () => {
    const want = await alone(chatml([system, turn1]), 20)
    const got = await streamChat([system, turn1], 20)
    expect(got.text).toBe(want.text)
    expect(got.text.length).toBeGreaterThan(0)
    expect(got.usage.prompt_tokens).toBe(served.model.tokenizer.encode(chatml([system, turn1])).length)
    expect(got.usage.completion_tokens).toBe(want.ids.length)
    expect(got.finish).toBe(want.finishReason === 'length' ? 'length' : 'stop')
    // one chunk per token at most, plus the role, the finish and the usage chunks
    expect(got.chunks).toBeGreaterThan(3)
  })

  it('answers a second turn from the prefix cache: cached_tokens > 0 and the answer of a full prefill', async () => {
    const first = await streamChat([system, turn1], 24)
    const turn2: Msg[] = [system, turn1, { role: 'assistant', content: first.text }, { role: 'user', content: 'Say the passkey again.' }]
    const want = await alone(chatml(turn2), 24)
    const r = await served.client.chat.completions.create({ model: ID, messages: turn2, temperature: 0, max_tokens: 24 })
    expect(r.choices[0].message.content).toBe(want.text)
    const cached = r.usage!.prompt_tokens_details!.cached_tokens!
    // turn 1's prompt and answer, in whole 16-token blocks, are found again
    expect(cached).toBeGreaterThanOrEqual(Math.floor(first.usage.prompt_tokens / 16) * 16)
    expect(cached % 16).toBe(0)
    expect(cached).toBeLessThan(r.usage!.prompt_tokens)
    // another tenant (vLLM's cache_salt) finds none of it, and still gets the same answer
    const other = await served.client.chat.completions.create({ model: ID, messages: turn2, temperature: 0, max_tokens: 24, cache_salt: 'tenant-b' } as never) as OpenAI.Chat.Completions.ChatCompletion
    expect(other.usage!.prompt_tokens_details!.cached_tokens).toBe(0)
    expect(other.choices[0].message.content).toBe(want.text)
  })

  it('runs a per-request KV policy (kv_policy) on its own cache: the policy generate gives, no reuse', async () => {
    const msgs = [system, turn1]
    const want = await alone(chatml(msgs), 16, { policy: 'snapkv:budget=0.5' })
    const full = await alone(chatml(msgs), 16)
    const r = await served.client.chat.completions.create({ model: ID, messages: msgs, temperature: 0, max_tokens: 16, kv_policy: 'snapkv:budget=0.5' } as never) as OpenAI.Chat.Completions.ChatCompletion
    expect(r.choices[0].message.content).toBe(want.text)
    expect(r.usage!.prompt_tokens_details!.cached_tokens).toBe(0)
    // the policy is in force: on this prompt it changes the answer (else the test could not tell)
    expect(want.text).not.toBe(full.text)
  })

  it('serves 8 concurrent clients within the KV budget, each getting what it gets alone', async () => {
    // room for two or three of these requests at once: the rest wait in the queue
    const budget = 1024
    const small = await serve(served.model, { port: 0, modelId: ID, kvBudget: budget, cacheTokens: 512, parallel: 8 })
    try {
      const c = new OpenAI({ baseURL: `${small.url}/v1`, apiKey: 'unused', maxRetries: 0 })
      const convs: Msg[][] = Array.from({ length: 8 }, (_, i) => [
        { role: 'user', content: `Note ${i}: the value of item ${i * 37 + 11} is ${1000 + i * 7919}. ${'The harbour was quiet that morning. '.repeat(i + 6)}What is the value of item ${i * 37 + 11}?` },
      ])
      const want = []
      for (const m of convs) want.push((await alone(chatml(m), 12)).text)
      const got = await Promise.all(convs.map(async (m, i) => {
        if (i % 2) return (await c.chat.completions.create({ model: ID, messages: m, temperature: 0, max_tokens: 12 })).choices[0].message.content
        const stream = await c.chat.completions.create({ model: ID, messages: m, temperature: 0, max_tokens: 12, stream: true })
        let text = ''
        for await (const ch of stream) text += ch.choices[0]?.delta?.content ?? ''
        return text
      }))
      expect(got).toEqual(want)
      const e = small.engine
      expect(e.scheduler.peakReserved).toBeLessThanOrEqual(e.scheduler.capacityTokens)
      expect(e.scheduler.peakReserved).toBeGreaterThan(e.scheduler.capacityTokens / 2)
      expect(e.scheduler.peakQueued).toBeGreaterThanOrEqual(4)
      expect(e.stats.peakKvBytes).toBeGreaterThan(0)
      expect(e.stats.peakKvBytes).toBeLessThanOrEqual(budget * e.bytesPerToken)
      expect(e.scheduler.running).toBe(0)
    } finally {
      await small.close()
    }
  })

  it('frees the sequence of a client that disconnects mid-stream, and serves the next one', async () => {
    const e = served.server.engine
    const stream = await served.client.chat.completions.create({ model: ID, messages: [turn1], temperature: 0, max_tokens: 200, stream: true })
    let seen = 0
    for await (const ch of stream) {
      if (ch.choices[0]?.delta?.content) seen++
      if (seen === 3) {
        stream.controller.abort()
        break
      }
    }
    expect(seen).toBe(3)
    for (let i = 0; i < 200 && e.scheduler.running > 0; i++) await new Promise((r) => setTimeout(r, 10))
    expect(e.scheduler.running).toBe(0)
    expect(e.scheduler.reserved).toBe(0)
    // every live page belongs to a cached block: the aborted request's own pages went back
    expect(e.prefixCache.store.liveBytes.wasm).toBe(e.prefixCache.size * e.prefixCache.blockBytes)
    const after = await streamChat([system, turn1], 8)
    expect(after.text).toBe((await alone(chatml([system, turn1]), 8)).text)
  })
})

describe('kvkit serve: a client that leaves the queue', () => {
  it('is taken out before it runs: no generation starts for it, the one running is unharmed', async () => {
    const one = await serve(served.model, { port: 0, modelId: ID, parallel: 1 })
    try {
      const c = new OpenAI({ baseURL: `${one.url}/v1`, apiKey: 'unused', maxRetries: 0 })
      const want = (await alone(chatml([turn1]), 40)).text
      const running = c.chat.completions.create({ model: ID, messages: [turn1], temperature: 0, max_tokens: 40 })
      while (one.engine.scheduler.running === 0) await new Promise((r) => setTimeout(r, 2))
      const abort = new AbortController()
      const queued = c.chat.completions.create({ model: ID, messages: [system, turn1], temperature: 0, max_tokens: 40 }, { signal: abort.signal })
      while (one.engine.scheduler.queued === 0) await new Promise((r) => setTimeout(r, 2))
      abort.abort()
      await expect(queued).rejects.toThrow()
      for (let i = 0; i < 200 && one.engine.scheduler.queued > 0; i++) await new Promise((r) => setTimeout(r, 5))
      expect(one.engine.scheduler.queued).toBe(0)
      expect((await running).choices[0].message.content).toBe(want)
      expect(one.engine.stats.requests).toBe(1)
    } finally {
      await one.close()
    }
  })
})

describe('kvkit serve: completions', () => {
  it('continues a raw prompt as model.generate does, streamed and not', async () => {
    const prompt = 'It is a truth universally acknowledged, that a single man in possession of a good fortune'
    // text prompts get the BOS token in front (vLLM's and llama.cpp's completions do the same)
    const ids = [served.model.config.bosTokenId!, ...served.model.tokenizer.encode(prompt)]
    const want = await served.model.generate(ids, { maxNewTokens: 12, temperature: 0 }).result
    const r = await served.client.completions.create({ model: ID, prompt, max_tokens: 12, temperature: 0 })
    expect(r.choices[0].text).toBe(want.text)
    expect(r.choices[0].finish_reason).toBe('length')
    const s = await served.client.completions.create({ model: ID, prompt, max_tokens: 12, temperature: 0, stream: true })
    let text = ''
    for await (const c of s) text += c.choices[0]?.text ?? ''
    expect(text).toBe(want.text)
    // token ids are a prompt too
    const byIds = await served.client.completions.create({ model: ID, prompt: ids, max_tokens: 12, temperature: 0 })
    expect(byIds.choices[0].text).toBe(want.text)
    // the first request's blocks serve the same prompt again
    expect(byIds.usage!.prompt_tokens_details!.cached_tokens).toBeGreaterThan(0)
  })
})

describe('kvkit serve: shutdown', () => {
  it('close() ends a running stream, frees its KV, and stops listening', async () => {
    const s = await serve(served.model, { port: 0, modelId: ID })
    const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 })
    const stream = await c.chat.completions.create({ model: ID, messages: [turn1], temperature: 0, max_tokens: 400, stream: true })
    let tokens = 0
    const reading = (async () => {
      for await (const ch of stream) if (ch.choices[0]?.delta?.content) tokens++
    })().catch(() => 'ended')
    while (tokens < 2) await new Promise((r) => setTimeout(r, 5))
    await s.close()
    await reading
    expect(tokens).toBeLessThan(400)
    expect(s.engine.scheduler.running).toBe(0)
    await expect(fetch(`${s.url}/v1/models`)).rejects.toThrow()
  })
})
