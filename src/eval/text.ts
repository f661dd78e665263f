import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs'
import { basename, join } from 'node:path'
import { shownValue } from '../model/errors.js'
import { EvalArgumentError } from './errors.js'

export { cleanText, splitSentences, type Book } from './sentences.js'
import { cleanText, splitSentences, type Book } from './sentences.js'

/** the longest run a haystack sentence may be (about 1000 tokens): longer is not prose */
const MAX_SENTENCE_CHARS = 4000

/**
 * Books from a .txt file or every .txt file of a folder (sorted by name, as train.py lists them).
 * @throws EvalArgumentError, one line naming the path, when it is not a path string or there is nothing usable
 */
export function loadBooks(path: string): Book[] {
  // a path of another type was node's deprecation warning from existsSync and then "haystack not found: undefined"
  if (typeof path !== 'string' || path === '') throw new EvalArgumentError(`loadBooks: path must be a .txt file or folder path, got ${path === '' ? 'an empty string' : shownValue(path)}`)
  if (!existsSync(path)) throw new EvalArgumentError(`haystack not found: ${path}`)
  const files = statSync(path).isDirectory()
    ? readdirSync(path).filter((f) => f.endsWith('.txt')).sort().map((f) => join(path, f))
    : [path]
  if (files.length === 0) throw new EvalArgumentError(`no .txt files in haystack folder ${path}`)
  const books = files.map((f) => {
    if (!statSync(f).isFile()) throw new EvalArgumentError(`haystack ${f} is not a regular file`)
    const raw = readFileSync(f, 'utf8')
    // a binary file decodes to NULs and replacement characters: it is no haystack
    let bad = 0
    for (let i = 0; i < raw.length; i++) if (raw.charCodeAt(i) === 0 || raw.charCodeAt(i) === 0xfffd) bad++
    if (bad > raw.length / 100) throw new EvalArgumentError(`haystack file ${basename(f)} is not text (${bad} NUL or undecodable characters)`)
    const sentences = splitSentences(cleanText(raw))
    // a prompt is built from whole sentences: text without breaks cannot fill a length
    const longest = sentences.reduce((m, s) => Math.max(m, s.length), 0)
    if (longest > MAX_SENTENCE_CHARS) throw new EvalArgumentError(`haystack file ${basename(f)} has ${longest} characters without a sentence break (. ! ? " or a newline); a haystack is prose`)
    return { name: basename(f), sentences }
  })
  const empty = books.find((b) => b.sentences.length === 0)
  if (empty) throw new EvalArgumentError(`haystack file ${empty.name} has no text`)
  return books
}

/**
 * The haystack of an evaluation: the books of every file or folder in `books` (in the order given), else
 * of `haystack`, else of the default folder. Throws like `loadBooks` on the first path that has none.
 */
export function haystackBooks(defaultDir: string, haystack?: string, books?: readonly string[]): Book[] {
  if (books && books.length) return books.flatMap((b) => loadBooks(b))
  return loadBooks(haystack ?? defaultDir)
}
