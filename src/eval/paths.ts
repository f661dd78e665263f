import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The kvkit package root, found by walking up from this module: the same code runs from src/ (tests)
 * and from dist/src/ (the CLI), so a fixed relative path would be wrong in one of them.
 */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const pkg = join(dir, 'package.json')
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'kvkit') return dir
    const up = dirname(dir)
    if (up === dir) throw new Error('cannot find the kvkit package root above ' + fileURLToPath(import.meta.url))
    dir = up
  }
}

/** the held-out books shipped for haystacks and perplexity */
export function defaultBooksDir(): string {
  return join(packageRoot(), 'data', 'books')
}

export function defaultWordsFile(): string {
  return join(packageRoot(), 'data', 'words.txt')
}

export function defaultModelDir(): string {
  return join(packageRoot(), 'models', 'fixture-14m')
}
