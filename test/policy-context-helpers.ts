/**
 * Shared pieces of the policy tests that build contexts by hand: the wasm kernels and the real paged KV cache (small
 * pages, so heads span several), random caches and observation queries, a seeded RNG, and a plain
 * attention reference written without the kernels.
 */
import { createBackend } from '../src/backend/index.js'
import { Ops } from '../src/backend/ops.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import type { LayerHooks, ModelShape, PolicyContext } from '../src/policies/types.js'
import { rng } from './kernels-helpers.js'

export { rng }

export const ops = new Ops(await createBackend('wasm'))
export const newCache = (m: ModelShape, keys: 'post-rope' | 'pre-rope' = 'post-rope') =>
  new PagedKVCache(ops.heap, { layers: m.layers, kvHeads: m.kvHeads, headDim: m.headDim, pageTokens: 16, keys })

export function randn(r: () => number): number {
  return Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r())
}
export function randArray(r: () => number, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n)
  for (let i = 0; i < n; i++) a[i] = randn(r) * scale
  return a
}

export function shape(layers: number, qHeads: number, kvHeads: number, headDim: number): ModelShape {
  return { layers, qHeads, kvHeads, headDim, group: qHeads / kvHeads }
}

/**
 * A filled cache and context: every head holds n random tokens at positions 0..n-1, and each layer has w
 * random observation queries at positions n-w..n-1.
 */
export function randomContext(
  seed: number, m: ModelShape, n: number, w: number,
  extraHooks?: (l: number) => Partial<LayerHooks>,
  tweakKeys?: (layer: number, k: Float32Array /* [n][kvHeads][d] */) => void,
): { ctx: PolicyContext; cache: PagedKVCache } {
  const r = rng(seed)
  const cache = newCache(m)
  const pos = Int32Array.from({ length: n }, (_, i) => i)
  for (let l = 0; l < m.layers; l++) {
    const k = randArray(r, n * m.kvHeads * m.headDim)
    tweakKeys?.(l, k)
    cache.append(l, k, randArray(r, n * m.kvHeads * m.headDim), pos)
  }
  const hooks: LayerHooks[] = Array.from({ length: m.layers }, (_, l) => ({
    layer: l,
    observationQueries: randArray(r, m.qHeads * w * m.headDim, 2),
    observationPositions: Int32Array.from({ length: w }, (_, i) => n - w + i),
    ...(extraHooks ? extraHooks(l) : {}),
  }))
  return { ctx: { cache, ops, model: m, hooks, promptLength: n, step: 0 }, cache }
}

/** Plain reference: softmax(q . k / sqrt(d)) with causal mask, written without the kernels. */
export function refProbs(q: ArrayLike<number>, qPos: number, keys: ArrayLike<number>, kPos: ArrayLike<number>, d: number): number[] {
  const n = kPos.length
  const s: number[] = []
  for (let j = 0; j < n; j++) {
    let dot = 0
    for (let c = 0; c < d; c++) dot += q[c] * keys[j * d + c]
    s.push(kPos[j] > qPos ? -Infinity : dot / Math.sqrt(d))
  }
  const m = Math.max(...s)
  const e = s.map((x) => Math.exp(x - m))
  const z = e.reduce((a, b) => a + b, 0)
  return e.map((x) => x / z)
}
