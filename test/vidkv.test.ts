import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CreatedBackend } from '../src/backend/index.js'
import type { Heap } from '../src/backend/heap.js'
import { packedAttendScratch } from '../src/backend/backend.js'
import { referencePackedKernels } from '../src/backend/reference/packed-kernels.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { keyBasis, realSpectrum, fromRealSpectrum, toBasis } from '../src/cache/basis.js'
import { packedLayout, pageBytes } from '../src/cache/formats.js'
import { channelLayout, codeAt, groupMeta, keyGroupAt, packKeyGroup, unpackKeyRow } from '../src/cache/packing.js'
import { halfToFloat, floatToHalf } from '../src/backend/half.js'
import { widestChannels, salientTokens } from '../src/policies/vidkv.js'
import { createPolicy } from '../src/policies/registry.js'
import { PolicyOptionValueError } from '../src/policies/errors.js'
import { CacheError } from '../src/cache/errors.js'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { normals, rng, wasmAndReference } from './kernels-helpers.js'
import { expectAttentionOverReadBack } from './packed-helpers.js'

// VidKV (Tao et al. 2025): int2+sign keys (widest channels 2-bit, the rest through a real DFT and
// 1-bit signs) and ternary values with salient tokens at 2 bits. Checked against plain TypeScript twins
// written from the paper's definitions (direct DFT sums, not basis.ts), the fused kernels against the
// dequantize-then-float32 twins, the byte accounting against the analytic figure, and the policy
// end to end on the fixture model.
let wasm: CreatedBackend
let heap: Heap
let model: LlamaModel
beforeAll(async () => {
  ;({ wasm, heap } = await wasmAndReference())
  model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
})
afterAll(() => model?.dispose())

/** the twin's spectrum: X_j = sum_n x_n e^{-2 pi i j n / m} by the direct sum, in float64 */
function directDft(x: number[]): { re: number[]; im: number[] } {
  const m = x.length
  const re: number[] = []
  const im: number[] = []
  for (let j = 0; j < m; j++) {
    re.push(x.reduce((s, v, n) => s + v * Math.cos((2 * Math.PI * j * n) / m), 0))
    im.push(x.reduce((s, v, n) => s - v * Math.sin((2 * Math.PI * j * n) / m), 0))
  }
  return { re, im }
}

/** the twin's inverse: x_n = (1 / m) sum_j X_j e^{2 pi i j n / m} (real part) */
function directIdft(re: number[], im: number[]): number[] {
  const m = re.length
  return Array.from({ length: m }, (_, n) => re.reduce((s, r, j) => s + r * Math.cos((2 * Math.PI * j * n) / m) - im[j] * Math.sin((2 * Math.PI * j * n) / m), 0) / m)
}

describe('the key basis: an orthonormal real DFT across the 1-bit channels', () => {
  it.each([1, 2, 5, 8, 12, 32, 64])('length %i: the spectrum is the DFT\'s independent reals, scaled; the inverse takes it back', (m) => {
    const x = Array.from(normals(rng(m), m))
    const c = new Float64Array(m)
    realSpectrum(x, c)
    const { re, im } = directDft(x)
    const want = [re[0] / Math.sqrt(m)]
    for (let j = 1; j < Math.ceil(m / 2); j++) want.push(re[j] * Math.sqrt(2 / m), im[j] * Math.sqrt(2 / m))
    if (m % 2 === 0) want.push(re[m / 2] / Math.sqrt(m))
    for (let j = 0; j < m; j++) expect(c[j]).toBeCloseTo(want[j], 10)
    // orthonormal: the norm is kept, and R^T R x = x
    expect(c.reduce((s, v) => s + v * v, 0)).toBeCloseTo(x.reduce((s, v) => s + v * v, 0), 9)
    const back = new Float64Array(m)
    fromRealSpectrum(c, back)
    for (let n = 0; n < m; n++) expect(back[n]).toBeCloseTo(x[n], 10)
  })

  it('a query in the basis scores as the original: q\' . k\' = q . k', () => {
    const r = rng(3)
    const basis = keyBasis([5, 1, 60], 64)
    expect(Array.from(basis.hi)).toEqual([1, 5, 60])
    const q = normals(r, 64)
    const k = normals(r, 64)
    const qb = new Float32Array(64)
    const kb = new Float32Array(64)
    toBasis(basis, q, 0, qb, 0)
    toBasis(basis, k, 0, kb, 0)
    const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + v * b[i], 0)
    expect(dot(qb, kb)).toBeCloseTo(dot(q, k), 4)
  })

  it('refuses a bad channel list, naming it', () => {
    expect(() => keyBasis([3, 64], 64)).toThrow(/channel 64 at \[1\] is outside \[0, 64\)/)
    expect(() => keyBasis([3, 3], 64)).toThrow(/channel 3 is listed twice/)
  })
})

