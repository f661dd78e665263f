/**
 * Which needle tokens an eviction policy keeps, beside whether the answer is right: for each sample, each
 * policy and each loop, the share of every needle's tokens that survive compression, as the minimum and
 * the mean over (layer, KV head). Written to find why UnionKV loses vt's chains (issue 21).
 *   node dist/bench/unionkv-diagnose.js --task vt --length 4096 --first 0 --count 8 \
 *     --policies 'unionkv:budget=0.25;lagkv:budget=0.25' [--question with,after] [--books A,B] [--out rows.jsonl]
 * Each sample is prefilled once per loop and shared by every policy (as the eval does).
 */
import { appendFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { loadModel } from '../src/node/load.js'
import { createPolicy } from '../src/policies/registry.js'
import { PromptBuilder } from '../src/eval/prompt.js'
import { haystackBooks } from '../src/eval/text.js'
import { loadWordList } from '../src/eval/words.js'
import { defaultBooksDir, defaultModelDir, defaultWordsFile } from '../src/eval/paths.js'
import { rulerScore, strictCorrect } from '../src/eval/score.js'
import type { TaskName } from '../src/eval/tasks.js'
import type { KeptTokens } from '../src/model/types.js'

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : def
}

const model = await loadModel(defaultModelDir(), { backend: 'wasm' })
const books = arg('books', '') ? arg('books', '').split(',').map((b) => resolve(b)) : undefined
const builder = new PromptBuilder({ tokenizer: model.tokenizer, bosId: model.config.bosTokenId ?? model.config.eosTokenIds[0], books: haystackBooks(defaultBooksDir(), undefined, books), words: loadWordList(defaultWordsFile()) })
const specs = arg('policies', 'unionkv:budget=0.25').split(';').map((s) => s.trim()).filter(Boolean)
const task = arg('task', 'vt') as TaskName
const length = Number(arg('length', '4096'))
const first = Number(arg('first', '0'))
const count = Number(arg('count', '8'))
const loops = arg('question', 'with,after').split(',') as ('with' | 'after')[]
const out = arg('out', '')
const verbose = arg('verbose', '0') === '1'
const totals = new Map<string, number>()

for (let index = first; index < first + count; index++) {
  const s = builder.build(task, length, 1, index)
  const ids = s.promptIds
  const spans: [number, number][] = []
  let at = 0
  for (const p of s.pieces) {
    if (p.kind === 'needle') spans.push([at, at + p.ids.length])
    at += p.ids.length
  }
  const contextLen = ids.length - s.pieces[s.pieces.length - 1].ids.length
  for (const loop of loops) {
    const contextTokens = loop === 'after' ? contextLen : undefined
    const policies = specs.map((spec) => createPolicy(spec, model.config))
    const prefill = await model.prefillPrompt(ids, policies, { contextTokens })
    for (let i = 0; i < specs.length; i++) {
      let kept: KeptTokens | undefined
      const gen = model.generate(ids, { maxNewTokens: s.answerIds.length + 3, policy: policies[i] ?? undefined, prefill, contextTokens, onKept: (k) => { if (k.stage === 'prefill') kept = k } })
      const { text } = await gen.result
      const correct = strictCorrect(text, s.answer)
      // share of each needle's tokens held, per (layer, head): min and mean
      const needles = spans.map(([a, b]) => {
        const fr: number[] = []
        for (const layer of kept?.kept ?? []) for (const head of layer) {
          let c = 0
          for (const p of head) if (p >= a && p < b) c++
          fr.push(c / (b - a))
        }
        return { at: a, len: b - a, min: Math.min(...fr), mean: fr.reduce((x, y) => x + y, 0) / Math.max(1, fr.length) }
      })
      const key = `${loop} ${specs[i]}`
      totals.set(key, (totals.get(key) ?? 0) + (correct ? 1 : 0))
      const row = { task, index, loop, policy: specs[i], correct, score: rulerScore(text, s.expected), needles, text: verbose ? text : undefined }
      if (out) appendFileSync(out, JSON.stringify(row) + '\n')
      console.log(`${task} #${index} ${loop} ${specs[i]}: ${correct ? 1 : 0} (${rulerScore(text, s.expected).toFixed(2)})  ${needles.map((n) => `@${n.at}(${n.len}) min ${n.min.toFixed(2)} mean ${n.mean.toFixed(2)}`).join(' | ')}${verbose ? '  ' + JSON.stringify(text) : ''}`)
    }
  }
}
for (const [k, v] of totals) console.log(`${k}: ${v}/${count}`)
process.exit(0)
