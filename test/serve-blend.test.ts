import OpenAI from 'openai'
import { describe, expect, it } from 'vitest'
import { serve } from '../src/serve/http.js'
import { ModelInputError } from '../src/model/errors.js'
import { graphKV } from '../src/reuse/graph-kv.js'
import { graphInput } from '../src/serve/documents.js'
import { ID, useServer } from './serve-helpers.js'

// `kvkit serve` with `documents` (CacheBlend; Graph-KV with `sources`), driven by the openai client.
// The reference is built here by hand: each document's text and a newline tokenized alone, then the
// ChatML conversation, run by model.generate without reuse (CacheBlend at ratio 1 is a full prefill bit
// for bit) or on graphKV given the structure the request declares.
const served = useServer({ blend: { ratio: 1 } })
const END = '<|im_end|>'

type Doc = { text: string; sources?: number[] }
type Msg = { role: 'system' | 'user'; content: string }
const chatml = (messages: Msg[]) => messages.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join('') + '<|im_start|>assistant\n'
const docIds = (d: Doc) => served.model.tokenizer.encode(`${d.text}\n`)

const A: Doc = { text: 'The harbour master keeps the passkey 58213 in a tin box under the lighthouse stairs.' }
const B: Doc = { text: 'Gulls circled over the old lighthouse while the fishing boats came home with the tide.' }
const C: Doc = { text: 'The ferry to the island leaves at noon on weekdays and at ten on Sundays, weather permitting.' }
const question: Msg[] = [{ role: 'user', content: 'What is the passkey?' }]

async function chat(documents: Doc[], extra: Record<string, unknown> = {}, client = served.client) {
  return (await client.chat.completions.create({ model: ID, messages: question, documents, temperature: 0, max_tokens: 12, ...extra } as never)) as OpenAI.Chat.Completions.ChatCompletion
}

/** what model.generate answers, greedy and without reuse, on the documents and the question */
async function plain(documents: Doc[]): Promise<string> {
  const ids = [...documents.flatMap(docIds), ...served.model.tokenizer.encode(chatml(question))]
  return (await served.model.generate(ids, { maxNewTokens: 12, temperature: 0, stop: [END] }).result).text
}

const tokens = (docs: Doc[]) => docs.reduce((n, d) => n + docIds(d).length, 0)