describe('the plain TypeScript twin of VidKV\'s precision choice on a hand-made tensor', () => {
  // 32 tokens x 8 channels: channel c swings with amplitude AMP[c]; channels 1, 4, 6, 7 are the widest
  const AMP = [0.5, 4, 0.25, 1, 6, 0.75, 3, 5]
  const T = 32
  const D = 8
  const x = new Float32Array(T * D)
  for (let t = 0; t < T; t++) for (let c = 0; c < D; c++) x[t * D + c] = Math.fround(AMP[c] * Math.sin(0.7 * t + c) + 0.1 * c)

  it('the widest channels (max - min over the tokens) are the 2-bit ones', () => {
    expect(Array.from(widestChannels(x, D, 0, T, 4))).toEqual([1, 4, 6, 7])
    expect(Array.from(widestChannels(x, D, 0, T, 0))).toEqual([])
    expect(Array.from(widestChannels(x, D, 0, T, 8))).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
  })

  it('codes and reconstruction: int2 min-max on the wide channels, +-mean|X| signs of the spectrum on the rest', () => {
    const basis = keyBasis([1, 4, 6, 7], D)
    const lay = packedLayout('int2+sign', 'key', 32, D, 32, 4)
    // the page: 4 int2 chunks (8 bytes) and 4 int1 chunks (4 bytes), then 4 (scale, min) pairs and 4 sign scales
    expect(lay.lineBytes).toBe(4 * 8 + 4 * 4)
    expect(lay.bytes).toBe(Math.ceil((48 + 4 * 4 + 4 * 2) / 16) * 16)
    const rows = new Float32Array(T * D)
    for (let t = 0; t < T; t++) toBasis(basis, x, t * D, rows, t * D)
    const page = new Uint8Array(lay.bytes)
    packKeyGroup(rows, 0, D, T, lay, page, 0)

    // the twin: wide channels by min-max over the 32 tokens; the rest: spectrum of channels [0, 2, 3, 5]
    const lo = [0, 2, 3, 5]
    const spectra = Array.from({ length: T }, (_, t) => directDft(lo.map((c) => x[t * D + c])))
    // the orthonormal coefficients (twin of realSpectrum's order: X0, Re X1, Im X1, X2), per token
    const coef = spectra.map(({ re, im }) => [re[0] / 2, re[1] * Math.SQRT1_2, im[1] * Math.SQRT1_2, re[2] / 2])
    const want = new Float64Array(T * D)
    for (let j = 0; j < 4; j++) {
      const c = [1, 4, 6, 7][j]
      const at = keyGroupAt(lay, 0, j)
      const m = groupMeta(page, at.meta, channelLayout(lay, j))
      const col = Array.from({ length: T }, (_, t) => x[t * D + c])
      expect(m.min).toBeLessThanOrEqual(Math.min(...col))
      expect(m.min + 3 * m.scale).toBeGreaterThanOrEqual(Math.max(...col))
      for (let t = 0; t < T; t++) {
        const code = codeAt(page, at.codes, t, channelLayout(lay, j))
        expect(code).toBe(Math.min(3, Math.max(0, Math.round((col[t] - m.min) / m.scale))))
        want[t * D + c] = m.min + m.scale * code
      }
    }
    const signs: number[][] = Array.from({ length: T }, () => [])
    for (let j = 0; j < 4; j++) {
      const col = coef.map((v) => v[j])
      const s = halfToFloat(floatToHalf(col.reduce((a, v) => a + Math.abs(v), 0) / T))
      const at = keyGroupAt(lay, 0, 4 + j)
      const cl = channelLayout(lay, 4 + j)
      expect(groupMeta(page, at.meta, cl)).toEqual({ scale: 2 * s, min: -s })
      for (let t = 0; t < T; t++) {
        expect(codeAt(page, at.codes, t, cl)).toBe(col[t] >= 0 ? 1 : 0)
        signs[t][j] = col[t] >= 0 ? s : -s
      }
    }
    // reconstruction: the quantized coefficients back to a Hermitian spectrum, then the direct inverse DFT
    for (let t = 0; t < T; t++) {
      const [c0, a, b, c2] = signs[t]
      const re = [c0 * 2, a * Math.SQRT2, c2 * 2, a * Math.SQRT2]
      const im = [0, b * Math.SQRT2, 0, -b * Math.SQRT2]
      directIdft(re, im).forEach((v, n) => (want[t * D + lo[n]] = v))
    }
    const back = new Float32Array(T * D)
    const seg = new PagedKVCache(wasm, { layers: 1, kvHeads: 1, headDim: D, pageTokens: 32 })
    seg.append(0, x, x, Int32Array.from({ length: T }, (_, i) => i))
    seg.apply({ heads: [], quantize: [{ layer: 0, head: 0, upto: T, keys: 'int2+sign', values: 'ternary', keyHiChannels: Int32Array.of(7, 1, 6, 4) }] })
    back.set(seg.readKeys(0, 0))
    for (let i = 0; i < T * D; i++) expect(back[i]).toBeCloseTo(want[i], 5)
    // and the page reads back the same through the packed layout alone
    const row = new Float32Array(D)
    unpackKeyRow(page, lay, 3, row, 0)
    for (let j = 0; j < 4; j++) expect(row[j]).toBeCloseTo(want[3 * D + [1, 4, 6, 7][j]], 6)
    seg.dispose()
  })

  it('semantic token protection: the tokens whose embeddings best match the window\'s mean', () => {
    // 6 tokens of 3 dims; the window is the last 2 rows (mean (1, 0, 1)); scores of tokens 0..3: 2, -1, 0.5, 2 (tie: lower first)
    const emb = Float32Array.from([1, 5, 1, -1, 0, 0, 0.5, 9, 0, 2, 0, 0, 1, 0, 1, 1, 0, 1])
    expect(Array.from(salientTokens(emb, 3, 4, 2, 1))).toEqual([0])
    expect(Array.from(salientTokens(emb, 3, 4, 2, 2))).toEqual([0, 3])
    expect(Array.from(salientTokens(emb, 3, 4, 2, 3))).toEqual([0, 2, 3])
  })
})

