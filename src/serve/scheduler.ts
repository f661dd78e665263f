import { sharePriority } from '../reuse/kvshare-scheduler.js'
import { optionNamesProblem, shownValue } from '../model/errors.js'

/** what `KVScheduler.acquire` reserved: give it back when the request's KV is freed */
export type Release = () => void

/**
 * The order waiting requests start in: 'fcfs' (arrival); 'kvshare' (KVShare's cache-aware order: the
 * highest expected hit rate plus wait / agingMs first; src/reuse/kvshare-scheduler.ts); 'program'
 * (Continuum's: first come first served by agent program, a call ranked by when its program was
 * first seen, then by its own arrival; a call without a program is its own; src/reuse/continuum.ts)
 */
export type QueueOrder = 'fcfs' | 'kvshare' | 'program'
const ORDERS: readonly QueueOrder[] = ['fcfs', 'kvshare', 'program']
/** programs whose first arrival is remembered; beyond it the longest unseen is forgotten */
const MAX_PROGRAMS = 10000

/** every option KVScheduler takes; the record's type makes a new SchedulerOptions field fail to compile until listed */
const SCHEDULER_OPTION_SET: Record<keyof SchedulerOptions, true> = { order: true, agingMs: true, now: true }

export interface SchedulerOptions {
  /** default 'fcfs' */
  order?: QueueOrder
  /** 'kvshare': the wait (ms) that raises a priority by 1, the whole range of hit rates (default 10000) */
  agingMs?: number
  /** the clock of waits, ms (default performance.now) */
  now?: () => number
}

interface Waiter {
  tokens: number
  /** share of the prompt expected from cache (0..1), 'kvshare' order */
  hitRate: number
  arrival: number
  /** when its program was first seen ('program' order; its own arrival without one) */
  rank: number
  start: (release: Release) => void
  fail: (e: unknown) => void
  signal?: AbortSignal
  onAbort?: () => void
}

interface Pin {
  tokens: number
  expires: number
  reclaim: () => void
}

/**
 * Admission of requests by KV memory (vLLM's scheduler in its simplest form: no preemption). A request
 * reserves the KV tokens it can grow to (prompt + max_tokens, rounded up to whole pages) and starts
 * when at most `parallel` requests run and the reservations fit in `capacityTokens`; otherwise it
 * waits, in arrival order or (order 'kvshare') by KVShare's priority, its expected hit rate plus its
 * wait over agingMs. The head of the queue (the first by that order) is never overtaken, so a long
 * request is not starved by short ones behind it, and with aging no request waits behind newcomers
 * that arrived more than agingMs after it.
 */
export class KVScheduler {
  private readonly queue: Waiter[] = []
  private readonly pins = new Set<Pin>()
  /** 'program' order: each program's first arrival */
  private readonly programs = new Map<string, number>()
  private runningCount = 0
  private reservedTokens = 0
  /** the most KV tokens reserved at once since the start */
  peakReserved = 0
  /** the most requests waiting at once since the start */
  peakQueued = 0

  readonly order: QueueOrder
  readonly agingMs: number
  private readonly now: () => number

