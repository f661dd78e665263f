/** A reuse call got bad input or was used in a state that does not allow it (the message names which). */
export class ReuseError extends Error {
  override name = 'ReuseError'
}
