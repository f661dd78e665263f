// Decode attention alone through the threaded backend: one attendCausalBatch call (one call per KV head,
// T = 1) over n paged keys, the region the split by keys (src/backend/threads/decode-split.ts) changes,
// without the rest of a decode step around it.
//   node dist/bench/threads-attention.js [--lengths 1024,4096,8000] [--threads 1,2] [--shape 2x3] [--calls 200] [--rounds 3] [--baseline DIR]
// --shape KVxQ: KV heads x query heads per KV head (the fixture: 2x3), head dim 64, pages of 64 keys.
// --baseline DIR: a built checkout (DIR/dist/src/backend/index.js): its createBackend (kernels, pool,
// wasm) at the same thread count, alternately with this build, round by round. Prints per row the µs
// a call (best of rounds, each the mean of --calls calls) and, for this build, how it split.
import { pathToFileURL } from 'node:url'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { partsFor } from '../src/backend/threads/kernels.js'
import { decodePlan } from '../src/backend/threads/decode-split.js'
import { nodeWorkerSpawner } from '../src/node/threads.js'

const D = 64
const PAGE = 64

type Create = typeof createBackend

/** n keys and values per KV head in pages, the queries and outputs: the batch's calls, and a free function */
function setup(b: CreatedBackend, kv: number, group: number, n: number) {
  const h = b.heap
  const ptrs: number[] = []
  const alloc = (floats: number) => {
    const p = h.alloc(floats * 4, 64)
    ptrs.push(p)
    h.F32.fill(0.01 * (ptrs.length % 7), p >> 2, (p >> 2) + floats)
    return p
  }
  const pages = Math.ceil(n / PAGE)
  const qStride = kv * group * D
  const q = alloc(qStride), out = alloc(qStride), lse = alloc(kv * group), scratch = alloc(256 + Math.ceil(group / 4) * 4 * (D + 2))
  const calls = Array.from({ length: kv }, (_, g) => {
    const kTable = alloc(pages), vTable = alloc(pages)
    for (let p = 0; p < pages; p++) {
      // allocate first: an alloc may grow the memory, and a view taken before it is stale
      const k = alloc(PAGE * D), v = alloc(PAGE * D)
      h.I32[(kTable >> 2) + p] = k
      h.I32[(vTable >> 2) + p] = v
    }
    const o = g * group * D * 4
    return { q: q + o, qStride, hq: group, T: 1, kd: D, vd: D, kTable, vTable, pageTokens: PAGE, n, visible0: n, scale: 0.125, out: out + o, outStride: qStride, lse: lse + g * group * 4, scratch }
  })
  return { calls, free: () => ptrs.forEach((p) => h.release(p)) }
}

/** mean µs of `count` batches */
function time(b: CreatedBackend, calls: ReturnType<typeof setup>['calls'], count: number): number {
  const one = () => (b.attendCausalBatch ? b.attendCausalBatch(calls) : calls.forEach((c) => b.attendCausal(c.q, c.qStride, c.hq, c.T, c.kd, c.vd, c.kTable, c.vTable, c.pageTokens, c.n, c.visible0, c.scale, c.out, c.outStride, c.lse, c.scratch)))
  for (let i = 0; i < 5; i++) one()
  const t0 = performance.now()
  for (let i = 0; i < count; i++) one()
  return ((performance.now() - t0) * 1000) / count
}

export async function main(argv = process.argv.slice(2)): Promise<void> {
  const { values: v } = parseArgs({ args: argv, options: { lengths: { type: 'string' }, threads: { type: 'string' }, shape: { type: 'string' }, calls: { type: 'string' }, rounds: { type: 'string' }, baseline: { type: 'string' } } })
  const lengths = (v.lengths ?? '1024,4096,8000').split(',').map(Number)
  const threads = (v.threads ?? '1,2').split(',').map(Number)
  const [kv, group] = (v.shape ?? '2x3').split('x').map(Number)
  const count = Number(v.calls ?? 200)
  const rounds = Number(v.rounds ?? 3)
  if (!(Number.isInteger(kv) && kv >= 1 && Number.isInteger(group) && group >= 1)) throw new Error(`--shape: expected KVxQ such as 2x3, got ${v.shape}`)
  const base = v.baseline ? ((await import(pathToFileURL(resolve(v.baseline, 'dist/src/backend/index.js')).href)) as { createBackend: Create }).createBackend : undefined
  for (const t of threads) {
    const engines: [string, CreatedBackend][] = []
    if (base) engines.push(['baseline', await base('wasm', { threads: t, spawnWorker: nodeWorkerSpawner, threadsOptional: true })])
    engines.push(['kvkit', await createBackend('wasm', { threads: t, spawnWorker: nodeWorkerSpawner, threadsOptional: true })])
    try {
      for (const n of lengths) {
        const sets = engines.map(([, b]) => setup(b, kv, group, n))
        const best = engines.map(() => Infinity)
        for (let r = 0; r < rounds; r++) engines.forEach(([, b], i) => (best[i] = Math.min(best[i], time(b, sets[i].calls, count))))
        const parts = partsFor(kv * group * n * 2 * D, t)
        const by = parts < 2 ? 'one thread' : `by ${decodePlan(Array.from({ length: kv }, () => ({ hq: group, keys: n, kd: D, vd: D, keyAlign: PAGE })), parts).by}`
        engines.forEach(([name, b], i) => console.log(`${name.padEnd(9)} ${String(b.threads).padStart(2)} thr  ${kv}x${group}  ${String(n).padStart(6)} keys  ${best[i].toFixed(1).padStart(8)} us/call${name === 'kvkit' ? `  (${by})` : ''}`))
        if (base) console.log(`  this build / baseline: x${(best[0] / best[1]).toFixed(2)}`)
        sets.forEach((s) => s.free())
      }
    } finally {
      engines.forEach(([, b]) => b.close?.())
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main()
