// `kvkit serve`: time to first token of a chat's second turn over HTTP (the openai client, streaming),
// with the first turn's KV found in the prefix cache against the same request prefilled in full. The
// conversation is ~3000 tokens: a passage of a book (data/books) in the first user turn, the model's
// answer, and a short follow-up. "Without reuse" is the same request under a cache_salt no request has
// used (another tenant: zero hits), so both go through the same server, scheduler and HTTP path.
// Runs interleaved, a fresh passage per run, medians and their ratio from one process; the greedy
// answers of both must be equal.
//   npm run build && node dist/bench/serve.js [--runs 5] [--words 2000]
import type OpenAI from 'openai'
import { arg, bookWords, median, startServer, streamedTurn } from './serve-setup.js'

const RUNS = arg('runs', 5)
const WORDS = arg('words', 2000)
type Msg = OpenAI.Chat.Completions.ChatCompletionMessageParam
const book = bookWords()
const { model, server, client } = await startServer()

/** the timed second-turn request (serve-setup.ts's streamedTurn) under tenant `salt` */
const turn = (messages: Msg[], salt: string, maxTokens: number) => streamedTurn(client, { messages, temperature: 0, max_tokens: maxTokens, cache_salt: salt })

const hit: number[] = []
const miss: number[] = []
let prompt = 0
let cached = 0
for (let r = 0; r < RUNS; r++) {
  const start = 5000 + r * 3 * WORDS
  const passage = book.slice(start, start + WORDS).join(' ')
  const first: Msg[] = [
    { role: 'system', content: 'You answer questions about the passage the user gives.' },
    { role: 'user', content: `${passage}\n\nWho is speaking in the last paragraph?` },
  ]
  const a = await turn(first, `run-${r}`, 24)
  const second: Msg[] = [...first, { role: 'assistant', content: a.text }, { role: 'user', content: 'And who answers them?' }]
  // the no-reuse request first, so it cannot profit from anything the reused one leaves
  const cold = await turn(second, `cold-${r}`, 8)
  const warm = await turn(second, `run-${r}`, 8)
  if (cold.cached !== 0) throw new Error(`run ${r}: the fresh tenant found ${cold.cached} tokens cached`)
  if (warm.cached === 0) throw new Error(`run ${r}: the second turn found nothing cached`)
  if (cold.text !== warm.text) throw new Error(`run ${r}: the answer with reuse ${JSON.stringify(warm.text)} differs from ${JSON.stringify(cold.text)}`)
  miss.push(cold.ms)
  hit.push(warm.ms)
  prompt = warm.prompt
  cached = warm.cached
}

console.log(`kvkit serve, fixture-14m (${model.kernels}), second chat turn of ${prompt} prompt tokens over HTTP (openai client, streaming), ${RUNS} runs each`)
console.log(`time to first token, no reuse (fresh cache_salt)   median ${median(miss).toFixed(1)} ms   runs ${miss.map((x) => x.toFixed(0)).join(' ')}`)
console.log(`time to first token, prefix cache hit              median ${median(hit).toFixed(1)} ms   runs ${hit.map((x) => x.toFixed(0)).join(' ')}`)
console.log(`cached_tokens ${cached} of ${prompt}; speedup (median / median) ${(median(miss) / median(hit)).toFixed(2)}x   (bound from the prefill work skipped: ${(prompt / (prompt - cached)).toFixed(1)}x)`)
console.log(`greedy answers equal with and without reuse: true (checked every run)`)
await server.close()
model.dispose()
