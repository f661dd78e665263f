import { optionNamesProblem } from '../model/errors.js'

/** A reuse call got bad input or was used in a state that does not allow it (the message names which). */
export class ReuseError extends Error {
  override name = 'ReuseError'
}

/** Throws ReuseError unless `options` is an object whose every key is one of `known` (optionNamesProblem). */
export function checkOptionNames(where: string, options: unknown, known: Readonly<Record<string, true>>): void {
  const problem = optionNamesProblem(options, known)
  if (problem !== undefined) throw new ReuseError(`${where}: ${problem}`)
}
