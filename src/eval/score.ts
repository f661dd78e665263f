/**
 * The two scores of a sample. Strict (what tasks.md and train.py count): the greedy continuation,
 * stripped, starts with the expected answer, stripped. RULER's finer score (string_match_all): the
 * fraction of the expected values found in the continuation, case-insensitively.
 */
export function strictCorrect(continuation: string, answer: string): boolean {
  return continuation.trim().startsWith(answer.trim())
}

export function rulerScore(continuation: string, expected: readonly string[]): number {
  if (expected.length === 0) throw new Error('rulerScore needs at least one expected value')
  const text = continuation.toLowerCase()
  return expected.filter((v) => text.includes(v.toLowerCase())).length / expected.length
}
