/**
 * The page's default text: the first chapter of Alice's Adventures in Wonderland from kvkit's haystack
 * books (the fixture's training text), from its first sentence on, past the title and contents. 20,000
 * characters hold passkey prompts of a few thousand tokens without bundling the whole book. Used by
 * vite.config.ts (the page's `virtual:haystack`) and by the playground test (Node's reference prompt).
 */
export const HAYSTACK_BOOK = 'data/books/11-0.txt'
const CHARS = 20_000

export function haystackText(book: string): string {
  const start = book.indexOf('Alice was beginning')
  if (start < 0) throw new Error(`${HAYSTACK_BOOK}: the first chapter is missing`)
  return book.slice(start, start + CHARS)
}
