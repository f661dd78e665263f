import { beforeAll, describe, expect, it } from 'vitest'
import type { CreatedBackend } from '../src/backend/index.js'
import type { Heap } from '../src/backend/heap.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { attendCache } from '../src/cache/attention.js'
import { pageBytes, type PageFormat } from '../src/cache/formats.js'
import { normals, rng, wasmAndReference } from './kernels-helpers.js'
import { attendSelection, cell, GROUP, HEAD_DIM, hostCache, KV_HEADS, referenceSelection, selection } from '../bench/host-tier.js'

// The KV store: page formats with their byte accounting, reference-counted pages shared by forks
// (copy-on-write), rollback, in-place overwrite, tiers (arena and host ArrayBuffers) with counted moves,
// and compaction that moves each kept row at most once, by the kernel.
let wasm: CreatedBackend
let ref: CreatedBackend
let heap: Heap
beforeAll(async () => {
  ;({ wasm, ref, heap } = await wasmAndReference())
})

const L = 2, H = 2, D = 8, PT = 4

function cacheOf(n: number, seed = 1): PagedKVCache {
  const cache = new PagedKVCache(wasm, { layers: L, kvHeads: H, headDim: D, pageTokens: PT })
  appendRandom(cache, n, 0, seed)
  return cache
}
function appendRandom(cache: PagedKVCache, n: number, firstPosition: number, seed: number): void {
  const r = rng(seed)
  for (let l = 0; l < L; l++) cache.append(l, normals(r, n * H * D), normals(r, n * H * D), Int32Array.from({ length: n }, (_, i) => firstPosition + i))
}
const rowsOf = (cache: PagedKVCache, l: number, h: number) => [cache.readKeys(l, h), cache.readValues(l, h), cache.positions(l, h)]

describe('page formats', () => {
  it.each<[PageFormat, 'key' | 'value', number, number, number, number]>([
    // format, role, pageTokens, width, group, bytes (hand-computed: codes + groups x float16 metadata, 16-byte pages;
    // a ternary chunk of 32 takes ceil(32 / 5) = 7 bytes)
    ['float32', 'key', 64, 128, 32, 64 * 128 * 4],
    ['float16', 'value', 64, 128, 32, 64 * 128 * 2],
    ['int8', 'key', 64, 128, 32, 8192 + 128 * 2 * 4],
    ['int4', 'key', 64, 128, 32, 4096 + 128 * 2 * 4],
    ['int4', 'value', 64, 128, 32, 4096 + 64 * 4 * 4],
    ['int2', 'value', 64, 128, 64, 2048 + 64 * 2 * 4],
    ['int1', 'key', 64, 128, 32, 1024 + 128 * 2 * 4],
    ['ternary', 'key', 64, 128, 32, 2 * 128 * 7 + 128 * 2 * 2],
    ['ternary', 'value', 64, 64, 32, 64 * 2 * 7 + 64 * 2 * 2],
    ['int4', 'key', 10, 3, 4, Math.ceil((15 + 3 * 3 * 4) / 16) * 16],
  ])('a %s %s page of %i tokens x %i with groups of %i takes %i bytes', (format, role, pt, width, group, bytes) => {
    expect(pageBytes(format, role, pt, width, group)).toBe(bytes)
  })

  it('refuses an unknown format or a bad size, naming it', () => {
    expect(() => pageBytes('int3' as PageFormat, 'key', 64, 128)).toThrow(/page format must be one of .* got "int3"/)
    expect(() => pageBytes('int4', 'key', 64, 0)).toThrow(/width must be a positive integer, got 0/)
  })
})

