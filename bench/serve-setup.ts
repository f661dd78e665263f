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
