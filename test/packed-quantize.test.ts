import { beforeAll, describe, expect, it } from 'vitest'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { nodeWorkerSpawner } from '../src/node/threads.js'
import type { Heap } from '../src/backend/heap.js'
import { referencePackKernels, type PackKernels } from '../src/backend/reference/pack-kernels.js'
import { packedLayout, type PageFormat } from '../src/cache/formats.js'
import { PACKABLE_MAX } from '../src/cache/half.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { normals, rng, simdAndRelaxed } from './kernels-helpers.js'

// The packing kernels (assembly/kernels/packed-quantize.ts: packKeys, packSignKeys, packValues) in both
// wasm builds against their TypeScript twins (src/backend/reference/pack-kernels.ts over
// src/cache/packing.ts): the same page bytes, codes, scales and mins, for every format, group size and
// partial group the store writes, on random rows and on the inputs where rounding could part them
// (constant groups, extremes, float16 subnormal metadata, code ties, signed zeros).

const builds: { name: 'simd' | 'relaxed'; b: CreatedBackend }[] = []
beforeAll(async () => {
  builds.push(...(await simdAndRelaxed()))
})

const PT = 128
type Call = (k: PackKernels, x: number, n: number, table: number, row0: number) => void

/**
 * Packs rows x [n][width] at slot row0 through `call`, once with the backend's kernel and once with the
 * twin, each into its own zeroed pages (pageBytes each); returns both pages' bytes.
 */
function both(b: CreatedBackend, x: Float32Array, n: number, row0: number, pageBytes: number, call: Call): { got: Uint8Array; want: Uint8Array } {
  const heap: Heap = b.heap
  const pages = Math.ceil((row0 + n) / PT)
  const xp = heap.alloc(Math.max(1, x.length) * 4)
  heap.F32.set(x, xp >> 2)
  const run = (k: PackKernels): Uint8Array => {
    const table = heap.alloc(pages * 4)
    const ptrs = Array.from({ length: pages }, () => heap.alloc(pageBytes))
    for (const p of ptrs) heap.U8.fill(0, p, p + pageBytes)
    heap.I32.set(ptrs, table >> 2)
    call(k, xp, n, table, row0)
    const out = new Uint8Array(pages * pageBytes)
    ptrs.forEach((p, i) => out.set(heap.U8.subarray(p, p + pageBytes), i * pageBytes))
    for (const p of [...ptrs, table]) heap.release(p)
    return out
  }
  const got = run(b as unknown as PackKernels)
  const want = run(referencePackKernels(heap))
  heap.release(xp)
  return { got, want }
}

/** the index of the first differing byte (-1: none), so a failure says where */
function firstDiff(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i
  return -1
}

function expectSame(b: CreatedBackend, x: Float32Array, n: number, row0: number, pageBytes: number, call: Call): void {
  const { got, want } = both(b, x, n, row0, pageBytes, call)
  expect(firstDiff(got, want)).toBe(-1)
  // the comparison means something only when the twin wrote the pages (all-zero rows pack as zero
  // bytes in the integer formats)
  if (x.some((v) => v !== 0)) expect(want.some((v) => v !== 0)).toBe(true)
}

