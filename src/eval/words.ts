import { readFileSync } from 'node:fs'
import { EvalArgumentError } from './errors.js'
import { cleanText } from './text.js'

/**
 * Random keys for the niah tasks: lowercase English words of 4-9 letters. kvkit ships data/words.txt,
 * the very list train.py drew keys from (its WORDS: the first 200,000 characters of its first training
 * book, see the file's header), because the fixture copies keys it was trained with far more reliably.
 * `deriveWordList` is train.py's rule, for making a list from other text.
 */
export const WORD_SOURCE_CHARS = 200_000

export function deriveWordList(rawBooks: string[]): string[] {
  const words = new Set<string>()
  for (const raw of rawBooks) {
    for (const m of cleanText(raw).slice(0, WORD_SOURCE_CHARS).matchAll(/\b[a-z]{4,9}\b/g)) words.add(m[0])
  }
  return [...words].sort()
}

/** one word a line; lines starting with # are comments. @throws EvalArgumentError naming the file where it cannot be read or holds under 10 words */
export function loadWordList(file: string): string[] {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (e) {
    throw new EvalArgumentError(`cannot read word list ${file}: ${(e as Error).message}`)
  }
  const words = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
  if (words.length < 10) throw new EvalArgumentError(`word list ${file} has ${words.length} words (need at least 10)`)
  return words
}
