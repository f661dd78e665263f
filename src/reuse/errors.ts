import { optionNamesProblem, shownValue } from '../model/errors.js'
import { throwIfAborted } from '../model/abort.js'

/** A reuse call got bad input or was used in a state that does not allow it (the message names which). */
export class ReuseError extends Error {
  override name = 'ReuseError'
}

/** Throws ReuseError unless `options` is an object whose every key is one of `known` (optionNamesProblem). */
export function checkOptionNames(where: string, options: unknown, known: Readonly<Record<string, true>>): void {
  const problem = optionNamesProblem(options, known)
  if (problem !== undefined) throw new ReuseError(`${where}: ${problem}`)
}

/**
 * A per-tenant salt of store keys ('' when absent): a ReuseError naming the type where it is not a string,
 * since keys are built from its text and every object would share the salt "[object Object]".
 */
export function checkSalt(where: string, salt: unknown): string {
  if (salt === undefined) return ''
  if (typeof salt !== 'string') throw new ReuseError(`${where}: salt must be a string, got ${salt === null ? 'null' : typeof salt}`)
  return salt
}

/**
 * Throws ReuseError unless `store` is a ChunkStore (get and set functions, delete a function where given);
 * a plain object failed at the first prepare, as a TypeError from inside the load ("store.get is not a function").
 */
export function checkChunkStore(where: string, store: unknown): void {
  if (store === undefined) return
  const s = store as Record<string, unknown> | null
  const missing = typeof s !== 'object' || s === null ? null : ['get', 'set'].filter((m) => typeof s[m] !== 'function').concat(s.delete !== undefined && typeof s.delete !== 'function' ? ['delete'] : [])
  if (missing === null) throw new ReuseError(`${where}: store must be a ChunkStore (MemoryChunkStore, FileChunkStore, ...), got ${s === null ? 'null' : typeof s}`)
  if (missing.length) throw new ReuseError(`${where}: store must be a ChunkStore: its ${missing.join(' and ')} ${missing.length > 1 ? 'are not functions' : 'is not a function'}`)
}

/**
 * The check a reuse call runs between its pieces of work for `signal` (throwing its reason once aborted),
 * after a ReuseError for a signal that is not an AbortSignal.
 */
export function abortCheck(where: string, signal: unknown): () => void {
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new ReuseError(`${where}: signal must be an AbortSignal`)
  return () => throwIfAborted(signal as AbortSignal | undefined, where)
}

/**
 * Throws ReuseError unless `value` is a finite number (an integer where `integer`) in [min, max]; the message
 * names `name` and shows the value as given ("0.2" quoted: comparisons coerce a string, so
 * `'0.2' <= 1` passed a range check that did not test the type).
 */
export function checkNumber(where: string, name: string, value: unknown, min: number, max = Infinity, integer = false): asserts value is number {
  const ok = typeof value === 'number' && (integer ? Number.isInteger(value) : Number.isFinite(value)) && value >= min && value <= max
  if (ok) return
  const range = max === Infinity ? `>= ${min}` : `in [${min}, ${max}]`
  throw new ReuseError(`${where}: ${name} must be ${integer ? 'an integer' : 'a finite number'} ${range}, got ${shownValue(value)}`)
}
