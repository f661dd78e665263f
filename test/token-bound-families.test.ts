/**
 * The token-count lower bound (src/model/token-bound.ts) on tokenizer.json files built as the model
 * families write theirs (no download: small vocabularies trained here, the structure as the families'
 * tokenizer.json has it): Llama 3 (Split on its regex, then ByteLevel without regex; ignore_merges; 250
 * reserved special tokens longer than any vocabulary entry), Qwen2 (NFC first), GPT-4o's o200k split,
 * GPT-2 with add_prefix_space, SmolLM (Digits first), Falcon (Punctuation first), Llama 2 (Prepend and Replace to ▁, byte fallback, fused unk), Mistral
 * with legacy false (Metaspace, prepend_scheme first), Gemma (Replace to ▁, Split on ' ' merged with the
 * previous piece, normalized added tokens of whitespace and HTML tags), a BPE with an end-of-word suffix.
 * Each time: never above what encode gives, over text with the added tokens inside it, runs of one
 * character, mixed scripts, combining marks, ZWJ emoji, lone surrogates, CRLF and tabs.
 */
import { describe, expect, it } from 'vitest'
import { HfTokenizerAdapter } from '../src/model/tokenizer.js'
import { byteLevelChars } from '../src/model/token-bound.js'
import { rng } from './kernels-helpers.js'

type Json = Record<string, unknown>

const BYTE_CHARS = byteLevelChars()
const utf8 = new TextEncoder()
const byteLevel = (s: string) => Array.from(utf8.encode(s), (b) => BYTE_CHARS[b]).join('')

const CORPUS = [
  'The quick brown fox, considering the circumstances, jumped over 12 lazy dogs.',
  'It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.',
  '長い文章を読み込む前に拒否する。 Ünïcödé façade naïve café — “quotes” and \'apostrophes\' don\'t won\'t I\'m.',
  'def main():\n    return {"key": [1, 2, 3]}\r\n\tif x == 0x1F: pass  # comment ------------------------',
  'Привет мир, як справи? مرحبا بالعالم 🙂🚀👩‍👩‍👧‍👦 e\u0301a\u0308\u0301 한국어 텍스트',
].join('\n')

/** byte-pair merges learned from `words` (each a list of symbols), most frequent pair first: what a BPE trainer writes */
function trainMerges(words: string[], count: number): string[][] {
  let seqs = words.map((w) => Array.from(w))
  const merges: string[][] = []
  for (let k = 0; k < count; k++) {
    const pairs = new Map<string, number>()
    for (const s of seqs) for (let i = 0; i + 1 < s.length; i++) pairs.set(`${s[i]}\u0000${s[i + 1]}`, (pairs.get(`${s[i]}\u0000${s[i + 1]}`) ?? 0) + 1)
    let best = ''
    let most = 0
    for (const [p, c] of pairs) if (c > most) [best, most] = [p, c]
    if (most === 0) break
    const [a, b] = best.split('\u0000')
    merges.push([a, b])
    seqs = seqs.map((s) => {
      const o: string[] = []
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) o.push(a + s[++i])
        else o.push(s[i])
      }
      return o
    })
  }
  return merges
}

/** merges that build runs of `c` up to `top` by doubling, as vocabularies learn runs of spaces or dashes */
const runMerges = (c: string, top: number) => Array.from({ length: Math.log2(top) }, (_, i) => [c.repeat(2 ** i), c.repeat(2 ** i)])

function vocabOf(base: string[], merges: string[][]): Record<string, number> {
  const vocab: Record<string, number> = {}
  for (const t of [...base, ...merges.map(([a, b]) => a + b)]) if (!Object.hasOwn(vocab, t)) vocab[t] = Object.keys(vocab).length
  return vocab
}

const added = (id: number, content: string, special = true, normalized = false): Json => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized, special })

const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu
const LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
const QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
const O200K_SPLIT = "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

// a byte-level vocabulary: the 256 byte characters, merges learned from the corpus, runs of 128 spaces, 64 dashes, 16 newlines
const BL_MERGES = [...trainMerges(CORPUS.repeat(2).match(GPT2_SPLIT)!.map(byteLevel), 400), ...runMerges('Ġ', 128), ...runMerges('-', 64), ...runMerges('Ċ', 16)]
const BL_VOCAB = vocabOf(BYTE_CHARS, BL_MERGES)
const BL_SIZE = Object.keys(BL_VOCAB).length