describe('compaction', () => {
  it.each([[1, 64], [5, 16], [64, 64], [3, 7], [16, 256], [64, 2048]])('the kernel moves exactly what its twin moves (pageTokens %i, rowBytes %i)', (pt, rowBytes) => {
    const r = rng(pt * 100 + rowBytes)
    const n = 150
    const pages = Array.from({ length: Math.ceil(n / pt) }, () => heap.alloc(pt * rowBytes, 16))
    const table = heap.i32From(pages)
    const keep = Int32Array.from({ length: n }, (_, i) => i).filter((i) => i < 20 || r() < 0.4)
    const keepBuf = heap.i32From(keep)
    const fill = () => pages.forEach((p, i) => heap.U8.set(Uint8Array.from({ length: pt * rowBytes }, (_, j) => (i * 31 + j * 7) & 255), p))
    const snapshot = () => pages.map((p) => heap.U8.slice(p, p + pt * rowBytes))
    fill()
    const movedW = wasm.compactRows(table.ptr, pt, rowBytes, keepBuf.ptr, keep.length)
    const afterW = snapshot()
    fill()
    const movedR = ref.compactRows(table.ptr, pt, rowBytes, keepBuf.ptr, keep.length)
    expect(afterW).toEqual(snapshot())
    expect(movedW).toBe(movedR)
    expect(movedW).toBe(keep.filter((s, j) => s !== j).length)
    table.free()
    keepBuf.free()
    for (const p of pages) heap.release(p)
  })

  // keys and values in one pass (ABI 1.6): the wasm kernel against the TypeScript twin (two compactRows),
  // on random keep lists over key and value rows of different widths, and the edge cases
  const keepCases: [string, number, (r: () => number) => Int32Array][] = [
    ['a random quarter', 150, (r) => Int32Array.from({ length: 150 }, (_, i) => i).filter(() => r() < 0.25)],
    ['random runs after a kept prefix', 150, (r) => Int32Array.from({ length: 150 }, (_, i) => i).filter((i) => i < 20 || r() < 0.7)],
    ['no slot (empty keep list)', 40, () => new Int32Array(0)],
    ['every slot', 40, () => Int32Array.from({ length: 40 }, (_, i) => i)],
    ['one token, the last', 40, () => Int32Array.of(39)],
    ['one token in a one-row stream', 1, () => Int32Array.of(0)],
  ]
  it.each(keepCases.flatMap(([name, n, keep]) => [[1, 16, 32], [5, 48, 16], [64, 256, 256], [3, 8, 2048], [16, 128, 256]].map(([pt, kb, vb]) => [name, n, pt, kb, vb, keep] as const)))(
    'compactRowsKV moves exactly what two compactRows move: %s (n %i, pageTokens %i, key rows %i bytes, value rows %i)',
    (name, n, pt, kRowBytes, vRowBytes, keepOf) => {
      const r = rng(pt * 1000 + kRowBytes + vRowBytes + name.length)
      const keep = keepOf(r)
      const pages = (rowBytes: number) => Array.from({ length: Math.ceil(n / pt) }, () => heap.alloc(pt * rowBytes, 16))
      const kPages = pages(kRowBytes)
      const vPages = pages(vRowBytes)
      const kTable = heap.i32From(kPages)
      const vTable = heap.i32From(vPages)
      const keepBuf = heap.i32From(keep.length ? keep : [0])
      const fill = () => {
        kPages.forEach((p, i) => heap.U8.set(Uint8Array.from({ length: pt * kRowBytes }, (_, j) => (i * 31 + j * 7) & 255), p))
        vPages.forEach((p, i) => heap.U8.set(Uint8Array.from({ length: pt * vRowBytes }, (_, j) => (i * 17 + j * 13 + 5) & 255), p))
      }
      const snapshot = () => [...kPages.map((p) => heap.U8.slice(p, p + pt * kRowBytes)), ...vPages.map((p) => heap.U8.slice(p, p + pt * vRowBytes))]
      fill()
      const movedW = wasm.compactRowsKV(kTable.ptr, vTable.ptr, pt, kRowBytes, vRowBytes, keepBuf.ptr, keep.length)
      const afterW = snapshot()
      fill()
      const movedR = ref.compactRowsKV(kTable.ptr, vTable.ptr, pt, kRowBytes, vRowBytes, keepBuf.ptr, keep.length)
      expect(afterW).toEqual(snapshot())
      expect(movedW).toBe(movedR)
      expect(movedW).toBe(keep.filter((s, j) => s !== j).length)
      // the twin itself, row by row from the filled pages: row j of each stream holds row keep[j]
      fill()
      const before = snapshot()
      ref.compactRowsKV(kTable.ptr, vTable.ptr, pt, kRowBytes, vRowBytes, keepBuf.ptr, keep.length)
      const after = snapshot()
      const rowOf = (pagesBytes: Uint8Array[], rowBytes: number, i: number) => pagesBytes[Math.floor(i / pt)].slice((i % pt) * rowBytes, (i % pt + 1) * rowBytes)
      keep.forEach((s, j) => {
        expect(rowOf(after.slice(0, kPages.length), kRowBytes, j)).toEqual(rowOf(before.slice(0, kPages.length), kRowBytes, s))
        expect(rowOf(after.slice(kPages.length), vRowBytes, j)).toEqual(rowOf(before.slice(kPages.length), vRowBytes, s))
      })
      for (const b of [kTable, vTable, keepBuf]) b.free()
      for (const p of [...kPages, ...vPages]) heap.release(p)
    },
  )

  it('moves no row before the first evicted slot, and each kept row at most once', () => {
    const cache = cacheOf(40)
    const moved0 = cache.store.rowsMoved
    // evicting the last slot moves nothing; evicting slot 30 moves the 9 rows after it
    cache.apply({ heads: [{ layer: 0, head: 0, keep: Int32Array.from({ length: 39 }, (_, i) => i) }] })
    expect(cache.store.rowsMoved - moved0).toBe(0)
    cache.apply({ heads: [{ layer: 0, head: 1, keep: Int32Array.from({ length: 39 }, (_, i) => (i < 30 ? i : i + 1)) }] })
    expect(cache.store.rowsMoved - moved0).toBe(9)
    // one-shot to 25%: every 4th row kept, each moved once (slot 0 stays)
    const before = rowsOf(cache, 1, 0)
    const keep = Int32Array.from({ length: 10 }, (_, i) => 4 * i)
    cache.apply({ heads: [{ layer: 1, head: 0, keep }] })
    expect(cache.store.rowsMoved - moved0).toBe(9 + 9)
    const [k, v, pos] = rowsOf(cache, 1, 0)
    keep.forEach((s, i) => {
      expect(k.slice(i * D, (i + 1) * D)).toEqual(before[0].slice(s * D, (s + 1) * D))
      expect(v.slice(i * D, (i + 1) * D)).toEqual(before[1].slice(s * D, (s + 1) * D))
      expect(pos[i]).toBe(s)
    })
    // the rows past the kept ones are gone: heads hold 39, 39, 10 and 40 rows, (1, 0) in 3 pages
    expect(cache.bytes().hot).toBe((39 + 39 + 10 + 40) * 2 * D * 4)
    expect(cache.segments(1, 0)[0].n).toBe(10)
    cache.dispose()
  })
})

