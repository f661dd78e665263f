// Decode attention over KIVI's packed pages on 1..N threads (attendPackedBatch), against float32 pages on
// the same threads: one Llama-3-8B layer (8 KV heads x 128, a GQA group of 4) at 32768 tokens, KIVI-2
// and KIVI-4 (keys per channel, values per token, all tokens packed but the last), through attendCache
// as the model's decode step calls it. Rounds alternate the formats; best and median of 9.
//   npm run build && node dist/bench/threads-packed.js [--tokens 32768] [--threads 1,8,16]
import { parseArgs } from 'node:util'
import { createBackend } from '../src/backend/index.js'
import { attendCache } from '../src/cache/attention.js'
import type { PageFormat } from '../src/cache/formats.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { nodeWorkerSpawner } from '../src/node/threads.js'
import { randn } from './random.js'

const KV_HEADS = 8
const HEAD_DIM = 128
const GROUP = 4
const ROUNDS = 9
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

export async function run(tokens: number, threads: number): Promise<void> {
  const backend = await createBackend('wasm', { threads, spawnWorker: nodeWorkerSpawner })
  const heap = backend.heap
  const formats: (PageFormat | 'float32')[] = ['float32', 'int4', 'int2']
  const caches = formats.map((format) => {
    const c = new PagedKVCache(backend, { layers: 1, kvHeads: KV_HEADS, headDim: HEAD_DIM })
    for (let t0 = 0; t0 < tokens; t0 += 2048) {
      const T = Math.min(2048, tokens - t0)
      const k = randn(T * KV_HEADS * HEAD_DIM, t0 + 1)
      c.append(0, k, randn(k.length, t0 + 2), Int32Array.from({ length: T }, (_, i) => t0 + i))
    }
    const upto = Math.floor((tokens - 1) / 32) * 32
    if (format !== 'float32') c.apply({ heads: [], quantize: Array.from({ length: KV_HEADS }, (_, head) => ({ layer: 0, head, upto, keys: format, values: format })) })
    return c
  })
  const q = heap.f32From(randn(KV_HEADS * GROUP * HEAD_DIM, 9))
  const out = heap.allocF32(KV_HEADS * GROUP * HEAD_DIM)
  const step = (c: PagedKVCache) => {
    const t0 = performance.now()
    attendCache(backend, c, { layer: 0, q: q.ptr, T: 1, qHeads: KV_HEADS * GROUP, out: out.ptr, scale: 1 / Math.sqrt(HEAD_DIM) })
    return performance.now() - t0
  }
  const t = caches.map(() => [] as number[])
  caches.forEach(step)
  for (let r = 0; r < ROUNDS; r++) caches.forEach((c, i) => t[i].push(step(c)))
  console.log(`decode attention, one layer, ${tokens} tokens x ${KV_HEADS} KV heads x ${HEAD_DIM}, group ${GROUP}, ${backend.threads ?? 1} thread(s), build ${backend.build}`)
  formats.forEach((f, i) => {
    const mib = caches[i].bytes().total / 2 ** 20
    console.log(`  ${f.padEnd(8)} ${mib.toFixed(0).padStart(5)} MiB   best ${Math.min(...t[i]).toFixed(2).padStart(7)} ms   median ${median(t[i]).toFixed(2).padStart(7)} ms   float32 / this ${(Math.min(...t[0]) / Math.min(...t[i])).toFixed(2)}x`)
  })
  for (const b of [q, out]) b.free()
  for (const c of caches) c.dispose()
  backend.close?.()
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values: v } = parseArgs({ options: { tokens: { type: 'string' }, threads: { type: 'string' } } })
  const tokens = Number(v.tokens ?? 32768)
  if (!(Number.isInteger(tokens) && tokens >= 64)) throw new RangeError(`--tokens must be an integer >= 64, got ${v.tokens}`)
  for (const t of (v.threads ?? '1,2').split(',').map(Number)) {
    if (!(Number.isInteger(t) && t >= 1)) throw new RangeError(`--threads: positive integers, got ${v.threads}`)
    await run(tokens, t)
  }
}
