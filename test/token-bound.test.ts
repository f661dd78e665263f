/**
 * The tokenizer's lower bound on a text's token count (src/model/token-bound.ts), which refuses a prompt
 * past the context before it is tokenized: never above what encode gives (the fixture's byte-level BPE
 * over prose, whitespace runs, its longest entries, added tokens, CJK, emoji, combining marks, lone
 * surrogates, random code points; the same tokenizer behind NFC; a Llama-2-style byte-fallback BPE),
 * tight where the text is the longest entry repeated, and null for the tokenizers it cannot bound.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { defaultModelDir } from '../src/eval/paths.js'
import { HfTokenizerAdapter } from '../src/model/tokenizer.js'
import { asciiAlnumCount, MAX_DECOMPOSITION, tokenBoundOf } from '../src/model/token-bound.js'
import { rng } from './kernels-helpers.js'

type Json = Record<string, unknown>
const FIXTURE = JSON.parse(readFileSync(join(defaultModelDir(), 'tokenizer.json'), 'utf8')) as Json & { model: Json; added_tokens: Json[] }
const withFields = (over: Json, model: Json = {}): Json => ({ ...FIXTURE, ...over, model: { ...FIXTURE.model, ...model } })

/** texts of every kind the bound must hold on */
function texts(): [string, string][] {
  const r = rng(11)
  const randomCodePoints = (n: number, max: number) =>
    Array.from({ length: n }, () => {
      const c = Math.floor(r() * max)
      return c >= 0xd800 && c <= 0xdfff ? String.fromCharCode(c) : String.fromCodePoint(c)
    }).join('')
  return [
    ['prose', 'The quick brown fox, considering the circumstances, jumped over 12 lazy dogs.\n'.repeat(40)],
    ['longest entry repeated', ' circumstances'.repeat(300)],
    ['space runs', ' '.repeat(5000) + 'x' + '\t\n '.repeat(700)],
    ['digits', '31415926535897932384626433832795'.repeat(50)],
    ['added tokens', '<|endoftext|>'.repeat(200) + 'a<|pad|>b'.repeat(50)],
    ['CJK', '長い文章を読み込む前に拒否する。'.repeat(100)],
    ['emoji', '🙂🚀👩‍👩‍👧‍👦'.repeat(200)],
    ['combining marks', 'e\u0301a\u0308\u0301\u1100\u1161\u11a8'.repeat(200)],
    ['Latin below U+0300, some compatibility forms', 'café naïve Ærøskøbing ǄǅǆǇ ½ ² ¨´ ŉ ſt ĳ '.repeat(100)],
    ['lone surrogates', '\ud800x\udfff'.repeat(300)],
    ['random BMP', randomCodePoints(3000, 0x10000)],
    ['random all planes', randomCodePoints(3000, 0x110000)],
    ['random ASCII', randomCodePoints(5000, 0x80)],
    ['empty', ''],
  ]
}

/** a Llama-2-style BPE: Prepend and Replace to ▁, byte fallback, fused unk, '<s>' added (not normalized, special) */
function llama2Style() {
  const letters = 'abcdefghijklmnopqrstuvwxyz'.split('')
  const bytes = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)
  const merges = [['▁', 't'], ['h', 'e'], ['▁t', 'he'], ['▁', 'a'], ['▁a', 'n'], ['▁an', 'd']]
  const vocab = Object.fromEntries(['<unk>', '<s>', '</s>', ...bytes, '▁', ...letters, ...merges.map(([a, b]) => a + b)].map((t, i) => [t, i]))
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [{ id: 1, content: '<s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }] as Json[],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] } as Json | null,
    pre_tokenizer: null as Json | null, post_processor: null, decoder: null,
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true as unknown, byte_fallback: true as unknown, vocab, merges },
  }
}

function expectLowerBound(tok: HfTokenizerAdapter): void {
  for (const [name, t] of texts()) {
    const n = tok.encode(t).length
    expect(tok.minTokens(t), `${name}: ${t.length} units, ${n} tokens`).toBeLessThanOrEqual(n)
  }
}

