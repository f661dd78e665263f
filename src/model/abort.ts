/**
 * What an aborted `signal` rejects with: its reason (a DOMException AbortError where abort() was given
 * none), else an AbortError naming `what` ('generation', 'evaluation', ...).
 */
export function abortReason(signal: AbortSignal | undefined, what: string): unknown {
  return signal?.reason ?? new DOMException(`${what} aborted`, 'AbortError')
}

/** Throws abortReason(signal, what) once `signal` is aborted: the check a long computation runs between its pieces. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw abortReason(signal, what)
}