function byteLevelTokenizer(over: Json, model: Json = {}): Json {
  return {
    version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null, post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: BL_VOCAB, merges: BL_MERGES, ...model },
    ...over,
  }
}
/** Split on the family's regex (each piece kept, Isolated), then ByteLevel without GPT-2's regex: Llama 3's and Qwen2's pre_tokenizer */
const splitThenBytes = (regex: string): Json => ({
  type: 'Sequence',
  pretokenizers: [{ type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false }, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }],
})

// a sentencepiece-style vocabulary: <unk> <s> </s>, the 256 byte tokens, the corpus's characters, merges learned on ▁-joined words
const SP_MERGES = [...trainMerges(CORPUS.repeat(2).split(/(?= )/).map((w) => w.replaceAll(' ', '▁')), 300), ...runMerges('▁', 16)]
const SP_BYTES = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)
const SP_VOCAB = vocabOf(['<unk>', '<s>', '</s>', ...SP_BYTES, ...new Set(Array.from(CORPUS.replaceAll(' ', '▁')))], SP_MERGES)
const SP_SIZE = Object.keys(SP_VOCAB).length

function sentencePieceTokenizer(over: Json, model: Json = {}): Json {
  return {
    version: '1.0', truncation: null, padding: null, post_processor: null, decoder: null,
    added_tokens: [added(0, '<unk>'), added(1, '<s>'), added(2, '</s>')],
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, vocab: SP_VOCAB, merges: SP_MERGES, ...model },
    ...over,
  }
}
const LLAMA2_NORMALIZER = { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] }

/** texts of every kind, with `specials` (the added tokens' contents) inside them, and texts made of the vocabulary's longest entries */
function texts(specials: string[], entries: string[]): string[] {
  const r = rng(3)
  // code points below `max` past the surrogates (lone ones have a text of their own)
  const codePoints = (n: number, max: number) => String.fromCodePoint(...Array.from({ length: n }, () => Math.floor(r() * (max > 0xe000 ? max - 0x800 : max))).map((c) => (c >= 0xd800 ? c + 0x800 : c)))
  const out = [
    CORPUS.repeat(3), ' '.repeat(3000), '-'.repeat(2000), '\n'.repeat(300) + '\r\n'.repeat(300) + '\t'.repeat(300), 'x'.repeat(3000), '1234567890'.repeat(200),
    '👩‍👩‍👧‍👦🙂'.repeat(200), 'e\u0301'.repeat(500), '\u0301'.repeat(500), 'ﷺ'.repeat(200), '\ud800'.repeat(300) + 'a\udc00'.repeat(200),
    codePoints(2000, 0x80), codePoints(2000, 0x10000), codePoints(2000, 0x110000), '', ' ', 'a',
  ]
  for (const s of specials.slice(0, 8)) out.push(s.repeat(100), ` ${s}`.repeat(100), `x${s}\n`.repeat(100))
  const pieces = [...specials.slice(0, 20), ...entries.sort((a, b) => b.length - a.length).slice(0, 100)]
  for (let k = 0; k < 10; k++) out.push(Array.from({ length: 200 }, () => pieces[Math.floor(r() * pieces.length)]).join(''))
  return out
}

function expectLowerBound(json: Json, specials: string[]): HfTokenizerAdapter {
  const tok = new HfTokenizerAdapter(json)
  const entries = Array.from({ length: tok.vocabSize }, (_, id) => tok.decode([id]))
  for (const t of texts(specials, entries)) {
    const n = tok.encode(t).length
    expect.soft(tok.minTokens(t), `${JSON.stringify(t.slice(0, 40))}: ${t.length} units, ${n} tokens`).toBeLessThanOrEqual(n)
  }
  return tok
}

