import { describe, expect, it } from 'vitest'
import { renderReport } from '../src/eval/report.js'
import { wilsonInterval, type EvalResult } from '../src/eval/results.js'

// npm start writes two pages in a float16 cache: the question in the prompt (report/) and after the
// compressed context (report/question-after/). "KV kept" is a share of that float16 cache (a policy that
// packs rows, unionkv with bits, is compared at equal bytes) and the loop decides what the votes see,
// but the pages' facts line named neither: only "kvkit main" as the command. It names both now, from the
// results' own kvDtype and question.

const FULL = 1 << 20
const cell = (policy: string, kvDtype: string, question: string): EvalResult => ({
  policy, task: 'passkey', length: 4096, samples: 4, accuracy: 1, accuracyInterval: wilsonInterval(4, 4), score: 1, kvBytes: FULL / 8, kvBytesFull: FULL,
  prefillMs: 900, decodeMsPerToken: 5, compressMs: 0, kvDtype, question, newTokens: 8, kernels: 'wasm-simd',
})
const facts = (html: string) => /<h1>[^<]*<\/h1>\s*<p>(.*?)<\/p>/s.exec(html)![1]

describe('the HTML report names the KV cache element type and the question loop', () => {
  it('npm start\'s question-after page: float16, question after the compressed context', () => {
    const f = facts(renderReport([cell('full', 'float16', 'after'), cell('unionkv:budget=0.125,bits=4', 'float16', 'after')], { command: 'kvkit main (question after)' }))
    expect(f).toContain('KV float16')
    expect(f).toContain('question after the compressed context')
  })

  it('the default page: float32, question in the prompt; cells that differ list each once', () => {
    expect(facts(renderReport([cell('full', 'float32', 'with')]))).toContain('KV float32 · question in the prompt')
    expect(facts(renderReport([cell('full', 'float32', 'with'), cell('snapkv', 'float16,float32', 'after')]))).toContain('KV float32, float16 · question in the prompt, after the compressed context')
  })
})