describe('the token-count lower bound', () => {
  it('the fixture: 14 units a token (its longest entry, "Ġcircumstances"), 13 letters; never above encode, tight on that entry repeated', () => {
    const tok = new HfTokenizerAdapter(FIXTURE)
    expect(tok.bound).toEqual({ unitsPerToken: 14, unitsPerTokenBelowU0300: 14, alnumPerToken: 13 })
    expectLowerBound(tok)
    const t = ' circumstances'.repeat(300)
    expect(tok.encode(t)).toHaveLength(300)
    expect(tok.minTokens(t)).toBe(300)
    // texts made of the vocabulary's own entries, the longest ones first among them: where tokens are longest
    const r = rng(5)
    const long = Array.from({ length: tok.vocabSize }, (_, id) => tok.decode([id])).filter((x) => x.length >= 8)
    for (let k = 0; k < 40; k++) {
      const text = Array.from({ length: 200 }, () => (r() < 0.8 ? long[Math.floor(r() * long.length)] : tok.decode([Math.floor(r() * tok.vocabSize)]))).join('')
      expect(tok.minTokens(text), text.slice(0, 80)).toBeLessThanOrEqual(tok.encode(text).length)
    }
    // a 10 MB message: 13 letters a token at most ("circumstances") bound it tighter than 14 units
    expect(tok.minTokens('x'.repeat(10 * 2 ** 20))).toBe(Math.ceil((10 * 2 ** 20) / 13))
    expect(tok.minTokens(' '.repeat(10 * 2 ** 20))).toBe(Math.ceil((10 * 2 ** 20) / 14))
    // asked only whether it reaches 8192: past it by its length, the letters are not counted
    expect(tok.minTokens('x'.repeat(10 * 2 ** 20), 8192)).toBe(Math.ceil((10 * 2 ** 20) / 14))
  })

  it('behind NFC or NFKC: 2 x 4 (or 18) x 14 units a token, 14 on a text below U+0300; never above encode', () => {
    for (const [form, d] of [['NFC', 4], ['NFKC', 18]] as const) {
      const tok = new HfTokenizerAdapter(withFields({ normalizer: { type: form } }))
      expect(tok.bound, form).toEqual({ unitsPerToken: 2 * d * 14, unitsPerTokenBelowU0300: 14, alnumPerToken: null })
      expectLowerBound(tok)
      expect(tok.minTokens(' circumstances'.repeat(300)), form).toBe(300)
      expect(tok.minTokens(' circumstances'.repeat(300) + '\u0300'), form).toBe(Math.ceil((14 * 300 + 1) / (2 * d * 14)))
    }
  })

  it('a vocabulary with runs of 64 spaces and 48 dashes: prose bounded by its letters and digits over 13, never above encode', () => {
    // the runs merge pairwise from one character, as GPT-2-style vocabularies learn them
    const vocab = { ...(FIXTURE.model.vocab as Record<string, number>) }
    const merges = [...(FIXTURE.model.merges as string[][])]
    for (const [c, top] of [['Ġ', 64], ['-', 48]] as const) {
      for (let n = 2; n <= top; n *= 2) {
        merges.push([c.repeat(n / 2), c.repeat(n / 2)])
        vocab[c.repeat(n)] = Object.keys(vocab).length
      }
      if (!Object.hasOwn(vocab, c.repeat(top))) {
        merges.push([c.repeat(32), c.repeat(16)])
        vocab[c.repeat(top)] = Object.keys(vocab).length
      }
    }
    const tok = new HfTokenizerAdapter(withFields({}, { vocab, merges }))
    expect(tok.bound).toEqual({ unitsPerToken: 64, unitsPerTokenBelowU0300: 64, alnumPerToken: 13 })
    expect(tok.encode(' '.repeat(64))).toHaveLength(1)
    expect(tok.encode('-'.repeat(48))).toHaveLength(1)
    expectLowerBound(tok)
    const prose = texts()[0][1]
    expect(tok.minTokens(prose)).toBe(Math.ceil(asciiAlnumCount(prose) / 13))
    expect(tok.minTokens(prose)).toBeGreaterThan(2 * Math.ceil(prose.length / 64))
    // counting stops once the bound reaches `enough`
    expect(tok.minTokens(prose, 100)).toBe(100)
  })

  it('a Llama-2-style BPE (Prepend and Replace to ▁, byte fallback, fused unk): never above encode', () => {
    const json = llama2Style()
    const tok = new HfTokenizerAdapter(json)
    // '<0x00>' is the longest entry (6), longer than any text one token of this vocabulary covers; '<0xFF>' holds 4 letters and digits
    expect(tok.bound).toEqual({ unitsPerToken: 6, unitsPerTokenBelowU0300: 6, alnumPerToken: 4 })
    expectLowerBound(tok)
    // a normalized added token is matched as its content normalized: '▁<extra_token_0>', 16 units for one token
    const extra = { id: 2, content: '<extra_token_0>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: false }
    const withExtra = new HfTokenizerAdapter({ ...json, added_tokens: [...json.added_tokens, extra] })
    expect(withExtra.encode('<extra_token_0>')).toEqual([2])
    expect(withExtra.bound).toEqual({ unitsPerToken: 16, unitsPerTokenBelowU0300: 16, alnumPerToken: 11 })
    expect(withExtra.minTokens('<extra_token_0>'.repeat(50))).toBeLessThanOrEqual(withExtra.encode('<extra_token_0>'.repeat(50)).length)
  })

  it('no bound (null, minTokens 0) where text can vanish or one token cover any length', () => {
    const stripping = FIXTURE.added_tokens.map((a, i) => (i === 0 ? { ...a, rstrip: true } : a))
    const CASES: [string, Json, Json?][] = [
      ['WordPiece', withFields({}, { type: 'WordPiece' })],
      ['Unigram', withFields({}, { type: 'Unigram' })],
      ['an added token that strips whitespace', withFields({ added_tokens: stripping })],
      ['Strip', withFields({ normalizer: { type: 'Strip', strip_left: true, strip_right: true } })],
      ['StripAccents', withFields({ normalizer: { type: 'Sequence', normalizers: [{ type: 'NFD' }, { type: 'StripAccents' }] } })],
      ['a regex Replace', withFields({ normalizer: { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' } })],
      ['a Replace that deletes', withFields({ normalizer: { type: 'Replace', pattern: { String: ' ' }, content: '' } })],
      ['Lowercase', withFields({ normalizer: { type: 'Lowercase' } })],
      ['a Whitespace pre-tokenizer', withFields({ pre_tokenizer: { type: 'Whitespace' } })],
      ['an inverted Split', withFields({ pre_tokenizer: { type: 'Split', pattern: { Regex: '\\w+' }, behavior: 'Isolated', invert: true } })],
      ['a Split that removes', withFields({ pre_tokenizer: { type: 'Split', pattern: { String: ' ' }, behavior: 'Removed', invert: false } })],
      ['fused unk without byte fallback', withFields({ pre_tokenizer: { type: 'Metaspace', replacement: '▁' } }, { unk_token: '<|pad|>', fuse_unk: true })],
      ['unknown pieces dropped (no unk, no byte fallback)', withFields({ pre_tokenizer: null })],
      ['suffixed pieces the vocabulary may lack, dropped', withFields({}, { end_of_word_suffix: '</w>' })],
      ['remove_space', FIXTURE, { remove_space: true }],
    ]
    for (const [name, json, config] of CASES) {
      expect(tokenBoundOf(json, config ?? {}), name).toBeNull()
    }
    const tok = new HfTokenizerAdapter(withFields({ normalizer: { type: 'Lowercase' } }))
    expect(tok.minTokens('x'.repeat(1000))).toBe(0)
    expect(() => tok.minTokens(7 as unknown as string)).toThrow(/minTokens: text must be a string, got number/)
  })

  it('the factors a normalizer shrinks by: string Replace p units to c, a Sequence the product; a Unicode form not below U+0300 unless a step before leaves it', () => {
    const replace = (p: string, c: string) => ({ type: 'Replace', pattern: { String: p }, content: c })
    const bound = (normalizer: Json) => tokenBoundOf(withFields({ normalizer }))
    // letters and digits are counted behind Prepend and a Replace of a string without them
    const units = (any: number, below: number, alnum: number | null = null) => ({ unitsPerToken: any * 14, unitsPerTokenBelowU0300: below * 14, alnumPerToken: alnum })
    expect(bound(replace('  ', ' '))).toEqual(units(2, 2, 13))
    expect(bound({ type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, replace(' ', '▁')] })).toEqual(units(1, 1, 13))
    expect(bound(replace('ab', 'ba'))).toEqual(units(1, 1))
    expect(bound({ type: 'Sequence', normalizers: [{ type: 'NFKC' }, replace('abc', 'x')] })).toEqual(units(2 * 18 * 3, 3))
    expect(bound({ type: 'Sequence', normalizers: [replace(' ', '▁'), { type: 'NFC' }] })).toEqual(units(8, 8))
    expect(bound({ type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '_' }, { type: 'Sequence', normalizers: [{ type: 'NFC' }] }] })).toEqual(units(8, 1))
    expect(bound({ type: 'Sequence', normalizers: [{ type: 'NFD' }, { type: 'NFC' }] })).toEqual(units(16, 8))
  })

  it('over every code point: the longest full decompositions are 4 (NFD) and 18 (NFKD); below U+0300 none vanishes or opens with a composing one', () => {
    let canonical = 0
    let compatibility = 0
    // the code points that follow the first in a full canonical decomposition: every one a composition can append
    const appended = new Set<number>()
    for (let c = 0; c <= 0x10ffff; c++) {
      if (c >= 0xd800 && c <= 0xdfff) continue
      const s = String.fromCodePoint(c)
      const d = [...s.normalize('NFD')]
      canonical = Math.max(canonical, d.length)
      compatibility = Math.max(compatibility, [...s.normalize('NFKD')].length)
      for (const x of d.slice(1)) appended.add(x.codePointAt(0)!)
    }
    expect({ canonical, compatibility }).toEqual(MAX_DECOMPOSITION)
    expect(Math.min(...appended)).toBe(0x300)
    for (let c = 0; c < 0x300; c++) {
      for (const form of ['NFD', 'NFKD']) {
        const first = String.fromCharCode(c).normalize(form).codePointAt(0)
        expect(first !== undefined && !appended.has(first), `U+${c.toString(16)} ${form}`).toBe(true)
      }
    }
  })

  // found by trying to break the bound (tryout-bound): fields the library reads otherwise than the Rust crate writes them
  it('an added token that does not say whether it is normalized is normalized unless special (the library\'s AddedToken): "▁<extra>" bounds a token, never above encode', () => {
    const json = llama2Style()
    json.added_tokens.push({ id: 2, content: '<extra>', special: false }, { id: 0, content: '<unk>', special: true })
    const tok = new HfTokenizerAdapter(json)
    // ' <extra>' normalizes to '▁<extra>', one token for 8 units of text
    const t = ' <extra>'.repeat(1000)
    expect(tok.encode(t)).toHaveLength(1001)
    expect(tok.minTokens(t)).toBeLessThanOrEqual(1001)
    expect(tok.bound?.unitsPerToken).toBe(8)
    expectLowerBound(tok)
  })

  it('flags the library reads as truthy (fuse_unk: 1, rstrip: 1, lstrip: "yes", end_of_word_suffix: 1) count as set: no bound, where each would fuse, strip or drop text', () => {
    const fused = llama2Style()
    Object.assign(fused.model, { fuse_unk: 1, byte_fallback: false })
    const stripping = llama2Style()
    stripping.added_tokens[0].rstrip = 1
    const lstripping = llama2Style()
    lstripping.added_tokens[0].lstrip = 'yes'
    const CASES: [string, Json, string][] = [
      // every CJK character is unknown here: one fused unk for all of them
      ['fuse_unk: 1', fused, '中文字符'.repeat(1000)],
      ['rstrip: 1', stripping, '<s>' + ' '.repeat(5000)],
      ['lstrip: "yes"', lstripping, ' '.repeat(5000) + '<s>'],
      // each piece's last character gets '1' appended: a piece the vocabulary lacks, dropped (no unk)
      ['end_of_word_suffix: 1', withFields({}, { end_of_word_suffix: 1 }), 'a.b,c;'.repeat(1000)],
    ]
    for (const [name, json, t] of CASES) {
      const tok = new HfTokenizerAdapter(json)
      // soft: each case reports on its own
      expect.soft(tok.minTokens(t), name).toBeLessThanOrEqual(tok.encode(t).length)
      expect.soft(tok.bound, name).toBeNull()
    }
  })

  it('a Replace or Metaspace replacement holding "$" (the library\'s replaceAll expands "$`" at the start to nothing, "$$" to "$"): no bound', () => {
    const replace = llama2Style()
    replace.normalizer = { type: 'Replace', pattern: { String: ' ' }, content: '$`' }
    const metaspace = llama2Style()
    metaspace.normalizer = null
    metaspace.pre_tokenizer = { type: 'Metaspace', replacement: '$`', prepend_scheme: 'never', split: false }
    const strRep = llama2Style()
    strRep.normalizer = null
    strRep.pre_tokenizer = { type: 'Metaspace', replacement: '▁', str_rep: '$`', prepend_scheme: 'never', split: false }
    const CASES: [string, Json, string][] = [
      ['Replace " " with "$`"', replace, ' '],
      // the space opens the text, where nothing precedes it (and no prefix is prepended)
      ['Metaspace replacement "$`"', metaspace, ' '],
      ['Metaspace str_rep "$`"', strRep, ' '],
    ]
    for (const [name, json, t] of CASES) {
      const tok = new HfTokenizerAdapter(json)
      // soft: each case reports on its own
      expect.soft(tok.minTokens(t), name).toBeLessThanOrEqual(tok.encode(t).length)
      expect.soft(tok.bound, name).toBeNull()
    }
    expect(tokenBoundOf({ ...replace, normalizer: { type: 'Replace', pattern: { String: 'ab' }, content: '$$' } })).toBeNull()
  })

  it('a post-processor whose template leaves out the sequence (encode gives no tokens at all): no bound; ones that keep it still bound', () => {
    const special = { SpecialToken: { id: '<|endoftext|>', type_id: 0 } }
    const sequence = { Sequence: { id: 'A', type_id: 0 } }
    const template = (single: Json[]) => ({ type: 'TemplateProcessing', single, pair: [], special_tokens: {} })
    for (const pp of [template([special]), { type: 'Sequence', processors: [{ type: 'ByteLevel' }, template([])] }]) {
      const tok = new HfTokenizerAdapter(withFields({ post_processor: pp }))
      expect.soft(tok.minTokens('hello world'), JSON.stringify(pp)).toBeLessThanOrEqual(tok.encode('hello world').length)
      expect.soft(tok.bound, JSON.stringify(pp)).toBeNull()
    }
    for (const pp of [template([special, sequence]), { type: 'Sequence', processors: [{ type: 'ByteLevel' }, template([sequence])] }, { type: 'RobertaProcessing', sep: ['</s>', 2], cls: ['<s>', 0] }]) {
      expect(tokenBoundOf(withFields({ post_processor: pp })), JSON.stringify(pp)).not.toBeNull()
    }
  })
})
