/**
 * A prompts file's bad lines are refused when it is read, naming the line, before any model loads:
 * - `null` (valid JSON, not an object) failed with "Cannot read properties of null";
 * - `expected: []` passed the reader and failed after the prefill, naming neither file nor line;
 * - `expected: [""]` scored 1 whatever the model answered (an empty string is in every output);
 * - `index: "7"` was silently replaced by the line's position;
 * - the same (task, length, index) twice counted as two samples of its cell.
 * Lines are hand-written; no model is needed.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { readPromptsFile, PromptsFileError } from '../src/eval/prompts-file.js'

const dir = mkdtempSync(join(tmpdir(), 'kvkit-prompts-'))
const VOCAB = 4096
const sample = { task: 'passkey', index: 0, length: 256, prompt_ids: [0, 5, 6, 7, 8], answer: ' 12345.', answer_ids: [9, 10], context_len: 3, expected: ['12345'] }
const line = (o: Record<string, unknown>) => JSON.stringify({ ...sample, ...o })

function read(text: string) {
  const file = join(dir, 'p.jsonl')
  writeFileSync(file, text)
  return () => readPromptsFile(file, VOCAB)
}

describe('prompts file lines', () => {
  it('null, empty or blank expected values, labels that are not integers, a sample twice: PromptsFileError naming the line', () => {
    const cases: [string, RegExp][] = [
      ['null', /p\.jsonl:1: not a JSON object/],
      [`${line({})}\n[1, 2]`, /p\.jsonl:2: not a JSON object/],
      [line({ expected: [] }), /:1: expected must be a non-empty list of non-empty strings, got \[\]/],
      [line({ expected: ['12345', ' '] }), /:1: expected must be a non-empty list of non-empty strings/],
      [line({ index: '7' }), /:1: index must be an integer of at least 0, got "7"/],
      [line({ index: -1 }), /:1: index must be an integer of at least 0, got -1/],
      [line({ length: 25.5 }), /:1: length must be an integer of at least 1, got 25.5/],
      [`${line({})}\n${line({ index: 1 })}\n${line({})}`, /:3: sample passkey at length 256 index 0 is given twice/],
    ]
    for (const [text, msg] of cases) {
      expect(read(text), text).toThrow(PromptsFileError)
      expect(read(text), text).toThrow(msg)
    }
  })

  it('good lines read as written; missing labels default to the line order and the prompt length', () => {
    const { index: _i, length: _l, expected: _e, ...bare } = sample
    const got = read(`${line({})}\n${line({ task: 'vt', index: 0 })}\n${JSON.stringify(bare)}\n`)()
    expect(got.map((s) => [s.task, s.index, s.length, s.expected])).toEqual([
      ['passkey', 0, 256, ['12345']], ['vt', 0, 256, ['12345']], ['passkey', 2, 5, ['12345.']],
    ])
  })
})
