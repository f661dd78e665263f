import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { convertFolder, type OutType } from '../tools/gguf-convert.js'

export const FIXTURE = 'models/fixture-14m'

const cache = new Map<OutType, Promise<Uint8Array>>()
/** the fixture converted to GGUF by tools/gguf-convert.ts, once per type per test file */
export function fixtureGguf(type: OutType): Promise<Uint8Array> {
  let p = cache.get(type)
  if (!p) cache.set(type, (p = convertFolder(FIXTURE, type)))
  return p
}

/** writes the fixture's GGUF of `type` into `dir` (as `name`) and returns its path */
export async function writeFixtureGguf(dir: string, type: OutType, name = `fixture-${type}.gguf`): Promise<string> {
  mkdirSync(dir, { recursive: true })
  const path = join(dir, name)
  writeFileSync(path, await fixtureGguf(type))
  return path
}

/** max |a - b| */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]))
  return m
}

/** log-softmax of one row of logits */
export function logSoftmax(row: ArrayLike<number>): Float64Array {
  let m = -Infinity
  for (let i = 0; i < row.length; i++) m = Math.max(m, row[i])
  let s = 0
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i] - m)
  const lse = m + Math.log(s)
  return Float64Array.from(row, (x) => x - lse)
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i
  return best
}
