/**
 * Which cached block to drop when the prefix cache is over capacity. The cache asks for a victim among
 * the blocks it may drop (no request holds them, no cached block extends them) and the policy answers
 * in its own order, skipping the others.
 */
export interface BlockEviction {
  readonly name: EvictionName
  /** a new block entered the cache */
  insert(key: string): void
  /** a request found the block */
  access(key: string): void
  /** the block left the cache */
  remove(key: string): void
  /** the block to drop next among those `may` allows, or undefined */
  victim(may: (key: string) => boolean): string | undefined
}

export type EvictionName = 'lru' | 'lfu' | 's3fifo'
export const EVICTIONS: readonly EvictionName[] = ['lru', 'lfu', 's3fifo']

/** Least recently used: a Map in access order, oldest first (vLLM's free-block queue). */
export class LruEviction implements BlockEviction {
  readonly name = 'lru'
  private readonly order = new Map<string, true>()
  insert(key: string): void {
    this.order.set(key, true)
  }
  access(key: string): void {
    this.order.delete(key)
    this.order.set(key, true)
  }
  remove(key: string): void {
    this.order.delete(key)
  }
  victim(may: (key: string) => boolean): string | undefined {
    for (const k of this.order.keys()) if (may(k)) return k
    return undefined
  }
}

/** Least frequently used, ties to the least recently used. */
export class LfuEviction implements BlockEviction {
  readonly name = 'lfu'
  private readonly uses = new Map<string, number>()
  insert(key: string): void {
    this.uses.set(key, 1)
  }
  access(key: string): void {
    const n = (this.uses.get(key) ?? 0) + 1
    this.uses.delete(key)
    this.uses.set(key, n)
  }
  remove(key: string): void {
    this.uses.delete(key)
  }
  victim(may: (key: string) => boolean): string | undefined {
    let best: string | undefined
    let least = Infinity
    for (const [k, n] of this.uses) if (n < least && may(k)) (best = k), (least = n)
    return best
  }
}

/**
 * S3-FIFO (Yang et al., SOSP 2023, section 4): a small FIFO for new blocks (10% of the capacity), a main
 * FIFO, and a ghost FIFO of keys recently dropped from the small one. A block leaving the small queue
 * moves to main if it was found again since it entered (the paper's "accessed more than once", the
 * insertion counting as the first), else it is dropped and its key remembered in ghost; a key found in
 * ghost enters main directly. Main reinserts a block found since its last pass, its count lowered by one
 * (counts saturate at 3), and drops one that was not.
 */
export class S3FifoEviction implements BlockEviction {
  readonly name = 's3fifo'
  private readonly small = new Map<string, true>()
  private readonly main = new Map<string, true>()
  private readonly ghost = new Map<string, true>()
  private readonly freq = new Map<string, number>()

  constructor(private readonly capacity: number) {}

  insert(key: string): void {
    this.freq.set(key, 0)
    if (this.ghost.delete(key)) this.main.set(key, true)
    else this.small.set(key, true)
  }
  access(key: string): void {
    this.freq.set(key, Math.min(3, (this.freq.get(key) ?? 0) + 1))
  }
  remove(key: string): void {
    // a block dropped from the small queue is remembered in ghost, bounded by the capacity
    if (this.small.delete(key)) {
      this.ghost.set(key, true)
      if (this.ghost.size > this.capacity) this.ghost.delete(this.ghost.keys().next().value!)
    }
    this.main.delete(key)
    this.freq.delete(key)
  }
  victim(may: (key: string) => boolean): string | undefined {
    const smallTarget = Math.max(1, Math.floor(this.capacity / 10))
    // promotions and second chances reorder the queues; each block moves at most once per call
    for (let pass = 0; pass < 2; pass++) {
      if (this.small.size >= smallTarget || this.main.size === 0) {
        for (const k of [...this.small.keys()]) {
          if (!may(k)) continue
          if ((this.freq.get(k) ?? 0) > 0) {
            this.small.delete(k)
            this.main.set(k, true)
            this.freq.set(k, 0)
            continue
          }
          return k
        }
      }
      for (const k of [...this.main.keys()]) {
        if (!may(k)) continue
        const f = this.freq.get(k) ?? 0
        if (f > 0) {
          this.main.delete(k)
          this.main.set(k, true)
          this.freq.set(k, f - 1)
          continue
        }
        return k
      }
    }
    // everything droppable was found recently: fall back to the oldest in small, then main
    for (const k of [...this.small.keys(), ...this.main.keys()]) if (may(k)) return k
    return undefined
  }
}

export function makeEviction(name: EvictionName, capacity: number): BlockEviction {
  if (name === 'lru') return new LruEviction()
  if (name === 'lfu') return new LfuEviction()
  return new S3FifoEviction(capacity)
}