/** n random tokens per head (2 heads of 64) packed as VidKV pages: keys int2+sign with `hi` wide channels in token groups of `group`, values `values` */
function vidkvCache(n: number, hi: number, values: 'ternary' | 'int2', seed: number, group = 32): PagedKVCache {
  const cache = new PagedKVCache(wasm, { layers: 1, kvHeads: 2, headDim: 64, pageTokens: 128 })
  const r = rng(seed)
  cache.append(0, normals(r, n * 128), normals(r, n * 128), Int32Array.from({ length: n }, (_, i) => i))
  const keyHiChannels = Int32Array.from({ length: hi }, (_, j) => (j * 7) % 64)
  cache.apply({ heads: [], quantize: [0, 1].map((head) => ({ layer: 0, head, upto: n, keys: 'int2+sign' as const, values, keyHiChannels, group })) })
  return cache
}

/**
 * Head `head` of a VidKV cache (int2+sign keys in groups of `group` tokens, ternary values) read back
 * within the bounds of its quantizers, against twins written here: in the stored basis, the int2
 * channels within half a min-max step of each group, the sign channels +-fp16(mean |x|) of each group;
 * values s * t per min(group, 64) channels with s = fp16(mean |x|) and threshold s / 2.
 */
function expectWithinVidkvBounds(cache: PagedKVCache, head: number, keyRow: (t: number) => Float32Array, valueRow: (t: number) => Float32Array, n: number, group: number): void {
  const basis = cache.segments(0, head)[0].keyBasis!
  const hi = basis.hi.length
  const kBack = cache.readKeys(0, head)
  const vBack = cache.readValues(0, head)
  const half = (x: number) => halfToFloat(floatToHalf(x))
  const kb = new Float32Array(n * 64)
  const backB = new Float32Array(n * 64)
  for (let t = 0; t < n; t++) {
    toBasis(basis, keyRow(t), 0, kb, t * 64)
    toBasis(basis, kBack.subarray(t * 64, t * 64 + 64), 0, backB, t * 64)
  }
  for (let g0 = 0; g0 < n; g0 += group) {
    const g1 = Math.min(n, g0 + group)
    for (let c = 0; c < 64; c++) {
      const col = Array.from({ length: g1 - g0 }, (_, i) => kb[(g0 + i) * 64 + c])
      const mag = Math.max(...col.map(Math.abs))
      if (c < hi) {
        const step = (Math.max(...col) - Math.min(...col)) / 3
        // float16 rounding of (scale, min) and the DFT round trip widen step / 2 a little
        col.forEach((x, i) => expect(Math.abs(backB[(g0 + i) * 64 + c] - x)).toBeLessThanOrEqual(step * 0.51 + 1e-3 * mag + 1e-5))
      } else {
        const s = half(col.reduce((a, x) => a + Math.abs(x), 0) / col.length)
        col.forEach((x, i) => expect(Math.abs(backB[(g0 + i) * 64 + c] - (x >= 0 ? s : -s))).toBeLessThanOrEqual(1e-4 * Math.max(1, mag)))
      }
    }
  }
  const vg = Math.min(group, 64)
  for (let t = 0; t < n; t++) {
    const x = valueRow(t)
    for (let c0 = 0; c0 < 64; c0 += vg) {
      const row = Array.from(x.subarray(c0, c0 + vg))
      const s = half(row.reduce((a, y) => a + Math.abs(y), 0) / vg)
      row.forEach((y, j) => expect(vBack[t * 64 + c0 + j]).toBeCloseTo(Math.abs(y) > s / 2 ? Math.sign(y) * s : 0, 6))
    }
  }
}

