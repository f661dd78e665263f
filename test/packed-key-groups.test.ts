import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CreatedBackend } from '../src/backend/index.js'
import { packedAttendScratch } from '../src/backend/backend.js'
import { referencePackedKernels } from '../src/backend/reference/packed-kernels.js'
import { Ops, ShapeError } from '../src/backend/ops.js'
import { CacheError } from '../src/cache/errors.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { valueGroupFor } from '../src/cache/formats.js'
import { normals, rng, simdAndRelaxed } from './kernels-helpers.js'
import { BITS, SCALE, packed, pageFor, scoreBoth, worstExcess } from './packed-int-cases.js'

// KIVI's key groups of 32, 64 and 128 tokens (its group_size) through every kernel that reads packed keys:
// the integer scoring kernel (its fold and query rounding once a group, tiles of 32), the exact fused
// kernel, packed attention (values in valueGroupFor(group, d) channels) and get-rows, in both wasm builds,
// each against the float64 dequantize-then-dot twin (src/backend/reference/packed-kernels.ts over
// src/cache/packing.ts's bytes).

const builds: { name: 'simd' | 'relaxed'; b: CreatedBackend }[] = []
beforeAll(async () => {
  builds.push(...(await simdAndRelaxed()))
})
afterAll(() => undefined)
const build = (name: string) => builds.find((x) => x.name === name)!.b

const GROUPS = [32, 64, 128] as const
const FORMATS = ['int4', 'int2', 'int1'] as const
// head sizes x query heads: a block of 3 or 4 heads, 1 head, d with a d % 16 remainder, the fixture's 64
const SHAPES = [[64, 3], [40, 4], [128, 2], [64, 1], [40, 5]] as const
// tokens: under one tile, one tile and one past, inside a group of 128, a partial page, several pages
const TOKENS = [1, 33, 100, 129, 200, 300] as const

const keysFor = (n: number, d: number, seed: number) => {
  const keys = normals(rng(seed), n * d)
  for (let i = 0; i < keys.length; i += 13) keys[i] *= 6 // outliers inside groups
  return keys
}

describe('integer and exact key scoring read key groups of 32, 64 and 128 tokens', () => {
  const grid = (['simd', 'relaxed'] as const).flatMap((bn) => GROUPS.flatMap((g) => FORMATS.flatMap((f) => TOKENS.flatMap((n) => SHAPES.map(([d, h]) => [bn, g, f, n, d, h] as const)))))
  it.each(grid)('%s build, group %i, %s keys: %i tokens of %i channels, %i query heads', (bn, group, format, n, d, qHeads) => {
    const r = scoreBoth(build(bn), keysFor(n, d, n * d + qHeads + group), n, d, format, normals(rng(qHeads + 5), qHeads * d), qHeads, group)
    // integer kernel: within the bound it states with the group's step (bounds() reads the group's scales)
    expect(worstExcess(r)).toBeLessThanOrEqual(0)
    // exact kernel: the twin within float32 rounding
    for (let i = 0; i < r.exact.length; i++) expect(Math.abs(r.exact[i] - r.ref[i])).toBeLessThanOrEqual(2e-5 * (1 + Math.abs(r.ref[i])))
  })

  it.each(GROUPS.flatMap((g) => FORMATS.map((f) => [g, f] as const)))('group %i, %s keys: the relaxed and plain builds\' integer scores agree within both bounds, and each group folds its own scales', (group, format) => {
    // keys whose channel scales differ by group (x 1, 4, 16 ...): a kernel reading one group's metadata
    // for another's tokens would be off by those factors, far outside the bound
    const n = 3 * group + 17
    const d = 64
    const keys = keysFor(n, d, 77)
    for (let t = 0; t < n; t++) for (let c = 0; c < d; c++) keys[t * d + c] *= 4 ** (Math.floor(t / group) % 3)
    const q = normals(rng(78), 3 * d)
    const a = scoreBoth(build('simd'), keys, n, d, format, q, 3, group)
    const b = scoreBoth(build('relaxed'), keys, n, d, format, q, 3, group)
    expect(worstExcess(a)).toBeLessThanOrEqual(0)
    expect(worstExcess(b)).toBeLessThanOrEqual(0)
    expect(Array.from(a.ref)).toEqual(Array.from(b.ref))
  })
})

