// Float16 KV against float32 KV, measured in the same run (issue 10's target: key scoring over float16
// pages at least 1.6x the keys per second of float32 pages at 32k tokens):
// - key scoring (Ops.scoreKeys, the policies' scorer) over one Llama-3-8B layer's cache: 8 KV heads x 128,
//   a GQA group of 4 query heads per KV head, pages of 64 tokens, read in place from the store's pages;
// - decode attention over the same layer (attendCache, T = 1: the model's decode step for one layer);
// - memory.copy of the float32 keys' bytes, the yardstick: scoring streams its keys once.
// Rounds alternate float32 and float16 so load on a shared machine hits both alike; best and median.
//   npm run build && node dist/bench/kv-float16.js [tokens] [--threads N]
// With --threads, each scoring call's keys split across the worker pool (src/backend/threads/scoring.ts)
// and decode attention by heads or keys (decode-split.ts); memory.copy stays one thread.
import { parseArgs } from 'node:util'
import { createBackend } from '../src/backend/index.js'
import { nodeWorkerSpawner } from '../src/node/threads.js'
import { Ops } from '../src/backend/ops.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { attendCache } from '../src/cache/attention.js'
import type { KVDtype } from '../src/cache/formats.js'
import { randn } from './random.js'

const KV_HEADS = 8
const HEAD_DIM = 128
const GROUP = 4

const line = (what: string, value: string, extra = ''): void => console.log(`${what.padEnd(58)} ${value.padStart(16)}   ${extra}`)
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

export async function run(tokens = 32768, rounds = 9, threads = 1): Promise<void> {
  const backend = await createBackend('wasm', { threads, spawnWorker: nodeWorkerSpawner })
  const ops = new Ops(backend)
  const heap = backend.heap
  const caches = new Map<KVDtype, PagedKVCache>()
  for (const kvDtype of ['float32', 'float16'] as const) {
    const c = new PagedKVCache(backend, { layers: 1, kvHeads: KV_HEADS, headDim: HEAD_DIM, pageTokens: 64, kvDtype })
    for (let t0 = 0; t0 < tokens; t0 += 2048) {
      const T = Math.min(2048, tokens - t0)
      const k = randn(T * KV_HEADS * HEAD_DIM, t0 + 1)
      c.append(0, k, randn(k.length, t0 + 2), Int32Array.from({ length: T }, (_, i) => t0 + i))
    }
    caches.set(kvDtype, c)
  }
  const q = heap.f32From(randn(KV_HEADS * GROUP * HEAD_DIM, 9))
  const qHead = Array.from({ length: KV_HEADS }, (_, h) => heap.f32From(randn(GROUP * HEAD_DIM, 10 + h)))
  const scores = heap.allocF32(GROUP * tokens)
  const out = heap.allocF32(KV_HEADS * GROUP * HEAD_DIM)
  const keyBytes = tokens * KV_HEADS * HEAD_DIM * 4
  const src = heap.alloc(keyBytes, 64)
  const dst = heap.alloc(keyBytes, 64)

  const score = (c: PagedKVCache) => {
    const t0 = performance.now()
    for (let h = 0; h < KV_HEADS; h++) ops.scoreKeys(qHead[h], GROUP, c.view(0, h), 1 / Math.sqrt(HEAD_DIM), scores)
    return performance.now() - t0
  }
  const decode = (c: PagedKVCache) => {
    const t0 = performance.now()
    attendCache(backend, c, { layer: 0, q: q.ptr, T: 1, qHeads: KV_HEADS * GROUP, out: out.ptr, scale: 1 / Math.sqrt(HEAD_DIM) })
    return performance.now() - t0
  }
  const copy = () => {
    const t0 = performance.now()
    backend.copyBytes(dst, src, keyBytes)
    return performance.now() - t0
  }
  const f32 = caches.get('float32')!
  const f16 = caches.get('float16')!
  const t: Record<string, number[]> = { s32: [], s16: [], d32: [], d16: [], copy: [] }
  score(f32), score(f16), decode(f32), decode(f16), copy()
  for (let r = 0; r < rounds; r++) {
    t.s32.push(score(f32))
    t.s16.push(score(f16))
    t.d32.push(decode(f32))
    t.d16.push(decode(f16))
    t.copy.push(copy())
  }
  const keys = tokens * KV_HEADS
  const kps = (ms: number) => `${((keys / ms) * 1e3 / 1e6).toFixed(1)} M keys/s`
  const gbs = (bytes: number, ms: number) => `${(bytes / ms / 1e6).toFixed(1)} GB/s`
  console.log(`\nfloat16 KV vs float32 KV: ${tokens} tokens x ${KV_HEADS} KV heads x ${HEAD_DIM}, GQA group ${GROUP}, build ${backend.build}, ${backend.threads ?? 1} thread(s), ${rounds} rounds (best, median)`)
  console.log(`  bytes: float32 ${(f32.bytes().total / 2 ** 20).toFixed(0)} MiB, float16 ${(f16.bytes().total / 2 ** 20).toFixed(0)} MiB (${(f16.bytes().total / f32.bytes().total).toFixed(3)}x)`)
  const best = (k: string) => Math.min(...t[k])
  line('key scoring, float32 pages', kps(best('s32')), `median ${kps(median(t.s32))}; keys read at ${gbs(keyBytes, best('s32'))}`)
  line('key scoring, float16 pages', kps(best('s16')), `median ${kps(median(t.s16))}; keys read at ${gbs(keyBytes / 2, best('s16'))}`)
  line('  float16 / float32 keys per second (target >= 1.6)', `${(best('s32') / best('s16')).toFixed(2)}x`, `median ${(median(t.s32) / median(t.s16)).toFixed(2)}x; per round: ${t.s32.map((x, i) => (x / t.s16[i]).toFixed(2)).join(' ')}`)
  line('memory.copy of the float32 keys (yardstick)', gbs(keyBytes, best('copy')), `(bytes read; the copy also writes as many)`)
  line('decode attention, one layer, float32 pages', `${best('d32').toFixed(2)} ms`, `median ${median(t.d32).toFixed(2)} ms`)
  line('decode attention, one layer, float16 pages', `${best('d16').toFixed(2)} ms`, `median ${median(t.d16).toFixed(2)} ms`)
  line('  float16 / float32 decode speed', `${(best('d32') / best('d16')).toFixed(2)}x`, `median ${(median(t.d32) / median(t.d16)).toFixed(2)}x`)
  for (const b of [q, scores, out, ...qHead]) b.free()
  heap.release(src)
  heap.release(dst)
  for (const c of caches.values()) c.dispose()
  backend.close?.()
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values: v, positionals } = parseArgs({ options: { threads: { type: 'string' } }, allowPositionals: true })
  const threads = Number(v.threads ?? 1)
  if (!(Number.isInteger(threads) && threads >= 1)) throw new RangeError(`--threads must be a positive integer, got ${v.threads}`)
  if (positionals.length > 1) throw new RangeError(`one token count, got ${positionals.join(' ')}`)
  const tokens = Number(positionals[0] ?? 32768)
  if (!(Number.isInteger(tokens) && tokens >= 64)) throw new RangeError(`tokens must be an integer >= 64, got ${positionals[0]}`)
  await run(tokens, 9, threads)
}