describe('fused kernels on int2+sign keys and ternary values equal dequantize-then-float32', () => {
  const twin = () => referencePackedKernels(heap)
  // one token, a partial last group, whole groups, group and page boundaries, every int2 share
  it.each([
    [1, 0, 32], [33, 32, 32], [130, 5, 32], [64, 64, 32], [200, 21, 32],
    [1, 32, 64], [64, 32, 64], [65, 32, 64], [200, 0, 64], [300, 64, 64],
    [1, 32, 128], [127, 32, 128], [128, 7, 128], [129, 32, 128], [300, 0, 128],
  ] as const)('%i tokens, %i int2 channels, groups of %i: scores and attention within float32 rounding', (n, hi, group) => {
    for (const values of ['ternary', 'int2'] as const) {
      const cache = vidkvCache(n, hi, values, n + hi + group, group)
      const seg = cache.segments(0, 1)[0]
      expect([seg.format, seg.valueFormat, seg.keyBasis!.hi.length, seg.group]).toEqual(['int2+sign', values, hi, group])
      const vGroup = Math.min(group, 64)
      const vBits = values === 'ternary' ? 0 : 2
      const rows = 3
      const q = heap.f32From(normals(rng(7), rows * 64))
      const bufs = [heap.allocF32(rows * n), heap.allocF32(rows * n), heap.allocF32(rows * 64), heap.allocF32(rows * 64), heap.allocF32(rows), heap.allocF32(rows)]
      const [s, sRef, out, ref, lse, lseRef] = bufs
      const scratch = heap.allocF32(packedAttendScratch(rows, 64, 64, n))
      wasm.scoreSignKeys!(q.ptr, rows, 64, seg.kTable, 128, n, hi, group, 0.125, s.ptr, scratch.ptr)
      twin().scoreSignKeys(q.ptr, rows, 64, seg.kTable, 128, n, hi, group, 0.125, sRef.ptr, 0)
      for (let i = 0; i < rows * n; i++) expect(Math.abs(s.view[i] - sRef.view[i])).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(sRef.view[i])))
      wasm.attendSign!(q.ptr, rows, 64, 64, seg.kTable, seg.vTable, 128, n, hi, group, vBits, vGroup, 0.125, out.ptr, 64, lse.ptr, scratch.ptr)
      twin().attendSign(q.ptr, rows, 64, 64, seg.kTable, seg.vTable, 128, n, hi, group, vBits, vGroup, 0.125, ref.ptr, 64, lseRef.ptr, 0)
      for (let i = 0; i < rows * 64; i++) expect(Math.abs(out.view[i] - ref.view[i])).toBeLessThanOrEqual(2e-5 * 4)
      for (let r = 0; r < rows; r++) expect(Math.abs(lse.view[r] - lseRef.view[r])).toBeLessThanOrEqual(2e-5 * Math.max(1, Math.abs(lseRef.view[r])))
      for (const b of [q, scratch, ...bufs]) b.free()
      cache.dispose()
    }
  })

  it.each([32, 64, 128])('groups of %i, random rows: keys and values read back within the bound their quantizers imply', (group) => {
    // 150 tokens: whole groups and a partial last one
    const n = 150
    const cache = vidkvCache(n, 32, 'ternary', group, group)
    const r = rng(group)
    const k = normals(r, n * 128)
    const v = normals(r, n * 128)
    expectWithinVidkvBounds(cache, 0, (t) => k.subarray(t * 128, t * 128 + 64), (t) => v.subarray(t * 128, t * 128 + 64), n, group)
    cache.dispose()
  })

  it.each([32, 64, 128])('groups of %i, the fixture model\'s real keys and values: read back within the bounds; fused attention equals the twin', (group) => {
    const src = model.newCache()
    model.prefill([0, ...Array.from({ length: 299 }, (_, i) => 2 + ((i * 7919) % 4000))], src)
    const k = src.readKeys(3, 1)
    const v = src.readValues(3, 1)
    const n = src.length(3, 1)
    src.dispose()
    const cache = new PagedKVCache(wasm, { layers: 1, kvHeads: 1, headDim: 64, pageTokens: 128 })
    cache.append(0, k, v, Int32Array.from({ length: n }, (_, i) => i))
    const keyHiChannels = widestChannels(k, 64, 0, n, 32)
    cache.apply({ heads: [], quantize: [{ layer: 0, head: 0, upto: n, keys: 'int2+sign', values: 'ternary', keyHiChannels, group }] })
    expectWithinVidkvBounds(cache, 0, (t) => k.subarray(t * 64, t * 64 + 64), (t) => v.subarray(t * 64, t * 64 + 64), n, group)
    const seg = cache.segments(0, 0)[0]
    const rows = 3
    const q = heap.f32From(normals(rng(5), rows * 64))
    const bufs = [heap.allocF32(rows * 64), heap.allocF32(rows * 64), heap.allocF32(rows), heap.allocF32(rows)]
    const [out, ref, lse, lseRef] = bufs
    const scratch = heap.allocF32(packedAttendScratch(rows, 64, 64, n))
    wasm.attendSign!(q.ptr, rows, 64, 64, seg.kTable, seg.vTable, 128, n, 32, group, 0, Math.min(group, 64), 0.125, out.ptr, 64, lse.ptr, scratch.ptr)
    referencePackedKernels(heap).attendSign(q.ptr, rows, 64, 64, seg.kTable, seg.vTable, 128, n, 32, group, 0, Math.min(group, 64), 0.125, ref.ptr, 64, lseRef.ptr, 0)
    const vmax = v.reduce((m, x) => Math.max(m, Math.abs(x)), 0)
    for (let i = 0; i < rows * 64; i++) expect(Math.abs(out.view[i] - ref.view[i])).toBeLessThanOrEqual(vmax * 2e-5)
    for (let r = 0; r < rows; r++) expect(Math.abs(lse.view[r] - lseRef.view[r])).toBeLessThanOrEqual(2e-5 * Math.max(1, Math.abs(lseRef.view[r])))
    for (const b of [q, scratch, ...bufs]) b.free()
    cache.dispose()
  })

  it.each(['ternary', 'int2'] as const)('decode attention over VidKV pages (%s values) and float rows equals attention over their read-back floats', (values) => {
    const n = 150
    const cache = vidkvCache(n, 32, values, 4)
    // 22 newer float rows after the packed ones
    const r = rng(8)
    cache.append(0, normals(r, 22 * 128), normals(r, 22 * 128), Int32Array.from({ length: 22 }, (_, i) => n + i))
    expectAttentionOverReadBack(wasm, heap, cache, n + 22, 9, 4)
    cache.dispose()
  })

  it('the store refuses int2+sign keys without their channels, channels with other formats, and bad channels, changing nothing', () => {
    const cache = new PagedKVCache(wasm, { layers: 1, kvHeads: 1, headDim: 64, pageTokens: 64 })
    const r = rng(2)
    cache.append(0, normals(r, 64 * 64), normals(r, 64 * 64), Int32Array.from({ length: 64 }, (_, i) => i))
    const before = cache.bytes()
    const q = (o: object) => ({ heads: [], quantize: [{ layer: 0, head: 0, upto: 64, keys: 'int2+sign', values: 'ternary', ...o }] }) as never
    expect(() => cache.apply(q({ keyHiChannels: Int32Array.of(1), group: 48 }))).toThrow(/group must be 32, 64 or 128, got 48/)
    // KIVI's int keys take groups of 32, 64 and 128 too (test/packed-key-groups.test.ts); others not
    expect(() => cache.apply(q({ keys: 'int2', group: 96 }))).toThrow(/group must be 32, 64 or 128, got 96/)
    expect(() => cache.apply(q({ keyHiChannels: Int32Array.of(1), group: 128 }))).toThrow(/pageTokens 64 must be a multiple of the key group \(128\)/)
    expect(() => cache.apply(q({}))).toThrow(/int2\+sign keys need the channels kept in 2 bits/)
    expect(() => cache.apply(q({ keys: 'int2', keyHiChannels: Int32Array.of(1) }))).toThrow(/only they take them/)
    expect(() => cache.apply(q({ keyHiChannels: Int32Array.of(1, 99) }))).toThrow(CacheError)
    expect(() => cache.apply(q({ keyHiChannels: Int32Array.of(1, 99) }))).toThrow(/channel 99 at \[1\] is outside \[0, 64\)/)
    expect(() => cache.apply(q({ values: 'int2+sign', keyHiChannels: Int32Array.of(1) }))).toThrow(/values: int2\+sign is not an integer or ternary value format/)
    expect(cache.bytes()).toEqual(before)
    cache.dispose()
  })
})

