// A prompt far past the context on `kvkit serve` (fixture-14m, wasm): what tokenizing it costs (the
// cost the tokenizer's lower bound, src/model/token-bound.ts, avoids), what the bound costs, and the
// server's answer to it: time to the 400, the event loop's longest stall meanwhile, and the latency of
// a short request sent alongside. A command-line script (tokenizing takes seconds):
//   npm run build:ts && node dist/bench/token-bound.js [--mb 10]
import { HfTokenizerAdapter } from '../src/model/tokenizer.js'
import { arg, bookWords, ID, startServer } from './serve-setup.js'
import { longestStall } from './event-loop-stall.js'

const mb = arg('mb', 10)
const words = bookWords()
let content = ''
for (let i = 0; content.length < mb * 2 ** 20; i++) content += words[i % words.length] + ' '

const { model, server, client } = await startServer()
try {
  const tok = model.tokenizer as HfTokenizerAdapter
  const rendered = server.engine.template.render([{ role: 'user', content }])
  // as the server asks: whether it reaches the context
  let t = performance.now()
  const least = tok.minTokens(rendered, model.config.maxPositions)
  const boundMs = performance.now() - t
  t = performance.now()
  const n = tok.encode(rendered).length
  const encodeMs = performance.now() - t
  console.log(`${(content.length / 2 ** 20).toFixed(1)} MB message (${rendered.length} units rendered): encode ${encodeMs.toFixed(0)} ms for ${n} tokens; bound ${boundMs.toFixed(3)} ms for at least ${least} (${tok.bound?.unitsPerToken} units or ${tok.bound?.alnumPerToken} letters and digits a token)`)

  const t0 = performance.now()
  const big = () => fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: ID, messages: [{ role: 'user', content }] }),
  }).then(async (r) => ({ status: r.status, ms: performance.now() - t0, body: (await r.json()) as { error?: { message: string } } }))
  const small = () => client.chat.completions.create({ model: ID, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 8, temperature: 0 }).then(() => performance.now() - t0)
  const { result: [b, smallMs], stallMs } = await longestStall(() => Promise.all([big(), small()]))
  console.log(`server: ${b.status} in ${b.ms.toFixed(0)} ms (${b.body.error?.message}); a short request alongside answered in ${smallMs.toFixed(0)} ms; longest event-loop stall ${stallMs.toFixed(0)} ms`)
} finally {
  await server.close()
  model.dispose()
}
