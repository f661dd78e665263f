import { createHash } from 'node:crypto'
import { readFileSync, readdirSync, writeFileSync, mkdtempSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { cleanText, haystackBooks, loadBooks, splitSentences } from '../src/eval/text.js'
import { defaultBooksDir } from '../src/eval/paths.js'

describe('haystack text', () => {
  it('cleans like train.py: joins wrapped lines, keeps one blank line, squeezes spaces', () => {
    expect(cleanText('  One\r\ntwo  \tthree.\n\n\n\nNew para\nline.\n')).toBe('One two three.\n\nNew para line.')
  })

  it('splits before a space or newline that follows . ! ? " or a newline, sentences keep their space', () => {
    expect(splitSentences('He ran. "Stop!" she said?\n\nYes. 3.5 is fine'))
      .toEqual(['He ran.', ' "Stop!"', ' she said?', '\n', '\nYes.', ' 3.5 is fine']) // as Python's re.split gives
  })

  it('gives exactly the sentences of the Python generator on every held-out book', () => {
    // counts and hashes from train.py's clean + split_sentences run on data/books with Python's re
    const python: Record<string, [number, string]> = {
      '11-0.txt': [1832, 'e11467b3aaffb5cc'],
      '244-0.txt': [3111, '477be65e5dbd9bdc'],
      '43-0.txt': [1494, 'df2b08ccee08b651'],
      '863-0.txt': [6643, 'fa43db70acab8cc3'],
      'Pride_and_Prejudice_JaneAusten.txt': [7908, 'faf3224211ed2942'],
      'pg128.txt': [7145, '0a17390ed99b47c7'],
      'pg345.txt': [11586, '195cd2ea203f9f2e'],
      'pg55539.txt': [2357, '6bb39352e27d838f'],
    }
    const books = loadBooks(defaultBooksDir())
    expect(books.map((b) => b.name)).toEqual(Object.keys(python).sort())
    for (const b of books) {
      const hash = createHash('sha256').update(b.sentences.join('\x00')).digest('hex').slice(0, 16)
      expect([b.sentences.length, hash], b.name).toEqual(python[b.name])
    }
  })

  it('takes a single file or a folder of .txt files and names what is missing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvkit-hay-'))
    writeFileSync(join(dir, 'b.txt'), 'Second book. It ends.')
    writeFileSync(join(dir, 'a.txt'), 'First book.')
    writeFileSync(join(dir, 'notes.md'), 'ignored')
    expect(loadBooks(dir).map((b) => b.name)).toEqual(['a.txt', 'b.txt'])
    expect(loadBooks(join(dir, 'b.txt'))[0].sentences).toEqual(['Second book.', ' It ends.'])
    expect(() => loadBooks(join(dir, 'nope.txt'))).toThrow(/haystack not found: .*nope\.txt/)
    const empty = join(dir, 'empty')
    mkdirSync(empty)
    expect(() => loadBooks(empty)).toThrow(/no \.txt files/)
  })

  it('takes an evaluation\'s haystack from a list of books (files or folders, in order), else the one path, else the default', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvkit-books-'))
    mkdirSync(join(dir, 'shelf'))
    writeFileSync(join(dir, 'shelf', 'b.txt'), 'Shelf two.')
    writeFileSync(join(dir, 'shelf', 'a.txt'), 'Shelf one.')
    writeFileSync(join(dir, 'z.txt'), 'Loose book.')
    expect(haystackBooks(defaultBooksDir(), undefined, [join(dir, 'z.txt'), join(dir, 'shelf')]).map((b) => b.name)).toEqual(['z.txt', 'a.txt', 'b.txt'])
    expect(haystackBooks(defaultBooksDir(), join(dir, 'z.txt')).map((b) => b.name)).toEqual(['z.txt'])
    expect(haystackBooks(defaultBooksDir(), undefined, []).map((b) => b.name)).toEqual(loadBooks(defaultBooksDir()).map((b) => b.name))
    expect(() => haystackBooks(defaultBooksDir(), undefined, [join(dir, 'z.txt'), join(dir, 'gone.txt')])).toThrow(/haystack not found: .*gone\.txt/)
  })
})