describe('order-free eviction', () => {
  /** position -> [key row, value row] of a head, read back from the cache */
  function byPosition(cache: PagedKVCache, l: number, h: number): Map<number, number[]> {
    const [k, v, pos] = rowsOf(cache, l, h)
    return new Map(Array.from(pos, (p, i) => [p, [...k.slice(i * D, (i + 1) * D), ...v.slice(i * D, (i + 1) * D)]]))
  }

  it.each([[10, 1], [100, 3], [1000, 7], [1000, 1], [64, 64]])('evicting b of n slots (n=%i, b=%i) moves at most b rows and loses no kept row', (n, b) => {
    const cache = cacheOf(n, n + b)
    const r = rng(n * 7 + b)
    const slots = new Set<number>()
    while (slots.size < b) slots.add(Math.floor(r() * n))
    const evict = Int32Array.from([...slots].sort((x, y) => x - y))
    const want = byPosition(cache, 1, 0)
    for (const s of evict) want.delete(s)
    const moved = cache.store.rowsMoved
    cache.apply({ heads: [], evictions: [{ layer: 1, head: 0, evict }] })
    expect(cache.store.rowsMoved - moved).toBeLessThanOrEqual(b)
    expect(cache.length(1, 0)).toBe(n - b)
    expect(byPosition(cache, 1, 0)).toEqual(want)
    expect(cache.bytes().hot).toBe((4 * n - b) * 2 * D * 4)
    cache.dispose()
  })

  it('evicts across segments in two tiers, each filling its own holes', () => {
    const cache = cacheOf(9)
    cache.moveTo('host')
    appendRandom(cache, 6, 9, 4)
    const want = byPosition(cache, 0, 1)
    for (const p of [0, 4, 10, 14]) want.delete(p)
    cache.apply({ heads: [], evictions: [{ layer: 0, head: 1, evict: Int32Array.of(0, 4, 10, 14) }] })
    expect(cache.segments(0, 1).map((s) => [s.tier, s.n])).toEqual([['host', 7], ['wasm', 4]])
    expect(byPosition(cache, 0, 1)).toEqual(want)
    cache.dispose()
  })

  it('refuses a bad eviction before changing anything', () => {
    const cache = cacheOf(5)
    const bytes = cache.bytes()
    expect(() => cache.apply({ heads: [], evictions: [{ layer: 0, head: 0, evict: Int32Array.of(3, 1) }] })).toThrow(/evictions\[0\]\.evict must be strictly ascending/)
    expect(() => cache.apply({ heads: [], evictions: [{ layer: 0, head: 0, evict: Int32Array.of(5) }] })).toThrow(/evictions\[0\]\.evict\[0\] = 5 is outside \[0, 5\)/)
    expect(() => cache.apply({ heads: [{ layer: 0, head: 0, keep: Int32Array.of(0) }], evictions: [{ layer: 0, head: 0, evict: Int32Array.of(1) }] })).toThrow(/\(layer 0, head 0\) appears twice/)
    expect(cache.bytes()).toEqual(bytes)
    cache.dispose()
  })
})

