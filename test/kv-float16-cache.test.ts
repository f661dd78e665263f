import { beforeAll, describe, expect, it } from 'vitest'
import type { CreatedBackend } from '../src/backend/index.js'
import { floatToHalf, halfToFloat } from '../src/backend/half.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { attendCache, attendCacheAsync } from '../src/cache/attention.js'
import { CacheError } from '../src/cache/errors.js'
import type { Decision } from '../src/cache/types.js'
import { normals, rng, wasmAndReference } from './kernels-helpers.js'

// The KV store with kvDtype 'float16': half the bytes, rows rounded once on append, and every store
// operation and attention path giving exactly what a float32 cache holding the same (rounded) values gives.
let wasm: CreatedBackend
beforeAll(async () => {
  ;({ wasm } = await wasmAndReference())
})

const L = 2, H = 2, D = 16, PT = 8
const round = (x: Float32Array) => Float32Array.from(x, (v) => halfToFloat(floatToHalf(v)))
const bits = (a: Float32Array) => Array.from(new Uint32Array(a.slice().buffer))

/** a float16 cache fed rows x, and a float32 cache fed the rows x rounds to */
function pair(n: number, seed: number, opts: { pageTokens?: number; keys?: 'pre-rope' | 'post-rope' } = {}): { f16: PagedKVCache; f32: PagedKVCache } {
  const shape = { layers: L, kvHeads: H, headDim: D, pageTokens: opts.pageTokens ?? PT, keys: opts.keys }
  const f16 = new PagedKVCache(wasm, { ...shape, kvDtype: 'float16' })
  const f32 = new PagedKVCache(wasm, shape)
  const r = rng(seed)
  for (let l = 0; l < L; l++) {
    const k = normals(r, n * H * D).map((v) => v * 3)
    const v = normals(r, n * H * D)
    const pos = Int32Array.from({ length: n }, (_, i) => i)
    f16.append(l, k, v, pos)
    f32.append(l, round(k), round(v), pos)
  }
  return { f16, f32 }
}

function expectSameRows(a: PagedKVCache, b: PagedKVCache, what: string): void {
  for (let l = 0; l < L; l++) {
    for (let h = 0; h < H; h++) {
      expect(Array.from(a.positions(l, h)), `${what}: positions (${l}, ${h})`).toEqual(Array.from(b.positions(l, h)))
      expect(bits(a.readKeys(l, h)), `${what}: keys (${l}, ${h})`).toEqual(bits(b.readKeys(l, h)))
      expect(bits(a.readValues(l, h)), `${what}: values (${l}, ${h})`).toEqual(bits(b.readValues(l, h)))
    }
  }
}

describe('a float16 cache holds the rounded rows in half the bytes', () => {
  it.each([1, 7, 8, 9, 100])('%i tokens: half the bytes of float32 in every count, rows read back as rounded', (n) => {
    const { f16, f32 } = pair(n, n)
    expect(f16.bytesPerToken * 2).toBe(f32.bytesPerToken)
    const a = f16.bytes()
    const b = f32.bytes()
    expect(a.hot * 2).toBe(b.hot)
    expect(a.total * 2).toBe(b.total)
    expect(a.hot).toBe(n * L * H * 2 * D * 2)
    expect(f16.store.liveBytes.wasm * 2).toBe(f32.store.liveBytes.wasm)
    expect(f16.segments(0, 0)[0].format).toBe('float16')
    expectSameRows(f16, f32, 'append')
    f16.dispose()
    f32.dispose()
  })

  it('values beyond +-65504 saturate there; subnormal halves survive', () => {
    const c = new PagedKVCache(wasm, { layers: 1, kvHeads: 1, headDim: 4, kvDtype: 'float16' })
    c.append(0, Float32Array.of(1e6, -7e4, 65519, 2 ** -24), Float32Array.of(Infinity, -Infinity, 3 * 2 ** -25, -0), Int32Array.of(0))
    expect(Array.from(c.readKeys(0, 0))).toEqual([65504, -65504, 65504, 2 ** -24])
    expect(Array.from(c.readValues(0, 0))).toEqual([65504, -65504, 2 * 2 ** -24, -0])
    c.dispose()
  })

  it('a NaN is refused (CacheError) through append and appendFromHeap, and the cache is left as it was', () => {
    const { f16 } = pair(5, 2)
    const before = [f16.readKeys(1, 1), f16.readValues(1, 1), f16.positions(1, 1)].map((a) => Array.from(a))
    const k = new Float32Array(2 * H * D).fill(1)
    const v = k.slice()
    v[D + 3] = NaN
    expect(() => f16.append(1, k, v, Int32Array.of(5, 6))).toThrow(/NaN/)
    const kp = wasm.heap.f32From(k)
    const vp = wasm.heap.f32From(v)
    expect(() => f16.appendFromHeap(1, kp.ptr, vp.ptr, Int32Array.of(5, 6))).toThrow(CacheError)
    kp.free()
    vp.free()
    expect(f16.length(1, 1)).toBe(5)
    expect([f16.readKeys(1, 1), f16.readValues(1, 1), f16.positions(1, 1)].map((a) => Array.from(a))).toEqual(before)
    expect(() => f16.overwrite(1, 1, 0, new Float32Array(D).fill(NaN), new Float32Array(D))).toThrow(/NaN/)
    f16.dispose()
  })

  it('an unknown kvDtype is a CacheError naming it', () => {
    expect(() => new PagedKVCache(wasm, { layers: 1, kvHeads: 1, headDim: 4, kvDtype: 'bfloat16' as 'float16' })).toThrow(/kvDtype .*"bfloat16"/)
  })
})