/** inputs where rounding decides: each generator gives n * width floats */
const INPUTS: Record<string, (n: number, seed: number) => Float32Array> = {
  normal: (n, seed) => normals(rng(seed), n),
  // a per-channel offset and spread, as real keys have (outlier channels: KIVI section 2)
  'outlier channels': (n, seed) => {
    const r = rng(seed)
    return Float32Array.from(normals(r, n), (v, i) => v * (1 + (i % 7) * 3) + ((i % 5) - 2) * 10)
  },
  constant: (n, seed) => new Float32Array(n).fill(((seed % 5) - 2.5) * 0.37),
  zeros: (n) => new Float32Array(n),
  'signed zeros': (n) => Float32Array.from({ length: n }, (_, i) => (i % 3 ? -0 : 0)),
  'large magnitudes': (n, seed) => Float32Array.from(normals(rng(seed), n), (v) => Math.max(-PACKABLE_MAX, Math.min(PACKABLE_MAX, v * 20000))),
  'packable extremes': (n) => Float32Array.from({ length: n }, (_, i) => (i % 2 ? PACKABLE_MAX : -PACKABLE_MAX) * (i % 3 ? 1 : 0.5)),
  // float16 subnormal scales and mins (below 2^-14), float32 subnormals among them
  'float16 subnormal metadata': (n, seed) => Float32Array.from(normals(rng(seed), n), (v, i) => v * (i % 4 === 0 ? 1e-40 : 2 ** -18)),
  tiny: (n, seed) => Float32Array.from(normals(rng(seed), n), (v) => v * 1e-7),
  // large and tiny in one group: the float64 subtraction x - min is inexact there
  'mixed scales': (n, seed) => Float32Array.from(normals(rng(seed), n), (v, i) => (i % 3 === 0 ? v * 3000 : v * 1e-30)),
  // small integers and halves: scales come out exact and codes land on .5 ties (Math.round goes up)
  'code ties': (n, seed) => {
    const r = rng(seed)
    return Float32Array.from({ length: n }, () => Math.floor(r() * 31) / 2 - 7.5)
  },
  // values on float16 rounding ties (odd multiples of 2^-11 in [1, 2))
  'half ties': (n, seed) => {
    const r = rng(seed)
    return Float32Array.from({ length: n }, () => (r() < 0.5 ? -1 : 1) * (1 + (2 * Math.floor(r() * 1024) + 1) * 2 ** -11))
  },
}

const INT_BITS: Record<string, number> = { int8: 8, int4: 4, int2: 2, int1: 1 }