describe('sharing', () => {
  it('a fork shares every page (counted once) until one side writes, and each side reads only its own rows', () => {
    const a = cacheOf(10)
    const liveBefore = a.store.liveBytes.wasm
    const b = a.fork()
    expect(a.store.liveBytes.wasm).toBe(liveBefore)
    expect(b.bytes().shared).toBe(b.bytes().total)
    const prefix = rowsOf(a, 1, 1)
    appendRandom(a, 3, 10, 7)
    appendRandom(b, 3, 10, 8)
    // the first writer copied the partly filled third page (the second then owned the original); the two
    // full pages stay shared: per head 2 shared pages + 2 own pages a side, keys and values
    const pageBytes = PT * D * 4
    expect(a.store.liveBytes.wasm).toBe(L * H * 2 * (2 + 2 + 2) * pageBytes)
    expect(a.bytes().shared).toBe(L * H * 8 * 2 * D * 4)
    for (const c of [a, b]) {
      const [k, , pos] = rowsOf(c, 1, 1)
      expect(k.slice(0, 10 * D)).toEqual(prefix[0])
      expect(Array.from(pos)).toEqual(Array.from({ length: 13 }, (_, i) => i))
    }
    expect(a.readKeys(1, 1).slice(10 * D)).not.toEqual(b.readKeys(1, 1).slice(10 * D))
    // compaction of one side leaves the other alone
    a.apply({ heads: [{ layer: 1, head: 1, keep: Int32Array.of(1, 12) }] })
    expect(b.readKeys(1, 1).slice(0, 10 * D)).toEqual(prefix[0])
    a.dispose()
    expect(b.readKeys(1, 1).slice(0, 10 * D)).toEqual(prefix[0])
    b.dispose()
  })

  it('overwrites a slot in place; a fork keeps the old row', () => {
    const a = cacheOf(9)
    const b = a.fork()
    const old = b.readValues(0, 1).slice(5 * D, 6 * D)
    const key = new Float32Array(D).fill(3), value = new Float32Array(D).fill(-3)
    a.overwrite(0, 1, 5, key, value)
    expect(a.readKeys(0, 1).slice(5 * D, 6 * D)).toEqual(key)
    expect(a.readValues(0, 1).slice(5 * D, 6 * D)).toEqual(value)
    expect(b.readValues(0, 1).slice(5 * D, 6 * D)).toEqual(old)
    expect(() => a.overwrite(0, 1, 9, key, value)).toThrow(/slot 9 is outside \[0, 9\)/)
    expect(() => a.overwrite(0, 1, 0, new Float32Array(3), value)).toThrow(/key must be a Float32Array of 8, got 3/)
    a.dispose()
    b.dispose()
  })

  it('rolls back to a token count: the later positions go, the pages they alone used go back', () => {
    const c = cacheOf(6)
    const before = rowsOf(c, 0, 0)
    const bytes = c.bytes().total
    const live = c.store.liveBytes
    appendRandom(c, 5, 6, 3)
    c.rollback(6)
    expect(rowsOf(c, 0, 0)).toEqual(before)
    expect(c.bytes().total).toBe(bytes)
    expect(c.store.liveBytes).toEqual(live)
    // compacted heads roll back by position too
    c.apply({ heads: [{ layer: 1, head: 0, keep: Int32Array.of(0, 3, 5) }] })
    c.rollback(4)
    expect(Array.from(c.positions(1, 0))).toEqual([0, 3])
    expect(Array.from(c.positions(1, 1))).toEqual([0, 1, 2, 3])
    expect(() => c.rollback(-1)).toThrow(/tokens must be a non-negative integer, got -1/)
    c.dispose()
  })

  it('refuses a rollback that is not a suffix of some head, changing nothing', () => {
    const c = cacheOf(4)
    // a compensation token labelled 9 sits before the token appended at 4
    c.apply({ heads: [{ layer: 0, head: 0, keep: Int32Array.of(0, 1), extra: [{ key: new Float32Array(D), value: new Float32Array(D), position: 9 }] }] })
    appendRandom(c, 1, 4, 2)
    const bytes = c.bytes()
    expect(() => c.rollback(5)).toThrow(/\(layer 0, head 0\) holds position 9 at slot 2, before tokens it keeps: not a suffix/)
    expect(c.bytes()).toEqual(bytes)
    c.dispose()
  })
})

