import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers'
import type { Tokenizer } from './types.js'
import { ModelLoadError } from './errors.js'

/** tokenizer.json through @huggingface/tokenizers; encode adds no special tokens (callers place them). */
export class HfTokenizerAdapter implements Tokenizer {
  readonly vocabSize: number
  private readonly tok: HfTokenizer

  constructor(tokenizerJson: unknown, tokenizerConfig: unknown = {}) {
    try {
      this.tok = new HfTokenizer(tokenizerJson as object, (tokenizerConfig ?? {}) as object)
    } catch (e) {
      throw new ModelLoadError(`tokenizer.json: cannot build the tokenizer (${(e as Error).message})`)
    }
    this.vocabSize = this.tok.get_vocab(true).size
  }

  encode(text: string): number[] {
    return this.tok.encode(text, { add_special_tokens: false }).ids
  }

  decode(ids: number[]): string {
    // the native decoder refuses an empty list; no tokens are no text
    if (ids.length === 0) return ''
    return this.tok.decode(ids, { skip_special_tokens: true })
  }

  tokenId(token: string): number | undefined {
    return this.tok.token_to_id(token)
  }
}
