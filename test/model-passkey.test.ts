import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { cleanText, splitSentences } from '../src/eval/text.js'

// A passkey prompt built exactly as the fixture was trained (tasks.md, train.py): haystack sentences from a
// held-out book, cleaned and split the same way (src/eval/text.ts), each piece tokenized on its own and concatenated.

function passkeyPrompt(model: LlamaModel, book: string, passkey: string, total: number, start: number, depth: number): { ids: number[]; answer: string } {
  const enc = (s: string) => model.tokenizer.encode(s)
  const needle = enc(` The pass key is ${passkey}. Remember it. ${passkey} is the pass key.`)
  const qa = enc('\n\nQuestion: What is the pass key?\nAnswer:')
  const answer = ` The pass key is ${passkey}.`
  const budget = total - 1 - qa.length - enc(answer).length - needle.length - 1
  const hay: number[][] = []
  let n = 0
  for (const s of splitSentences(cleanText(book)).slice(start)) {
    const ids = enc(s)
    if (n + ids.length > budget) break
    hay.push(ids)
    n += ids.length
  }
  hay.splice(Math.floor(depth * (hay.length + 1)), 0, needle)
  return { ids: [0, ...hay.flat(), ...qa], answer }
}

describe('greedy generation on a 4096-token passkey prompt', () => {
  let model: LlamaModel
  beforeAll(async () => {
    model = await loadModel('models/fixture-14m', { backend: 'wasm' })
  })
  afterAll(() => model?.dispose())

  it('returns the pass key hidden in the haystack, with stats that add up', async () => {
    const book = readFileSync('data/books/pg345.txt', 'utf8')
    const { ids, answer } = passkeyPrompt(model, book, '73914', 4096, 400, 0.37)
    const answerLen = model.tokenizer.encode(answer).length
    expect(ids.length + answerLen + 1).toBeGreaterThan(4080)
    expect(ids.length + answerLen + 1).toBeLessThanOrEqual(4096)
    const streamed: string[] = []
    const gen = model.generate(ids, { maxNewTokens: answerLen + 2, temperature: 0 })
    for await (const t of gen) streamed.push(t.text)
    const { text, stats } = await gen.result
    expect(text.trim().startsWith(answer.trim())).toBe(true)
    expect(streamed.join('')).toBe(text)
    expect(stats.promptTokens).toBe(ids.length)
    // full cache: every token that went through the model is stored
    expect(stats.kvBytes.hot).toBe(stats.kvBytesFull)
    expect(stats.kvBytesAfterPrefill.hot).toBe((ids.length - 1) * model.config.layers * model.config.kvHeads * 2 * 64 * 4)
    expect(stats.prefillMs).toBeGreaterThan(0)
  })
})