describe('kvkit serve: documents with CacheBlend', () => {
  it('the same documents in another order are reused (cached_tokens = their tokens) and, at ratio 1, answer as a plain prefill', async () => {
    const first = await chat([A, B, C])
    expect(first.usage!.prompt_tokens_details!.cached_tokens).toBe(0)
    expect(first.choices[0].message.content).toBe(await plain([A, B, C]))
    // each document's KV is kept, counted in the KV budget
    expect(served.server.engine.scheduler.pinned).toBe(tokens([A, B, C]))
    // what the kvshare queue order expects this tenant to find, and another tenant
    const plan = (await served.server.engine.chatJob({ model: ID, messages: question, documents: [C, A, B] } as never)).documents!
    expect(served.server.engine.documents.expected(plan, '')).toBe(tokens([A, B, C]))
    expect(served.server.engine.documents.expected(plan, 'tenant-b')).toBe(0)
    const second = await chat([C, A, B])
    expect(second.usage!.prompt_tokens_details!.cached_tokens).toBe(tokens([A, B, C]))
    expect(second.usage!.prompt_tokens).toBe(tokens([A, B, C]) + served.model.tokenizer.encode(chatml(question)).length)
    expect(second.choices[0].message.content).toBe(await plain([C, A, B]))
    // a new document beside known ones: only the known ones count
    const D: Doc = { text: 'Nothing else happened in the village that week.' }
    const third = await chat([B, D])
    expect(third.usage!.prompt_tokens_details!.cached_tokens).toBe(tokens([B]))
    expect(third.choices[0].message.content).toBe(await plain([B, D]))
  })

  it('another tenant (cache_salt) finds none of them', async () => {
    const r = await chat([C, A, B], { cache_salt: 'tenant-b' })
    expect(r.usage!.prompt_tokens_details!.cached_tokens).toBe(0)
    expect(r.choices[0].message.content).toBe(await plain([C, A, B]))
  })

  it('a streamed request gets the same answer', async () => {
    const stream = await served.client.chat.completions.create({ model: ID, messages: question, documents: [B, C, A], temperature: 0, max_tokens: 12, stream: true } as never)
    let text = ''
    for await (const ch of stream as unknown as AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>) text += ch.choices[0]?.delta?.content ?? ''
    expect(text).toBe(await plain([B, C, A]))
  })

  it('at the default ratio (0.15) the documents are reused and the request answers', async () => {
    const s = await serve(served.model, { port: 0, modelId: ID })
    try {
      const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 })
      await chat([A, B], {}, c)
      const r = await chat([B, A], {}, c)
      expect(r.usage!.prompt_tokens_details!.cached_tokens).toBe(tokens([A, B]))
      expect(r.choices[0].finish_reason).toMatch(/stop|length/)
    } finally {
      await s.close()
    }
  })

  it('--blend off: documents are plain text on the prefix cache', async () => {
    const s = await serve(served.model, { port: 0, modelId: ID, blend: false })
    try {
      const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 })
      const r = await chat([A, B, C], {}, c)
      expect(r.choices[0].message.content).toBe(await plain([A, B, C]))
      // another order shares no prefix block: nothing is found
      const again = await chat([C, A, B], {}, c)
      expect(again.usage!.prompt_tokens_details!.cached_tokens).toBe(0)
      expect(s.engine.scheduler.pinned).toBe(0)
    } finally {
      await s.close()
    }
  })

  it('kept documents give way to requests: a small budget reclaims the oldest first', async () => {
    const small = await serve(served.model, { port: 0, modelId: ID, kvBudget: 1024, cacheTokens: 256 })
    try {
      const c = new OpenAI({ baseURL: `${small.url}/v1`, apiKey: 'unused', maxRetries: 0 })
      const sets = Array.from({ length: 8 }, (_, i) => [0, 1, 2].map((j) => ({ text: `Report ${i}.${j}: ${C.text} ${B.text}` })))
      for (const docs of sets) await chat(docs, { max_tokens: 4 }, c)
      const s = small.engine.scheduler
      // all the sets' documents would not fit beside a running request
      expect(sets.reduce((n, d) => n + tokens(d), 0)).toBeGreaterThan(s.capacityTokens)
      expect(s.peakReserved).toBeLessThanOrEqual(s.capacityTokens)
      expect(s.pinned).toBeGreaterThan(0)
      expect(s.pinned).toBeLessThanOrEqual(s.capacityTokens)
      const last = await chat(sets[7], { max_tokens: 4 }, c)
      expect(last.usage!.prompt_tokens_details!.cached_tokens).toBe(tokens(sets[7]))
      const oldest = await chat(sets[0], { max_tokens: 4 }, c)
      expect(oldest.usage!.prompt_tokens_details!.cached_tokens).toBe(0)
      expect(s.peakReserved).toBeLessThanOrEqual(s.capacityTokens)
      expect(s.running).toBe(0)
    } finally {
      await small.close()
    }
  })

  it('a bad blend option is refused at start, naming it', async () => {
    await expect(serve(served.model, { port: 0, modelId: ID, blend: { ratio: 1.5 } })).rejects.toThrow(ModelInputError)
    await expect(serve(served.model, { port: 0, modelId: ID, blend: { ratio: 1.5 } })).rejects.toThrow('ratio must be a number in [0, 1], got 1.5')
  })
})

