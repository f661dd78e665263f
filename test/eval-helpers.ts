import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Tokenizer as HFTokenizer } from '@huggingface/tokenizers'
import type { Tokenizer } from '../src/model/types.js'
import { defaultModelDir } from '../src/eval/paths.js'

/** The fixture's tokenizer read straight from tokenizer.json, independent of kvkit's runtime. */
export function fixtureTokenizer(): Tokenizer {
  const dir = defaultModelDir()
  const tok = new HFTokenizer(
    JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')),
    JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')),
  )
  return {
    encode: (text) => tok.encode(text, { add_special_tokens: false }).ids,
    decode: (ids) => tok.decode(ids),
    vocabSize: 4096,
  }
}
