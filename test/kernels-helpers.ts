import v8 from 'node:v8'
import { expect } from 'vitest'
import type { F32Buf, Heap, I32Buf } from '../src/backend/heap.js'
import type { HeadView } from '../src/cache/types.js'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { Ops } from '../src/backend/ops.js'
import { floatToHalf, halfToFloat } from '../src/backend/half.js'

/** The plain-SIMD wasm backend and the reference twins on one arena, so both read the same buffers. */
export async function wasmAndReference(): Promise<{ wasm: CreatedBackend; ref: CreatedBackend; W: Ops; R: Ops; heap: Heap }> {
  const wasm = await createBackend('wasm', { relaxed: false })
  const ref = await createBackend('reference', { heap: wasm.heap })
  return { wasm, ref, W: new Ops(wasm), R: new Ops(ref), heap: wasm.heap }
}

/** The plain-SIMD and the relaxed-SIMD wasm builds, each on its own arena, for tests that run both. */
export async function simdAndRelaxed(): Promise<{ name: 'simd' | 'relaxed'; b: CreatedBackend }[]> {
  // Node 20 keeps relaxed SIMD behind a flag; wasm features are read at compile time, so set it here
  v8.setFlagsFromString('--experimental-wasm-relaxed-simd')
  const simd = await createBackend('wasm', { relaxed: false })
  const relaxed = await createBackend('wasm', { relaxed: true })
  expect(relaxed.build).toBe('relaxed')
  return [
    { name: 'simd', b: simd },
    { name: 'relaxed', b: relaxed },
  ]
}

export { normals, rng } from './seeded.js'

/** A paged [n][d] stream: pages allocated separately and listed in a table, as the cache stores them. */
export interface PagedStream {
  table: I32Buf
  pages: F32Buf[]
  free(): void
}

export function pagedStream(heap: Heap, rows: Float32Array, n: number, d: number, pageTokens: number): PagedStream {
  const count = Math.max(1, Math.ceil(n / pageTokens))
  const pages: F32Buf[] = []
  for (let p = 0; p < count; p++) {
    const buf = heap.allocF32(pageTokens * d)
    buf.view.fill(Number.NaN) // rows past n must never be read
    const take = Math.min(pageTokens, n - p * pageTokens)
    if (take > 0) buf.view.set(rows.subarray(p * pageTokens * d, (p * pageTokens + take) * d))
    pages.push(buf)
  }
  const table = heap.i32From(pages.map((b) => b.ptr))
  return {
    table,
    pages,
    free() {
      table.free()
      for (const b of pages) b.free()
    },
  }
}

export function pagedView(k: PagedStream, v: PagedStream, n: number, d: number, pageTokens: number): HeadView {
  return { kTable: k.table.ptr, vTable: v.table.ptr, pageTokens, n, d }
}

/** Element-wise closeness fit for float32 kernels against a float64-ish reference. */
export function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, rtol = 1e-4, atol = 1e-5, what = ''): void {
  expect(got.length, `${what} length`).toBe(want.length)
  for (let i = 0; i < want.length; i++) {
    const g = got[i]
    const w = want[i]
    if (Number.isNaN(w) || Number.isNaN(g)) {
      expect(Number.isNaN(g), `${what}[${i}]: got ${g}, want ${w}`).toBe(Number.isNaN(w))
      continue
    }
    if (g === w) continue
    if (!(Math.abs(g - w) <= atol + rtol * Math.abs(w))) {
      throw new Error(`${what}[${i}]: got ${g}, want ${w} (|diff| ${Math.abs(g - w)})`)
    }
  }
}

/** a paged stream of float16 rows (the halves of `rows`), and the same rows widened into float32 pages */
export function halfStreams(heap: Heap, rows: Float32Array, n: number, d: number, pageTokens: number): { half: number; wide: number; free(): void } {
  const count = Math.max(1, Math.ceil(n / pageTokens))
  const half: number[] = []
  const wide: number[] = []
  for (let p = 0; p < count; p++) {
    const h = heap.alloc(pageTokens * d * 2 + 16, 64)
    const w = heap.alloc(pageTokens * d * 4 + 16, 64)
    heap.U16.fill(0x7e00, h >> 1, (h >> 1) + pageTokens * d) // rows past n must never be read
    heap.F32.fill(NaN, w >> 2, (w >> 2) + pageTokens * d)
    const take = Math.max(0, Math.min(pageTokens, n - p * pageTokens))
    for (let i = 0; i < take * d; i++) {
      const b = floatToHalf(rows[p * pageTokens * d + i])
      heap.U16[(h >> 1) + i] = b
      heap.F32[(w >> 2) + i] = halfToFloat(b)
    }
    half.push(h)
    wide.push(w)
  }
  const ht = heap.i32From(half)
  const wt = heap.i32From(wide)
  return {
    half: ht.ptr,
    wide: wt.ptr,
    free() {
      ht.free()
      wt.free()
      for (const p of [...half, ...wide]) heap.release(p)
    },
  }
}