describe('VidKV bytes at 32k tokens, from the cache\'s own accounting', () => {
  /** bytes per token of one KV head of 32768 random tokens packed as VidKV packs them (20% salient rows), the newest `tail` in kvDtype */
  function bytesPerToken(group: number, tail: number, kvDtype: 'float32' | 'float16'): number {
    const n = 32768
    const cache = new PagedKVCache(wasm, { layers: 1, kvHeads: 1, headDim: 64, pageTokens: Math.max(64, group), kvDtype })
    const r = rng(group + tail)
    cache.append(0, normals(r, n * 64), normals(r, n * 64), Int32Array.from({ length: n }, (_, i) => i))
    const old = n - tail
    const salient = Math.round(0.2 * old)
    const keyHiChannels = Int32Array.from({ length: 32 }, (_, j) => 2 * j)
    const q = (upto: number, values: 'ternary' | 'int2') => ({ layer: 0, head: 0, upto, keys: 'int2+sign' as const, values, keyHiChannels, group })
    cache.apply({ heads: [], quantize: [q(old - salient, 'ternary'), q(old, 'int2')] })
    const bytes = cache.bytes().total / n
    cache.dispose()
    return bytes
  }

  it('groups of 128 are at least 8x smaller than float16 (256 B); with a float16 tail at every decode step too; groups of 32 are not', () => {
    expect(256 / bytesPerToken(128, 128, 'float32')).toBeGreaterThanOrEqual(8)
    // the tail's longest while decoding: R + 127 tokens before the next group packs
    expect(256 / bytesPerToken(128, 255, 'float32')).toBeLessThan(8)
    expect(256 / bytesPerToken(128, 255, 'float16')).toBeGreaterThanOrEqual(8)
    expect(256 / bytesPerToken(32, 128, 'float32')).toBeLessThan(8)
  })
})

