// Run by test/runtimes-threads.test.ts: a backend with 2 kernel threads that is used and never closed.
// The process must still exit when its script ends (the pool's workers are unref'd once ready).
import { createBackend } from '../dist/src/index.js'

const runtime = typeof globalThis.Deno !== 'undefined' ? 'deno' : typeof globalThis.Bun !== 'undefined' ? 'bun' : 'node'
const spawnWorker = runtime === 'node' ? (await import('../dist/src/node/index.js')).nodeWorkerSpawner : undefined
const b = await createBackend('wasm', { threads: 2, spawnWorker })
const h = b.heap
const x = h.f32From(Float32Array.from({ length: 64 * 96 }, (_, i) => (i % 7) - 3))
const w = h.f32From(Float32Array.from({ length: 96 * 96 }, (_, i) => (i % 5) - 2))
const y = h.allocF32(64 * 96)
b.matmul(x.ptr, w.ptr, 0, y.ptr, 64, 96, 96)
console.log(JSON.stringify({ runtime, threads: b.threads, y0: y.view[0] }))
