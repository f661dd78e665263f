import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CreatedBackend } from '../src/backend/index.js'
import type { Heap } from '../src/backend/heap.js'
import { packedAttendScratch } from '../src/backend/backend.js'
import { referencePackedKernels } from '../src/backend/reference/packed-kernels.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { packedLayout, pageBytes, type PageFormat } from '../src/cache/formats.js'
import { codeAt, groupMeta, keyGroupAt, packKeyGroup, packValueRow, unpackKeyRow, unpackValueRow, valueGroupAt } from '../src/cache/packing.js'
import { halfDown, halfUp } from '../src/cache/half.js'
import { floatToHalf, halfToFloat } from '../src/backend/half.js'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { createPolicy } from '../src/policies/registry.js'
import { PolicyCompositionError } from '../src/policies/errors.js'
import { normals, rng, wasmAndReference } from './kernels-helpers.js'
import { expectAttentionOverReadBack } from './packed-helpers.js'

// Packed KV pages (KIVI's grouping): round trips within each format's bound on random and real
// fixture keys and values, the fused kernels against the dequantize-then-float32 twins, the store's
// byte accounting and refusals, and KIVI through the public policy API.
let wasm: CreatedBackend
let heap: Heap
let model: LlamaModel
beforeAll(async () => {
  ;({ wasm, heap } = await wasmAndReference())
  model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
})
afterAll(() => model?.dispose())

const INT_FORMATS: PageFormat[] = ['int8', 'int4', 'int2', 'int1']
const BITS: Record<string, number> = { int8: 8, int4: 4, int2: 2, int1: 1 }

/** packs rows [n][width] as keys or values into fresh page bytes; returns the read-back rows and each element's group scale */
function roundTrip(format: PageFormat, role: 'key' | 'value', x: Float32Array, n: number, width: number, pt = 64) {
  const lay = packedLayout(format, role, pt, width)
  const back = new Float32Array(n * width)
  const scale = new Float32Array(n * width)
  for (let p = 0; p * pt < n; p++) {
    const page = new Uint8Array(lay.bytes)
    const rows = Math.min(pt, n - p * pt)
    if (role === 'key') for (let t = 0; t < rows; t += 32) packKeyGroup(x, (p * pt + t) * width, width, Math.min(32, rows - t), lay, page, t)
    else for (let t = 0; t < rows; t++) packValueRow(x, (p * pt + t) * width, lay, page, t)
    for (let t = 0; t < rows; t++) {
      const i = p * pt + t
      if (role === 'key') unpackKeyRow(page, lay, t, back, i * width)
      else unpackValueRow(page, lay, t, back, i * width)
      for (let c = 0; c < width; c++) {
        const at = role === 'key' ? keyGroupAt(lay, Math.floor(t / 32), c) : valueGroupAt(lay, t, Math.floor(c / 32))
        scale[i * width + c] = groupMeta(page, at.meta, lay).scale
      }
    }
  }
  return { back, scale, lay }
}

/** the bound each format implies: half a step for integer codes; ternary: s/2 inside [-1.5s, 1.5s], |x| - s beyond */
function withinBound(format: PageFormat, x: Float32Array, back: Float32Array, scale: Float32Array): void {
  let worst = 0
  for (let i = 0; i < x.length; i++) {
    const bound = format === 'ternary' ? Math.max(scale[i] / 2, Math.abs(x[i]) - scale[i]) : scale[i] / 2
    const err = Math.abs(x[i] - back[i]) - (bound * (1 + 1e-6) + 1e-6 * Math.abs(x[i]))
    worst = Math.max(worst, err)
  }
  expect(worst).toBeLessThanOrEqual(0)
}

/** real keys and values of the fixture model after a 200-token prompt, layer 3 head 1: [n][64] each */
function fixtureRows(): { k: Float32Array; v: Float32Array; n: number } {
  const cache = model.newCache()
  model.prefill([0, ...Array.from({ length: 199 }, (_, i) => 2 + ((i * 7919) % 4000))], cache)
  const out = { k: cache.readKeys(3, 1), v: cache.readValues(3, 1), n: cache.length(3, 1) }
  cache.dispose()
  return out
}

