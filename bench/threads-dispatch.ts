// What one parallel region costs the worker pool, apart from the work: an empty region (every thread
// runs one empty task) on 1..N threads, back to back (workers spinning) and after an idle gap (workers
// asleep in Atomics.wait, so the region pays their wake-up); then a decode step's matmul (1 token,
// 384 -> 1024, the fixture's gate projection) on one thread and split over the pool.
//   node dist/bench/threads-dispatch.js [--threads 1,2,4,8,16] [--regions 20000] [--json FILE]
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { loadWasm } from '../src/backend/wasm/load.js'
import { ThreadPool } from '../src/backend/threads/pool.js'
import { JobKind, SPIN_MS } from '../src/backend/threads/protocol.js'
import { threadedModelKernels } from '../src/backend/threads/kernels.js'
import { wasmModelKernels } from '../src/backend/wasm/model-kernels.js'
import { nodeWorkerSpawner } from '../src/node/threads.js'

interface Row {
  threads: number
  /** µs per empty region, back to back */
  hotUs: number
  /** µs per empty region after 20 ms idle (workers asleep) */
  coldUs: number
  /** µs per decode-size matmul on one thread, and through the pool */
  matmulOneUs: number
  matmulPoolUs: number
  /** whether every worker slept after the idle gap (an idle pool burns no CPU) */
  idleAsleep: boolean
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function perCall(n: number, f: () => void): number {
  for (let i = 0; i < Math.min(n, 1000); i++) f() // warm-up: the optimising tier, workers spinning
  const t0 = performance.now()
  for (let i = 0; i < n; i++) f()
  return ((performance.now() - t0) * 1000) / n
}

export async function main(argv = process.argv.slice(2)): Promise<Row[]> {
  const { values: v } = parseArgs({ args: argv, options: { threads: { type: 'string' }, regions: { type: 'string' }, json: { type: 'string' } } })
  const threads = (v.threads ?? '1,2').split(',').map(Number)
  const regions = Number(v.regions ?? 20000)
  for (const t of threads) if (!(Number.isInteger(t) && t >= 1 && t <= 256)) throw new RangeError(`--threads: ${t} is not an integer in [1, 256]`)
  if (!(Number.isInteger(regions) && regions >= 1)) throw new RangeError(`--regions: ${v.regions} is not a positive integer`)
  const rows: Row[] = []
  for (const t of threads) {
    const { exports, heap, module } = await loadWasm({ relaxed: false }, true)
    const e = exports as unknown as WebAssembly.Exports
    const pool = await ThreadPool.start(module, heap, t - 1, nodeWorkerSpawner, e)
    try {
      const empty = Array.from({ length: t }, () => [{ kind: JobKind.None, args: [] }])
      const hotUs = perCall(regions, () => pool.run(empty))
      // cold: wait until the workers slept (after SPIN_MS), then one region wakes them
      let coldSum = 0
      let idleAsleep = true
      const cold = 20
      for (let i = 0; i < cold; i++) {
        await sleep(20)
        idleAsleep &&= pool.workerStates().every((s) => s.sleeping)
        const t0 = performance.now()
        pool.run(empty)
        coldSum += performance.now() - t0
      }
      const base = wasmModelKernels(e, heap)
      const k = threadedModelKernels({ ...base, heap }, pool)
      const x = heap.alloc(384 * 4, 64), w = heap.alloc(1024 * 384 * 4, 64), y = heap.alloc(1024 * 4, 64)
      heap.F32.fill(0.01, w >> 2, (w >> 2) + 1024 * 384)
      const n = Math.max(100, regions >> 4)
      const matmulOneUs = perCall(n, () => base.matmul(x, w, 0, y, 1, 384, 1024))
      const matmulPoolUs = perCall(n, () => k.matmul(x, w, 0, y, 1, 384, 1024))
      for (const p of [x, w, y]) heap.release(p)
      const row = { threads: t, hotUs, coldUs: (coldSum * 1000) / cold, matmulOneUs, matmulPoolUs, idleAsleep }
      rows.push(row)
      console.log(
        `${String(t).padStart(2)} threads  empty region ${hotUs.toFixed(2).padStart(7)} µs hot, ${row.coldUs.toFixed(1).padStart(7)} µs after idle` +
          `  matmul 1x384->1024: one thread ${matmulOneUs.toFixed(1)} µs, pool ${matmulPoolUs.toFixed(1)} µs  idle workers asleep: ${idleAsleep}`,
      )
    } finally {
      pool.close()
    }
  }
  console.log(`(workers poll for ${SPIN_MS} ms before sleeping)`)
  if (v.json) writeFileSync(v.json, JSON.stringify(rows, null, 1) + '\n')
  return rows
}

if (import.meta.url === `file://${process.argv[1]}`) await main()
