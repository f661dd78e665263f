// Runs under Deno and Bun (spawned by runtimes-serve-handler.test.ts): kvkit serve's fetch handler
// (serveHandler, the built kvkit/serve) on the runtime's own server, Deno.serve or Bun.serve, on a free
// port; a whole and a streamed chat completion, and a stream whose client leaves after its first token.
// Prints one JSON line.
import { loadModel } from '../dist/src/node/index.js'
import { serveHandler } from '../dist/src/serve/index.js'

const runtime = typeof Deno !== 'undefined' ? 'deno' : 'bun'
const model = await loadModel(new URL('../models/fixture-14m', import.meta.url).pathname, { backend: 'wasm' })
const h = serveHandler(model, { modelId: 'm', apiKey: 'sk-1' })
const server = runtime === 'deno'
  ? Deno.serve({ port: 0, hostname: '127.0.0.1', onListen() {} }, h.fetch)
  : Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: h.fetch })
// how each request's generation ended: the one whose client left must end with the handler's abort
const ends = []
const run = h.engine.run.bind(h.engine)
h.engine.run = (...args) => {
  const p = run(...args)
  p.then((o) => ends.push(o.finishReason), (e) => ends.push(`${e.name}: ${e.message}`))
  return p
}
const url = `http://127.0.0.1:${runtime === 'deno' ? server.addr.port : server.port}`
const headers = { 'Content-Type': 'application/json', Authorization: 'Bearer sk-1' }
const body = (stream, maxTokens) => JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'The passkey is 58213. What is the passkey?' }], max_tokens: maxTokens, temperature: 0, stream })

const whole = await (await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers, body: body(false, 12) })).json()
let streamed = ''
const events = (await (await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers, body: body(true, 12) })).text()).split('\n\n').filter(Boolean)
for (const e of events.slice(0, -1)) streamed += JSON.parse(e.slice('data: '.length)).choices[0]?.delta?.content ?? ''
const unauthorized = (await fetch(`${url}/v1/models`)).status

// a client that leaves mid-stream: its request is aborted and its KV freed
const leaving = new AbortController()
const reader = (await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers, body: body(true, 400), signal: leaving.signal })).body.getReader()
for (let seen = ''; seen.split('\n\n').length < 4; ) seen += new TextDecoder().decode((await reader.read()).value)
leaving.abort()
for (let i = 0; i < 300 && h.engine.scheduler.running > 0; i++) await new Promise((r) => setTimeout(r, 10))
const afterLeave = { running: h.engine.scheduler.running, reserved: h.engine.scheduler.reserved, ends }

await h.close()
await (runtime === 'deno' ? server.shutdown() : server.stop(true))
const alone = (await model.generate(model.tokenizer.encode('<|im_start|>user\nThe passkey is 58213. What is the passkey?<|im_end|>\n<|im_start|>assistant\n'), { maxNewTokens: 12, temperature: 0, stop: ['<|im_end|>'] }).result).text
model.dispose()
console.log(JSON.stringify({ runtime, whole: whole.choices[0].message.content, streamed, last: events.at(-1), unauthorized, afterLeave, alone }))