describe('float16 metadata', () => {
  it.each([0, 1, -1, 0.1, -0.1, 3.14159, 65504, 1e-7, -1e-7, 2 ** -24, 123.456])('rounds %f down and up around it', (x) => {
    expect(halfToFloat(halfDown(x))).toBeLessThanOrEqual(x)
    expect(halfToFloat(halfUp(x))).toBeGreaterThanOrEqual(x)
    expect(Math.abs(halfToFloat(floatToHalf(x)) - x)).toBeLessThanOrEqual(Math.max(Math.abs(x) * 2 ** -11, 2 ** -25))
  })
})

describe('round trip of packed pages', () => {
  const grid = [...INT_FORMATS, 'ternary' as PageFormat].flatMap((f) =>
    (['key', 'value'] as const).flatMap((role) => [[f, role, 70, 64], [f, role, 33, 40], [f, role, 1, 8]] as const),
  )
  it.each(grid)('%s %s rows (%i x %i, random) read back within the format bound', (format, role, n, width) => {
    const x = normals(rng(n * width), n * width)
    for (let i = 0; i < x.length; i += 17) x[i] *= 8 // outliers inside groups
    const { back, scale } = roundTrip(format, role, x, n, width)
    withinBound(format, x, back, scale)
  })

  it.each([...INT_FORMATS, 'ternary' as PageFormat])('%s on the fixture model\'s real keys and values reads back within the bound', (format) => {
    const { k, v, n } = fixtureRows()
    for (const [role, x] of [['key', k], ['value', v]] as const) {
      const { back, scale } = roundTrip(format, role, x, n, 64)
      withinBound(format, x, back, scale)
    }
  })

  it('int codes follow min-max: a group 0..15 in int4 reads back exactly, its codes are the values', () => {
    const x = Float32Array.from({ length: 32 }, (_, i) => i % 16)
    const { back, lay } = roundTrip('int4', 'value', x, 1, 32)
    expect(Array.from(back)).toEqual(Array.from(x))
    const page = new Uint8Array(lay.bytes)
    packValueRow(x, 0, lay, page, 0)
    expect(Array.from({ length: 32 }, (_, e) => codeAt(page, 0, e, lay))).toEqual(Array.from(x))
    expect(groupMeta(page, lay.metaOffset, lay)).toEqual({ scale: 1, min: 0 })
  })

  it('ternary reads back as s * t with s = mean |x| and threshold s / 2 (not the released dequantizer)', () => {
    const x = Float32Array.from([2, -2, 0.4, -0.4, 1.2, -1.2, 0, 0, ...new Array(24).fill(0)])
    const s = halfToFloat(floatToHalf(7.2 / 32))
    const { back } = roundTrip('ternary', 'value', x, 1, 32)
    expect(Array.from(back.subarray(0, 8))).toEqual([s, -s, s, -s, s, -s, 0, 0])
  })
})

/** a cache of n random tokens per head (2 heads of d), all of them packed in `format` */
function packedCache(n: number, d: number, format: PageFormat, seed: number): PagedKVCache {
  const cache = new PagedKVCache(wasm, { layers: 1, kvHeads: 2, headDim: d, pageTokens: 64 })
  const r = rng(seed)
  cache.append(0, normals(r, n * 2 * d), normals(r, n * 2 * d), Int32Array.from({ length: n }, (_, i) => i))
  cache.apply({ heads: [], quantize: [0, 1].map((head) => ({ layer: 0, head, upto: n, keys: format, values: format })) })
  return cache
}

