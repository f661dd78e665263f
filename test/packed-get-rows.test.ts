import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import type { Backend } from '../src/backend/backend.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { attendCache } from '../src/cache/attention.js'
import type { PageFormat } from '../src/cache/formats.js'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { normals, rng } from './kernels-helpers.js'

// Issue 16: a selection's packed rows (Quest, TokenSelect over KIVI pages) are fetched by the compute
// core's get-rows kernels (assembly/kernels/packed-rows.ts) instead of dequantized in TypeScript. The
// kernels compute scale * code + min as the TypeScript twin (packing.ts dequantize) does, so every check
// here is bit for bit against the twin: the same store on a backend without the kernels (Segment then
// unpacks in TypeScript), over ragged pages, partial key and value groups, int2+sign keys, ternary
// values, and whole decode steps of the fixture model with the float residual window selected too.

let wasm: CreatedBackend
/** the same kernels without get-rows: the store's TypeScript dequantize (the path before issue 16) */
let twin: Backend
beforeAll(async () => {
  wasm = await createBackend('wasm', { relaxed: false })
  const plain = await createBackend('wasm', { relaxed: false })
  twin = { ...plain, getPackedKeyRows: undefined, getSignKeyRows: undefined, getPackedValueRows: undefined }
})

/** bits of a float32 array, so -0 and NaN payloads count */
const bits = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length)

interface Case {
  keys: PageFormat
  values: PageFormat
  headDim: number
  pageTokens: number
  /** tokens appended, and how many of them are packed (the rest stay float32) */
  n: number
  upto: number
  group?: number
  hi?: number
}

/** a 2-head cache of n random rows with slots [0, upto) packed, on `compute` */
function build(compute: Backend, c: Case, seed: number): PagedKVCache {
  const cache = new PagedKVCache(compute, { layers: 1, kvHeads: 2, headDim: c.headDim, pageTokens: c.pageTokens })
  const r = rng(seed)
  const w = 2 * c.headDim
  cache.append(0, normals(r, c.n * w), normals(r, c.n * w), Int32Array.from({ length: c.n }, (_, i) => i))
  const keyHiChannels = c.keys === 'int2+sign' ? Int32Array.from({ length: c.hi ?? 0 }, (_, j) => (j * 7 + 3) % c.headDim) : undefined
  cache.apply({ heads: [], quantize: [0, 1].map((head) => ({ layer: 0, head, upto: c.upto, keys: c.keys, values: c.values, ...(keyHiChannels ? { keyHiChannels } : {}), ...(c.group ? { group: c.group } : {}) })) })
  return cache
}

/** selections over [0, n): single rows, runs across key groups and pages, the last packed row, random picks */
function selections(n: number, upto: number, seed: number): Int32Array[] {
  const r = rng(seed)
  const pick = Int32Array.from({ length: n }, (_, i) => i).filter(() => r() < 0.3)
  const run = (a: number, b: number) => Int32Array.from({ length: Math.max(0, Math.min(b, n) - a) }, (_, i) => a + i)
  return [Int32Array.of(0), Int32Array.of(upto - 1), run(16, 48), run(upto - 40, upto + 8), run(0, n), pick.length ? pick : Int32Array.of(n - 1), Int32Array.of(5, 31, 32, 63, 64, upto - 2, n - 1).filter((x, i, a) => x < n && (i === 0 || x > a[i - 1]))]
}

const CASES: Case[] = [
  // KIVI's settings: int2 and int4 (and int8) keys and values, ragged last pages and a partial last key group
  { keys: 'int2', values: 'int2', headDim: 64, pageTokens: 64, n: 230, upto: 200 },
  { keys: 'int4', values: 'int4', headDim: 64, pageTokens: 64, n: 150, upto: 150 },
  { keys: 'int8', values: 'int8', headDim: 64, pageTokens: 128, n: 300, upto: 256 },
  { keys: 'int4', values: 'int2', headDim: 40, pageTokens: 64, n: 100, upto: 77 },
  { keys: 'int8', values: 'int1', headDim: 72, pageTokens: 32, n: 120, upto: 96 },
  { keys: 'int1', values: 'ternary', headDim: 64, pageTokens: 64, n: 90, upto: 90 },
  { keys: 'int2', values: 'int8', headDim: 40, pageTokens: 32, n: 70, upto: 45 },
  // VidKV's int2+sign keys (rows come back out of their basis) in groups of 32, 64 and 128
  { keys: 'int2+sign', values: 'ternary', headDim: 64, pageTokens: 128, n: 200, upto: 160, hi: 6 },
  { keys: 'int2+sign', values: 'int2', headDim: 64, pageTokens: 128, n: 200, upto: 192, hi: 13, group: 64 },
  { keys: 'int2+sign', values: 'int4', headDim: 64, pageTokens: 128, n: 300, upto: 256, hi: 0, group: 128 },
]
const name = (c: Case) => `${c.keys}/${c.values} d ${c.headDim}, pages of ${c.pageTokens}, ${c.upto} of ${c.n} packed${c.group ? `, groups of ${c.group}` : ''}${c.hi !== undefined ? `, ${c.hi} int2 channels` : ''}`

