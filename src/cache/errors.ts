/** A bad cache argument or decision, found before anything changes. */
export class CacheError extends Error {
  override name = 'CacheError'
}
