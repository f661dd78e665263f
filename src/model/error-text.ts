/**
 * An error's message followed by its causes' ("fetch failed: connect ECONNREFUSED 127.0.0.1:8000"): fetch
 * in Node and Bun (undici) rejects with the bare "fetch failed" and says why only in `cause` (refused,
 * host not found, TLS), which a message built from `message` alone dropped. At most four levels; a
 * repeated message is shown once.
 */
export function errorText(e: unknown): string {
  const parts: string[] = []
  let at: unknown = e
  for (let depth = 0; at !== undefined && at !== null && depth < 4; depth++) {
    const text = at instanceof Error ? at.message || at.name : String(at)
    if (text && !parts.includes(text)) parts.push(text)
    at = at instanceof Error ? at.cause : undefined
  }
  return parts.length > 0 ? parts.join(': ') : String(e)
}
