import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { readPromptsFile, PromptsFileError } from '../src/eval/prompts-file.js'

// A sample whose prompt_ids hold one token was refused with "context_len 1 must be an integer in [1, 0]"
// (or "context_len undefined ... in [1, 0]" without one): an empty range that did not say what was wrong.
// The message now says the prompt is too short to split into a context and what follows it.

const dir = mkdtempSync(join(tmpdir(), 'kvkit-tryout-prompts1-'))
const line = (o: Record<string, unknown>) => JSON.stringify({ task: 'passkey', index: 0, length: 3, prompt_ids: [0], answer: ' x', answer_ids: [1765], expected: ['x'], ...o })

describe('a prompts file sample of one prompt token', () => {
  it.each([[{}], [{ context_len: 1 }], [{ context_len: 0 }]])('%o is a PromptsFileError saying the prompt is too short', (o) => {
    const file = join(dir, 'p.jsonl')
    writeFileSync(file, line(o))
    expect(() => readPromptsFile(file, 4096)).toThrow(PromptsFileError)
    expect(() => readPromptsFile(file, 4096)).toThrow(/p\.jsonl:1: prompt_ids has 1 token; a sample needs at least 2/)
  })

  it('two tokens split as before', () => {
    const file = join(dir, 'p2.jsonl')
    writeFileSync(file, line({ prompt_ids: [0, 200], context_len: 1 }))
    expect(readPromptsFile(file, 4096)[0].context_len).toBe(1)
  })
})
