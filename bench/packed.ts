// Packed KV pages: scoring on packed keys against float32 scoring, in the same run, and the bytes per
// token per layer of each packed scheme against float16, from the cache's own accounting.
//   node dist/bench/packed.js
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import type { PageFormat } from '../src/cache/formats.js'
import { measure } from './kernels.js'

/** a one-head cache of n random tokens of d channels; `format` packs all of them */
function cacheOf(b: CreatedBackend, n: number, d: number, format: PageFormat | null, residual = 0): PagedKVCache {
  const cache = new PagedKVCache(b, { layers: 1, kvHeads: 1, headDim: d, pageTokens: 64 })
  let s = 12345
  const rand = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 31 - 1)
  for (let at = 0; at < n; at += 4096) {
    const T = Math.min(4096, n - at)
    const k = Float32Array.from({ length: T * d }, rand)
    const v = Float32Array.from({ length: T * d }, rand)
    cache.append(0, k, v, Int32Array.from({ length: T }, (_, i) => at + i))
  }
  const upto = Math.floor(Math.max(0, n - residual) / 32) * 32
  if (format && upto > 0) cache.apply({ heads: [], quantize: [{ layer: 0, head: 0, upto, keys: format, values: format }] })
  return cache
}

export async function scoringSpeed(b: CreatedBackend, n: number, d: number, qHeads: number): Promise<void> {
  const heap = b.heap
  const f32 = cacheOf(b, n, d, null)
  const packed = { int4: cacheOf(b, n, d, 'int4'), int2: cacheOf(b, n, d, 'int2'), int8: cacheOf(b, n, d, 'int8'), int1: cacheOf(b, n, d, 'int1') }
  const q = heap.allocF32(qHeads * d)
  q.view.forEach((_, i) => (q.view[i] = Math.sin(i)))
  const out = heap.allocF32(qHeads * n)
  const scratch = heap.allocF32(qHeads * (d + 1))
  const fv = f32.view(0, 0)
  const tasks: Record<string, () => void> = { float32: () => b.scoreKeys(q.ptr, qHeads, d, fv.kTable, 64, n, 0.125, out.ptr) }
  for (const [name, c] of Object.entries(packed)) {
    const s = c.segments(0, 0)[0]
    const bits = Number(name.slice(3))
    tasks[name] = () => b.scorePackedKeys!(q.ptr, qHeads, d, s.kTable, 64, n, bits, 0.125, out.ptr, scratch.ptr)
  }
  const t = await measure(tasks, 300, 5)
  const keysPerS = (name: string) => `${((n / t.ms[name]) * 1e3 / 1e6).toFixed(1)} M keys/s`
  const head = `score ${n} keys x ${d} ch, ${qHeads} query head${qHeads > 1 ? 's' : ''}`
  console.log(`${head}: float32 ${keysPerS('float32')}`)
  for (const [name, target] of [['int4', '>= 2x'], ['int2', '>= 3x'], ['int8', ''], ['int1', '']] as const) {
    console.log(`  ${name.padEnd(5)} ${keysPerS(name).padStart(16)}   ${(1 / t.ratio(name, 'float32')).toFixed(2)}x float32's keys/s ${target ? `(target ${target})` : ''}`)
  }
  for (const c of [f32, ...Object.values(packed)]) c.dispose()
  for (const x of [q, out, scratch]) x.free()
}

/** bytes per token per layer (keys and values of every KV head, metadata included) of a scheme at n tokens */
export function bytesPerToken(b: CreatedBackend, n: number, d: number, format: PageFormat | null, residual: number): number {
  const c = cacheOf(b, n, d, format, residual)
  const bytes = c.bytes().total / n
  c.dispose()
  return bytes
}

export async function run(): Promise<void> {
  const b = await createBackend('wasm')
  console.log(`kernels: wasm (${(b as { build?: string }).build ?? 'simd'} build)`)
  for (const [d, qHeads] of [[64, 3], [128, 1], [128, 4]] as const) await scoringSpeed(b, 32768, d, qHeads)
  console.log('\nbytes per token per layer and KV head (head_dim 64), from cache.bytes(); float16 = 256')
  for (const n of [4096, 32768]) {
    for (const [name, format, residual] of [['KIVI-4 (R=128)', 'int4', 128], ['KIVI-2 (R=128)', 'int2', 128], ['int4 pages alone', 'int4', 0], ['int2 pages alone', 'int2', 0]] as const) {
      const bpt = bytesPerToken(b, n, 64, format, residual)
      console.log(`  ${String(n).padStart(6)} tokens  ${name.padEnd(18)} ${bpt.toFixed(1).padStart(7)} B   ${(256 / bpt).toFixed(2)}x smaller than float16`)
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run()