describe('the token-count lower bound on tokenizers built as model families write theirs', () => {
  it('byte-level families (Llama 3, Qwen2, o200k, GPT-2 with a prefix space): never above encode; the run of 128 spaces sets 128 units a token', () => {
    const llama3Specials = ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>', '<|python_tag|>', ...Array.from({ length: 250 }, (_, i) => `<|reserved_special_token_${i}|>`)]
    const llama3 = byteLevelTokenizer(
      {
        added_tokens: llama3Specials.map((c, i) => added(BL_SIZE + i, c)),
        pre_tokenizer: splitThenBytes(LLAMA3_SPLIT),
        post_processor: { type: 'Sequence', processors: [{ type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true }, { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: [], special_tokens: {} }] },
      },
      { ignore_merges: true },
    )
    expect(expectLowerBound(llama3, llama3Specials).bound?.unitsPerToken).toBe(128)
    // Qwen2: think and tool-call tags are added but not special
    const qwenSpecials = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<tool_call>', '</tool_call>', '<think>', '</think>', '<|fim_prefix|>']
    const qwen2 = byteLevelTokenizer({ normalizer: { type: 'NFC' }, pre_tokenizer: splitThenBytes(QWEN2_SPLIT), added_tokens: qwenSpecials.map((c, i) => added(BL_SIZE + i, c, !/^<\/?t/.test(c))) })
    // NFC may shorten a text past U+0300 by 2 x 4
    expect(expectLowerBound(qwen2, qwenSpecials).bound).toMatchObject({ unitsPerToken: 8 * 128, unitsPerTokenBelowU0300: 128 })
    expect(expectLowerBound(byteLevelTokenizer({ pre_tokenizer: splitThenBytes(O200K_SPLIT), added_tokens: qwenSpecials.map((c, i) => added(BL_SIZE + i, c)) }), qwenSpecials).bound).not.toBeNull()
    const gpt2 = byteLevelTokenizer({ pre_tokenizer: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true }, added_tokens: [added(BL_SIZE, '<|endoftext|>')] })
    expect(expectLowerBound(gpt2, ['<|endoftext|>']).bound).not.toBeNull()
  })

  it('byte-level families behind Digits and Punctuation (SmolLM and StarCoder2: each digit alone; Falcon: punctuation runs first): a bound, never above encode', () => {
    const byteLevelPre = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }
    const smolSpecials = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<repo_name>', '<file_sep>']
    const smol = byteLevelTokenizer({ pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevelPre] }, added_tokens: smolSpecials.map((c, i) => added(BL_SIZE + i, c)) })
    expect(expectLowerBound(smol, smolSpecials).bound?.unitsPerToken).toBe(128)
    const falcon = byteLevelTokenizer({
      pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Punctuation', behavior: 'contiguous' }, byteLevelPre, { type: 'Digits', individual_digits: false }, { type: 'Split', pattern: { Regex: '[0-9][0-9][0-9]' }, behavior: 'Isolated', invert: false }] },
      added_tokens: [added(BL_SIZE, '>>ABSTRACT<<'), added(BL_SIZE + 1, '<|endoftext|>')],
    })
    expect(expectLowerBound(falcon, ['>>ABSTRACT<<', '<|endoftext|>']).bound?.unitsPerToken).toBe(128)
  })

  it('sentencepiece BPE families (Llama 2, Mistral with legacy false, Gemma, an end-of-word suffix): never above encode', () => {
    const llama2Specials = ['<unk>', '<s>', '</s>']
    expect(expectLowerBound(sentencePieceTokenizer({ normalizer: LLAMA2_NORMALIZER, pre_tokenizer: null }), llama2Specials).bound).not.toBeNull()
    const mistral = sentencePieceTokenizer({ normalizer: null, pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false } })
    expect(expectLowerBound(mistral, llama2Specials).bound).not.toBeNull()
    // Gemma: HTML tags and whitespace runs are added tokens that are normalized ('▁▁▁▁' stays itself), the control tokens are special
    const gemmaAdded = ['<pad>', '<eos>', '<bos>', '<start_of_turn>', '<end_of_turn>', '<table>', '</table>', '\n\n\n', '▁▁▁▁▁▁▁▁', '\t\t']
    const gemma = sentencePieceTokenizer({
      normalizer: { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      pre_tokenizer: { type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithPrevious', invert: false },
      added_tokens: gemmaAdded.map((c, i) => added(SP_SIZE + i, c, /^<(?!\/?t)/.test(c), !/^<(?!\/?t)/.test(c))),
    })
    expect(expectLowerBound(gemma, gemmaAdded).bound).not.toBeNull()
    // CLIP-style: '</w>' ends every word's last piece; what the vocabulary lacks is one unk each (not fused, no byte fallback)
    const suffixed = sentencePieceTokenizer({ normalizer: null, pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, use_regex: true } }, { end_of_word_suffix: '</w>', byte_fallback: false, fuse_unk: false })
    expect(expectLowerBound(suffixed, llama2Specials).bound).not.toBeNull()
  })
})
