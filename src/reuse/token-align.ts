import { diffArrays } from 'diff'
import { ReuseError } from './errors.js'
import { shownValue } from '../model/errors.js'

/** How a prompt's tokens map onto a cached request's (KVShare's alignment). */
export interface TokenAlignment {
  /** per prompt token, the index of the cached token it equals and takes the KV of, or -1 (inserted or replaced) */
  readonly source: Int32Array
  /** prompt tokens aligned to a cached token */
  readonly matched: number
  /**
   * length of the common prefix: prompt tokens before it are the cached request's at the same
   * positions after the same tokens, so their KV is exact; from it on, reused KV is approximate
   */
  readonly firstEdit: number
}

/**
 * Aligns `prompt` against a `cached` request's tokens by a minimal edit script (Myers' O(ND) diff, through
 * the `diff` package's `diffArrays`): every token the script keeps maps to its cached twin, in order;
 * inserted and replaced tokens map to -1. The script is minimal, so `matched` is the length of a
 * longest common subsequence. This is KVShare's token-level alignment of an edited request (Yang et
 * al. 2025, arXiv 2503.16525, "semantic alignment" and "differential editing"), done on token ids.
 *
 * @param maxEdits give up (undefined) when the script needs more than this many insertions plus
 *   deletions: a bound on the work, O((N + M) x maxEdits), for prompts that turn out unrelated
 * @throws ReuseError when either input is not an array of integers or maxEdits is not a whole number >= 0
 */
export function alignTokens(cached: readonly number[], prompt: readonly number[], maxEdits?: number): TokenAlignment | undefined {
  for (const [name, a] of [['cached', cached], ['prompt', prompt]] as const) {
    if (!Array.isArray(a)) throw new ReuseError(`alignTokens: ${name} must be an array of token ids, got ${a === null ? 'null' : typeof a}`)
    const bad = a.findIndex((t) => !Number.isInteger(t))
    if (bad >= 0) throw new ReuseError(`alignTokens: ${name}[${bad}] = ${JSON.stringify(a[bad])} is not a token id`)
  }
  if (maxEdits !== undefined && !(Number.isInteger(maxEdits) && maxEdits >= 0)) throw new ReuseError(`alignTokens: maxEdits must be a whole number >= 0, got ${shownValue(maxEdits)}`)
  const changes = maxEdits === undefined ? diffArrays(cached.slice(), prompt.slice()) : diffArrays(cached.slice(), prompt.slice(), { maxEditLength: maxEdits })
  if (!changes) return undefined
  const source = new Int32Array(prompt.length).fill(-1)
  let i = 0 // cached index
  let j = 0 // prompt index
  let matched = 0
  for (const c of changes) {
    const n = c.count
    if (c.added) j += n
    else if (c.removed) i += n
    else {
      for (let t = 0; t < n; t++) source[j + t] = i + t
      i += n
      j += n
      matched += n
    }
  }
  let firstEdit = 0
  while (firstEdit < prompt.length && source[firstEdit] === firstEdit) firstEdit++
  return { source, matched, firstEdit }
}