describe('tiers', () => {
  /** plain attention of each query head over rows read back from the cache */
  function plain(cache: PagedKVCache, q: Float32Array, layer: number, qHeads: number): Float32Array {
    const group = qHeads / H
    const out = new Float32Array(qHeads * D)
    for (let g = 0; g < H; g++) {
      const k = cache.readKeys(layer, g), v = cache.readValues(layer, g)
      const n = cache.length(layer, g)
      for (let h = 0; h < group; h++) {
        const qh = g * group + h
        const s = Array.from({ length: n }, (_, i) => {
          let x = 0
          for (let c = 0; c < D; c++) x += q[qh * D + c] * k[i * D + c]
          return x * 0.3
        })
        const m = Math.max(...s)
        const w = s.map((x) => Math.exp(x - m))
        const sum = w.reduce((a, b) => a + b, 0)
        for (let c = 0; c < D; c++) out[qh * D + c] = w.reduce((a, wi, i) => a + wi * v[i * D + c], 0) / sum
      }
    }
    return out
  }
  function decode(cache: PagedKVCache, q: Float32Array, qHeads: number, select?: (Int32Array | null)[]): Float32Array {
    const qb = heap.f32From(q)
    const out = heap.allocF32(q.length)
    attendCache(wasm, cache, { layer: 1, q: qb.ptr, T: 1, qHeads, out: out.ptr, scale: 0.3, select })
    const o = out.view.slice()
    qb.free()
    out.free()
    return o
  }

  it('moves pages to host ArrayBuffers and back as one operation counted in bytes; attention reads both tiers', () => {
    const c = cacheOf(10)
    const hot = c.bytes().hot
    const reservedPages = L * H * 3 * 2 * PT * D * 4
    expect(c.moveTo('host')).toBe(reservedPages)
    expect(c.store.bytesMoved).toBe(reservedPages)
    expect(c.bytes()).toMatchObject({ hot: 0, offloaded: hot, total: hot })
    expect(c.store.liveBytes).toEqual({ wasm: 0, host: reservedPages, gpu: 0 })
    // appends go to a new arena segment after the host one
    appendRandom(c, 1, 10, 5)
    expect(c.segments(1, 0).map((s) => [s.tier, s.n])).toEqual([['host', 10], ['wasm', 1]])
    expect(() => c.view(1, 0)).toThrow(/2 segments/)
    const q = normals(rng(4), 4 * D)
    const want = plain(c, q, 1, 4)
    decode(c, q, 4).forEach((x, i) => expect(x).toBeCloseTo(want[i], 5))
    // a selection across both tiers equals attention over those rows
    const sel = Int32Array.of(0, 7, 10)
    const got = decode(c, q, 4, [sel, sel])
    const sub = new PagedKVCache(wasm, { layers: L, kvHeads: H, headDim: D, pageTokens: PT })
    for (let l = 0; l < L; l++) {
      const k = new Float32Array(3 * H * D), v = new Float32Array(3 * H * D)
      for (let h = 0; h < H; h++) {
        const ks = c.readKeys(l, h), vs = c.readValues(l, h)
        sel.forEach((s, i) => {
          k.set(ks.slice(s * D, (s + 1) * D), (i * H + h) * D)
          v.set(vs.slice(s * D, (s + 1) * D), (i * H + h) * D)
        })
      }
      sub.append(l, k, v, Int32Array.of(0, 7, 10))
    }
    const wantSel = plain(sub, q, 1, 4)
    got.forEach((x, i) => expect(x).toBeCloseTo(wantSel[i], 5))
    // back to the arena: the same bytes move again
    expect(c.moveTo('wasm', { layer: 1, head: 0 })).toBe(3 * 2 * PT * D * 4)
    expect(c.segments(1, 0).map((s) => s.tier)).toEqual(['wasm', 'wasm'])
    expect(c.store.bytesMoved).toBe(reservedPages + 3 * 2 * PT * D * 4)
    sub.dispose()
    c.dispose()
  })

  it.each([
    ['across the boundary', [1, 3, 8, 9, 12, 14]],
    ['all in the second segment', [10, 11]],
    ['all in the first segment', [0, 2, 7]],
    ['every slot', Array.from({ length: 15 }, (_, i) => i)],
    ['none', []],
  ])('keeps a list over two segments in two tiers, in order (%s), as the plain twin says', (_, slots) => {
    const cache = cacheOf(9)
    cache.moveTo('host')
    appendRandom(cache, 6, 9, 4)
    const [k0, v0, p0] = rowsOf(cache, 1, 1)
    const keep = Int32Array.from(slots)
    cache.apply({ heads: [{ layer: 1, head: 1, keep }] })
    // the twin: the kept rows, in keep's order, picked from the rows read before
    const pick = (a: Float32Array) => Float32Array.from(slots.flatMap((s) => Array.from(a.slice(s * D, (s + 1) * D))))
    const [k, v, pos] = rowsOf(cache, 1, 1)
    expect(k).toEqual(pick(k0 as Float32Array))
    expect(v).toEqual(pick(v0 as Float32Array))
    expect(Array.from(pos)).toEqual(slots.map((s) => p0[s]))
    cache.dispose()
  })

  it('compacts host-tier rows too, and refuses the GPU tier without a WebGPU backend', () => {
    const c = cacheOf(9)
    const before = c.readKeys(0, 0)
    c.moveTo('host', { layer: 0, head: 0 })
    c.apply({ heads: [{ layer: 0, head: 0, keep: Int32Array.of(2, 8) }] })
    expect(c.readKeys(0, 0)).toEqual(Float32Array.of(...before.slice(2 * D, 3 * D), ...before.slice(8 * D, 9 * D)))
    expect(() => c.moveTo('gpu')).toThrow(/'gpu' tier needs the WebGPU backend/)
    expect(() => c.moveTo('disk' as 'host')).toThrow(/tier must be one of wasm, host, gpu, got "disk"/)
    c.dispose()
  })
})

describe('host tier beyond the arena', () => {
  it.each([['float32', 4], ['float16', 2]] as const)('a one-layer Llama-3-8B-shaped cache held in host ArrayBuffers (%s): decode attention over a selection equals the float64 reference', async (kvDtype, bytes) => {
    // bench/host-tier.ts runs the same at 1M tokens (4 GiB in float16); 32k tokens keep the test in seconds
    const tokens = 1 << 15
    const cache = hostCache(wasm, tokens, 8192, kvDtype)
    expect(cache.store.liveBytes.host).toBe(tokens * KV_HEADS * HEAD_DIM * bytes * 2)
    expect(cache.store.liveBytes.wasm).toBe(0)
    expect(cache.bytes().offloaded).toBe(tokens * KV_HEADS * HEAD_DIM * bytes * 2)
    const q = Float32Array.from({ length: KV_HEADS * GROUP * HEAD_DIM }, (_, i) => cell(2, i, 0, 0) * 4)
    const select = selection(tokens, 512, 3)
    const got = await attendSelection(wasm, cache, q, select)
    const want = referenceSelection(q, select, kvDtype)
    got.forEach((x, i) => expect(Math.abs(x - want[i])).toBeLessThan(1e-5))
    cache.dispose()
  })
})
