import { createHash } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { PromptBuilder } from '../src/eval/prompt.js'
import { TASK_NAMES } from '../src/eval/tasks.js'
import { loadBooks } from '../src/eval/text.js'
import { loadWordList } from '../src/eval/words.js'
import { defaultBooksDir, defaultWordsFile } from '../src/eval/paths.js'
import { fixtureTokenizer } from './eval-helpers.js'

const tokenizer = fixtureTokenizer()
const builder = new PromptBuilder({ tokenizer, bosId: 0, books: loadBooks(defaultBooksDir()), words: loadWordList(defaultWordsFile()) })

describe('task prompts', () => {
  it('lay out BOS, haystack with needles, then the question block, each piece tokenized on its own', () => {
    for (const task of TASK_NAMES) {
      const s = builder.build(task, 1024, 5, 0)
      expect(s.pieces[0]).toEqual({ kind: 'bos', text: '', ids: [0] })
      const q = s.pieces[s.pieces.length - 1]
      expect(q.kind).toBe('question')
      expect(q.text).toMatch(/^\n\nQuestion: .+\nAnswer:$/)
      for (const p of s.pieces.slice(1)) expect(p.ids).toEqual(tokenizer.encode(p.text))
      expect(s.promptIds).toEqual(s.pieces.flatMap((p) => p.ids))
      expect(s.answerIds).toEqual(tokenizer.encode(s.answer))
      for (const p of s.pieces.filter((x) => x.kind === 'needle')) expect(p.text.startsWith(' ')).toBe(true)
    }
  })

  it('fill the context: prompt + answer + end token fit the length and the next sentence would not', () => {
    for (const length of [512, 1024, 4096]) {
      for (let i = 0; i < 4; i++) {
        const s = builder.build('niah_single', length, 11, i)
        const total = s.promptIds.length + s.answerIds.length + 1
        expect(total).toBeLessThanOrEqual(length)
        // the haystack stops at the first sentence that would overflow: the gap is under one sentence
        const longest = Math.max(...s.pieces.filter((p) => p.kind === 'sentence').map((p) => p.ids.length))
        expect(length - total).toBeLessThan(Math.max(longest, 80))
      }
    }
  })

  it('use the answer formats of tasks.md', () => {
    const a = (task: (typeof TASK_NAMES)[number]) => builder.build(task, 1024, 1, 3)
    expect(a('passkey').answer).toMatch(/^ The pass key is \d{5}\.$/)
    expect(a('niah_single').answer).toMatch(/^ The special magic number for [a-z]{4,9} mentioned in the provided text is \d{7}\.$/)
    expect(a('niah_multivalue').answer).toMatch(/^ The special magic numbers for [a-z]{4,9} mentioned in the provided text are: \d{7}(, \d{7}){1,3}\.$/)
    expect(a('kv').answer).toMatch(/^ The value associated with key "[0-9a-f]{8}-[0-9a-f]{4}" is "[0-9a-f]{8}-[0-9a-f]{4}"\.$/)
    const vt = a('vt')
    expect(vt.answer).toMatch(/^ Answer: According to the chain\(s\) of variable assignment in the text above, \d variables are assigned the value \d{5}, they are: [A-Z]{5}( [A-Z]{5}){1,3}\.$/)
    // the chain's needles appear in order: the first assigns the value, each next one the previous name
    const needles = vt.pieces.filter((p) => p.kind === 'needle').map((p) => p.text)
    expect(needles[0]).toBe(` VAR ${vt.expected[0]} = ${vt.answer.match(/value (\d{5})/)![1]}.`)
    for (let i = 1; i < needles.length; i++) expect(needles[i]).toBe(` VAR ${vt.expected[i]} = VAR ${vt.expected[i - 1]}.`)
  })

  it('put the needles with the expected values into the prompt, and the question asks for one of them', () => {
    const mk = builder.build('niah_multikey', 2048, 2, 7)
    const needles = mk.pieces.filter((p) => p.kind === 'needle')
    expect(needles.length).toBeGreaterThanOrEqual(2)
    const key = mk.answer.match(/for (\w+) mentioned/)![1]
    expect(needles.some((n) => n.text === ` One of the special magic numbers for ${key} is: ${mk.expected[0]}.`)).toBe(true)
    expect(mk.pieces.at(-1)!.text).toContain(`magic number for ${key} mentioned`)
  })

  it('place needles at varied depths across samples', () => {
    const depths = Array.from({ length: 16 }, (_, i) => {
      const s = builder.build('passkey', 1024, 3, i)
      return s.pieces.findIndex((p) => p.kind === 'needle') / s.pieces.length
    })
    expect(Math.min(...depths)).toBeLessThan(0.3)
    expect(Math.max(...depths)).toBeGreaterThan(0.7)
  })

  it('are the same for the same seed and index, whatever else was built before', () => {
    const fresh = new PromptBuilder({ tokenizer, bosId: 0, books: loadBooks(defaultBooksDir()), words: loadWordList(defaultWordsFile()) })
    const a = builder.build('vt', 1024, 9, 4)
    const b = fresh.build('vt', 1024, 9, 4)
    expect(b.promptIds).toEqual(a.promptIds)
    expect(builder.build('vt', 1024, 10, 4).promptIds).not.toEqual(a.promptIds)
    // frozen: the sample for seed 1 stays the same in every version (change only on purpose)
    const pinned = builder.build('passkey', 1024, 1, 0)
    expect(pinned.answer).toBe(PINNED_ANSWER)
    expect(createHash('sha256').update(pinned.promptIds.join(',')).digest('hex').slice(0, 16)).toBe(PINNED_HASH)
  })

  it('differ from tokenizing the whole prompt string at paragraph breaks, which is why they are built piecewise', () => {
    let differing = 0
    for (let i = 0; i < 6; i++) {
      const s = builder.build('niah_single', 2048, 4, i)
      const whole = [0, ...tokenizer.encode(s.pieces.slice(1).map((p) => p.text).join(''))]
      if (whole.join(',') !== s.promptIds.join(',')) differing++
    }
    expect(differing).toBeGreaterThan(0)
  })

  it('take their haystack from the user\'s own text when given', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvkit-own-'))
    const text = Array.from({ length: 400 }, (_, i) => `Ledger line ${i} records a shipment of ${i % 17} crates.`).join('\n')
    writeFileSync(join(dir, 'ledger.txt'), text)
    const own = new PromptBuilder({ tokenizer, bosId: 0, books: loadBooks(join(dir, 'ledger.txt')), words: loadWordList(defaultWordsFile()) })
    const s = own.build('passkey', 1024, 1, 0)
    const sentences = s.pieces.filter((p) => p.kind === 'sentence')
    expect(sentences.length).toBeGreaterThan(20)
    for (const p of sentences) expect(p.text).toMatch(/^ ?Ledger line \d+ records a shipment of \d+ crates\.$/)
  })

  it('reject a length too short for the needles and question', () => {
    expect(() => builder.build('kv', 60, 1, 0)).toThrow(/length 60 is too short for task kv/)
  })
})

const PINNED_ANSWER = ' The pass key is 52159.'
const PINNED_HASH = '49c2d622070825ea'