describe.each(['simd', 'relaxed'] as const)('packing kernels (%s build) write the twin bytes', (which) => {
  const backend = () => builds.find((x) => x.name === which)!.b

  describe.each(Object.keys(INPUTS))('%s rows', (input) => {
    it.each(['int8', 'int4', 'int2', 'int1'] as const)('%s keys: groups of 32, 64, 128; whole, partial and single-row token groups; later rows', (format) => {
      const d = 64
      for (const group of [32, 64, 128]) {
        const lay = packedLayout(format, 'key', PT, d, group)
        for (const [n, row0] of [[group, 0], [2 * PT + 5, 0], [1, 0], [group + 17, group], [PT + 3 * group - 1, PT]]) {
          const x = INPUTS[input](n * d, n + group)
          expectSame(backend(), x, n, row0, lay.bytes, (k, xp, nn, table, r0) => k.packKeys(xp, nn, d, table, PT, r0, INT_BITS[format], group))
        }
      }
    })

    it.each([0, 16, 40, 64])('int2+sign keys with %i int2 channels: groups of 32, 64, 128; partial groups', (hi) => {
      const d = 64
      for (const group of [32, 64, 128]) {
        const lay = packedLayout('int2+sign', 'key', PT, d, group, hi)
        for (const [n, row0] of [[group, 0], [2 * PT + 9, 0], [3, 0], [group - 1, PT]]) {
          const x = INPUTS[input](n * d, 3 * n + hi)
          expectSame(backend(), x, n, row0, lay.bytes, (k, xp, nn, table, r0) => k.packSignKeys(xp, nn, d, table, PT, r0, hi, group))
        }
      }
    })

    it.each(['int8', 'int4', 'int2', 'int1', 'ternary'] as const)('%s values: channel groups of 32, 64, 128 over 64, 48 and 100 channels (partial last groups)', (format: PageFormat) => {
      for (const vd of [64, 48, 100]) {
        for (const vGroup of [32, 64, 128]) {
          const lay = packedLayout(format, 'value', PT, vd, vGroup)
          for (const [n, row0] of [[PT + 7, 0], [1, 5], [40, PT + 30]]) {
            const x = INPUTS[input](n * vd, n + vd + vGroup)
            expectSame(backend(), x, n, row0, lay.bytes, (k, xp, nn, table, r0) => k.packValues(xp, nn, vd, table, PT, r0, format === 'ternary' ? 0 : INT_BITS[format], vGroup))
          }
        }
      }
    })
  })

  it('firstUnpackable finds the first NaN, infinity or |x| > 32752 where the twin does, wherever it lies', () => {
    const b = backend()
    const twin = referencePackKernels(b.heap)
    const k = b as unknown as PackKernels
    const n = 37
    const x = b.heap.alloc(n * 4)
    const next = Math.fround(PACKABLE_MAX + 0.001) // the float32 after 32752
    for (const bad of [NaN, Infinity, -Infinity, next, -next, 40000, -1e30]) {
      for (const at of [0, 3, 4, 5, 17, 32, 36]) {
        b.heap.F32.set(normals(rng(at), n), x >> 2)
        b.heap.F32[(x >> 2) + 20] = PACKABLE_MAX // the largest that packs, before or after `at`
        b.heap.F32[(x >> 2) + at] = bad
        expect(k.firstUnpackable(x, n)).toBe(at)
        expect(twin.firstUnpackable(x, n)).toBe(at)
        // a shorter range that ends before it holds none
        expect(k.firstUnpackable(x, at)).toBe(at)
      }
    }
    b.heap.F32.set(normals(rng(9), n), x >> 2)
    b.heap.F32[(x >> 2) + 7] = -PACKABLE_MAX
    expect(k.firstUnpackable(x, n)).toBe(n)
    expect(twin.firstUnpackable(x, n)).toBe(n)
    b.heap.release(x)
  })

  it('the store refuses a row it cannot pack, naming the value, before writing anything', () => {
    for (const bad of [40000, NaN]) {
      const cache = new PagedKVCache(backend(), { layers: 1, kvHeads: 1, headDim: 64, pageTokens: 64 })
      const r = rng(4)
      const keys = normals(r, 40 * 64)
      const values = normals(r, 40 * 64)
      ;(Number.isNaN(bad) ? values : keys)[5 * 64 + 3] = bad
      cache.append(0, keys, values, Int32Array.from({ length: 40 }, (_, i) => i))
      const before = cache.segments(0, 0).map((g) => [g.format, g.n])
      const what = Number.isNaN(bad) ? 'values' : 'keys'
      expect(() => cache.apply({ heads: [], quantize: [{ layer: 0, head: 0, upto: 32, keys: 'int2', values: 'int2' }] })).toThrow(new RegExp(`appendPacked: ${what}: value ${bad} at \\[323\\] cannot be packed`))
      expect(cache.segments(0, 0).map((g) => [g.format, g.n])).toEqual(before)
      cache.dispose()
    }
  })

  it('a hand-computed int2 group: min rounded down, scale rounded up to float16, codes round half up', () => {
    // one key channel (d = 1) of 32 tokens: 0, 0.5, 1, 1.5, 3 then zeros. min 0, scale 3 / 3 = 1;
    // codes round(x): 0, 1 (0.5 goes up), 1, 2 (1.5 goes up), 3, then 0
    const x = new Float32Array(32)
    x.set([0, 0.5, 1, 1.5, 3])
    const lay = packedLayout('int2', 'key', PT, 1)
    const { got } = both(backend(), x, 32, 0, lay.bytes, (k, xp, n, table, r0) => k.packKeys(xp, n, 1, table, PT, r0, 2, 32))
    // chunk of 8 bytes: element e in byte e % 8, bits 2 * floor(e / 8)
    expect([...got.subarray(0, 8)]).toEqual([0, 1, 1, 2, 3, 0, 0, 0])
    // (scale, min) after the codes of the page's 4 token groups: float16 1.0 = 0x3c00, 0
    const meta = lay.metaOffset
    expect([...got.subarray(meta, meta + 4)]).toEqual([0x00, 0x3c, 0, 0])
  })
})

describe('packing kernels of the threads build (shared memory)', () => {
  it('write the twin bytes for keys, int2+sign keys and values', async () => {
    const b = await createBackend('wasm', { relaxed: false, threads: 2, spawnWorker: nodeWorkerSpawner })
    try {
      // the threads module runs on a shared memory
      expect(b.heap.memory.buffer instanceof SharedArrayBuffer).toBe(true)
      const d = 64
      const n = PT + 45
      const x = INPUTS['outlier channels'](n * d, 11)
      expectSame(b, x, n, 0, packedLayout('int2', 'key', PT, d).bytes, (k, xp, nn, table, r0) => k.packKeys(xp, nn, d, table, PT, r0, 2, 32))
      expectSame(b, x, n, 0, packedLayout('int2+sign', 'key', PT, d, 64, 24).bytes, (k, xp, nn, table, r0) => k.packSignKeys(xp, nn, d, table, PT, r0, 24, 64))
      expectSame(b, x, n, 0, packedLayout('int4', 'value', PT, d).bytes, (k, xp, nn, table, r0) => k.packValues(xp, nn, d, table, PT, r0, 4, 32))
    } finally {
      b.close?.()
    }
  })
})
