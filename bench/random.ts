import type { KVCache } from '../src/cache/types.js'

/** Deterministic pseudo-random floats in [-1.5, 1.5) (an LCG): benchmark inputs that are the same every run. */
export function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0
    out[i] = (s / 2 ** 32 - 0.5) * 3
  }
  return out
}

/** Appends n random tokens (positions 0..n-1) to one layer of a cache, in chunks of 1024 like a prefill. */
export function fillRandomLayer(cache: KVCache, layer: number, n: number): void {
  const { kvHeads, headDim } = cache.options
  for (let t0 = 0; t0 < n; t0 += 1024) {
    const T = Math.min(1024, n - t0)
    const k = randn(T * kvHeads * headDim, layer * 7919 + t0)
    cache.append(layer, k, k, Int32Array.from({ length: T }, (_, i) => t0 + i))
  }
}
