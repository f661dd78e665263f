// Runs under Node, Bun and Deno (spawned by runtimes.test.ts): loads the built package from dist/, runs
// kernels on both wasm builds and compares them with the TypeScript reference on the same heap.
// Prints one JSON line.
import { createBackend, Ops, contiguousView } from '../dist/src/kernels.js'
import { supportsRelaxedSimd } from '../dist/src/index.js'

const runtime = typeof Deno !== 'undefined' ? 'deno' : typeof Bun !== 'undefined' ? 'bun' : 'node'
const report = { runtime, relaxedSupported: supportsRelaxedSimd(), builds: {} }

for (const relaxed of [false, true]) {
  const wasm = await createBackend('wasm', { relaxed })
  const ref = await createBackend('reference', { heap: wasm.heap })
  const W = new Ops(wasm)
  const R = new Ops(ref)
  const heap = wasm.heap
  const n = 1003
  const d = 64
  const heads = 3
  let seed = 1
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1
  const keys = heap.f32From(Array.from({ length: n * d }, rand))
  const values = heap.f32From(Array.from({ length: n * d }, rand))
  const view = contiguousView(keys, n, d, values)
  const q = heap.f32From(Array.from({ length: heads * d }, rand))
  const s = [heap.allocF32(heads * n), heap.allocF32(heads * n)]
  W.scoreKeys(q, heads, view, 0.125, s[0])
  R.scoreKeys(q, heads, view, 0.125, s[1])
  let scoreErr = 0
  for (let i = 0; i < heads * n; i++) scoreErr = Math.max(scoreErr, Math.abs(s[0].view[i] - s[1].view[i]))
  const top = [heap.allocI32(40), heap.allocI32(40)]
  const scratch = heap.allocI32(n)
  W.topK(s[0], n, 40, top[0], scratch)
  R.topK(s[0], n, 40, top[1], scratch)
  const topEqual = top[0].view.every((v, i) => v === top[1].view[i])
  const o = [heap.allocF32(heads * d), heap.allocF32(heads * d)]
  const l = [heap.allocF32(heads), heap.allocF32(heads)]
  W.attend(q, heads, view, null, 0, 0.125, o[0], l[0])
  R.attend(q, heads, view, null, 0, 0.125, o[1], l[1])
  let attendErr = 0
  for (let i = 0; i < heads * d; i++) attendErr = Math.max(attendErr, Math.abs(o[0].view[i] - o[1].view[i]))
  report.builds[relaxed ? 'relaxedRequested' : 'plainRequested'] = { build: wasm.build, scoreErr, attendErr, topEqual }
}
console.log(JSON.stringify(report))
