// A cache larger than wasm memory: one Llama-3-8B layer (8 KV heads x 128) in the host tier, built in
// chunks (append into the arena, then move the chunk's pages to host ArrayBuffers), and decode attention
// over a selection of it checked against a plain float64 computation from the same generated rows
// (rounded to halves first for a float16 cache). The run fails (exit 1) unless they agree to 1e-5.
// The test runs it at 32k tokens in both dtypes; `node dist/bench/host-tier.js [tokens] [kvDtype]` runs
// it at 1M tokens in float16 by default (4 GiB of K+V: beyond wasm32's 4 GiB once the arena is counted),
// or in float32 (8 GiB). Building 1M tokens' rows in JavaScript takes tens of seconds, so it is a bench.
import { createBackend } from '../src/backend/index.js'
import type { Backend } from '../src/backend/backend.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { attendCacheAsync } from '../src/cache/attention.js'
import type { KVDtype } from '../src/cache/formats.js'
import { floatToHalf, halfToFloat } from '../src/backend/half.js'

export const KV_HEADS = 8
export const HEAD_DIM = 128
export const GROUP = 4 // Llama-3-8B: 32 query heads over 8 KV heads

/** the generated value of key (or value, role 1) channel c of token t in KV head h: cheap to recompute */
export function cell(role: number, t: number, h: number, c: number): number {
  const x = (Math.imul(t, 0x9e3779b1) ^ Math.imul(h * HEAD_DIM + c + 1, 0x85ebca6b) ^ Math.imul(role + 1, 0xc2b2ae35)) >>> 0
  return x / 2 ** 32 - 0.5
}

/** a one-layer cache of `tokens` tokens, every page in the host tier; chunk tokens pass through the arena at a time */
export function hostCache(backend: Backend, tokens: number, chunk = 8192, kvDtype: KVDtype = 'float32'): PagedKVCache {
  const cache = new PagedKVCache(backend, { layers: 1, kvHeads: KV_HEADS, headDim: HEAD_DIM, pageTokens: 64, kvDtype })
  const k = new Float32Array(chunk * KV_HEADS * HEAD_DIM)
  const v = new Float32Array(chunk * KV_HEADS * HEAD_DIM)
  for (let t0 = 0; t0 < tokens; t0 += chunk) {
    const T = Math.min(chunk, tokens - t0)
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < KV_HEADS; h++) {
        const o = (t * KV_HEADS + h) * HEAD_DIM
        for (let c = 0; c < HEAD_DIM; c++) {
          k[o + c] = cell(0, t0 + t, h, c)
          v[o + c] = cell(1, t0 + t, h, c)
        }
      }
    }
    cache.append(0, k.subarray(0, T * KV_HEADS * HEAD_DIM), v.subarray(0, T * KV_HEADS * HEAD_DIM), Int32Array.from({ length: T }, (_, i) => t0 + i))
    cache.moveTo('host')
  }
  return cache
}

/** b distinct slots of n per head, ascending, from a seeded LCG */
export function selection(n: number, b: number, seed: number): Int32Array[] {
  return Array.from({ length: KV_HEADS }, (_, h) => {
    let s = (seed * 7919 + h) >>> 0
    const picked = new Set<number>()
    while (picked.size < b) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0
      picked.add(s % n)
    }
    return Int32Array.from([...picked].sort((x, y) => x - y))
  })
}

/** decode attention of the query heads over the selection, through the asynchronous seam */
export async function attendSelection(backend: Backend, cache: PagedKVCache, q: Float32Array, select: Int32Array[]): Promise<Float32Array> {
  const heap = backend.heap
  const qp = heap.alloc(q.length * 4, 64)
  const out = heap.alloc(q.length * 4, 64)
  try {
    heap.F32.set(q, qp >> 2)
    await attendCacheAsync(backend, cache, { layer: 0, q: qp, T: 1, qHeads: KV_HEADS * GROUP, out, scale: 1 / Math.sqrt(HEAD_DIM), select })
    return heap.F32.slice(out >> 2, (out >> 2) + q.length)
  } finally {
    heap.release(qp)
    heap.release(out)
  }
}

/** the same attention in float64 from the generated rows (as the cache holds them: float32, or rounded to halves) */
export function referenceSelection(q: Float32Array, select: Int32Array[], kvDtype: KVDtype = 'float32'): Float64Array {
  const stored = (x: number) => (kvDtype === 'float16' ? halfToFloat(floatToHalf(x)) : Math.fround(x))
  const out = new Float64Array(q.length)
  for (let h = 0; h < KV_HEADS; h++) {
    for (let g = 0; g < GROUP; g++) {
      const qh = (h * GROUP + g) * HEAD_DIM
      const s = Array.from(select[h], (t) => {
        let x = 0
        for (let c = 0; c < HEAD_DIM; c++) x += q[qh + c] * stored(cell(0, t, h, c))
        return x / Math.sqrt(HEAD_DIM)
      })
      const m = Math.max(...s)
      const w = s.map((x) => Math.exp(x - m))
      const sum = w.reduce((a, b) => a + b, 0)
      select[h].forEach((t, i) => {
        for (let c = 0; c < HEAD_DIM; c++) out[qh + c] += (w[i] / sum) * stored(cell(1, t, h, c))
      })
    }
  }
  return out
}

export async function run(tokens = 1 << 20, kvDtype: KVDtype = 'float16'): Promise<void> {
  const backend = await createBackend('wasm')
  const t0 = performance.now()
  const cache = hostCache(backend, tokens, 8192, kvDtype)
  const built = performance.now() - t0
  const b = cache.bytes()
  const gib = (x: number) => `${(x / 2 ** 30).toFixed(2)} GiB`
  console.log(`\nhost tier: 1 layer x ${KV_HEADS} KV heads x ${HEAD_DIM}, ${tokens} tokens ${kvDtype}`)
  console.log(`  host bytes ${gib(cache.store.liveBytes.host)} (offloaded ${gib(b.offloaded)}), arena pages ${(cache.store.liveBytes.wasm / 2 ** 20).toFixed(1)} MiB, wasm memory ${gib(backend.heap.memory.buffer.byteLength)}, built in ${(built / 1000).toFixed(1)} s`)
  const q = Float32Array.from({ length: KV_HEADS * GROUP * HEAD_DIM }, (_, i) => cell(2, i, 0, 0) * 4)
  const select = selection(tokens, 2048, 1)
  const t1 = performance.now()
  const got = await attendSelection(backend, cache, q, select)
  const ms = performance.now() - t1
  const want = referenceSelection(q, select, kvDtype)
  let worst = 0
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]))
  console.log(`  decode attention over 2048 selected tokens a head: ${ms.toFixed(1)} ms (fetch from host + kernels), max |error| vs float64 reference ${worst.toExponential(2)}`)
  console.log(`  process RSS ${gib(process.memoryUsage().rss)}`)
  cache.dispose()
  if (!(worst < 1e-5)) {
    console.error(`  FAILED: the attention differs from the reference by ${worst}`)
    process.exitCode = 1
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run(process.argv[2] ? Number(process.argv[2]) : 1 << 20, (process.argv[3] as KVDtype | undefined) ?? 'float16')