describe('fused packed kernels equal dequantize-then-float32', () => {
  const twin = () => referencePackedKernels(heap)
  const grid = INT_FORMATS.flatMap((f) => [1, 31, 32, 33, 130].flatMap((n) => [[f, n, 64, 3], [f, n, 40, 1], [f, n, 64, 2], [f, n, 64, 5]] as const))
  it.each(grid)('%s keys: %i tokens of %i channels, %i query heads: scores within float32 rounding', (format, n, d, qHeads) => {
    const cache = packedCache(n, d, format, n * d + qHeads)
    const seg = cache.segments(0, 1)[0]
    expect(seg.format).toBe(format)
    const q = heap.f32From(normals(rng(7), qHeads * d))
    const out = heap.allocF32(qHeads * n)
    const ref = heap.allocF32(qHeads * n)
    const scratch = heap.allocF32(qHeads * (d + 1))
    wasm.scorePackedKeys!(q.ptr, qHeads, d, seg.kTable, 64, n, BITS[format], 0, 0.125, out.ptr, scratch.ptr)
    twin().scorePackedKeys(q.ptr, qHeads, d, seg.kTable, 64, n, BITS[format], 0, 0.125, ref.ptr, 0)
    // float32 rounding of a d-term dot product: a few ulps of sum |q_c k_c|
    const k = cache.readKeys(0, 1)
    for (let h = 0; h < qHeads; h++) {
      for (let i = 0; i < n; i++) {
        let mag = 0
        for (let c = 0; c < d; c++) mag += Math.abs(q.view[h * d + c] * k[i * d + c])
        expect(Math.abs(out.view[h * n + i] - ref.view[h * n + i])).toBeLessThanOrEqual(0.125 * mag * 4e-6 + 1e-30)
      }
    }
    for (const b of [q, out, ref, scratch]) b.free()
    cache.dispose()
  })

  it.each(INT_FORMATS.flatMap((f) => [[f, 1, 64, 3], [f, 77, 64, 3], [f, 200, 40, 2], [f, 64, 64, 1]] as const))(
    '%s attention: %i tokens of %i channels, %i rows: output and log-sum-exp within float32 rounding',
    (format, n, d, rows) => {
      const cache = packedCache(n, d, format, 99 + n)
      const seg = cache.segments(0, 0)[0]
      const q = heap.f32From(normals(rng(3), rows * d))
      const bufs = [heap.allocF32(rows * d), heap.allocF32(rows * d), heap.allocF32(rows), heap.allocF32(rows)]
      const scratch = heap.allocF32(packedAttendScratch(rows, d, d, n))
      const [out, ref, lse, lseRef] = bufs
      wasm.attendPacked!(q.ptr, rows, d, d, seg.kTable, seg.vTable, 64, n, BITS[format], 0, BITS[format], 0.125, out.ptr, d, lse.ptr, scratch.ptr)
      twin().attendPacked(q.ptr, rows, d, d, seg.kTable, seg.vTable, 64, n, BITS[format], 0, BITS[format], 0.125, ref.ptr, d, lseRef.ptr, 0)
      const v = cache.readValues(0, 0)
      const vmax = v.reduce((m, x) => Math.max(m, Math.abs(x)), 0)
      for (let i = 0; i < rows * d; i++) expect(Math.abs(out.view[i] - ref.view[i])).toBeLessThanOrEqual(vmax * 2e-5)
      for (let r = 0; r < rows; r++) expect(Math.abs(lse.view[r] - lseRef.view[r])).toBeLessThanOrEqual(2e-5 * Math.max(1, Math.abs(lseRef.view[r])))
      for (const b of [q, scratch, ...bufs]) b.free()
      cache.dispose()
    },
  )
})

