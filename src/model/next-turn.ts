/**
 * Resolves on a later turn of the event loop (setImmediate where there is one, else a 0 ms timer), so
 * timers and I/O run meanwhile: a long computation awaits it between its pieces to see an abort.
 */
export const nextTurn: () => Promise<void> =
  typeof setImmediate === 'function' ? () => new Promise((r) => setImmediate(r)) : () => new Promise((r) => setTimeout(r, 0))
