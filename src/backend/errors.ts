/**
 * A createBackend argument it cannot use: an unknown backend name or option, a `threads` or
 * `minPartMacs` that is no integer in range. The message names the value. A RangeError, as these were
 * before they had a class of their own, so `instanceof RangeError` still catches them.
 */
export class BackendOptionsError extends RangeError {
  override name = 'BackendOptionsError'
}