describe('packed segments in the store', () => {
  it.each(INT_FORMATS)('%s: bytes are the pages\' own, pro rata, and the float rows\' pages are freed', (format) => {
    const n = 200
    const cache = new PagedKVCache(wasm, { layers: 1, kvHeads: 2, headDim: 64, pageTokens: 64 })
    const r = rng(1)
    cache.append(0, normals(r, n * 128), normals(r, n * 128), Int32Array.from({ length: n }, (_, i) => i))
    const before = cache.bytes()
    expect(before.hot).toBe(2 * n * 128 * 4)
    cache.apply({ heads: [], quantize: [0, 1].map((head) => ({ layer: 0, head, upto: 160, keys: format, values: format })) })
    const b = cache.bytes()
    const perPage = pageBytes(format, 'key', 64, 64) + pageBytes(format, 'value', 64, 64)
    expect(b.quantized).toBeCloseTo(2 * (160 / 64) * perPage, 6)
    expect(b.hot).toBe(2 * 40 * 128 * 4)
    expect(b.total).toBe(b.hot + b.quantized)
    expect(cache.store.liveBytes.wasm).toBe(2 * (3 * perPage + 64 * 128 * 4))
    expect(cache.positions(0, 0)).toEqual(Int32Array.from({ length: n }, (_, i) => i))
    cache.dispose()
  })

  it('KIVI-2 pages take at least 5x fewer bytes per token than float16, metadata included', () => {
    const f16 = pageBytes('float16', 'key', 64, 64) + pageBytes('float16', 'value', 64, 64)
    expect(f16 / (pageBytes('int2', 'key', 64, 64) + pageBytes('int2', 'value', 64, 64))).toBeGreaterThanOrEqual(5)
  })

  it('attention over packed + float rows equals attention over their dequantized floats', () => {
    const n = 150
    const cache = new PagedKVCache(wasm, { layers: 1, kvHeads: 2, headDim: 64, pageTokens: 64 })
    const r = rng(5)
    cache.append(0, normals(r, n * 128), normals(r, n * 128), Int32Array.from({ length: n }, (_, i) => i))
    cache.apply({ heads: [], quantize: [0, 1].map((head) => ({ layer: 0, head, upto: 96, keys: 'int4', values: 'int2' })) })
    expectAttentionOverReadBack(wasm, heap, cache, n, 9)
    cache.dispose()
  })

  it('refuses bad quantization and eviction of packed slots, naming the value, and changes nothing', () => {
    const cache = packedCache(64, 64, 'int2', 3)
    const r = rng(2)
    cache.append(0, normals(r, 10 * 128), normals(r, 10 * 128), Int32Array.from({ length: 10 }, (_, i) => 64 + i))
    const before = cache.bytes()
    const q = (o: object) => ({ heads: [], quantize: [{ layer: 0, head: 0, upto: 74, keys: 'int2', values: 'int2', ...o }] }) as never
    expect(() => cache.apply(q({ upto: 75 }))).toThrow(/upto = 75 is outside \[64, 74\]/)
    expect(() => cache.apply(q({ keys: 'float16' }))).toThrow(/keys: float16 is not an integer key format/)
    expect(() => cache.apply(q({ keys: 'ternary' }))).toThrow(/keys: ternary is not an integer key format/)
    expect(() => cache.apply(q({ values: 'float16' }))).toThrow(/values: float16 is not an integer or ternary value format/)
    expect(() => cache.apply({ heads: [{ layer: 0, head: 0, keep: Int32Array.from({ length: 70 }, (_, i) => i + 4) }] })).toThrow(/slot 0 .* is packed/)
    expect(() => cache.apply({ heads: [], evictions: [{ layer: 0, head: 1, evict: Int32Array.of(3) }] })).toThrow(/evicts slot 3 .* inside its 64 packed slots/)
    expect(cache.bytes()).toEqual(before)
    // evicting float slots after the packed ones is fine
    cache.apply({ heads: [{ layer: 0, head: 0, keep: Int32Array.from({ length: 70 }, (_, i) => i) }] })
    expect(cache.length(0, 0)).toBe(70)
    const pre = new PagedKVCache(wasm, { layers: 1, kvHeads: 1, headDim: 64, keys: 'pre-rope' })
    pre.append(0, new Float32Array(64 * 64), new Float32Array(64 * 64), Int32Array.from({ length: 64 }, (_, i) => i))
    expect(() => pre.apply({ heads: [], quantize: [{ layer: 0, head: 0, upto: 64, keys: 'int2', values: 'int2' }] })).toThrow(/before RoPE/)
    pre.dispose()
    cache.dispose()
  })

  it('packing on in another format, or after a partial key group, starts a new packed segment', () => {
    const cache = packedCache(40, 64, 'int2', 6)
    const r = rng(7)
    cache.append(0, normals(r, 50 * 128), normals(r, 50 * 128), Int32Array.from({ length: 50 }, (_, i) => 40 + i))
    const keys = cache.readKeys(0, 0)
    cache.apply({ heads: [], quantize: [{ layer: 0, head: 0, upto: 60, keys: 'int2', values: 'int2' }, { layer: 0, head: 0, upto: 80, keys: 'int8', values: 'int4' }] })
    expect(cache.segments(0, 0).map((g) => [g.format, g.valueFormat, g.n])).toEqual([['int2', 'int2', 40], ['int2', 'int2', 20], ['int8', 'int4', 20], ['float32', 'float32', 10]])
    expect(cache.readKeys(0, 0).subarray(0, 40 * 64)).toEqual(keys.subarray(0, 40 * 64))
    expect(() => cache.apply({ heads: [], quantize: [{ layer: 0, head: 0, upto: 85, keys: 'int2', values: 'int2' }, { layer: 0, head: 0, upto: 84, keys: 'int2', values: 'int2' }] })).toThrow(/upto = 84 is outside \[85, 90\]/)
    cache.dispose()
  })

  it('ThinK\'s channel-pruned keys pack with their own channels; attention over them equals the dequantized floats\'', () => {
    const n = 150
    const cache = new PagedKVCache(wasm, { layers: 1, kvHeads: 2, headDim: 64, pageTokens: 64 })
    const r = rng(11)
    cache.append(0, normals(r, n * 128), normals(r, n * 128), Int32Array.from({ length: n }, (_, i) => i))
    const channels = Int32Array.from({ length: 40 }, (_, i) => i + (i >= 20 ? 10 : 0))
    const keep = Int32Array.from({ length: n }, (_, i) => i)
    cache.apply({ heads: [0, 1].map((head) => ({ layer: 0, head, keep, keyChannels: { channels, upto: 100 } })) })
    const prunedKeys = cache.readKeys(0, 0)
    const bytesBefore = cache.bytes().total
    cache.apply({ heads: [], quantize: [0, 1].map((head) => ({ layer: 0, head, upto: 128, keys: 'int4', values: 'int4' })) })
    expect(cache.segments(0, 0).map((g) => [g.format, g.n, g.d, g.channels?.length ?? null])).toEqual([['int4', 100, 40, 40], ['int4', 28, 64, null], ['float32', 22, 64, null]])
    expect(cache.bytes().total).toBeLessThan(bytesBefore / 3)
    const back = cache.readKeys(0, 0)
    for (let i = 0; i < 100; i++) for (let c = 0; c < 64; c++) {
      if (!channels.includes(c)) expect(back[i * 64 + c]).toBe(0)
      else expect(Math.abs(back[i * 64 + c] - prunedKeys[i * 64 + c])).toBeLessThan(0.6)
    }
    // attention over [packed pruned][packed whole][float] equals a float cache of the read-back rows
    // (the pruned channels read as 0, so the dot products agree)
    expectAttentionOverReadBack(wasm, heap, cache, n, 12)
    cache.dispose()
  })

  it('a fork shares the packed pages; rollback into them keeps the rest readable', () => {
    const cache = packedCache(128, 64, 'int4', 4)
    const keys = cache.readKeys(0, 0)
    const live = cache.store.liveBytes.wasm
    const f = cache.fork()
    expect(cache.store.liveBytes.wasm).toBe(live)
    expect(f.readKeys(0, 0)).toEqual(keys)
    f.rollback(100)
    expect(f.readKeys(0, 0)).toEqual(keys.subarray(0, 100 * 64))
    expect(cache.readKeys(0, 0)).toEqual(keys)
    f.dispose()
    cache.dispose()
  })
})

