/**
 * A lower bound on how many tokens a text encodes to, from its length alone: a prompt that cannot fit
 * the context is refused before it is tokenized. Tokenizing is what costs: @huggingface/tokenizers takes
 * about 10 s for a 10 MB message with the fixture's byte-level BPE (half in the pre-tokenizer's regex
 * split, half in the merges; bench/token-bound.ts), on the thread that serves every other request.
 *
 * Why a bound from the length, not tokenizing in chunks that stop at the limit: a chunk's tokens differ
 * from the whole text's at the cut, so a prompt that fits would need a second, whole tokenization to
 * stay exactly as before, and even the first chunks' pre-tokenizer work is what the bound avoids.
 *
 * The bound (a BPE model, as tokenizer.json gives it to @huggingface/tokenizers; encode without special
 * tokens): every token stands for at most U UTF-16 units of the text it was cut from, so a text of
 * `length` units has at least ceil(length / U) tokens. U is `shrink x max(longest vocabulary entry,
 * longest merge result, longest added token, 2)`:
 * - a BPE token is a vocabulary entry or a merge result not in it (then one unk, or byte tokens), and
 *   it covers at most its own length of the normalized text: a byte-level entry of k characters is k
 *   UTF-8 bytes, which are at least as many UTF-16 units; a byte-fallback token covers one byte; an unk
 *   covers one code point (up to 2 units); a continuing-subword prefix or end-of-word suffix only
 *   lengthens the entry;
 * - an added token covers its content, matched in the raw or the normalized text;
 * - `shrink` bounds how much the normalizer can shorten a text (1 for none, Prepend, a string Replace
 *   that does not shorten); the pre-tokenizers allowed (ByteLevel, Metaspace, Split that keeps every
 *   piece, Digits, Punctuation) never drop text.
 * Unicode normalizers shrink by at most 2D: a text of n units holds at least n/2 code points, each
 * decomposing to at least one, and the normalized text's code points decompose back to the same
 * sequence with at most D code points each (D = 4 canonical, 18 compatibility: the longest full
 * decompositions, U+1F82 and U+FDFA; test/token-bound.test.ts checks both over every code point). On
 * a text all below U+0300 (ASCII, Latin-1, Latin Extended) they do not shrink it at all.
 *
 * A second bound counts only ASCII letters and digits, of which a token covers at most as many as
 * its entry holds (byte-level BPE writes those bytes as themselves): a vocabulary whose longest entries
 * are runs of spaces or dashes, which set U, still bounds prose by its letters over its longest word.
 * It holds behind Prepend and a string Replace that removes no letter or digit (not behind a Unicode
 * form, which may compose a letter with a following mark). minTokens takes the larger of the two.
 *
 * Anything else gives no bound (null) and the caller tokenizes as before: other models (WordPiece's
 * whole-word unk, Unigram's fused unks), fused unks that can occur, pieces the model would drop (no
 * unk, no byte fallback), added tokens that strip whitespace around them (lstrip / rstrip), normalizers
 * that delete text (Strip, StripAccents, regex Replace, Precompiled, BertNormalizer, Lowercase, whose
 * effect on length is not bounded here), a Replace or Metaspace replacement holding '$' (the library's
 * replaceAll expands it), pre-tokenizers that drop whitespace, a post-processor template without the
 * sequence, and tokenizer_config's remove_space / do_lowercase_and_remove_accent.
 *
 * The fields are read as the library reads them, not as the Rust crate writes them: a flag is set when
 * it is truthy (fuse_unk: 1 fuses, rstrip: 1 strips), and an added token without `normalized` is
 * normalized unless it is special (AddedToken's default), as hand-written tokenizer.json files have it.
 */

/** longest full canonical (NFD) and compatibility (NFKD) decomposition, in code points */
export const MAX_DECOMPOSITION = { canonical: 4, compatibility: 18 } as const

type Json = Record<string, unknown>

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

/** the normalizers a Sequence applies, in order, flattened; null where one is not an object */
function normalizerSteps(normalizer: unknown): Json[] | null {
  if (normalizer === null || normalizer === undefined) return []
  if (!isObject(normalizer)) return null
  if (normalizer.type !== 'Sequence') return [normalizer]
  if (!Array.isArray(normalizer.normalizers)) return null
  const out: Json[] = []
  for (const n of normalizer.normalizers) {
    const steps = normalizerSteps(n)
    if (steps === null) return null
    out.push(...steps)
  }
  return out
}

