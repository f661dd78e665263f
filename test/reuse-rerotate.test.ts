import { beforeAll, describe, expect, it } from 'vitest'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import type { Heap } from '../src/backend/heap.js'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import type { PagedKVCache } from '../src/cache/paged-cache.js'
import { CacheError } from '../src/cache/errors.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { ropeInvFreq } from '../src/model/config.js'
import { deltaTables, keyRotation } from '../src/reuse/rerotate.js'
import { pagedStream } from './kernels-helpers.js'

// Re-rotating cached post-RoPE keys to new positions: the ropeRows kernel against its TypeScript twin
// and against rope itself, and on the fixture model against a fresh prefill at the new positions.
let wasm: CreatedBackend
let ref: CreatedBackend
let heap: Heap
let model: LlamaModel

beforeAll(async () => {
  wasm = await createBackend('wasm')
  ref = await createBackend('reference', { heap: wasm.heap })
  heap = wasm.heap
  model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
})

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1
  return () => {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5
    return ((s >>> 0) / 4294967296) * 2 - 1
  }
}

/** n rows of d random floats on pages of pageTokens rows */
function pagedRows(n: number, d: number, pageTokens: number, r: () => number): { table: number; rows: Float32Array } {
  const rows = Float32Array.from({ length: n * d }, () => r())
  return { table: pagedStream(heap, rows, n, d, pageTokens).table.ptr, rows }
}
function readPaged(table: number, n: number, d: number, pageTokens: number): Float32Array {
  const out = new Float32Array(n * d)
  for (let i = 0; i < n; i++) {
    const p = heap.I32[(table >> 2) + Math.floor(i / pageTokens)] >> 2
    out.set(heap.F32.subarray(p + (i % pageTokens) * d, p + (i % pageTokens + 1) * d), i * d)
  }
  return out
}

describe('ropeRows kernel', () => {
  it.each([
    // pageTokens, n rows stored, first, count, d
    [64, 200, 0, 200, 64],
    [16, 100, 13, 70, 64],
    [7, 30, 5, 11, 38],
    [1, 9, 2, 3, 8],
    [100, 50, 49, 1, 6],
  ])('matches its TypeScript twin and leaves other rows alone (page %i, n %i, rows [%i, +%i), d %i)', (pageTokens, n, first, count, d) => {
    const r = rng(pageTokens * 31 + n)
    const a = pagedRows(n, d, pageTokens, r)
    const b = pagedRows(n, d, pageTokens, () => 0)
    for (let i = 0; i < n; i++) {
      const p = heap.I32[(b.table >> 2) + Math.floor(i / pageTokens)] >> 2
      heap.F32.set(a.rows.subarray(i * d, (i + 1) * d), p + (i % pageTokens) * d)
    }
    const cos = heap.alloc(count * (d / 2) * 4)
    const sin = heap.alloc(count * (d / 2) * 4)
    for (let i = 0; i < count * (d / 2); i++) {
      const t = r() * 10
      heap.F32[(cos >> 2) + i] = Math.cos(t)
      heap.F32[(sin >> 2) + i] = Math.sin(t)
    }
    wasm.ropeRows(a.table, pageTokens, first, count, d, cos, sin)
    ref.ropeRows(b.table, pageTokens, first, count, d, cos, sin)
    const got = readPaged(a.table, n, d, pageTokens)
    const want = readPaged(b.table, n, d, pageTokens)
    for (let i = 0; i < n * d; i++) {
      const row = Math.floor(i / d)
      if (row < first || row >= first + count) expect(got[i]).toBe(a.rows[i])
      else expect(Math.abs(got[i] - want[i])).toBeLessThanOrEqual(4e-7 * (1 + Math.abs(want[i])))
    }
  })

  it('equals rope bit for bit on the same rows (one head, one position a row)', () => {
    const r = rng(5)
    const n = 37, d = 64, pt = 8
    const a = pagedRows(n, d, pt, r)
    const x = heap.alloc(n * d * 4)
    heap.F32.set(a.rows, x >> 2)
    const cos = heap.alloc(n * 32 * 4), sin = heap.alloc(n * 32 * 4)
    for (let i = 0; i < n * 32; i++) {
      heap.F32[(cos >> 2) + i] = Math.cos(i * 0.37)
      heap.F32[(sin >> 2) + i] = Math.sin(i * 0.37)
    }
    wasm.ropeRows(a.table, pt, 0, n, d, cos, sin)
    wasm.rope(x, n, 1, d, cos, sin)
    expect(readPaged(a.table, n, d, pt)).toEqual(heap.F32.slice(x >> 2, (x >> 2) + n * d))
  })
})

describe('deltaTables', () => {
  it('rotating by the table equals rotating to the new angle, to float64 rounding (hand-computed pair)', () => {
    const inv = Float32Array.of(1, 0.01)
    const cos = new Float32Array(2), sin = new Float32Array(2)
    deltaTables(inv, [4096], [5], cos, sin)
    // the angle of position 4096 at frequency 1 is 4096 exactly; at 0.01 it is fround(40.96)
    expect(cos[0]).toBe(Math.fround(Math.cos(5 - 4096)))
    expect(sin[1]).toBe(Math.fround(Math.sin(Math.fround(0.05) - Math.fround(4096 * Math.fround(0.01)))))
  })
})

