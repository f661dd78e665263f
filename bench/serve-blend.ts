// `kvkit serve` with `documents` (CacheBlend): time to first token of a RAG-style request whose four
// passages (data/books, `--words` each) were all sent before, in another order, against the same
// request on a server with `--blend off` under a fresh cache_salt (the documents as plain text, nothing
// cached: a full prefill). Both go through one process, the same scheduler and HTTP path (the openai
// client, streaming). Per run: a fresh set of passages is sent once in order (CacheBlend keeps each),
// then the reordered request on each server, the plain one first. Reports the medians, their ratio, and
// how many greedy answers agree (below ratio 1 CacheBlend's KV is approximate, so they may differ).
//   npm run build && node dist/bench/serve-blend.js [--runs 5] [--words 250] [--ratio 0.15]
import OpenAI from 'openai'
import { serve } from '../src/serve/http.js'
import { arg, bookWords, ID, median, startServer, streamedTurn } from './serve-setup.js'

const RUNS = arg('runs', 5)
const WORDS = arg('words', 250)
const RATIO = arg('ratio', 0.15)
const book = bookWords()
const { model, server, client } = await startServer({ blend: { ratio: RATIO } })
const plainServer = await serve(model, { port: 0, modelId: ID, blend: false })
const plainClient = new OpenAI({ baseURL: `${plainServer.url}/v1`, apiKey: 'unused', maxRetries: 0 })

const question = [{ role: 'user' as const, content: 'Who is speaking in the second passage?' }]

/** the timed request (serve-setup.ts's streamedTurn) on the server behind `c`, under tenant `salt` */
const ask = (c: OpenAI, documents: { text: string }[], salt: string, maxTokens: number) =>
  streamedTurn(c, { messages: question, documents, temperature: 0, max_tokens: maxTokens, cache_salt: salt })

const blended: number[] = []
const plain: number[] = []
let agree = 0
let prompt = 0
let cached = 0
for (let r = 0; r < RUNS; r++) {
  const start = 9000 + r * 5 * WORDS
  const docs = Array.from({ length: 4 }, (_, i) => ({ text: book.slice(start + i * WORDS, start + (i + 1) * WORDS).join(' ') }))
  await ask(client, docs, `run-${r}`, 4)
  const reordered = [docs[2], docs[0], docs[3], docs[1]]
  const cold = await ask(plainClient, reordered, `cold-${r}`, 8)
  const warm = await ask(client, reordered, `run-${r}`, 8)
  if (cold.cached !== 0) throw new Error(`run ${r}: the plain request found ${cold.cached} tokens cached`)
  if (warm.cached === 0) throw new Error(`run ${r}: the blended request found nothing cached`)
  plain.push(cold.ms)
  blended.push(warm.ms)
  if (cold.text === warm.text) agree++
  prompt = warm.prompt
  cached = warm.cached
}

console.log(`kvkit serve, fixture-14m (${model.kernels}), 4 documents of ${WORDS} words reordered + a question, ${prompt} prompt tokens over HTTP (openai client, streaming), ${RUNS} runs each`)
console.log(`time to first token, --blend off (plain prefill)        median ${median(plain).toFixed(1)} ms   runs ${plain.map((x) => x.toFixed(0)).join(' ')}`)
console.log(`time to first token, CacheBlend at ratio ${RATIO} (reused)  median ${median(blended).toFixed(1)} ms   runs ${blended.map((x) => x.toFixed(0)).join(' ')}`)
console.log(`cached_tokens ${cached} of ${prompt}; speedup (median / median) ${(median(plain) / median(blended)).toFixed(2)}x`)
console.log(`greedy answers equal to the plain prefill's: ${agree} of ${RUNS}`)
await plainServer.close()
await server.close()
model.dispose()