describe('VidKV through the policy API', () => {
  it('bad options fail with typed errors naming the value, before any work', () => {
    expect(() => createPolicy('vidkv:keyBits=2.5', model.config)).toThrow(/keyBits must be in \[1, 2\]|keyBits/)
    expect(() => createPolicy('vidkv:keyBits=0.5', model.config)).toThrow(PolicyOptionValueError)
    expect(() => createPolicy('vidkv:valueBits=1.7', model.config)).toThrow(/valueBits must be 1.58 \(ternary\) or 2, got 1.7/)
    expect(() => createPolicy('vidkv:salient=-0.1', model.config)).toThrow(PolicyOptionValueError)
    expect(() => createPolicy('vidkv:window=0', model.config)).toThrow(PolicyOptionValueError)
    expect(() => createPolicy('vidkv:residual=1.5', model.config)).toThrow(PolicyOptionValueError)
    expect(() => createPolicy('vidkv:groupSize=48', model.config)).toThrow(/groupSize must be 32, 64 or 128, got 48/)
    expect(() => createPolicy('vidkv:groupSize=256', model.config)).toThrow(PolicyOptionValueError)
  })

  /** generates 2 tokens under `spec`; the segments of (layer, head) and the cache's page size at the last decode step, and kvBytes */
  async function generateWatching(spec: string, prompt: number[], layer: number, head: number) {
    let segs: { format: string; values: string; n: number; hi: number; group: number }[] = []
    let pageTokens = 0
    const policy = createPolicy(spec, model.config)!
    const r = model.generate(prompt, {
      maxNewTokens: 2,
      policy: {
        ...policy,
        start() {
          const s = policy.start()
          return {
            ...s,
            onDecodeStep: (ctx) => {
              pageTokens = ctx.cache.options.pageTokens
              segs = ctx.cache.segments(layer, head).map((g) => ({ format: g.format, values: g.valueFormat, n: g.n, hi: g.keyBasis?.hi.length ?? 0, group: g.group }))
              return s.onDecodeStep?.(ctx) ?? null
            },
          }
        },
      },
    })
    const out = (await r.result) as { stats: { kvBytes: { total: number } } }
    return { segs, pageTokens, kvBytes: out.stats.kvBytes.total, needs: policy.needs }
  }

  // the analytic figures per token per KV head. Keys: 32 channels x 2 bits + 32 x 1 bit = 12 bytes of codes,
  // plus 32 int2 channels x float16 (scale, min) and 32 sign channels x a float16 scale per group: 6 bytes
  // at 32 tokens, 1.5 at 128. Values: ternary 2 groups x 7 bytes + 2 scales = 18 bytes at 32 channels, one
  // group of 64 (13 bytes + a scale) = 15 at 128; int2 2 x 8 + 2 x (scale, min) = 24 bytes, 16 + 4 = 20.
  // float32 rows 2 x 64 x 4 = 512 bytes.
  it.each([
    { group: 32, len: 300, layer: 3, head: 1, key: 18, ternary: 18, int2: 24 },
    { group: 128, len: 600, layer: 5, head: 0, key: 13.5, ternary: 15, int2: 20 },
  ])('groups of $group on a fixture prompt: salient rows behind the ternary ones, newest float, and kvBytes is the analytic figure', async ({ group, len, layer, head, key, ternary, int2 }) => {
    const residual = 64
    const prompt = [0, ...Array.from({ length: len - 1 }, (_, i) => 2 + ((i * 7919) % 4000))]
    const spec = group === 32 ? `vidkv:residual=${residual}` : `vidkv:residual=${residual},groupSize=${group}`
    const { segs, pageTokens, kvBytes, needs } = await generateWatching(spec, prompt, layer, head)
    // groups of 128 ask for pages that hold one
    expect([needs.pageTokens, pageTokens]).toEqual(group > 64 ? [group, group] : [undefined, 64])
    // the prompt's old tokens packed at prefill end; the window and the 2 decoded steps' tokens in float32
    const old = len - 1 - residual
    const salient = Math.round(0.2 * old)
    expect(segs).toEqual([
      { format: 'int2+sign', values: 'ternary', n: old - salient, hi: 32, group },
      { format: 'int2+sign', values: 'int2', n: salient, hi: 32, group },
      { format: 'float32', values: 'float32', n: residual + 2, hi: 0, group: 32 },
    ])
    const { layers, kvHeads } = model.config
    const perHead = (old - salient) * (key + ternary) + salient * (key + int2) + (residual + 2) * 512
    expect(kvBytes).toBeCloseTo(layers * kvHeads * perHead, 6)
    expect(key + ternary).toBe((pageBytes('int2+sign', 'key', pageTokens, 64, group, 32) + pageBytes('ternary', 'value', pageTokens, 64, Math.min(group, 64))) / pageTokens)
  })

  it('composes after prefill-time eviction (SnapKV at 25% then VidKV)', async () => {
    const prompt = [0, ...Array.from({ length: 399 }, (_, i) => 2 + ((i * 31) % 4000))]
    const r = model.generate(prompt, { maxNewTokens: 2, policy: 'snapkv:budget=0.5+vidkv:residual=32' })
    const out = (await r.result) as { stats: { kvBytes: { quantized: number } } }
    expect(out.stats.kvBytes.quantized).toBeGreaterThan(0)
  })
})