/**
 * Whether `r`, as the replacement string of String.prototype.replaceAll (how @huggingface/tokenizers
 * applies Replace and Metaspace), is written as it stands and not shorter than one unit: a string
 * without '$' (the library expands '$$' to one '$', and '$`' or "$'" to the text before or after the
 * match, nothing at either end) and not empty.
 */
const literalReplacement = (r: unknown): r is string => typeof r === 'string' && r.length >= 1 && !r.includes('$')

/** whether every unit of `t` is below U+0300 (a search for one that is not: 0.1 ms on 10 MB, where an anchored match takes 50) */
const belowU0300 = (t: string) => !/[^\u0000-\u02ff]/.test(t)

/** how many ASCII letters and digits `t` holds, counting no further than `stop` (a loop: a regex match or replace over 10 MB takes a second) */
export function asciiAlnumCount(t: string, stop = Infinity): number {
  let n = 0
  for (let i = 0; i < t.length && n < stop; i++) {
    const c = t.charCodeAt(i)
    const l = c | 32
    if ((c >= 48 && c <= 57) || (l >= 97 && l <= 122)) n++
  }
  return n
}

/**
 * Whether the normalizer keeps every ASCII letter and digit of a text: its steps only Prepend, or
 * Replace a string that holds none of them (a Unicode form may compose one with a following mark).
 */
function keepsAsciiAlnum(normalizer: unknown): boolean {
  const steps = normalizerSteps(normalizer)
  return steps !== null && steps.every((n) => n.type === 'Prepend' || (n.type === 'Replace' && isObject(n.pattern) && typeof n.pattern.String === 'string' && asciiAlnumCount(n.pattern.String) === 0))
}

/**
 * The factors by which `normalizer` can shorten a text at most (UTF-16 units): for any text, and for a
 * text whose units are all below U+0300 (where a Unicode normalizer cannot shorten it: no such
 * character decomposes to nothing or has a decomposition opening with a character that composes with
 * what precedes it, the smallest such being U+0300; test/token-bound.test.ts checks every one), or null
 * where unbounded.
 */
function shrinkFactors(normalizer: unknown): { any: number; belowU0300: number } | null {
  const steps = normalizerSteps(normalizer)
  if (steps === null) return null
  let any = 1
  let below = 1
  // the text each step sees is still below U+0300 (Prepend and Replace may add other characters; a Unicode form may too)
  let clean = true
  for (const n of steps) {
    let f: number
    switch (n.type) {
      case 'Prepend':
        if (typeof n.prepend !== 'string') return null
        clean &&= belowU0300(n.prepend)
        continue
      case 'Replace': {
        const pattern = isObject(n.pattern) ? n.pattern.String : undefined
        const content = n.content ?? ''
        // a regex may match and delete anything; each string match of p units becomes c units, where the
        // content is taken as written (no '$': the library's replaceAll expands '$$' to '$', and '$`' at the start to nothing)
        if (typeof pattern !== 'string' || pattern.length === 0 || !literalReplacement(content)) return null
        clean &&= belowU0300(content)
        f = Math.max(1, pattern.length / content.length)
        any *= f
        below *= f
        continue
      }
      case 'NFD':
      case 'NFKD':
        f = 2
        break
      case 'NFC':
        f = 2 * MAX_DECOMPOSITION.canonical
        break
      case 'NFKC':
        f = 2 * MAX_DECOMPOSITION.compatibility
        break
      default:
        return null
    }
    any *= f
    if (!clean) below *= f
    clean = false
  }
  return { any, belowU0300: below }
}

/** `t` through the normalizers shrinkFactors accepts (Prepend, string Replace, the Unicode forms), as @huggingface/tokenizers applies them */
function normalize(normalizer: unknown, t: string): string {
  for (const n of normalizerSteps(normalizer) ?? []) {
    if (n.type === 'Prepend') t = `${n.prepend}${t}`
    else if (n.type === 'Replace') t = t.replaceAll(String((n.pattern as Json).String), String(n.content))
    else t = t.normalize(n.type as 'NFC' | 'NFD' | 'NFKC' | 'NFKD')
  }
  return t
}

