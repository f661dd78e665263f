// Decode speed of selection over quantized pages (issue 16): the full cache, KIVI-2 alone, Quest alone
// and Quest over KIVI-2 (bench/peers.ts's selection rows, at its budgets) on the fixture model, from one
// shared prefill per length, in one process. Each round times every policy once, in order; a policy's
// ratio is against the full cache's decode step of the same round (the machine is shared: only ratios
// taken side by side mean anything), and the table gives the median over rounds. The generated tokens
// are printed as a hash, so runs of two builds can be checked for the same output.
//   npm run build && node dist/bench/selection-packed.js [--lengths 4096,16384] [--tokens 16] [--rounds 3] [--threads 1]
import { createHash } from 'node:crypto'
import { parseArgs } from 'node:util'
import { loadModel } from '../src/node/load.js'
import { defaultBooksDir, defaultWordsFile } from '../src/eval/paths.js'
import { PromptBuilder } from '../src/eval/prompt.js'
import { loadBooks } from '../src/eval/text.js'
import { loadWordList } from '../src/eval/words.js'

const { values: args } = parseArgs({
  options: {
    lengths: { type: 'string', default: '4096,16384' },
    tokens: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '3' },
    threads: { type: 'string', default: '1' },
  },
})
const lengths = args.lengths.split(',').map(Number)
const tokens = Number(args.tokens)
const rounds = Number(args.rounds)
for (const [name, v] of [['tokens', tokens], ['rounds', rounds], ...lengths.map((l) => ['lengths', l] as const)] as const) {
  if (!(Number.isInteger(v) && v >= 1)) throw new RangeError(`bench/selection-packed: --${name} takes positive integers, got ${v}`)
}

/** bench/peers.ts's budget: 512 tokens up to 4k, 2048 past it */
const specsAt = (length: number): string[] => {
  const t = length <= 4096 ? 512 : 2048
  return ['full', 'kivi:bits=2', `quest:tokens=${t}`, `kivi:bits=2+quest:tokens=${t}`]
}

const MODEL = 'models/fixture-14m'
const median = (x: number[]) => [...x].sort((a, b) => a - b)[Math.floor(x.length / 2)]
for (const L of lengths) {
  // past the fixture's 8192 positions: an explicit limit (the speed is the point there, not the output)
  const model = await loadModel(MODEL, { backend: 'wasm', threads: Number(args.threads), contextLimit: L + tokens + 1 > 8192 ? L + tokens + 1 : undefined })
  const builder = new PromptBuilder({
    tokenizer: model.tokenizer, bosId: model.config.bosTokenId ?? model.config.eosTokenIds[0],
    books: loadBooks(defaultBooksDir()), words: loadWordList(defaultWordsFile()),
  })
  const ids = builder.build('niah_single', L, 1, 0).promptIds
  const specs = specsAt(L)
  const t0 = performance.now()
  const prefill = await model.prefillPrompt(ids, specs.map((s) => (s === 'full' ? undefined : s)))
  console.log(`\nfixture-14m, niah_single prompt of ${ids.length} tokens prefilled once in ${((performance.now() - t0) / 1000).toFixed(1)} s; ${tokens} new tokens a generation, ${rounds} rounds, ${args.threads} thread(s)`)
  const ms = new Map<string, number[]>(specs.map((s) => [s, []]))
  const ratio = new Map<string, number[]>(specs.map((s) => [s, []]))
  const hash = new Map<string, string>()
  for (let r = 0; r < rounds; r++) {
    let full = 0
    for (const spec of specs) {
      const out = await model.generate(ids, { maxNewTokens: tokens, policy: spec === 'full' ? undefined : spec, prefill }).result
      const step = out.stats.decodeMsPerToken
      if (spec === 'full') full = step
      ms.get(spec)!.push(step)
      ratio.get(spec)!.push(full / step)
      hash.set(spec, createHash('sha256').update(out.ids.join(',')).digest('hex').slice(0, 12))
    }
  }
  console.log('| length | policy | decode tokens/s (median) | ms/token (median) | x full, same round (median) | x full per round | tokens sha256 |')
  console.log('| --- | --- | --- | --- | --- | --- | --- |')
  for (const spec of specs) {
    const m = median(ms.get(spec)!)
    console.log(`| ${L} | ${spec} | ${(1000 / m).toFixed(1)} | ${m.toFixed(2)} | ${median(ratio.get(spec)!).toFixed(3)} | ${ratio.get(spec)!.map((x) => x.toFixed(3)).join(' ')} | ${hash.get(spec)} |`)
  }
  model.dispose()
}
