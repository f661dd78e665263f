// `kvkit serve`'s HTTP layer alone: what a request costs besides the model, for comparing two builds of
// the server (e.g. Hono's against node:http) in one process on one loaded model. Per round and server:
// GET /v1/models requests/s (8 clients at once), a whole one-token chat completion's latency, and a
// streamed one's time to first token (a short prompt, found in the prefix cache after the first round).
// Rounds alternate the servers (A B A B ...) so machine load falls on both; medians over rounds.
//   npm run build:ts && node dist/bench/serve-http.js [--base OTHER/dist/src/serve/http.js] [--rounds 7] [--requests 400]
import { pathToFileURL } from 'node:url'
import { resolve } from 'node:path'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { serve, type KvkitServer, type ServeOptions } from '../src/serve/http.js'
import { arg, ID, median } from './serve-setup.js'

const ROUNDS = arg('rounds', 7)
const REQUESTS = arg('requests', 400)
const baseAt = process.argv.indexOf('--base')
type Serve = (model: LlamaModel, options: ServeOptions) => Promise<KvkitServer>
const servers: [string, Serve][] = [['this build', serve]]
if (baseAt > 0) servers.push([`base ${process.argv[baseAt + 1]}`, ((await import(pathToFileURL(resolve(process.argv[baseAt + 1])).href)) as { serve: Serve }).serve])

const model = (await loadModel('models/fixture-14m', { backend: 'wasm' })) as LlamaModel
const running = await Promise.all(servers.map(([, start]) => start(model, { port: 0, modelId: ID })))
const chat = (url: string, stream: boolean) =>
  fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: ID, messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 1, temperature: 0, stream }),
  })

/** GET /v1/models, `REQUESTS` in all from 8 clients at once: requests per second */
async function modelsPerSecond(url: string): Promise<number> {
  const t0 = performance.now()
  await Promise.all(Array.from({ length: 8 }, async () => {
    for (let i = 0; i < REQUESTS / 8; i++) await (await fetch(`${url}/v1/models`)).arrayBuffer()
  }))
  return REQUESTS / ((performance.now() - t0) / 1000)
}

/** a whole one-token chat completion: ms to its last byte (median of 9) */
async function wholeMs(url: string): Promise<number> {
  const ms: number[] = []
  for (let i = 0; i < 9; i++) {
    const t0 = performance.now()
    const r = await chat(url, false)
    if (r.status !== 200) throw new Error(`${url}: ${r.status} ${await r.text()}`)
    await r.arrayBuffer()
    ms.push(performance.now() - t0)
  }
  return median(ms)
}

/** a streamed one-token chat completion: ms to its first token event, the role event skipped (median of 9) */
async function streamFirstTokenMs(url: string): Promise<number> {
  const ms: number[] = []
  for (let i = 0; i < 9; i++) {
    const t0 = performance.now()
    const reader = (await chat(url, true)).body!.getReader()
    let text = ''
    let first = 0
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      text += Buffer.from(value).toString()
      if (!first && text.split('\n\n').length > 2) first = performance.now() - t0
    }
    ms.push(first)
  }
  return median(ms)
}

const results = servers.map(() => ({ rps: [] as number[], whole: [] as number[], ttft: [] as number[] }))
for (let r = 0; r < ROUNDS; r++) {
  // A B, then B A: neither always goes first
  const order = r % 2 ? [...running.keys()].reverse() : [...running.keys()]
  for (const i of order) {
    results[i].rps.push(await modelsPerSecond(running[i].url))
    results[i].whole.push(await wholeMs(running[i].url))
    results[i].ttft.push(await streamFirstTokenMs(running[i].url))
  }
}
console.log(`kvkit serve HTTP layer, fixture-14m (${model.kernels}), ${ROUNDS} rounds alternating, medians over rounds`)
for (const [i, [name]] of servers.entries()) {
  const x = results[i]
  console.log(`${name.padEnd(40)} GET /v1/models ${median(x.rps).toFixed(0)} req/s   whole chat (1 token) ${median(x.whole).toFixed(2)} ms   streamed first token ${median(x.ttft).toFixed(2)} ms`)
}
if (servers.length === 2) {
  // each round's pair ran back to back: the median of its ratios is steadier than the ratio of medians
  const ratio = (k: 'rps' | 'whole' | 'ttft') => median(results[0][k].map((a, r) => a / results[1][k][r])).toFixed(3)
  console.log(`this build / base, median of per-round ratios: GET /v1/models req/s ${ratio('rps')}x   whole chat ms ${ratio('whole')}x   streamed first token ms ${ratio('ttft')}x`)
}
for (const s of running) await s.close()
model.dispose()