  constructor(
    readonly capacityTokens: number,
    readonly parallel: number,
    options: SchedulerOptions = {},
  ) {
    // parallel 0 left every acquire waiting forever; a capacity that is not a count compared as text or NaN
    if (!(Number.isInteger(capacityTokens) && capacityTokens >= 0)) throw new RangeError(`KVScheduler: capacityTokens must be a non-negative integer, got ${shownValue(capacityTokens)}`)
    if (!(Number.isInteger(parallel) && parallel >= 1)) throw new RangeError(`KVScheduler: parallel must be a positive integer, got ${shownValue(parallel)}`)
    const problem = optionNamesProblem(options, SCHEDULER_OPTION_SET)
    if (problem !== undefined) throw new RangeError(`KVScheduler: ${problem}`)
    this.order = options.order ?? 'fcfs'
    this.agingMs = options.agingMs ?? 10000
    this.now = options.now ?? (() => performance.now())
    if (typeof this.now !== 'function') throw new RangeError(`KVScheduler: now must be a function, got ${typeof this.now}`)
    if (!ORDERS.includes(this.order)) throw new RangeError(`KVScheduler: order must be one of ${ORDERS.join(', ')}, got ${JSON.stringify(this.order)}`)
    if (!(this.agingMs > 0)) throw new RangeError(`KVScheduler: agingMs must be positive, got ${this.agingMs}`)
  }

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
   * caller refuses larger requests with a 400 before any work). `hitRate`: the share of its prompt
   * expected from cache (0..1), which orders the queue under 'kvshare'; `program`: the agent program of
   * the call, which orders it under 'program'.
   */
  acquire(tokens: number, signal?: AbortSignal, hitRate = 0, program?: string): Promise<Release> {
    // NaN was queued and, admitted, made the reserved count NaN: every later reservation then compared false
    if (!(Number.isInteger(tokens) && tokens >= 0)) return Promise.reject(new RangeError(`KVScheduler: tokens must be a non-negative integer, got ${shownValue(tokens)}`))
    if (tokens > this.capacityTokens) return Promise.reject(new RangeError(`KVScheduler: ${tokens} tokens exceed the capacity of ${this.capacityTokens}`))
    if (signal?.aborted) return Promise.reject(signal.reason)
    return new Promise<Release>((start, fail) => {
      const arrival = this.now()
      const w: Waiter = { tokens, hitRate: Math.min(1, Math.max(0, hitRate)), arrival, rank: program === undefined ? arrival : this.programRank(program, arrival), start, fail, signal }
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

  /** KV tokens reserved by pins (sessions kept between requests) */
  get pinned(): number {
    let n = 0
    for (const p of this.pins) n += p.tokens
    return n
  }

  /**
   * Reserves `tokens` now for KV kept between requests (Continuum's pinned session), if they fit and no
   * request is waiting; null otherwise. When a waiting request needs the room, pins are reclaimed
   * soonest `expires` first: the reservation is dropped and `reclaim` frees the KV (the release is
   * then a no-op).
   */
  pin(tokens: number, expires: number, reclaim: () => void): Release | null {
    if (this.queue.length > 0 || this.reservedTokens + tokens > this.capacityTokens) return null
    const p: Pin = { tokens, expires, reclaim }
    this.pins.add(p)
    this.reservedTokens += tokens
    this.peakReserved = Math.max(this.peakReserved, this.reservedTokens)
    return () => {
      if (!this.pins.delete(p)) return
      this.reservedTokens -= tokens
      this.pump()
    }
  }

  /** when `program` was first seen (now, for a new one) */
  private programRank(program: string, now: number): number {
    const first = this.programs.get(program) ?? now
    // the most recently seen last: the one forgotten first is the longest unseen
    this.programs.delete(program)
    this.programs.set(program, first)
    if (this.programs.size > MAX_PROGRAMS) this.programs.delete(this.programs.keys().next().value!)
    return first
  }

  /** index of the waiter that starts next: the first, the earliest program, or the highest KVShare priority (ties to the earlier) */
  private head(): number {
    if (this.order === 'fcfs') return 0
    if (this.order === 'program') {
      // the queue is in arrival order: the first of the lowest rank
      let best = 0
      this.queue.forEach((w, i) => {
        if (w.rank < this.queue[best].rank) best = i
      })
      return best
    }
    const t = this.now()
    let best = 0
    let top = -Infinity
    this.queue.forEach((w, i) => {
      const p = sharePriority(w.hitRate, t - w.arrival, this.agingMs)
      if (p > top) [best, top] = [i, p]
    })
    return best
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const at = this.head()
      const w = this.queue[at]
      if (this.runningCount >= this.parallel) return
      if (this.reservedTokens + w.tokens > this.capacityTokens) {
        // memory is needed: the pin that would expire first goes first (Continuum)
        let first: Pin | undefined
        for (const p of this.pins) if (!first || p.expires < first.expires) first = p
        if (!first) return
        this.pins.delete(first)
        this.reservedTokens -= first.tokens
        first.reclaim()
        continue
      }
      this.queue.splice(at, 1)
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
