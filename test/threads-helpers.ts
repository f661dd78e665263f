import type { CreatedBackend } from '../src/backend/index.js'

// Shared by the threaded-kernel tests (threads-identical, threads-split-keys): seeded inputs, bitwise
// comparison, paged K/V rows per KV head.

export function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length)
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length)
  return x.every((v, i) => v === y[i])
}

/** deterministic values in [-scale, scale) */
export function values(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return ((s / 2 ** 32) * 2 - 1) * scale
  })
}

/** per KV head g, n random key and value rows of 64 floats in pages of `pt` (seeded by g): the page tables, and every buffer to free */
export function headPages(b: CreatedBackend, heads: number, n: number, pt = 16) {
  const h = b.heap
  const pages = Math.ceil(n / pt)
  const bufs: { free(): void }[] = []
  const tables = Array.from({ length: heads }, (_, g) => {
    const kt = h.allocI32(pages), vt = h.allocI32(pages)
    bufs.push(kt, vt)
    for (let p = 0; p < pages; p++) {
      const k = h.f32From(values(pt * 64, 1000 * g + 10 + p)), v = h.f32From(values(pt * 64, 1000 * g + 500 + p))
      bufs.push(k, v)
      kt.view[p] = k.ptr
      vt.view[p] = v.ptr
    }
    return { kTable: kt.ptr, vTable: vt.ptr, pageTokens: pt }
  })
  return { tables, bufs }
}

/** the fixture prompt of n ids: BOS then a fixed stride through the vocabulary */
export const fixturePrompt = (n: number): number[] => [0, ...Array.from({ length: n - 1 }, (_, i) => 2 + ((i * 7919) % 4000))]
