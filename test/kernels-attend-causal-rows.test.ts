import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { attendScratchFloats } from '../src/backend/model-kernels.js'
import { nodeWorkerSpawner } from '../src/node/threads.js'
import { headPages, sameBits, values } from './threads-helpers.js'

// attendCausalRows: T tokens at scattered positions in one call, token t over the first ends[t] keys
// (CacheBlend's recompute of chosen rows). Each row must be bit for bit what attendCausal gives it alone
// (so recomputing every row in order stays a prefill), the plain TypeScript twin must agree, and the
// threaded split must equal one thread.
let one: CreatedBackend
let ref: CreatedBackend
let pool: CreatedBackend
beforeAll(async () => {
  one = await createBackend('wasm', { relaxed: false })
  ref = await createBackend('reference', { heap: one.heap })
  pool = await createBackend('wasm', { relaxed: false, threads: 3, spawnWorker: nodeWorkerSpawner })
})
afterAll(() => pool.close?.())

const hq = 3
// headPages' rows are 64 floats
const kd = 64
const vd = 64
const pt = 16
const n = 700
// scattered (gaps of 1..100 keys), a run of consecutive rows, a row at the first key, the last key
const ends = [1, 2, 3, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 140, 141, 333, 334, 512, 600, 650, 699, 700]

/** q [T][hq][kd] and paged K/V (headPages) in b's arena; run(q, kTable, vTable, out, lse, scratch) fills out and lse; returns both */
function withInputs(b: CreatedBackend, T: number, run: (q: number, kt: number, vt: number, out: number, lse: number, scratch: number) => void): Float32Array {
  const h = b.heap
  const { tables: [kv], bufs } = headPages(b, 1, n, pt)
  const q = h.f32From(values(T * hq * kd, 7, 2))
  const out = h.allocF32(T * hq * vd), lse = h.allocF32(T * hq), scratch = h.allocF32(attendScratchFloats(vd, T * hq))
  run(q.ptr, kv.kTable, kv.vTable, out.ptr, lse.ptr, scratch.ptr)
  const res = new Float32Array(T * hq * (vd + 1))
  res.set(out.view)
  res.set(lse.view, T * hq * vd)
  for (const x of [...bufs, q, out, lse, scratch]) x.free()
  return res
}

function rows(b: CreatedBackend): Float32Array {
  const T = ends.length
  return withInputs(b, T, (q, kt, vt, out, lse, scratch) => {
    const e = b.heap.i32From(ends)
    b.attendCausalRows(q, hq * kd, hq, T, kd, vd, kt, vt, pt, e.ptr, 0.125, out, hq * vd, lse, scratch)
    e.free()
  })
}

describe('attendCausalRows', () => {
  it('gives each row what attendCausal gives it seeing as many keys, bit for bit', () => {
    const T = ends.length
    const got = rows(one)
    const want = withInputs(one, T, (q, kt, vt, out, lse, scratch) => {
      for (let t = 0; t < T; t++) one.attendCausal(q + t * hq * kd * 4, hq * kd, hq, 1, kd, vd, kt, vt, pt, n, ends[t], 0.125, out + t * hq * vd * 4, hq * vd, lse + t * hq * 4, scratch)
    })
    expect(sameBits(got, want)).toBe(true)
  })

  it('matches the plain TypeScript twin to 1e-5', () => {
    const got = rows(one)
    const twin = rows(ref)
    expect(Math.max(...got.map((x, i) => Math.abs(x - twin[i])))).toBeLessThan(1e-5)
  })

  it('split across threads equals one thread bit for bit', () => {
    expect(sameBits(rows(pool), rows(one))).toBe(true)
  })
})