describe('store operations on float16 pages equal them on float32 pages holding the same values', () => {
  const n = 30
  const ops: [string, (c: PagedKVCache) => void][] = [
    ['compaction', (c) => c.apply({ heads: [{ layer: 0, head: 1, keep: Int32Array.of(0, 3, 4, 9, 17, 29) }, { layer: 1, head: 0, keep: Int32Array.from({ length: 20 }, (_, i) => i + 10) }] })],
    ['order-free evictions', (c) => c.apply({ heads: [], evictions: [{ layer: 0, head: 0, evict: Int32Array.of(1, 8, 28, 29) }, { layer: 1, head: 1, evict: Int32Array.of(0) }] })],
    ['extra tokens', (c) => c.apply({ heads: [{ layer: 1, head: 1, keep: Int32Array.of(2, 5), extra: [{ key: new Float32Array(D).fill(0.125), value: new Float32Array(D).fill(-3.25), position: 99 }] }] })],
    ['channel pruning (ThinK)', (c) => c.apply({ heads: [{ layer: 0, head: 0, keep: Int32Array.from({ length: 25 }, (_, i) => i), keyChannels: { channels: Int32Array.of(1, 2, 7, 15), upto: 20 } }] })],
    ['rollback', (c) => c.rollback(11)],
    ['overwrite', (c) => c.overwrite(1, 0, 4, new Float32Array(D).fill(0.5), new Float32Array(D).fill(2))],
    ['fork then append to both', (c) => {
      const f = c.fork()
      const row = new Float32Array(H * D).fill(0.25)
      f.append(0, row, row, Int32Array.of(30))
      c.append(0, row, row, Int32Array.of(30))
      f.dispose()
    }],
    ['host tier and back', (c) => {
      c.moveTo('host', { layer: 1 })
      c.moveTo('wasm', { layer: 1, head: 0 })
    }],
  ]
  it.each(ops)('%s', (_what, op) => {
    const { f16, f32 } = pair(n, 9)
    op(f16)
    op(f32)
    expectSameRows(f16, f32, _what)
    expect(f16.bytes().total * 2).toBe(f32.bytes().total)
    f16.dispose()
    f32.dispose()
  })

  it('merges: the float16 pivot is the float32 merge rounded once', () => {
    const { f16, f32 } = pair(n, 4)
    const d: Decision = { heads: [{ layer: 0, head: 1, keep: Int32Array.of(0, 5, 6), merges: [{ pivot: 5, members: Int32Array.of(1, 2, 3), weights: Float32Array.of(0.5, 1, 2) }] }] }
    f16.apply(d)
    f32.apply(d)
    expect(bits(f16.readKeys(0, 1))).toEqual(bits(round(f32.readKeys(0, 1))))
    expect(bits(f16.readValues(0, 1))).toEqual(bits(round(f32.readValues(0, 1))))
    f16.dispose()
    f32.dispose()
  })
})

