// How long the event loop was held while some work ran: the longest gap between the ticks of a 5 ms
// timer, which cannot fire while synchronous work (a tokenizer's encode, say) holds the thread.

/** `run`'s result and the longest gap, in ms, between a 5 ms timer's ticks (and the end) while it ran */
export async function longestStall<T>(run: () => Promise<T>): Promise<{ result: T; stallMs: number }> {
  let last = performance.now()
  let stallMs = 0
  const timer = setInterval(() => {
    const now = performance.now()
    stallMs = Math.max(stallMs, now - last)
    last = now
  }, 5)
  try {
    const result = await run()
    stallMs = Math.max(stallMs, performance.now() - last)
    return { result, stallMs }
  } finally {
    clearInterval(timer)
  }
}