/** whether the pre-tokenizer keeps every unit of its input (null: it keeps everything), and whether it maps to bytes */
function preTokenizerKeeps(pre: unknown): { keeps: boolean; byteLevel: boolean } {
  if (pre === null || pre === undefined) return { keeps: true, byteLevel: false }
  if (!isObject(pre)) return { keeps: false, byteLevel: false }
  switch (pre.type) {
    case 'ByteLevel':
      // GPT-2's split pattern matches every code point; each is then its UTF-8 bytes
      return { keeps: true, byteLevel: true }
    case 'Metaspace': {
      // the library writes str_rep for each space where it is set (truthy), else replacement
      const r = pre.str_rep || (pre.replacement ?? '\u2581')
      return { keeps: literalReplacement(r), byteLevel: false }
    }
    case 'Split': {
      // invert keeps only the matches; 'Removed' drops them; a pattern the library cannot build splits to nothing
      const p = pre.pattern
      const pattern = isObject(p) && (typeof p.Regex === 'string' || typeof p.String === 'string')
      const removed = typeof pre.behavior === 'string' && pre.behavior.toLowerCase() === 'removed'
      return { keeps: pattern && !pre.invert && !removed, byteLevel: false }
    }
    case 'Digits':
    case 'Punctuation':
      // runs of digits (or each digit) and of what is not one; runs of punctuation and of the rest: every unit matched
      return { keeps: true, byteLevel: false }
    case 'Sequence': {
      if (!Array.isArray(pre.pretokenizers)) return { keeps: false, byteLevel: false }
      const parts = pre.pretokenizers.map(preTokenizerKeeps)
      return { keeps: parts.every((x) => x.keeps), byteLevel: parts.some((x) => x.byteLevel) }
    }
    default:
      return { keeps: false, byteLevel: false }
  }
}

/**
 * Whether the post-processor keeps the text's tokens when encode adds no special tokens: TemplateProcessing
 * writes only what its `single` template names, so one without the sequence ('A') gives no tokens at all.
 */
function postProcessorKeeps(pp: unknown): boolean {
  if (pp === null || pp === undefined) return true
  if (!isObject(pp)) return false
  switch (pp.type) {
    case 'ByteLevel':
    case 'BertProcessing':
    case 'RobertaProcessing':
      return true
    case 'TemplateProcessing':
      // an item is a special token before it is a sequence (the library's order)
      return Array.isArray(pp.single) && pp.single.some((x) => isObject(x) && !('SpecialToken' in x) && isObject(x.Sequence) && x.Sequence.id === 'A')
    case 'Sequence':
      return Array.isArray(pp.processors) && pp.processors.every(postProcessorKeeps)
    default:
      return false
  }
}

/** GPT-2's bytes_to_unicode: the character a byte-level vocabulary writes for each byte, in byte order */
export function byteLevelChars(): string[] {
  const out: string[] = []
  let n = 0
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)
    out.push(String.fromCharCode(printable ? b : 256 + n++))
  }
  return out
}

