/**
 * The haystack arguments are checked by type and refused as an EvalArgumentError naming the value:
 * evaluate's `books: 'x.txt'` (a string, not a list) was walked letter by letter and refused as "book not
 * found: x", and `haystack: 5` as "haystack not found: 5"; kvkit/eval's loadBooks threw a plain Error (and
 * for a path that is not a string, node's deprecation warning from existsSync, then "haystack not found:
 * undefined").
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { evaluate, EvalArgumentError, loadBooks } from '../src/eval/index.js'

const base = { model: 'models/fixture-14m', policies: ['full'], tasks: ['passkey'], lengths: [256], samples: 1, workers: 1, threads: 1 }

describe('haystack arguments', () => {
  it.each([
    ['books as one string', { books: 'x.txt' }, 'books must be an array of .txt file or folder paths, got "x.txt"'],
    ['books with a number', { books: ['data/books', 5] }, 'books must be an array of .txt file or folder paths, got ["data/books",5]'],
    ['haystack as a number', { haystack: 5 }, 'haystack must be a .txt file or folder path, got 5'],
  ])('evaluate, %s: EvalArgumentError naming it', async (_, extra, message) => {
    const err = await evaluate({ ...base, ...extra } as never).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(EvalArgumentError)
    expect((err as Error).message).toBe(message)
  })

  it('loadBooks: a path that is not a string, a missing path and an empty folder are EvalArgumentErrors', () => {
    expect(() => loadBooks(undefined as never)).toThrow(new EvalArgumentError('loadBooks: path must be a .txt file or folder path, got undefined'))
    expect(() => loadBooks(5 as never)).toThrow(EvalArgumentError)
    expect(() => loadBooks('no/such/books')).toThrow(new EvalArgumentError('haystack not found: no/such/books'))
    expect(() => loadBooks(mkdtempSync(join(tmpdir(), 'kvkit-books-')))).toThrow(EvalArgumentError)
  })
})
