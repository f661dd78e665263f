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
    // the page: 4 int2 chunks (8 bytes) and 4 int1 chunks (4 bytes), then 8 (scale, min) pairs
    expect(lay.lineBytes).toBe(4 * 8 + 4 * 4)
    expect(lay.bytes).toBe(Math.ceil((48 + 8 * 4) / 16) * 16)
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

/** n random tokens per head (2 heads of 64) packed as VidKV pages: keys int2+sign with `hi` wide channels, values `values` */
function vidkvCache(n: number, hi: number, values: 'ternary' | 'int2', seed: number): PagedKVCache {
  const cache = new PagedKVCache(wasm, { layers: 1, kvHeads: 2, headDim: 64, pageTokens: 64 })
  const r = rng(seed)
  cache.append(0, normals(r, n * 128), normals(r, n * 128), Int32Array.from({ length: n }, (_, i) => i))
  const keyHiChannels = Int32Array.from({ length: hi }, (_, j) => (j * 7) % 64)
  cache.apply({ heads: [], quantize: [0, 1].map((head) => ({ layer: 0, head, upto: n, keys: 'int2+sign' as const, values, keyHiChannels })) })
  return cache
}

describe('fused kernels on int2+sign keys and ternary values equal dequantize-then-float32', () => {
  const twin = () => referencePackedKernels(heap)
  it.each([[1, 0], [33, 32], [130, 5], [64, 64], [200, 21]] as const)('%i tokens, %i int2 channels: scores and attention within float32 rounding', (n, hi) => {
    const cache = vidkvCache(n, hi, 'ternary', n + hi)
    const seg = cache.segments(0, 1)[0]
    expect([seg.format, seg.valueFormat, seg.keyBasis!.hi.length]).toEqual(['int2+sign', 'ternary', hi])
    const rows = 3
    const q = heap.f32From(normals(rng(7), rows * 64))
    const bufs = [heap.allocF32(rows * n), heap.allocF32(rows * n), heap.allocF32(rows * 64), heap.allocF32(rows * 64), heap.allocF32(rows), heap.allocF32(rows)]
    const [s, sRef, out, ref, lse, lseRef] = bufs
    const scratch = heap.allocF32(packedAttendScratch(rows, 64, 64, n))
    wasm.scorePackedKeys!(q.ptr, rows, 64, seg.kTable, 64, n, 1, hi, 0.125, s.ptr, scratch.ptr)
    twin().scorePackedKeys(q.ptr, rows, 64, seg.kTable, 64, n, 1, hi, 0.125, sRef.ptr, 0)
    for (let i = 0; i < rows * n; i++) expect(Math.abs(s.view[i] - sRef.view[i])).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(sRef.view[i])))
    wasm.attendPacked!(q.ptr, rows, 64, 64, seg.kTable, seg.vTable, 64, n, 1, hi, 0, 0.125, out.ptr, 64, lse.ptr, scratch.ptr)
    twin().attendPacked(q.ptr, rows, 64, 64, seg.kTable, seg.vTable, 64, n, 1, hi, 0, 0.125, ref.ptr, 64, lseRef.ptr, 0)
    for (let i = 0; i < rows * 64; i++) expect(Math.abs(out.view[i] - ref.view[i])).toBeLessThanOrEqual(2e-5 * 4)
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
    expect(() => cache.apply(q({}))).toThrow(/int2\+sign keys need the channels kept in 2 bits/)
    expect(() => cache.apply(q({ keys: 'int2', keyHiChannels: Int32Array.of(1) }))).toThrow(/only they take them/)
    expect(() => cache.apply(q({ keyHiChannels: Int32Array.of(1, 99) }))).toThrow(CacheError)
    expect(() => cache.apply(q({ keyHiChannels: Int32Array.of(1, 99) }))).toThrow(/channel 99 at \[1\] is outside \[0, 64\)/)
    expect(() => cache.apply(q({ values: 'int2+sign', keyHiChannels: Int32Array.of(1) }))).toThrow(/values: int2\+sign is not an integer or ternary value format/)
    expect(cache.bytes()).toEqual(before)
    cache.dispose()
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
  })

  it('on a fixture prompt: salient rows behind the ternary ones, newest float, and kvBytes is the analytic 1.x-bit figure', async () => {
    const len = 300
    const residual = 64
    const prompt = [0, ...Array.from({ length: len - 1 }, (_, i) => 2 + ((i * 7919) % 4000))]
    let segs: { format: string; values: string; n: number; hi: number }[] = []
    const policy = createPolicy(`vidkv:residual=${residual}`, model.config)!
    const r = model.generate(prompt, {
      maxNewTokens: 2,
      policy: {
        ...policy,
        start() {
          const s = policy.start()
          return { ...s, onDecodeStep: (ctx) => ((segs = ctx.cache.segments(3, 1).map((g) => ({ format: g.format, values: g.valueFormat, n: g.n, hi: g.keyBasis?.hi.length ?? 0 }))), s.onDecodeStep?.(ctx) ?? null) }
        },
      },
    })
    const out = (await r.result) as { stats: { kvBytes: { total: number; quantized: number } } }
    // the prompt's old tokens packed at prefill end; the window and the 2 decoded steps' tokens in float32
    const n = len - 1
    const old = n - residual
    const salient = Math.round(0.2 * old)
    expect(segs).toEqual([
      { format: 'int2+sign', values: 'ternary', n: old - salient, hi: 32 },
      { format: 'int2+sign', values: 'int2', n: salient, hi: 32 },
      { format: 'float32', values: 'float32', n: residual + 2, hi: 0 },
    ])
    // the analytic figure per token per KV head: keys 32 channels x 2 bits + 32 x 1 bit = 12 bytes of codes,
    // 64 channels x (scale, min) float16 per 32 tokens = 8 bytes; ternary values 2 groups x 7 bytes + 2 float16
    // scales = 18 bytes, int2 values 2 x 8 + 2 x (scale, min) = 24 bytes; float32 rows 2 x 64 x 4 = 512 bytes
    const { layers, kvHeads } = model.config
    const perHead = (old - salient) * (20 + 18) + salient * (20 + 24) + (residual + 2) * 512
    expect(out.stats.kvBytes.total).toBeCloseTo(layers * kvHeads * perHead, 6)
    expect(20 + 18).toBe((pageBytes('int2+sign', 'key', 64, 64, 32, 32) + pageBytes('ternary', 'value', 64, 64)) / 64)
  })

  it('composes after prefill-time eviction (SnapKV at 25% then VidKV)', async () => {
    const prompt = [0, ...Array.from({ length: 399 }, (_, i) => 2 + ((i * 31) % 4000))]
    const r = model.generate(prompt, { maxNewTokens: 2, policy: 'snapkv:budget=0.5+vidkv:residual=32' })
    const out = (await r.result) as { stats: { kvBytes: { quantized: number } } }
    expect(out.stats.kvBytes.quantized).toBeGreaterThan(0)
  })
})