const ids = Array.from({ length: 150 }, (_, i) => 2 + ((i * 7919 + 13) % 4000))

/** keys of every layer and head of the cache, [layer][head] -> [n][d] */
function keysOf(c: PagedKVCache): Float32Array[] {
  const out: Float32Array[] = []
  for (let l = 0; l < model.config.layers; l++) for (let h = 0; h < model.config.kvHeads; h++) out.push(c.readKeys(l, h))
  return out
}
/** largest |a - b| over a row, in units of the row's largest |b| */
function worstRelative(a: Float32Array[], b: Float32Array[], d: number): number {
  let worst = 0
  a.forEach((x, j) => {
    for (let r = 0; r < x.length / d; r++) {
      let scale = 0
      let diff = 0
      for (let c = 0; c < d; c++) {
        scale = Math.max(scale, Math.abs(b[j][r * d + c]))
        diff = Math.max(diff, Math.abs(x[r * d + c] - b[j][r * d + c]))
      }
      worst = Math.max(worst, diff / scale)
    }
  })
  return worst
}

describe('re-rotating cached keys on the fixture model', () => {
  it.each([
    ['forward by 1000', 0, 1000],
    ['forward by 3901', 0, 3901],
    ['back from 4000 to 7', 4000, 7],
    ['from 2048 to 2049', 2048, 2049],
  ])('%s: layer-0 keys equal a fresh prefill at the new positions to float32 rounding', (_name, from, to) => {
    const moved = model.newCache()
    model.prefill(ids, moved, from)
    const pos = Int32Array.from(ids, (_, i) => to + i)
    moved.reposition(0, pos, keyRotation(model.backend, ropeInvFreq(model.config)))
    const fresh = model.newCache()
    model.prefill(ids, fresh, to)
    expect(moved.positions(3, 1)).toEqual(pos)
    const d = model.config.headDim
    // layer 0 sees the same pre-RoPE keys either way (they depend on the token alone): what is left is rounding
    const a = keysOf(moved).slice(0, model.config.kvHeads)
    const b = keysOf(fresh).slice(0, model.config.kvHeads)
    expect(worstRelative(a, b, d)).toBeLessThan(4 * 2 ** -24 * 8)
    // later layers: RoPE attention is relative, so the hidden states agree up to accumulated rounding
    expect(worstRelative(keysOf(moved), keysOf(fresh), d)).toBeLessThan(1e-3)
    moved.dispose()
    fresh.dispose()
  })

  it('moves a fork only: the other sequence keeps its keys and positions (copy-on-write)', () => {
    const a = model.newCache()
    model.prefill(ids, a, 0)
    const before = keysOf(a)
    const b = a.fork()
    b.reposition(20, Int32Array.from({ length: 100 }, (_, i) => 500 + i), keyRotation(model.backend, ropeInvFreq(model.config)))
    expect(keysOf(a)).toEqual(before)
    expect(a.positions(0, 0)).toEqual(Int32Array.from(ids, (_, i) => i))
    expect(b.positions(0, 0)[20]).toBe(500)
    expect(keysOf(b)[0].subarray(0, 20 * 64)).toEqual(before[0].subarray(0, 20 * 64))
    a.dispose()
    b.dispose()
  })

  it('only relabels a cache of pre-RoPE keys (rotated at attention time), which then decodes as a fresh prefill', () => {
    const c = model.newCache('pre-rope')
    model.prefill(ids, c, 0)
    const keys = keysOf(c)
    c.reposition(0, Int32Array.from(ids, (_, i) => 900 + i))
    expect(keysOf(c)).toEqual(keys)
    const fresh = model.newCache('pre-rope')
    model.prefill(ids, fresh, 900)
    const o1 = new Float32Array(model.config.vocab), o2 = new Float32Array(model.config.vocab)
    model.forward.step([77], Int32Array.of(1050), c, { decode: true, logits: 'last', out: o1 })
    model.forward.step([77], Int32Array.of(1050), fresh, { decode: true, logits: 'last', out: o2 })
    expect(o1).toEqual(o2)
    c.dispose()
    fresh.dispose()
  })

  it.each([
    ['a post-RoPE cache without a rotation', (c: PagedKVCache) => c.reposition(0, Int32Array.of(5))],
    ['slots past the end', (c: PagedKVCache) => c.reposition(140, new Int32Array(20), keyRotation(model.backend, ropeInvFreq(model.config)))],
    ['negative positions', (c: PagedKVCache) => c.reposition(0, Int32Array.of(-1), keyRotation(model.backend, ropeInvFreq(model.config)))],
  ])('refuses %s with a CacheError, changing nothing', (_name, call) => {
    const c = model.newCache()
    model.prefill(ids, c, 0)
    const keys = keysOf(c)
    expect(() => call(c)).toThrow(CacheError)
    expect(keysOf(c)).toEqual(keys)
    expect(c.positions(0, 0)[0]).toBe(0)
    c.dispose()
  })
})
