import { MemoryChunkStore, type ChunkKV, type ChunkStore } from '../reuse/chunk-kv.js'
import type { KVScheduler, Release } from './scheduler.js'

/**
 * A ChunkStore whose chunks count against the server's KV budget: each is a pin in the KVScheduler
 * (its tokens reserved), reclaimed oldest first when a waiting request needs the room, which drops it
 * (KVShare then forgets the request; CacheBlend computes the chunk again). A chunk that does not fit is
 * not kept, unless `makeRoom` is set: then, while no request waits, this store's own oldest chunks are
 * dropped until it fits (a cache of chunks keeping the newest, CacheBlend's documents).
 */
export class PinnedStore implements ChunkStore {
  private readonly inner = new MemoryChunkStore()
  private readonly pins = new Map<string, Release>()

  constructor(
    private readonly scheduler: KVScheduler,
    private readonly makeRoom = false,
  ) {}

  get(key: string): ChunkKV | undefined {
    return this.inner.get(key)
  }

  set(key: string, kv: ChunkKV): void {
    this.delete(key)
    // the insertion time as the pin's expiry, on ToolPins' clock: the oldest kept prompt is reclaimed
    // first, and kept prompts (past times) before sessions paused for a tool (expiries to come)
    const pin = () => this.scheduler.pin(kv.ids.length, performance.now(), () => {
      this.pins.delete(key)
      this.inner.delete(key)
    })
    let release = pin()
    // the pins map is in insertion order: its first key is the oldest chunk
    while (!release && this.makeRoom && this.scheduler.queued === 0 && this.pins.size > 0) {
      this.delete(this.pins.keys().next().value!)
      release = pin()
    }
    if (!release) return
    this.pins.set(key, release)
    this.inner.set(key, kv)
  }

  delete(key: string): boolean {
    this.pins.get(key)?.()
    this.pins.delete(key)
    return this.inner.delete(key)
  }
}
