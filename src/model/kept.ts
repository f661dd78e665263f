import type { KVCache, TokenSelection } from '../cache/types.js'
import type { KeptTokens } from './types.js'

/** a head's positions ascending: order-free evictions (HeadEviction) leave slots out of position order */
function ascending(p: Int32Array): Int32Array {
  for (let i = 1; i < p.length; i++) if (p[i] < p[i - 1]) return p.sort()
  return p
}

/**
 * Records, for `GenerateOptions.onKept`, which tokens the cache holds per (layer, KV head) and which a
 * selecting policy attended to at a decode step. Built only when the caller asked for it: without
 * `onKept` generation copies nothing.
 */
export class KeptRecorder {
  private attended: (Int32Array | null)[][] | null = null

  constructor(private readonly cache: KVCache, private readonly layers: number, private readonly kvHeads: number, private readonly onKept: (k: KeptTokens) => void) {}

  /** wraps the step's selector (its selection passes through untouched): slots are mapped to positions while the cache still has them */
  select(inner: (layer: number, q: Float32Array) => TokenSelection | null): (layer: number, q: Float32Array) => TokenSelection | null {
    return (layer, q) => {
      const slots = inner(layer, q)
      this.attend(layer, slots)
      return slots
    }
  }

  /** records what layer `layer` attended to this step (slots per KV head; null: every head all it holds) */
  attend(layer: number, slots: TokenSelection | null): void {
    this.attended ??= Array.from({ length: this.layers }, () => new Array<Int32Array | null>(this.kvHeads).fill(null))
    for (let h = 0; h < this.kvHeads; h++) {
      const s = slots?.[h] ?? null
      if (s === null) continue
      const pos = this.cache.positions(layer, h)
      this.attended[layer][h] = ascending(Int32Array.from(s, (slot) => pos[slot]))
    }
  }

  /** reports what the cache holds now (and what this step attended to) */
  report(stage: KeptTokens['stage'], step: number): void {
    const kept = Array.from({ length: this.layers }, (_, l) => Array.from({ length: this.kvHeads }, (_, h) => ascending(this.cache.positions(l, h))))
    const attended = this.attended
    this.attended = null
    this.onKept(attended ? { stage, step, kept, attended } : { stage, step, kept })
  }
}
