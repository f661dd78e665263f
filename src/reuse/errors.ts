/** A reuse call got bad input or was used in a state that does not allow it (the message names which). */
export class ReuseError extends Error {
  override name = 'ReuseError'
}

/**
 * Throws ReuseError unless `options` is an object whose every key is one of `known`: a misspelt option
 * (maxBlock, chunk_prefix) would otherwise be ignored and its default used, silently. `known` is a
 * record of every option name, typed by the options interface, so a new option must be listed to compile.
 */
export function checkOptionNames(where: string, options: unknown, known: Readonly<Record<string, true>>): void {
  if (typeof options !== 'object' || options === null) throw new ReuseError(`${where}: options must be an object, got ${options === null ? 'null' : typeof options}`)
  const unknown = Object.keys(options).find((k) => !Object.prototype.hasOwnProperty.call(known, k))
  if (unknown !== undefined) throw new ReuseError(`${where}: unknown option ${JSON.stringify(unknown)}; options: ${Object.keys(known).join(', ')}`)
}
