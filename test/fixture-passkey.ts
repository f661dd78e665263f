import { defaultBooksDir, defaultWordsFile } from '../src/eval/paths.js'
import { PromptBuilder, type TaskSample } from '../src/eval/prompt.js'
import { loadBooks } from '../src/eval/text.js'
import { loadWordList } from '../src/eval/words.js'
import type { LlamaModel } from '../src/model/model.js'

/** A passkey prompt of the eval (1024 tokens, seed 1, sample 0) built exactly as the fixture was trained on. */
export function passkeySample(model: LlamaModel, length = 1024, index = 0): TaskSample {
  const builder = new PromptBuilder({
    tokenizer: model.tokenizer, bosId: model.config.bosTokenId ?? model.config.eosTokenIds[0],
    books: loadBooks(defaultBooksDir()), words: loadWordList(defaultWordsFile()),
  })
  return builder.build('passkey', length, 1, index)
}
