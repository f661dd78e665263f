import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { defaultModelDir } from '../src/eval/paths.js'
import { EvalArgumentError, planEvaluation } from '../src/eval/runner.js'

// With `prompts` (a JSONL of samples) the library ran every sample of the file whatever `samples` and
// `firstSample` said: evaluate({ prompts, samples: 1, firstSample: 1 }) ran both samples of each cell,
// without a word, where tasks, lengths, seed, haystack and books are refused and the CLI refuses
// --samples. samples: 0 (what the CLI passes, the type asking for a number) is still the "not given".

const dir = mkdtempSync(join(tmpdir(), 'kvkit-tryout-prompts-'))
const file = join(dir, 'p.jsonl')
const sample = (index: number) => JSON.stringify({ task: 'passkey', index, length: 3, prompt_ids: [0, 200, 42], answer: ' x', answer_ids: [1765], context_len: 2, expected: ['x'] })
writeFileSync(file, `${sample(0)}\n${sample(1)}\n`)
const plan = (o: { samples: number; firstSample?: number }) => planEvaluation({ model: defaultModelDir(), policies: ['lagkv'], tasks: [], lengths: [], prompts: file, ...o })

describe('evaluate with a prompts file refuses its own sample choices', () => {
  it.each([[{ samples: 1 }, /samples 1/], [{ samples: NaN }, /samples NaN/], [{ samples: 0, firstSample: 1 }, /firstSample 1/], [{ samples: 2, firstSample: 0 }, /samples 2, firstSample 0/]])('%o is an EvalArgumentError naming it', (o, msg) => {
    expect(() => plan(o)).toThrow(EvalArgumentError)
    expect(() => plan(o)).toThrow(/--prompts gives the samples/)
    expect(() => plan(o)).toThrow(msg)
  })

  it('samples: 0 runs every sample of the file', () => {
    expect(plan({ samples: 0 }).jobs.map((j) => j.index)).toEqual([0, 1])
  })
})
