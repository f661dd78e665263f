import { chooseTtl } from '../reuse/continuum.js'
import type { KVScheduler } from './scheduler.js'

/** durations kept per tool (the newest) */
const KEEP = 64
/** calls remembered until their results come back (the oldest are forgotten first) */
const ISSUED = 4096

export interface PinStats {
  /** sessions pinned when their answer ended in tool calls */
  pinned: number
  /** pins a returning request found and took over */
  resumed: number
  /** pins whose TTL ran out first */
  expired: number
  /** pins freed early because a waiting request needed the memory */
  reclaimed: number
}

interface Pinned {
  release: () => void
  timer: ReturnType<typeof setTimeout>
}

/**
 * Continuum's KV time-to-live for agent sessions (Li et al., 2025; the policy of `simulateAgents` and
 * `chooseTtl`, src/reuse/continuum.ts), on the live server. When an answer ends in tool calls, the
 * conversation's blocks in the prefix cache are held for a TTL chosen from that tool's observed
 * durations against the cost of prefilling the context again, so LRU eviction cannot drop them while
 * the tool runs. The pin's tokens are reserved in the KVScheduler: it is made only when it fits, and
 * a waiting request reclaims pins soonest expiry first, so the KV budget holds. A tool's durations are
 * learned from when its call was answered to when a request brings its result (`tool_call_id`); until
 * one is observed, chooseTtl gives 0 and nothing is pinned.
 */
export class ToolPins {
  readonly stats: PinStats = { pinned: 0, resumed: 0, expired: 0, reclaimed: 0 }
  private readonly issued = new Map<string, { tool: string; at: number }>()
  private readonly durations = new Map<string, number[]>()
  private readonly pins = new Map<string, Pinned>()

  constructor(
    private readonly scheduler: KVScheduler,
    /** KV tokens of the whole server: a context's share of memory is its tokens over this */
    private readonly budgetTokens: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** the durations observed for `tool`, ms, oldest first */
  observed(tool: string): readonly number[] {
    return this.durations.get(tool) ?? []
  }

  /**
   * An answer ended in tool calls (`calls`: their ids and tools). `hold` holds the conversation's blocks
   * (PrefixCache.hold of its tokens with the answer; `contextTokens` of them), `reloadMs` is what
   * prefilling the context again would cost. The hold becomes the pin, or is released at once when
   * pinning does not pay or does not fit. Returns the TTL pinned, ms (0: not pinned).
   */
  paused(calls: readonly { id: string; tool: string }[], hold: { tokens: number; release: () => void }, contextTokens: number, reloadMs: number): number {
    const t = this.now()
    for (const c of calls) {
      this.issued.set(c.id, { tool: c.tool, at: t })
      if (this.issued.size > ISSUED) this.issued.delete(this.issued.keys().next().value!)
    }
    const share = contextTokens / this.budgetTokens
    // the session resumes when its slowest call is back: the longest TTL any of its tools earns
    const ttl = Math.max(0, ...calls.map((c) => chooseTtl(this.observed(c.tool), reloadMs, share)))
    if (ttl <= 0 || hold.tokens === 0) {
      hold.release()
      return 0
    }
    let releaseBudget: (() => void) | null = null
    const pin: Pinned = {
      release: () => {
        clearTimeout(pin.timer)
        for (const c of calls) if (this.pins.get(c.id) === pin) this.pins.delete(c.id)
        hold.release()
        releaseBudget?.()
      },
      timer: setTimeout(() => {
        this.stats.expired++
        pin.release()
      }, ttl),
    }
    // a timer alone does not keep the process alive: a server closing does not wait for TTLs
    pin.timer.unref?.()
    releaseBudget = this.scheduler.pin(hold.tokens, t + ttl, () => {
      this.stats.reclaimed++
      pin.release()
    })
    if (!releaseBudget) {
      clearTimeout(pin.timer)
      hold.release()
      return 0
    }
    for (const c of calls) this.pins.set(c.id, pin)
    this.stats.pinned++
    return ttl
  }

  /**
   * A request brings the results of these calls: their durations are learned now, and the returned
   * function frees the session's pin (call it once the request holds its blocks).
   */
  resumed(callIds: readonly string[]): () => void {
    const t = this.now()
    const found = new Set<Pinned>()
    for (const id of callIds) {
      const call = this.issued.get(id)
      if (call) {
        this.issued.delete(id)
        const ds = this.durations.get(call.tool) ?? []
        ds.push(t - call.at)
        if (ds.length > KEEP) ds.shift()
        this.durations.set(call.tool, ds)
      }
      const pin = this.pins.get(id)
      if (pin) found.add(pin)
    }
    if (found.size) this.stats.resumed += found.size
    return () => {
      for (const pin of found) pin.release()
    }
  }

  /** frees every pin (shutdown) */
  close(): void {
    for (const pin of new Set(this.pins.values())) pin.release()
  }
}
