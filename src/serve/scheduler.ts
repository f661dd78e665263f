/** what `KVScheduler.acquire` reserved: give it back when the request's KV is freed */
export type Release = () => void

interface Waiter {
  tokens: number
  start: (release: Release) => void
  fail: (e: unknown) => void
  signal?: AbortSignal
  onAbort?: () => void
}

/**
 * Admission of requests by KV memory (vLLM's scheduler in its simplest form: first come first served,
 * no preemption). A request reserves the KV tokens it can grow to (prompt + max_tokens, rounded up to
 * whole pages) and starts when at most `parallel` requests run and the reservations fit in
 * `capacityTokens`; otherwise it waits in arrival order. The head of the queue is never overtaken, so
 * a long request is not starved by short ones behind it.
 */
export class KVScheduler {
  private readonly queue: Waiter[] = []
  private runningCount = 0
  private reservedTokens = 0
  /** the most KV tokens reserved at once since the start */
  peakReserved = 0
  /** the most requests waiting at once since the start */
  peakQueued = 0

  constructor(
    readonly capacityTokens: number,
    readonly parallel: number,
  ) {}

  get running(): number {
    return this.runningCount
  }

  get queued(): number {
    return this.queue.length
  }

  get reserved(): number {
    return this.reservedTokens
  }

  /**
   * Resolves when `tokens` KV tokens are reserved for the caller; rejects with the signal's reason if it
   * aborts while waiting (the request leaves the queue). `tokens` must be at most capacityTokens (the
   * caller refuses larger requests with a 400 before any work).
   */
  acquire(tokens: number, signal?: AbortSignal): Promise<Release> {
    if (tokens > this.capacityTokens) return Promise.reject(new RangeError(`KVScheduler: ${tokens} tokens exceed the capacity of ${this.capacityTokens}`))
    if (signal?.aborted) return Promise.reject(signal.reason)
    return new Promise<Release>((start, fail) => {
      const w: Waiter = { tokens, start, fail, signal }
      if (signal) {
        w.onAbort = () => {
          const i = this.queue.indexOf(w)
          if (i >= 0) this.queue.splice(i, 1)
          fail(signal.reason)
          this.pump()
        }
        signal.addEventListener('abort', w.onAbort, { once: true })
      }
      this.queue.push(w)
      this.pump()
      this.peakQueued = Math.max(this.peakQueued, this.queue.length)
    })
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const w = this.queue[0]
      if (this.runningCount >= this.parallel || this.reservedTokens + w.tokens > this.capacityTokens) return
      this.queue.shift()
      if (w.onAbort) w.signal!.removeEventListener('abort', w.onAbort)
      this.runningCount++
      this.reservedTokens += w.tokens
      this.peakReserved = Math.max(this.peakReserved, this.reservedTokens)
      let released = false
      w.start(() => {
        if (released) return
        released = true
        this.runningCount--
        this.reservedTokens -= w.tokens
        this.pump()
      })
    }
  }

  /** refuses every waiting request with `reason` (shutdown) */
  rejectWaiting(reason: unknown): void {
    for (const w of this.queue.splice(0)) {
      if (w.onAbort) w.signal!.removeEventListener('abort', w.onAbort)
      w.fail(reason)
    }
  }
}
