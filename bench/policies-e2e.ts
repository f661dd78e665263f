/**
 * End to end on the fixture model: Keyformer, WindowKV, RazorAttention, KVMerger, MPCache
 * and ThinK on passkey, niah_single and vt at
 * 4096 tokens (prompts built as the fixture was trained, src/eval/prompt.ts), greedy decoding, strict
 * accuracy, and the share of the full cache's bytes kept after compression. RazorAttention is calibrated
 * on the model first (once; RAZOR_CALIBRATION=text repeats a book passage instead of random tokens). TRIM-KV has no trained gates for this model, so it is not run here.
 *   [FIRST=k] [RAZOR_CALIBRATION=text] node dist/bench/policies-e2e.js [samples] [spec ...]
 */
import { loadModel } from '../src/node/load.js'
import { PromptBuilder } from '../src/eval/prompt.js'
import { loadBooks } from '../src/eval/text.js'
import { loadWordList } from '../src/eval/words.js'
import { defaultBooksDir, defaultModelDir, defaultWordsFile } from '../src/eval/paths.js'
import { strictCorrect } from '../src/eval/score.js'
import { createPolicy } from '../src/policies/registry.js'
import type { RazorPolicy } from '../src/policies/razorattention.js'
import type { TaskName } from '../src/eval/tasks.js'

const TASKS: TaskName[] = ['passkey', 'niah_single', 'vt']
const DEFAULT_SPECS = [
  'full',
  'keyformer:budget=0.5', 'keyformer:budget=0.25',
  'windowkv:budget=0.5,task=qa', 'windowkv:budget=0.25,task=qa',
  'razorattention:budget=0.5', 'razorattention:budget=0.25',
  'kvmerger:budget=0.5', 'kvmerger:budget=0.25',
  'mpcache:budget=0.5', 'mpcache:budget=0.25',
  'snapkv:budget=0.5+think:ratio=0.4', 'snapkv:budget=0.25+think:ratio=0.4',
]

const args = process.argv.slice(2)
const samples = Number(args[0] ?? 4)
const specs = args.length > 1 ? args.slice(1) : DEFAULT_SPECS
const model = await loadModel(defaultModelDir(), { backend: 'wasm' })
const books = loadBooks(defaultBooksDir())
const builder = new PromptBuilder({ tokenizer: model.tokenizer, bosId: model.config.bosTokenId ?? 0, books, words: loadWordList(defaultWordsFile()) })
// FIRST=k starts at sample index k, so runs can be split and their counts added
const first = Number(process.env.FIRST ?? 0)
const prompts = TASKS.flatMap((task) => Array.from({ length: samples }, (_, i) => builder.build(task, 4096, 1, first + i)))

console.log(`kernels: ${model.kernels}`)
console.log(`| policy | passkey | niah_single | vt | mean | kept bytes | s/sample |`)
console.log(`| --- | --- | --- | --- | --- | --- | --- |`)
for (const spec of specs) {
  try {
    await runSpec(spec)
  } catch (e) {
    console.log(`| ${spec} | error: ${(e as Error).message} |`)
  }
}
model.dispose()

async function runSpec(spec: string): Promise<void> {
  const policy = createPolicy(spec, model.config)
  if (policy && 'calibrate' in policy) {
    // RAZOR_CALIBRATION=text repeats 256 tokens of a held-out book instead of random tokens
    const tokens = process.env.RAZOR_CALIBRATION === 'text' ? builder.encode(books[0].sentences.slice(200, 260).join('')).slice(0, 256) : undefined
    const heads = await (policy as RazorPolicy).calibrate(model, tokens ? { tokens } : {})
    console.error(`${spec}: retrieval heads ${JSON.stringify(heads)}`)
  }
  const correct: Record<string, number> = {}
  let kept = 0
  const t0 = performance.now()
  for (const s of prompts) {
    const gen = model.generate(s.promptIds, { maxNewTokens: s.answerIds.length + 2, temperature: 0, policy: policy ?? undefined })
    const { text, stats } = await gen.result
    correct[s.task] = (correct[s.task] ?? 0) + Number(strictCorrect(text, s.answer))
    kept += stats.kvBytesAfterPrefill.total / ((stats.promptTokens - 1) * model.config.layers * model.config.kvHeads * 2 * model.config.headDim * 4)
  }
  const acc = TASKS.map((t) => (correct[t] ?? 0) / samples)
  const mean = acc.reduce((a, b) => a + b, 0) / acc.length
  const secs = (performance.now() - t0) / 1000 / prompts.length
  console.log(`| ${spec} | ${TASKS.map((t) => `${correct[t]}/${samples}`).join(' | ')} | ${mean.toFixed(2)} | ${(100 * kept / prompts.length).toFixed(0)}% | ${secs.toFixed(1)} |`)
}