describe('get-rows kernels equal the TypeScript dequantize bit for bit', () => {
  it.each(CASES.map((c) => [name(c), c] as const))('%s: fetched rows', (_, c) => {
    const a = build(wasm, c, c.n + c.upto)
    const b = build(twin, c, c.n + c.upto)
    const d = c.headDim
    for (const head of [0, 1]) {
      const packed = a.segments(0, head)[0]
      expect(packed.format).toBe(c.keys)
      for (const sel of selections(packed.n, packed.n, head + 7)) {
        const got: Float32Array[] = []
        for (const [cache, h] of [[a, wasm.heap], [b, twin.heap]] as const) {
          const k = h.alloc(sel.length * d * 4)
          const v = h.alloc(sel.length * d * 4)
          cache.fetchRows(0, head, 0, sel, k, v)
          got.push(h.F32.slice(k >> 2, (k >> 2) + sel.length * d), h.F32.slice(v >> 2, (v >> 2) + sel.length * d))
          h.release(k)
          h.release(v)
        }
        expect(bits(got[0]), `keys of rows ${sel.slice(0, 8).join(',')}...`).toEqual(bits(got[2]))
        expect(bits(got[1]), `values of rows ${sel.slice(0, 8).join(',')}...`).toEqual(bits(got[3]))
      }
      // any order: the kernels take a list, not a range (rows of one token group need not be adjacent)
      const shuffled = Int32Array.of(packed.n - 1, 0, 33, 1, 32)
      const k = wasm.heap.alloc(5 * d * 4)
      const v = wasm.heap.alloc(5 * d * 4)
      a.fetchRows(0, head, 0, shuffled, k, v)
      const keys = a.readKeys(0, head)
      const values = a.readValues(0, head)
      for (let r = 0; r < 5; r++) {
        // readKeys of a whole segment goes through the kernels too: the twin's rows are the reference
        expect(bits(wasm.heap.F32.slice((k >> 2) + r * d, (k >> 2) + (r + 1) * d))).toEqual(bits(b.readKeys(0, head).slice(shuffled[r] * d, (shuffled[r] + 1) * d)))
        expect(bits(wasm.heap.F32.slice((v >> 2) + r * d, (v >> 2) + (r + 1) * d))).toEqual(bits(b.readValues(0, head).slice(shuffled[r] * d, (shuffled[r] + 1) * d)))
      }
      expect(bits(keys)).toEqual(bits(b.readKeys(0, head)))
      expect(bits(values)).toEqual(bits(b.readValues(0, head)))
      wasm.heap.release(k)
      wasm.heap.release(v)
    }
    a.dispose()
    b.dispose()
  })

  it.each(CASES.map((c) => [name(c), c] as const))('%s: decode attention over selections of packed and float rows', (_, c) => {
    const a = build(wasm, c, 3 * c.n + c.upto)
    const b = build(twin, c, 3 * c.n + c.upto)
    const d = c.headDim
    const q = normals(rng(c.n), 6 * d)
    const outs: Float32Array[] = []
    for (const [cache, be] of [[a, wasm], [b, twin]] as const) {
      const h = be.heap
      const qp = h.alloc(6 * d * 4)
      const out = h.alloc(6 * d * 4)
      const lse = h.alloc(6 * 4)
      h.F32.set(q, qp >> 2)
      for (const s of selections(c.n, c.upto, 3)) {
        // per head: the selection, and for head 1 its complement's first half (the float tail when upto < n)
        const other = Int32Array.from({ length: c.n }, (_, i) => i).filter((i) => !s.includes(i)).filter((_, j) => j % 2 === 0)
        const select = [s, other.length ? other : s]
        attendCache(be, cache, { layer: 0, q: qp, T: 1, qHeads: 6, out, scale: 1 / Math.sqrt(d), select, lse })
        outs.push(h.F32.slice(out >> 2, (out >> 2) + 6 * d), h.F32.slice(lse >> 2, (lse >> 2) + 6))
      }
      for (const p of [qp, out, lse]) h.release(p)
    }
    const half = outs.length / 2
    for (let i = 0; i < half; i++) expect(bits(outs[i]), `call ${i >> 1}`).toEqual(bits(outs[half + i]))
    a.dispose()
    b.dispose()
  })
})

describe('the fixture model decoding with selection over KIVI pages', () => {
  let withKernels: LlamaModel
  let withTwin: LlamaModel
  beforeAll(async () => {
    withKernels = (await loadModel(defaultModelDir(), { backendInstance: wasm })) as LlamaModel
    withTwin = (await loadModel(defaultModelDir(), { backendInstance: twin })) as LlamaModel
  })
  afterAll(() => {
    withKernels?.dispose()
    withTwin?.dispose()
  })

  it.each(['kivi:bits=2+quest:tokens=256', 'kivi:bits=4,residual=64+quest:tokens=128,page=8,dense=1', 'kivi:bits=2+tokenselect:tokens=192,first=16,last=32'])('%s: the same tokens and the same logits, bit for bit', async (policy) => {
    const prompt = [0, ...Array.from({ length: 700 }, (_, i) => 2 + ((i * 7919) % 4000))]
    const run = async (model: LlamaModel) => {
      const logits: Float32Array[] = []
      const r = await model.generate(prompt, { maxNewTokens: 6, policy, onLogits: (l) => logits.push(l.slice()) }).result
      return { ids: r.ids, logits }
    }
    const a = await run(withKernels)
    const b = await run(withTwin)
    expect(a.ids).toEqual(b.ids)
    expect(a.logits.length).toBe(6)
    for (let s = 0; s < a.logits.length; s++) expect(bits(a.logits[s]), `step ${s}`).toEqual(bits(b.logits[s]))
  }, 120_000)
})
