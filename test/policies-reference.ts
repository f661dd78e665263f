/**
 * The random world the token-eviction tests share (a real paged cache on the wasm kernels, window queries,
 * attention mass) and plain-loop references of SnapKV's vote, straight from the paper's description.
 */
import type { LayerHooks, ModelShape, Policy, PolicyContext, PolicySession } from '../src/policies/types.js'
import { createBackend } from '../src/backend/index.js'
import { Ops } from '../src/backend/ops.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'

export const model: ModelShape = { layers: 2, qHeads: 6, kvHeads: 2, headDim: 8, group: 3 }
// the wasm kernels and the real paged cache, with small pages so heads span several
export const ops = new Ops(await createBackend('wasm'))
export const newCache = (o: { layers: number; kvHeads: number; headDim: number }) => new PagedKVCache(ops.heap, { ...o, pageTokens: 16 })

export function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0
    return s / 2 ** 32
  }
}
export const gauss = (r: () => number) => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r())

export interface World {
  cache: PagedKVCache
  keys: number[][][][] // [layer][head][slot][d]
  queries: Float32Array[] // per layer [qHeads][W][d]
  qpos: Int32Array
  mass: Float32Array[] // per layer [kvHeads][n]
  ctx: PolicyContext
}

/** caches made by a test, freed by disposeCaches() in the test file's afterEach */
export const caches: PagedKVCache[] = []
export function disposeCaches(): void {
  for (const c of caches.splice(0)) c.dispose()
}

export function world(n: number, W: number, seed: number): World {
  const r = rng(seed)
  const { layers, kvHeads, headDim, qHeads } = model
  const cache = newCache({ layers, kvHeads, headDim })
  caches.push(cache)
  const keys: number[][][][] = []
  const queries: Float32Array[] = []
  const mass: Float32Array[] = []
  const hooks: LayerHooks[] = []
  const qpos = Int32Array.from({ length: W }, (_, i) => n - W + i)
  for (let l = 0; l < layers; l++) {
    const k = Float32Array.from({ length: n * kvHeads * headDim }, () => 2 * gauss(r))
    const v = Float32Array.from({ length: n * kvHeads * headDim }, () => gauss(r))
    cache.append(l, k, v, Int32Array.from({ length: n }, (_, i) => i))
    keys.push(Array.from({ length: kvHeads }, (_, h) => Array.from({ length: n }, (_, i) => Array.from(k.subarray((i * kvHeads + h) * headDim, (i * kvHeads + h + 1) * headDim)))))
    const q = Float32Array.from({ length: qHeads * W * headDim }, () => 2 * gauss(r))
    queries.push(q)
    const m = Float32Array.from({ length: kvHeads * n }, () => r() * 10)
    mass.push(m)
    hooks.push({ layer: l, observationQueries: q, observationPositions: qpos, attentionMass: m })
  }
  const ctx: PolicyContext = { cache, ops, model, hooks, promptLength: n, step: 0 }
  return { cache, keys, queries, qpos, mass, ctx }
}

/** runs a policy's prefill decision (a fresh session, or the one given) and returns the kept original positions per [layer][head] */
export function keptAfterPrefill(p: Policy | PolicySession, w: World): number[][][] {
  const s = 'start' in p ? p.start() : p
  const d = s.onPrefillEnd!(w.ctx)
  if (d) {
    w.cache.apply(d)
    s.onApplied?.(d, w.ctx)
  }
  return Array.from({ length: model.layers }, (_, l) => Array.from({ length: model.kvHeads }, (_, h) => Array.from(w.cache.positions(l, h))))
}

// ---- plain references ----
export function topIdx(score: number[], k: number): number[] {
  return score.map((s, i) => [s, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, k).map((x) => x[1]).sort((a, b) => a - b)
}
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i] * b[i]
  return s
}
export function softmax(x: number[]): number[] {
  const m = Math.max(...x)
  const e = x.map((v) => Math.exp(v - m))
  const s = e.reduce((a, b) => a + b, 0)
  return e.map((v) => v / s)
}
export function queryOf(w: World, l: number, qh: number, i: number, W: number): number[] {
  const d = model.headDim
  return Array.from(w.queries[l].subarray((qh * W + i) * d, (qh * W + i + 1) * d))
}
export function pool(x: number[], kind: string, kernel: number): number[] {
  const r = kernel >> 1
  return x.map((_, i) => {
    const win: number[] = []
    for (let j = i - r; j <= i + r; j++) if (j >= 0 && j < x.length) win.push(x[j])
    return kind === 'max' ? Math.max(...win) : win.reduce((a, b) => a + b, 0) / kernel
  })
}
/** SnapKV's per-KV-head scores (window = +Infinity), straight from the paper's description */
export function snapScores(w: World, l: number, h: number, W: number, win: number, kind: string, kernel: number, agg: string): number[] {
  const n = w.keys[l][h].length
  const prefix = n - win
  const perQ: number[][] = []
  for (let g = 0; g < model.group; g++) {
    const vote = new Array(n).fill(0)
    for (let i = W - win; i < W; i++) {
      const q = queryOf(w, l, h * model.group + g, i, W)
      const p = softmax(w.keys[l][h].map((k, j) => (j <= w.qpos[i] ? dot(q, k) / Math.sqrt(model.headDim) : -Infinity)))
      p.forEach((x, j) => (vote[j] += x / win))
    }
    const pre = vote.slice(0, prefix)
    perQ.push(kind === 'none' ? pre : pool(pre, kind, kernel))
  }
  const out = new Array(n).fill(Infinity)
  for (let j = 0; j < prefix; j++) out[j] = agg === 'max' ? Math.max(...perQ.map((v) => v[j])) : perQ.reduce((a, v) => a + v[j], 0) / model.group
  return out
}
