// End-to-end decode speed on the fixture model at a long context: one niah_single prompt of `--length`
// tokens prefilled once (SharedPrefill), then `--tokens` greedy decode steps from that prefill with the
// full cache and with each selection method (ShadowKV with the prompt's values in the host tier); tokens/s of each, its ratio to full attention, and the
// Selection Cache hit rate, all in the same run.
//   npm run build && node dist/bench/selection-e2e.js [--length 16384] [--tokens 32] [--budget 2048]
import { parseArgs } from 'node:util'
import { loadModel } from '../src/node/load.js'
import { defaultBooksDir, defaultWordsFile } from '../src/eval/paths.js'
import { PromptBuilder } from '../src/eval/prompt.js'
import { loadBooks } from '../src/eval/text.js'
import { loadWordList } from '../src/eval/words.js'

const { values: args } = parseArgs({
  options: {
    length: { type: 'string', default: '16384' },
    tokens: { type: 'string', default: '32' },
    budget: { type: 'string', default: '2048' },
    'context-limit': { type: 'string' },
  },
})
const L = Number(args.length)
const B = Number(args.budget)
const model = await loadModel('models/fixture-14m', { contextLimit: args['context-limit'] ? Number(args['context-limit']) : undefined })
const builder = new PromptBuilder({
  tokenizer: model.tokenizer, bosId: model.config.bosTokenId ?? model.config.eosTokenIds[0],
  books: loadBooks(defaultBooksDir()), words: loadWordList(defaultWordsFile()),
})
const ids = builder.build('niah_single', L, 1, 0).promptIds
const specs = ['full', `tokenselect:tokens=${B},first=128,last=512`, `tokenselect:tokens=${B},first=128,last=512,cache=false`, `quest:tokens=${B}`, `delta:tokens=${B}`, `shadowkv:tokens=${B}`]
const t0 = performance.now()
const prefill = await model.prefillPrompt(ids, specs)
console.log(`fixture-14m, niah_single prompt of ${ids.length} tokens prefilled once in ${((performance.now() - t0) / 1000).toFixed(1)} s; ${args.tokens} decode steps each`)
console.log('| policy | decode tokens/s | ms/token | vs full | policy counters |')
console.log('| --- | --- | --- | --- | --- |')
let fullMs = 0
for (const spec of specs) {
  const r = await model.generate(ids, { maxNewTokens: Number(args.tokens), policy: spec, prefill }).result
  const ms = r.stats.decodeMsPerToken
  if (spec === 'full') fullMs = ms
  console.log(`| ${spec} | ${(1000 / ms).toFixed(1)} | ${ms.toFixed(1)} | ${(fullMs / ms).toFixed(2)}x | ${JSON.stringify(r.stats.policy ?? {})} |`)
}
model.dispose()
