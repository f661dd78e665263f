// A prompt between the context and the token bound on `kvkit serve` (fixture-14m, wasm): the bound
// (src/model/token-bound.ts) cannot refuse it, so it is tokenized to be counted; with the tokenizer
// thread (src/serve/tokenizer-thread.ts, the default) or on the event loop (tokenizerThread: false).
// Per server: the 400's time, a short request sent alongside, the event loop's longest stall (5 ms
// timer), median over --rounds. A command-line script:
//   npm run build:ts && node dist/bench/serve-between.js [--words 30000] [--rounds 5]
import { arg, bookWords, ID, median, startServer } from './serve-setup.js'
import { longestStall } from './event-loop-stall.js'

const count = arg('words', 30000)
const rounds = arg('rounds', 5)
const words = bookWords()
const content = Array.from({ length: count }, (_, i) => words[(i * 7919) % words.length]).join(' ')

for (const tokenizerThread of [true, false]) {
  const { model, server, client } = await startServer({ tokenizerThread })
  try {
    const rendered = server.engine.template.render([{ role: 'user', content }])
    const least = model.tokenizer.minTokens!(rendered, model.config.maxPositions)
    const n = model.tokenizer.encode(rendered).length
    const rows: { big: number; small: number; stall: number }[] = []
    for (let r = 0; r < rounds; r++) {
      const big = (t0: number) => fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ model: ID, messages: [{ role: 'user', content }] }),
      }).then((res) => (res.status === 400 ? performance.now() - t0 : Promise.reject(new Error(`expected the 400, got ${res.status}`))))
      const small = (t0: number) => client.chat.completions.create({ model: ID, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 1, temperature: 0 }).then(() => performance.now() - t0)
      // the stall while the long prompt alone is served (a short request's own prefill and decode step
      // hold the loop too), then the two together for the short one's latency
      const { result: bigMs, stallMs } = await longestStall(() => big(performance.now()))
      const t0 = performance.now()
      const [, smallMs] = await Promise.all([big(t0), small(t0)])
      rows.push({ big: bigMs, small: smallMs, stall: stallMs })
    }
    console.log(`tokenizer thread ${tokenizerThread ? 'on ' : 'off'}: ${content.length} units, ${n} tokens (bound ${least}, context ${model.config.maxPositions}); ` +
      `400 in ${median(rows.map((x) => x.big)).toFixed(0)} ms, short request ${median(rows.map((x) => x.small)).toFixed(0)} ms, longest stall ${median(rows.map((x) => x.stall)).toFixed(0)} ms (medians of ${rounds})`)
  } finally {
    await server.close()
    model.dispose()
  }
}