describe('KIVI through the policy API', () => {
  it.each([
    ['kivi:bits=2', 500, 'int2', 352],
    ['kivi:bits=4,residual=32', 500, 'int4', 448],
    ['kivi:residual=0', 64, 'int2', 64],
    ['kivi', 100, 'float32', 0],
  ] as const)('%s on a %i-token fixture prompt packs the oldest slots (%s), keeping the newest in float32', async (spec, len, format, packed) => {
    const prompt = [0, ...Array.from({ length: len - 1 }, (_, i) => 2 + ((i * 7919) % 4000))]
    let seen: { format: string; n: number }[] = []
    const policy = createPolicy(spec, model.config)!
    const r = model.generate(prompt, {
      maxNewTokens: 3,
      policy: {
        ...policy,
        start() {
          const s = policy.start()
          return { ...s, onDecodeStep: (ctx) => ((seen = ctx.cache.segments(5, 1).map((g) => ({ format: g.format, n: g.n }))), s.onDecodeStep?.(ctx) ?? null) }
        },
      },
    })
    const out = (await r.result) as { stats: { kvBytes: { quantized: number } } }
    expect(seen[0]).toEqual({ format, n: packed || len + 2 })
    if (packed) expect(out.stats.kvBytes.quantized).toBeGreaterThan(0)
  })

  it('composes after prefill-time eviction and ThinK, and refuses decode-time eviction or pre-RoPE keys beside it', () => {
    expect(createPolicy('snapkv:budget=0.25+kivi:bits=2', model.config)!.name).toBe('snapkv+kivi')
    expect(createPolicy('kivi:bits=2+snapkv:budget=0.25', model.config)!.name).toBe('snapkv+kivi')
    expect(() => createPolicy('h2o:every=1+kivi', model.config)).toThrow(PolicyCompositionError)
    expect(createPolicy('kivi+think', model.config)!.name).toBe('think+kivi')
    expect(() => createPolicy('think+kivi+h2o:every=2', model.config)).toThrow(PolicyCompositionError)
    expect(() => createPolicy('streamingllm:rerotate=true+kivi', model.config)).toThrow(/stores keys before RoPE/)
    expect(() => createPolicy('kivi:bits=3', model.config)).toThrow(/bits must be 1, 2, 4 or 8, got 3/)
  })
})

