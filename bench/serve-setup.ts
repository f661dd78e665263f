// What the kvkit serve benchmarks share: their flags, the book text, the fixture behind a server and
// an openai client on it.
import { readFileSync } from 'node:fs'
import OpenAI from 'openai'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { serve, type ServeOptions } from '../src/serve/http.js'

export const ID = 'fixture-14m'

/** a numeric --name flag, or `fallback` */
export const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : fallback
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** the words of Pride and Prejudice (data/books), for passages */
export const bookWords = (): string[] => readFileSync('data/books/Pride_and_Prejudice_JaneAusten.txt', 'utf8').split(/\s+/).filter(Boolean)

/** the fixture on the wasm backend, served on a free port with `options`, and a client on it */
export async function startServer(options: ServeOptions = {}) {
  const model = (await loadModel('models/fixture-14m', { backend: 'wasm' })) as LlamaModel
  const server = await serve(model, { port: 0, modelId: ID, ...options })
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 })
  return { model, server, client }
}

/**
 * One streamed chat request timed as a user sees it: ms from the call to the first content chunk, the
 * whole answer, and the usage's prompt and cached tokens. `body` is everything but model and streaming
 * (kvkit's extension fields included).
 */
export async function streamedTurn(client: OpenAI, body: Record<string, unknown>) {
  const t0 = performance.now()
  const stream = await client.chat.completions.create({
    model: ID, ...body, stream: true, stream_options: { include_usage: true },
  } as never as OpenAI.Chat.Completions.ChatCompletionCreateParamsStreaming)
  let first = 0
  let text = ''
  let usage: OpenAI.Completions.CompletionUsage | undefined
  for await (const c of stream) {
    const d = c.choices[0]?.delta?.content
    if (d && !first) first = performance.now() - t0
    text += d ?? ''
    usage = c.usage ?? usage
  }
  return { ms: first, text, prompt: usage!.prompt_tokens, cached: usage!.prompt_tokens_details?.cached_tokens ?? 0 }
}