const byteFallbackToken = (b: number) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`

/** What one token can stand for at most, in the measures a text's least token count is taken from. */
export interface TokenBound {
  /** UTF-16 units, for any text */
  unitsPerToken: number
  /** UTF-16 units, for a text all below U+0300 */
  unitsPerTokenBelowU0300: number
  /** ASCII letters and digits, or null where the normalizer may remove some */
  alnumPerToken: number | null
}

/**
 * What one token can stand for at most (TokenBound), for `tokenizerJson` (tokenizer.json, parsed) and
 * `tokenizerConfig` (tokenizer_config.json, parsed, or {}), or null where the tokenizer has no bound
 * proven here (see the file's comment). Linear in the vocabulary and merges: compute it once per tokenizer.
 */
export function tokenBoundOf(tokenizerJson: unknown, tokenizerConfig: unknown = {}): TokenBound | null {  if (!isObject(tokenizerJson) || !isObject(tokenizerJson.model)) return null
  const config = isObject(tokenizerConfig) ? tokenizerConfig : {}
  if (config.remove_space === true || config.do_lowercase_and_remove_accent) return null
  const model = tokenizerJson.model
  if (model.type !== 'BPE' || !isObject(model.vocab) || !Array.isArray(model.merges)) return null
  const vocab = model.vocab
  const has = (t: string) => Object.hasOwn(vocab, t)
  const shrink = shrinkFactors(tokenizerJson.normalizer)
  const pre = preTokenizerKeeps(tokenizerJson.pre_tokenizer)
  if (shrink === null || !pre.keeps || !postProcessorKeeps(tokenizerJson.post_processor)) return null

  // a piece not in the vocabulary becomes byte tokens, or one unk, or nothing (text dropped: no bound)
  // the library reads these flags as JavaScript truthiness (fuse_unk: 1 fuses): so is each read here
  const byteFallback = Boolean(model.byte_fallback) && Array.from({ length: 256 }, (_, b) => byteFallbackToken(b)).every(has)
  const unk = typeof model.unk_token === 'string' && has(model.unk_token) && !model.fuse_unk
  let longest = 2
  // an unk covers one code point, at most one letter; a byte-fallback token one byte, and its name holds at least one digit
  let alnum = 1
  const entry = (t: string) => {
    longest = Math.max(longest, t.length)
    alnum = Math.max(alnum, asciiAlnumCount(t))
  }
  for (const t of Object.keys(vocab)) entry(t)
  let mergesInVocab = true
  for (const m of model.merges) {
    const [a, b] = Array.isArray(m) ? m : typeof m === 'string' ? m.split(' ', 2) : []
    if (typeof a !== 'string' || typeof b !== 'string') return null
    entry(a + b)
    if (!has(a + b)) mergesInVocab = false
  }
  // the first pieces are single characters: byte-level ones (all 256 in the vocabulary), or any code point
  const charsInVocab = pre.byteLevel && byteLevelChars().every(has)
  // an affix on pieces (end-of-word suffix, continuing-subword suffix, or the prefix this library leaves off) makes pieces the vocabulary may lack
  const suffixed = [model.end_of_word_suffix, model.continuing_subword_suffix, model.continuing_subword_prefix].some(Boolean)
  if (!byteFallback && !unk && !(charsInVocab && mergesInVocab && !suffixed)) return null

  const added = tokenizerJson.added_tokens ?? []
  if (!Array.isArray(added)) return null
  for (const a of added) {
    if (!isObject(a) || typeof a.content !== 'string') return null
    // a stripping token also swallows the whitespace around it, however long
    if (a.lstrip || a.rstrip) return null
    entry(a.content)
    // a normalized one is matched in the normalized text, as its content normalized (Prepend makes it longer);
    // one that does not say is normalized unless special (the library's AddedToken, as in the Rust crate)
    if (a.normalized ?? !a.special) entry(normalize(tokenizerJson.normalizer, a.content))
  }
  return {
    unitsPerToken: shrink.any * longest,
    unitsPerTokenBelowU0300: shrink.belowU0300 * longest,
    alnumPerToken: keepsAsciiAlnum(tokenizerJson.normalizer) ? alnum : null,
  }
}

/**
 * The least number of tokens `text` encodes to, given tokenBoundOf's value (0 for null). Past `enough`
 * it may stop counting: the value is then at least `enough`, not the largest bound (the caller only
 * asks whether the text fits, and counting letters over megabytes costs a tenth of a second).
 */
export function minTokensOf(text: string, bound: TokenBound | null, enough = Infinity): number {
  if (bound === null) return 0
  // the scan for a character at or past U+0300 costs only where it can loosen the bound
  const units = bound.unitsPerTokenBelowU0300 < bound.unitsPerToken && belowU0300(text) ? bound.unitsPerTokenBelowU0300 : bound.unitsPerToken
  const byLength = Math.ceil(text.length / units)
  // letters and digits give more only where an entry longer than any word (a run of spaces, dashes) sets `units`
  const a = bound.alnumPerToken
  if (a === null || a >= units || byLength >= enough) return byLength
  return Math.max(byLength, Math.ceil(asciiAlnumCount(text, enough * a) / a))
}
