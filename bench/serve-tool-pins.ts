// `kvkit serve` under cache pressure: time to first token of the turn that brings a tool's result,
// when the session was pinned for the tool (Continuum's TTL: a tool whose durations the server has
// learned) against a session that was not (a tool never seen before: no observation, no pin). The
// prefix cache keeps only 4 blocks between requests, so an unpinned session is evicted the moment its
// answer ends. Sessions of ~3000 tokens (a book passage and a question), interleaved, a fresh passage
// per run, medians and their ratio from one process.
//   npm run build && node dist/bench/serve-tool-pins.js [--runs 5] [--words 2000] [--verbose]
import type OpenAI from 'openai'
import { arg, bookWords, ID, median, startServer } from './serve-setup.js'

const RUNS = arg('runs', 5)
const WORDS = arg('words', 2000)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
type Msg = OpenAI.Chat.Completions.ChatCompletionMessageParam
type Call = OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall

const book = bookWords()
const { model, server, client } = await startServer({ cacheTokens: 64, kvBudget: 32768 })
const toolsOf = (name: string) => [{ type: 'function' as const, function: { name, parameters: { type: 'object', properties: { name: { type: 'string' } } } } }]

/** a session that ends in a call of `tool`: its messages and the call */
async function pause(passage: string, tool: string) {
  const messages: Msg[] = [{ role: 'user', content: `${passage}\n\nLook up the family of the last speaker.` }]
  const r = await client.chat.completions.create({ model: ID, messages, tools: toolsOf(tool), tool_choice: { type: 'function', function: { name: tool } }, temperature: 0, max_tokens: 8 })
  return { messages, tool, call: r.choices[0].message.tool_calls![0] as Call }
}

/** the turn with the tool's result: ms to its first content chunk, and its cached_tokens */
async function resume(s: Awaited<ReturnType<typeof pause>>) {
  const t0 = performance.now()
  const stream = await client.chat.completions.create({
    // the same tools as the paused turn: they are part of the prompt the session's KV holds
    model: ID, temperature: 0, max_tokens: 4, tools: toolsOf(s.tool), stream: true, stream_options: { include_usage: true },
    messages: [...s.messages, { role: 'assistant', content: null, tool_calls: [s.call] }, { role: 'tool', tool_call_id: s.call.id, content: 'The Bennets of Longbourn.' }],
  })
  let first = 0
  let cached = 0
  let prompt = 0
  for await (const c of stream) {
    const d = c.choices[0]?.delta
    if ((d?.content || d?.tool_calls?.length) && !first) first = performance.now() - t0
    if (c.usage) (cached = c.usage.prompt_tokens_details?.cached_tokens ?? 0), (prompt = c.usage.prompt_tokens)
  }
  return { ms: first || performance.now() - t0, cached, prompt }
}

const passage = (i: number) => book.slice(4000 + i * WORDS, 4000 + (i + 1) * WORDS).join(' ')
// the server learns the tool: one call whose result comes back after 3 s (so later TTLs are ~3 s)
const learn = await pause(passage(0), 'lookup')
await sleep(3000)
await resume(learn)

const pinned: number[] = []
const unpinned: number[] = []
let last = { pinned: 0, unpinned: 0, prompt: 0, unpinnedPrompt: 0 }
for (let r = 0; r < RUNS; r++) {
  // each result comes back as soon as the client has it, well within the learned TTL
  const ra = await resume(await pause(passage(1 + 2 * r), 'lookup'))
  const rb = await resume(await pause(passage(2 + 2 * r), `first_seen_${r}`))
  if (process.argv.includes('--verbose')) console.log(r, ra, rb)
  pinned.push(ra.ms)
  unpinned.push(rb.ms)
  last = { pinned: ra.cached, unpinned: rb.cached, prompt: ra.prompt, unpinnedPrompt: rb.prompt }
}
const st = server.engine.pins.stats
console.log(`kvkit serve, fixture-14m (${model.kernels}), tool-result turns of ${last.prompt} and ${last.unpinnedPrompt} prompt tokens (last run), prefix cache of 4 blocks between requests, ${RUNS} runs each`)
console.log(`time to first token, not pinned (tool never seen)   median ${median(unpinned).toFixed(1)} ms   runs ${unpinned.map((x) => x.toFixed(0)).join(' ')}   cached_tokens ${last.unpinned}`)
console.log(`time to first token, pinned (Continuum TTL)         median ${median(pinned).toFixed(1)} ms   runs ${pinned.map((x) => x.toFixed(0)).join(' ')}   cached_tokens ${last.pinned}`)
console.log(`speedup (median / median) ${(median(unpinned) / median(pinned)).toFixed(2)}x; pins: ${st.pinned} pinned, ${st.resumed} resumed, ${st.expired} expired, ${st.reclaimed} reclaimed`)
await server.close()
model.dispose()
