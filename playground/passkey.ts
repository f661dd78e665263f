import { PromptBuilder, type TaskSample } from '../src/eval/prompt.js'
import { cleanText, splitSentences } from '../src/eval/sentences.js'
import type { Tokenizer } from '../src/model/types.js'

/**
 * The page's passkey task: the eval's passkey prompt (PromptBuilder, built as the fixture was trained)
 * with `text`'s sentences as the haystack. Shared by the page's worker, its test and its benchmark, so
 * Node's reference prompt is the page's. Throws when the text has too few sentences to hide it in.
 */
export function passkeyPrompt(tokenizer: Tokenizer, bosId: number, text: string, length: number, seed: number): TaskSample {
  const sentences = splitSentences(cleanText(text))
  if (sentences.length < 4) throw new Error('the text needs a few sentences to hide a passkey in')
  return new PromptBuilder({ tokenizer, bosId, books: [{ name: 'page', sentences }], words: [] }).build('passkey', length, seed, 0)
}