describe('packed attention and get-rows read key groups of 64 and 128 tokens', () => {
  const grid = (['simd', 'relaxed'] as const).flatMap((bn) => GROUPS.flatMap((g) => (['int4', 'int2'] as const).flatMap((f) => [[40, 64], [130, 40], [257, 64]].map(([n, d]) => [bn, g, f, n, d] as const))))
  it.each(grid)('%s build, group %i, %s keys and values: %i tokens of %i channels', (bn, group, format, n, d) => {
    const b = build(bn)
    const pt = pageFor(group)
    const cache = new PagedKVCache(b, { layers: 1, kvHeads: 1, headDim: d, pageTokens: pt })
    cache.append(0, keysFor(n, d, n + d), normals(rng(n + 1), n * d), Int32Array.from({ length: n }, (_, i) => i))
    cache.apply({ heads: [], quantize: [{ layer: 0, head: 0, upto: n, keys: format, values: format, group }] })
    const seg = cache.segments(0, 0)[0]
    expect(seg.group).toBe(group)
    const rows = 4
    const vGroup = valueGroupFor(group, d)
    const q = b.heap.f32From(normals(rng(9), rows * d))
    const out = [b.heap.allocF32(rows * d), b.heap.allocF32(rows * d)]
    const lse = [b.heap.allocF32(rows), b.heap.allocF32(rows)]
    const scratch = b.heap.allocF32(packedAttendScratch(rows, d, d, n))
    b.attendPacked!(q.ptr, rows, d, d, seg.kTable, seg.vTable, pt, n, BITS[format], 0, BITS[format], SCALE, out[0].ptr, d, lse[0].ptr, scratch.ptr, group, vGroup)
    referencePackedKernels(b.heap).attendPacked(q.ptr, rows, d, d, seg.kTable, seg.vTable, pt, n, BITS[format], 0, BITS[format], SCALE, out[1].ptr, d, lse[1].ptr, 0, group, vGroup)
    for (let i = 0; i < rows * d; i++) expect(out[0].view[i]).toBeCloseTo(out[1].view[i], 5)
    for (let r = 0; r < rows; r++) expect(lse[0].view[r]).toBeCloseTo(lse[1].view[r], 5)
    // get-rows (the kernels') equals the twin's read-back (packing.ts) bit for bit, rows in any order
    const pick = [n - 1, 0, Math.floor(n / 2), n - 1]
    const kDst = b.heap.allocF32(pick.length * d)
    const vDst = b.heap.allocF32(pick.length * d)
    cache.fetchRows(0, 0, 0, pick, kDst.ptr, vDst.ptr)
    const all = cache.readKeys(0, 0)
    const allV = cache.readValues(0, 0)
    pick.forEach((t, i) => {
      expect(Array.from(kDst.view.subarray(i * d, i * d + d))).toEqual(Array.from(all.subarray(t * d, t * d + d)))
      expect(Array.from(vDst.view.subarray(i * d, i * d + d))).toEqual(Array.from(allV.subarray(t * d, t * d + d)))
    })
    for (const x of [q, ...out, ...lse, scratch, kDst, vDst]) x.free()
    cache.dispose()
  })
})

describe('key groups the kernels cannot read are refused before any work, naming the value', () => {
  it.each([48, 0, 256, '32', 32.5])('apply: quantize with group %s', (group) => {
    const b = build('relaxed')
    const cache = new PagedKVCache(b, { layers: 1, kvHeads: 1, headDim: 64, pageTokens: 128 })
    cache.append(0, keysFor(128, 64, 1), normals(rng(2), 128 * 64), Int32Array.from({ length: 128 }, (_, i) => i))
    const before = cache.readKeys(0, 0)
    expect(() => cache.apply({ heads: [], quantize: [{ layer: 0, head: 0, upto: 128, keys: 'int2', values: 'int2', group: group as number }] })).toThrow(CacheError)
    expect(() => cache.apply({ heads: [], quantize: [{ layer: 0, head: 0, upto: 128, keys: 'int2', values: 'int2', group: group as number }] })).toThrow(typeof group === 'string' ? `"${group}"` : String(group))
    // nothing was packed
    expect(cache.segments(0, 0)[0].format).toBe('float32')
    expect(Array.from(cache.readKeys(0, 0))).toEqual(Array.from(before))
    cache.dispose()
  })

  it('Ops.scoreKeys on a packed view of group 48 throws a ShapeError naming it', () => {
    const b = build('relaxed')
    const { cache, seg } = packed(b, keysFor(64, 64, 3), 64, 64, 'int2')
    const ops = new Ops(b)
    const q = b.heap.allocF32(64)
    const out = b.heap.allocF32(64)
    expect(() => ops.scoreKeys(q, 1, { ...seg, group: 48 }, SCALE, out)).toThrow(ShapeError)
    expect(() => ops.scoreKeys(q, 1, { ...seg, group: 48 }, SCALE, out)).toThrow('48')
    q.free()
    out.free()
    cache.dispose()
  })

  it.each(['scorePackedKeys', 'scorePackedKeysInt'] as const)('the wasm %s refuses group 96 with a RangeError naming it', (name) => {
    const b = build('relaxed')
    const { cache, seg } = packed(b, keysFor(64, 64, 4), 64, 64, 'int2')
    const call = () => name === 'scorePackedKeys' ? b.scorePackedKeys!(0, 1, 64, seg.kTable, 64, 64, 2, 0, 1, 0, 0, 96) : b.scorePackedKeysInt!(0, 1, 64, seg.kTable, 64, 64, 2, 1, 0, 0, 96)
    expect(call).toThrow(RangeError)
    expect(call).toThrow('96')
    cache.dispose()
  })
})

describe('Ops.scoreKeys on packed views of group 128', () => {
  it('scores with the kernels of the segment\'s group: the integer one by default, the exact one on request', () => {
    const b = build('relaxed')
    const n = 300
    const d = 64
    const keys = keysFor(n, d, 5)
    const qv = normals(rng(6), 2 * d)
    const { cache, seg } = packed(b, keys, n, d, 'int2', 128)
    expect(seg.group).toBe(128)
    const ops = new Ops(b)
    const q = b.heap.f32From(qv)
    const a = b.heap.allocF32(2 * n)
    const e = b.heap.allocF32(2 * n)
    ops.scoreKeys(q, 2, seg, SCALE, a)
    ops.scoreKeys(q, 2, seg, SCALE, e, { exact: true })
    // the same keys packed the same way, scored by the kernels with group 128 passed directly
    const r = scoreBoth(b, keys, n, d, 'int2', qv, 2, 128)
    expect(Array.from(a.view)).toEqual(Array.from(r.out))
    expect(Array.from(e.view)).toEqual(Array.from(r.exact))
    for (const x of [q, a, e]) x.free()
    cache.dispose()
  })
})