describe('kvkit serve: documents with a Graph-KV graph', () => {
  const S0: Doc = A
  const S1: Doc = B
  const S2: Doc = C
  const T: Doc = { text: 'Summary of the notes about the passkey and the ferry.', sources: [0, 2] }

  it('the server hands graphKV the declared structure and answers as graphKV on it does', async () => {
    const documents = [S0, S1, S2, T]
    const want = { prefix: [], sources: [docIds(S0), docIds(S1), docIds(S2)], targets: [{ ids: docIds(T), sources: [0, 2] }] }
    const job = await served.server.engine.chatJob({ model: ID, messages: question, documents } as never)
    expect(graphInput(job.documents!)).toEqual(want)
    const r = await chat(documents)
    expect(r.usage!.prompt_tokens_details!.cached_tokens).toBe(0)
    const ctx = await graphKV(served.model, want)
    const ids = [...ctx.ids, ...served.model.tokenizer.encode(chatml(question))]
    expect(job.ids).toEqual(ids)
    const ref = await served.model.generate(ids, { maxNewTokens: 12, temperature: 0, stop: [END], reuse: ctx }).result
    expect(r.choices[0].message.content).toBe(ref.text)
  })

  it("a target's KV does not depend on a document outside its sources (its attention there is zero)", async () => {
    const rows = async (docs: Doc[]) => {
      const job = await served.server.engine.chatJob({ model: ID, messages: question, documents: docs } as never)
      const ctx = await graphKV(served.model, graphInput(job.documents!))
      const at = ctx.layout.targetStarts[0] - ctx.positionOffset
      const n = docIds(T).length
      const d = served.model.config.headDim
      const out: number[][] = []
      for (let l = 0; l < served.model.config.layers; l++)
        for (let h = 0; h < served.model.config.kvHeads; h++) out.push(Array.from(ctx.cache.readKeys(l, h).slice(at * d, (at + n) * d)), Array.from(ctx.cache.readValues(l, h).slice(at * d, (at + n) * d)))
      ctx.dispose()
      return out
    }
    const base = await rows([S0, S1, S2, T])
    expect(await rows([S0, { text: 'A different note about trains and timetables.' }, S2, T])).toEqual(base)
    expect(await rows([{ text: 'A different note about trains and timetables.' }, S1, S2, T])).not.toEqual(base)
  })
})

describe('kvkit serve: malformed documents', () => {
  async function post(body: Record<string, unknown>) {
    const r = await fetch(`${served.server.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ model: ID, messages: question, ...body }) })
    return { status: r.status, body: (await r.json()) as { error: { message: string; param: string | null } } }
  }

  it.each([
    [{ documents: 'passages' }, 'documents'],
    [{ documents: [] }, 'documents'],
    [{ documents: [{ text: '' }] }, 'documents[0].text'],
    [{ documents: [{ text: 'a', title: 'x' }] }, 'documents[0].title'],
    [{ documents: [{ text: 'a' }, { text: 'b', sources: [] }] }, 'documents[1].sources'],
    [{ documents: [{ text: 'a' }, { text: 'b', sources: 0 }] }, 'documents[1].sources'],
    [{ documents: [{ text: 'a' }, { text: 'b', sources: [-1] }] }, 'documents[1].sources[0]'],
    [{ documents: [{ text: 'a' }, { text: 'b', sources: [0.5] }] }, 'documents[1].sources[0]'],
    [{ documents: [{ text: 'a' }, { text: 'b', sources: [2] }] }, 'documents[1].sources[0]'],
    [{ documents: [{ text: 'a' }, { text: 'b', sources: [1] }] }, 'documents[1].sources[0]'],
    [{ documents: [{ text: 'a' }, { text: 'b', sources: [0, 0] }] }, 'documents[1].sources[1]'],
    [{ documents: [{ text: 'a' }, { text: 'b', sources: [0] }, { text: 'c', sources: [1] }] }, 'documents[2].sources[0]'],
    [{ documents: [{ text: 'a', sources: [1] }, { text: 'b' }] }, 'documents[1]'],
    [{ documents: [{ text: 'a' }], kv_policy: 'snapkv:budget=0.5' }, 'kv_policy'],
  ])('%j: 400 naming %s, nothing run', async (body, param) => {
    const before = served.server.engine.stats.requests
    const r = await post(body)
    expect(r.status).toBe(400)
    expect(r.body.error.param).toBe(param)
    expect(r.body.error.message).toContain(param)
    expect(served.server.engine.stats.requests).toBe(before)
  })
})