describe('attention over float16 pages', () => {
  const qHeads = 4
  function attend(c: PagedKVCache, layer: number, T: number, select?: (Int32Array | null)[], rotate = false) {
    const heap = wasm.heap
    const q = heap.f32From(normals(rng(layer + T), T * qHeads * D))
    const out = heap.allocF32(T * qHeads * D)
    const lse = heap.allocF32(T * qHeads)
    const rot = rotate ? (x: number, rows: number, heads: number, pos: ArrayLike<number>) => {
      for (let r = 0; r < rows; r++) for (let h = 0; h < heads; h++) for (let i = 0; i < D; i += 2) {
        const a = (x >> 2) + (r * heads + h) * D + i
        const t = pos[r] * 0.01 * (i + 1)
        const x0 = heap.F32[a], x1 = heap.F32[a + 1]
        heap.F32[a] = x0 * Math.cos(t) - x1 * Math.sin(t)
        heap.F32[a + 1] = x1 * Math.cos(t) + x0 * Math.sin(t)
      }
    } : undefined
    attendCache(wasm, c, { layer, q: q.ptr, T, qHeads, out: out.ptr, scale: 0.25, select, lse: lse.ptr, rotate: rot })
    const r = [...out.view, ...lse.view]
    for (const b of [q, out, lse]) b.free()
    return Float32Array.from(r)
  }

  it.each([[1, 64], [3, 33], [1, 200]])('decode (T=%i, n=%i): float16 equals float32 over the same values bit for bit, dense and selected; selecting every slot is dense', (T, n) => {
    const { f16, f32 } = pair(n, n + T, { pageTokens: 16 })
    expect(bits(attend(f16, 1, T))).toEqual(bits(attend(f32, 1, T)))
    if (T === 1) {
      const all = Array.from({ length: H }, () => Int32Array.from({ length: n }, (_, i) => i))
      expect(bits(attend(f16, 0, 1, all))).toEqual(bits(attend(f16, 0, 1)))
      const some = Array.from({ length: H }, (_, h) => Int32Array.from({ length: n }, (_, i) => i).filter((i) => (i + h) % 3 === 0))
      expect(bits(attend(f16, 0, 1, some))).toEqual(bits(attend(f32, 0, 1, some)))
    }
    f16.dispose()
    f32.dispose()
  })

  it('channel-pruned heads, host-tier heads (awaited) and pre-RoPE keys: float16 equals float32 over the same values', async () => {
    const { f16, f32 } = pair(40, 1)
    const prune: Decision = { heads: [0, 1].map((h) => ({ layer: 0, head: h, keep: Int32Array.from({ length: 40 }, (_, i) => i), keyChannels: { channels: Int32Array.of(0, 3, 5, 6, 12), upto: 30 } })) }
    f16.apply(prune)
    f32.apply(prune)
    expect(bits(attend(f16, 0, 1))).toEqual(bits(attend(f32, 0, 1)))
    for (const c of [f16, f32]) c.moveTo('host', { layer: 1 })
    const viaHost = async (c: PagedKVCache, select?: (Int32Array | null)[]) => {
      const heap = wasm.heap
      const q = heap.f32From(normals(rng(8), qHeads * D))
      const out = heap.allocF32(qHeads * D)
      await attendCacheAsync(wasm, c, { layer: 1, q: q.ptr, T: 1, qHeads, out: out.ptr, scale: 0.25, select })
      const r = out.view.slice()
      q.free()
      out.free()
      return r
    }
    const sel = [Int32Array.of(0, 7, 39), null]
    expect(bits(await viaHost(f16, sel))).toEqual(bits(await viaHost(f32, sel)))
    expect(bits(await viaHost(f16))).toEqual(bits(await viaHost(f32)))
    f16.dispose()
    f32.dispose()
    const pre = pair(20, 3, { keys: 'pre-rope' })
    expect(bits(attend(pre.f16, 1, 2, undefined, true))).toEqual(bits(attend(pre.f32, 1, 2, undefined, true)))
    pre.f16.dispose()
    pre.f32.dispose()
  })
})
