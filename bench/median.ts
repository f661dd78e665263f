/** median wall time of fn over `reps` runs after one warm-up, in ms (awaited, so async steps count whole) */
export async function medianMs(fn: () => unknown, reps: number): Promise<number> {
  await fn()
  const t: number[] = []
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now()
    await fn()
    t.push(performance.now() - t0)
  }
  return t.sort((a, b) => a - b)[Math.floor(t.length / 2)]
}
