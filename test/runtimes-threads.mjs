// Run by test/runtimes-threads.test.ts under Node, Bun and Deno: the built package's kernel threads (the
// global Worker in Bun and Deno, Node's worker threads through kvkit/node) against one thread, both wasm
// builds. Prints one JSON line: per build, the threads that ran and whether every output bit matched.
import { createBackend } from '../dist/src/index.js'

const runtime = typeof globalThis.Deno !== 'undefined' ? 'deno' : typeof globalThis.Bun !== 'undefined' ? 'bun' : 'node'
const spawnWorker = runtime === 'node' ? (await import('../dist/src/node/index.js')).nodeWorkerSpawner : undefined

function values(n, seed, scale = 1) {
  let s = seed >>> 0
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), ((s / 2 ** 32) * 2 - 1) * scale))
}

/** a prefill-chunk matmul and causal attention over 640 paged keys; outputs concatenated */
function work(b) {
  const h = b.heap
  const T = 64, inDim = 384, outDim = 1030, hq = 3, d = 64, n = 640, pt = 64
  const x = h.f32From(values(T * inDim, 1)), w = h.f32From(values(outDim * inDim, 2, 0.1)), y = h.allocF32(T * outDim)
  b.matmul(x.ptr, w.ptr, 0, y.ptr, T, inDim, outDim)
  const kt = h.allocI32(n / pt), vt = h.allocI32(n / pt)
  for (let p = 0; p < n / pt; p++) {
    kt.view[p] = h.f32From(values(pt * d, 10 + p)).ptr
    vt.view[p] = h.f32From(values(pt * d, 100 + p)).ptr
  }
  const q = h.f32From(values(T * hq * d, 7, 2)), out = h.allocF32(T * hq * d), lse = h.allocF32(T * hq), scratch = h.allocF32(256 + T * hq * (d + 2))
  b.attendCausal(q.ptr, hq * d, hq, T, d, d, kt.ptr, vt.ptr, pt, n, n - T + 1, 0.125, out.ptr, hq * d, lse.ptr, scratch.ptr)
  return [...y.view, ...out.view, ...lse.view]
}

const builds = {}
for (const relaxed of [false, true]) {
  const one = await createBackend('wasm', { relaxed })
  const two = await createBackend('wasm', { relaxed, threads: 2, spawnWorker })
  const a = new Uint32Array(Float32Array.from(work(one)).buffer), b = new Uint32Array(Float32Array.from(work(two)).buffer)
  builds[relaxed ? 'relaxedRequested' : 'plainRequested'] = { build: two.build, threads: two.threads, shared: two.heap.memory.buffer instanceof SharedArrayBuffer, identical: a.length === b.length && a.every((v, i) => v === b[i]) }
  two.close()
}
console.log(JSON.stringify({ runtime, builds }))
