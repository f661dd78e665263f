import { shownValue } from '../model/errors.js'
import { EvalArgumentError } from './errors.js'

/**
 * The two scores of a sample. Strict (what tasks.md and train.py count): the greedy continuation,
 * stripped, starts with the expected answer, stripped. RULER's finer score (string_match_all): the
 * fraction of the expected values found in the continuation, case-insensitively.
 */
export function strictCorrect(continuation: string, answer: string): boolean {
  if (typeof continuation !== 'string') throw new EvalArgumentError(`strictCorrect: continuation must be a string, got ${shownValue(continuation)}`)
  if (typeof answer !== 'string') throw new EvalArgumentError(`strictCorrect: answer must be a string, got ${shownValue(answer)}`)
  return continuation.trim().startsWith(answer.trim())
}

/** @throws EvalArgumentError, naming the value, where `continuation` is no string or `expected` no non-empty list of strings (a fraction of nothing has no value) */
export function rulerScore(continuation: string, expected: readonly string[]): number {
  if (typeof continuation !== 'string') throw new EvalArgumentError(`rulerScore: continuation must be a string, got ${shownValue(continuation)}`)
  if (!Array.isArray(expected) || expected.length === 0 || !expected.every((v) => typeof v === 'string'))
    throw new EvalArgumentError(`rulerScore: expected must be a non-empty list of strings (the values to look for), got ${shownValue(expected)}`)
  const text = continuation.toLowerCase()
  return expected.filter((v) => text.includes(v.toLowerCase())).length / expected.length
}
