import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers'
import type { Tokenizer } from './types.js'
import { ModelInputError, ModelLoadError } from './errors.js'
import { minTokensOf, tokenBoundOf, type TokenBound } from './token-bound.js'

/** tokenizer.json through @huggingface/tokenizers; encode adds no special tokens (callers place them). */
export class HfTokenizerAdapter implements Tokenizer {
  readonly vocabSize: number
  private readonly tok: HfTokenizer
  /** what one token stands for at most, in UTF-16 units and in ASCII letters (token-bound.ts), or null where no bound is proven */
  readonly bound: TokenBound | null
  /**
   * what it was built from (parsed tokenizer.json and tokenizer_config.json), kept so a worker thread can
   * build the same tokenizer (`kvkit serve` tokenizes there: src/serve/tokenizer-thread.ts). No copy: the
   * same objects @huggingface/tokenizers keeps (its Tokenizer holds the tokenizer.json as `tokenizer`), so
   * it retains nothing more (fixture-14m: 939-951 KiB retained a loaded tokenizer, with it or without it)
   */
  readonly source: { json: unknown; config: unknown }

  constructor(tokenizerJson: unknown, tokenizerConfig: unknown = {}) {
    this.source = { json: tokenizerJson, config: tokenizerConfig ?? {} }
    try {
      this.tok = new HfTokenizer(tokenizerJson as object, (tokenizerConfig ?? {}) as object)
    } catch (e) {
      throw new ModelLoadError(`tokenizer.json: cannot build the tokenizer (${(e as Error).message})`)
    }
    this.vocabSize = this.tok.get_vocab(true).size
    this.bound = tokenBoundOf(tokenizerJson, tokenizerConfig ?? {})
  }

  /** a lower bound on encode(text).length without tokenizing (token-bound.ts), counted no further than `enough`; 0 where bound is null */
  minTokens(text: string, enough?: number): number {
    if (typeof text !== 'string') throw new ModelInputError(`tokenizer.minTokens: text must be a string, got ${text === null ? 'null' : typeof text}`)
    return minTokensOf(text, this.bound, enough)
  }

  encode(text: string): number[] {
    // the library encodes a number or undefined as no tokens, silently
    if (typeof text !== 'string') throw new ModelInputError(`tokenizer.encode: text must be a string, got ${text === null ? 'null' : typeof text}`)
    return this.tok.encode(text, { add_special_tokens: false }).ids
  }

  /**
   * The text of token ids (special tokens skipped). Throws ModelInputError for ids that are not an array
   * of non-negative integers (the library decodes -1 or NaN as no text). An id past the tokenizer's
   * vocabulary (a model's padded embedding rows) decodes to no text, as in the library.
   */
  decode(ids: number[]): string {
    if (!Array.isArray(ids)) throw new ModelInputError(`tokenizer.decode: ids must be an array of token ids, got ${ids === null ? 'null' : typeof ids}`)
    const bad = ids.findIndex((id) => !(Number.isInteger(id) && id >= 0))
    if (bad >= 0) throw new ModelInputError(`tokenizer.decode: ids[${bad}] = ${String(ids[bad])} is not a token id (a non-negative integer)`)
    // the native decoder refuses an empty list; no tokens are no text
    if (ids.length === 0) return ''
    return this.tok.decode(ids, { skip_special_tokens: true })
  }

  tokenId(token: string): number | undefined {
    return this.tok.token_to_id(token)
  }
}