describe('MiKV through the policy API', () => {
  it.each([
    [100, 0.25, 32],
    [100, 0, 32],
    [40, 0.5, 0],
    [20, 0.5, 32],
  ])('%i tokens, %f important, window %i: heaviest rows packed in int8 behind the int2 rest, window in float32', (n, important, residual) => {
    const cache = new PagedKVCache(wasm, { layers: 1, kvHeads: 2, headDim: 64, pageTokens: 64 })
    const r = rng(n)
    cache.append(0, normals(r, n * 128), normals(r, n * 128), Int32Array.from({ length: n }, (_, i) => 1000 + i))
    const mass = Float32Array.from({ length: 2 * n }, () => r())
    const before = [0, 1].map((h) => ({ k: cache.readKeys(0, h), pos: cache.positions(0, h) }))
    const model = { layers: 1, qHeads: 2, kvHeads: 2, headDim: 64, group: 1 }
    const s = createPolicy(`mikv:important=${important},residual=${residual}`, model)!.start()
    const d = s.onPrefillEnd!({ cache, model, hooks: [{ layer: 0, attentionMass: mass }], promptLength: n + 1, step: 0 } as never)
    const old = Math.max(0, n - residual)
    if (!old) {
      expect(d).toBeNull()
      return
    }
    cache.apply(d!)
    const k = Math.round(important * old)
    for (const h of [0, 1]) {
      // reference: the k heaviest of the old slots by mass (ties to the lower slot), ascending
      const top = Array.from({ length: old }, (_, i) => i).sort((a, b) => mass[h * n + b] - mass[h * n + a] || a - b).slice(0, k).sort((a, b) => a - b)
      const rest = Array.from({ length: old }, (_, i) => i).filter((i) => !top.includes(i))
      const order = [...rest, ...top, ...Array.from({ length: n - old }, (_, j) => old + j)]
      expect(Array.from(cache.positions(0, h))).toEqual(order.map((i) => before[h].pos[i]))
      const segs = cache.segments(0, h).map((g) => [g.format, g.n])
      expect(segs).toEqual([...(rest.length ? [['int2', rest.length]] : []), ...(k ? [['int8', k]] : []), ...(n - old ? [['float32', n - old]] : [])])
      // the window reads back exactly; int8 rows within 1/255 of their group's range
      const back = cache.readKeys(0, h)
      order.forEach((src, slot) => {
        if (slot >= old) expect(back.subarray(slot * 64, slot * 64 + 64)).toEqual(before[h].k.subarray(src * 64, src * 64 + 64))
      })
      for (let slot = rest.length; slot < old; slot++) {
        for (let c = 0; c < 64; c++) expect(Math.abs(back[slot * 64 + c] - before[h].k[order[slot] * 64 + c])).toBeLessThan(0.05)
      }
    }
    cache.dispose()
  })
})
