import OpenAI from 'openai'
import { describe, expect, it } from 'vitest'
import { serve } from '../src/serve/http.js'
import { ModelInputError } from '../src/model/errors.js'
import { ID, useServer } from './serve-helpers.js'

// `kvkit serve --edit-reuse`: a prompt that edits an earlier one runs on KVShare's aligned KV. At ratio 1
// the aligned context is a full prefill bit for bit, so the answer is the one model.generate gives alone;
// cached_tokens is the alignment's length, checked against a longest common subsequence computed here.
const served = useServer({ editReuse: { ratio: 1 } })
const END = '<|im_end|>'

type Msg = { role: 'system' | 'user'; content: string }
const chatml = (messages: Msg[]) => messages.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join('') + '<|im_start|>assistant\n'
const encode = (m: Msg[]) => served.model.tokenizer.encode(chatml(m))

const haystack = 'The harbour was quiet that morning and the boats rocked slowly at their moorings. '.repeat(5)
const original: Msg[] = [{ role: 'user', content: `The passkey is 58213. ${haystack}What is the passkey?` }]
// the edit comes early: the prefix cache would find less than half of the prompt
const edited: Msg[] = [{ role: 'user', content: `The passkey is 58213. Gulls circled over the old lighthouse. ${haystack}What is the passkey?` }]

/** the length of a longest common subsequence (dynamic programming) */
function lcs(a: number[], b: number[]): number {
  let prev = new Array<number>(b.length + 1).fill(0)
  for (const x of a) {
    const cur = [0]
    b.forEach((y, j) => cur.push(x === y ? prev[j] + 1 : Math.max(prev[j + 1], cur[j])))
    prev = cur
  }
  return prev[b.length]
}

async function chat(messages: Msg[], extra: Record<string, unknown> = {}) {
  return (await served.client.chat.completions.create({ model: ID, messages, temperature: 0, max_tokens: 12, ...extra } as never)) as OpenAI.Chat.Completions.ChatCompletion
}

describe('kvkit serve with edit reuse (KVShare)', () => {
  it('an edited prompt reuses the aligned tokens of the earlier one and answers as a full prefill does', async () => {
    const a = encode(original)
    const b = encode(edited)
    let prefix = 0
    while (a[prefix] === b[prefix]) prefix++
    expect(prefix * 2).toBeLessThan(b.length - 1)
    const first = await chat(original)
    expect(first.usage!.prompt_tokens_details!.cached_tokens).toBe(0)
    // the earlier prompt's context is kept, and counted in the KV budget
    expect(served.server.engine.scheduler.pinned).toBe(a.length - 1)
    const r = await chat(edited)
    const want = await served.model.generate(b, { maxNewTokens: 12, temperature: 0, stop: [END] }).result
    expect(r.choices[0].message.content).toBe(want.text)
    const cached = r.usage!.prompt_tokens_details!.cached_tokens!
    expect(cached).toBe(lcs(a.slice(0, -1), b.slice(0, -1)))
    expect(cached).toBeGreaterThan(prefix + 16)
    const e = served.server.engine
    expect(e.scheduler.peakReserved).toBeLessThanOrEqual(e.scheduler.capacityTokens)
  })

  it('another tenant (cache_salt) finds nothing of it', async () => {
    const r = await chat(edited, { cache_salt: 'tenant-b' })
    expect(r.usage!.prompt_tokens_details!.cached_tokens).toBe(0)
  })

  it('a streamed edited request gets the same answer', async () => {
    await chat(original)
    const stream = await served.client.chat.completions.create({ model: ID, messages: edited, temperature: 0, max_tokens: 12, stream: true })
    let text = ''
    for await (const ch of stream) text += ch.choices[0]?.delta?.content ?? ''
    expect(text).toBe((await served.model.generate(encode(edited), { maxNewTokens: 12, temperature: 0, stop: [END] }).result).text)
  })

  it('kept prompts give way to requests: a small budget reclaims them and every request is served', async () => {
    const small = await serve(served.model, { port: 0, modelId: ID, kvBudget: 1024, cacheTokens: 256, editReuse: true })
    try {
      const c = new OpenAI({ baseURL: `${small.url}/v1`, apiKey: 'unused', maxRetries: 0 })
      const prompts = Array.from({ length: 6 }, (_, i) => [{ role: 'user' as const, content: `Item ${i}: ${haystack}Which item?` }])
      for (const m of prompts) {
        const r = await c.chat.completions.create({ model: ID, messages: m, temperature: 0, max_tokens: 8 })
        expect(r.choices[0].finish_reason).toMatch(/stop|length/)
      }
      const s = small.engine.scheduler
      // six kept prompts would not fit beside a running request: some were reclaimed or never kept
      const kept = encode(prompts[0]).length - 1
      expect(6 * kept).toBeGreaterThan(s.capacityTokens - 128)
      expect(s.pinned).toBeGreaterThan(0)
      expect(s.pinned).toBeLessThan(6 * kept)
      expect(s.peakReserved).toBeLessThanOrEqual(s.capacityTokens)
      expect(s.pinned).toBeLessThanOrEqual(s.capacityTokens)
      expect(s.running).toBe(0)
    } finally {
      await small.close()
    }
  })

  it.each([
    ['kvshare', ['long', 'edit', 'new']],
    ['fcfs', ['long', 'new', 'edit']],
  ] as const)("--scheduler %s: one request at a time, a long one running, then a new prompt and an edit of a served one queued: they finish in the order %s", async (order, want) => {
    const one = await serve(served.model, { port: 0, modelId: ID, parallel: 1, editReuse: true, scheduler: order })
    try {
      const c = new OpenAI({ baseURL: `${one.url}/v1`, apiKey: 'unused', maxRetries: 0 })
      const ask = (m: Msg[], max: number) => c.chat.completions.create({ model: ID, messages: m, temperature: 0, max_tokens: max })
      await ask(original, 4)
      const done: string[] = []
      const long = ask([{ role: 'user', content: `Count the boats. ${haystack}` }], 96).then(() => done.push('long'))
      // both wait behind the long one: a prompt never seen (expected hit 0), then the edit (most of it expected)
      while (one.engine.scheduler.running === 0) await new Promise((r) => setTimeout(r, 2))
      const fresh = ask([{ role: 'user', content: `A new question about trains. ${'The train left the station at noon. '.repeat(8)}When?` }], 4).then(() => done.push('new'))
      while (one.engine.scheduler.queued < 1) await new Promise((r) => setTimeout(r, 2))
      const edit = ask(edited, 4).then(() => done.push('edit'))
      while (one.engine.scheduler.queued < 2) await new Promise((r) => setTimeout(r, 2))
      await Promise.all([long, fresh, edit])
      expect(done).toEqual(want)
    } finally {
      await one.close()
    }
  })

  it('a bad KVShare option is refused at start, naming it', async () => {
    await expect(serve(served.model, { port: 0, modelId: ID, editReuse: { ratio: 2 } })).rejects.toThrow(ModelInputError)
    await expect(serve(served.model, { port: 0, modelId: ID, editReuse: { ratio: 2 } })).rejects.toThrow('ratio must be a number in [0, 1], got 2')
  })
})
