/**
 * `kvkit generate --prompt-file` with a prompt past the context: a 10 MB file is refused by the
 * tokenizer's lower bound (src/model/token-bound.ts) with the usage error's one line, its count 'at
 * least' the file's length over 14 (the fixture's longest entry); a prompt just past the limit by its
 * exact count keeps the message it had.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { HfTokenizerAdapter } from '../src/model/tokenizer.js'
import { cli } from './cli-capture.js'

const MODEL = 'models/fixture-14m'
const dir = mkdtempSync(join(tmpdir(), 'kvkit-long-prompt-'))
const file = (name: string, text: string) => {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

describe('kvkit generate: a prompt past the context', () => {
  it('a 10 MB prompt file: exit 2, the usage line with at least length/14 + BOS tokens', async () => {
    const text = 'x'.repeat(10 * 2 ** 20)
    const r = await cli('generate', '--model', MODEL, '--prompt-file', file('big.txt', text))
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).toBe(`kvkit: prompt (at least ${1 + Math.ceil(text.length / 14)} tokens) + 64 new tokens is beyond what the model supports (max_position_embeddings 8192)\n`)
  })

  it('prose of 8200 tokens, which the bound lets through: the exact count, as before', async () => {
    const tok = new HfTokenizerAdapter(JSON.parse(readFileSync(join(MODEL, 'tokenizer.json'), 'utf8')))
    const sentence = 'It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. '
    // a repeat's tokens (the first sentence, without the space before it, has others)
    const each = tok.encode(sentence.repeat(2)).length - tok.encode(sentence).length
    const text = sentence.repeat(Math.ceil(8200 / each))
    const n = 1 + tok.encode(text).length
    expect(n).toBeGreaterThan(8192)
    expect(tok.minTokens(text) + 1 + 64).toBeLessThanOrEqual(8192)
    const r = await cli('generate', '--model', MODEL, '--prompt-file', file('prose.txt', text))
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(`kvkit: prompt (${n} tokens) + 64 new tokens is beyond what the model supports (max_position_embeddings 8192)\n`)
  })
})
