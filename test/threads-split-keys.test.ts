import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { attendScratchFloats } from '../src/backend/model-kernels.js'
import { mergePartials } from '../src/backend/merge-partials.js'
import { decodePlan, MIN_SPLIT_KEYS, type DecodeShape } from '../src/backend/threads/decode-split.js'
import { partsFor } from '../src/backend/threads/kernels.js'
import type { LlamaModel } from '../src/model/model.js'
import type { KVDtype } from '../src/cache/formats.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { attendCache } from '../src/cache/attention.js'
import { floatToHalf } from '../src/backend/half.js'
import type { AttendCall } from '../src/backend/model-kernels.js'
import { loadModel } from '../src/node/load.js'
import { nodeWorkerSpawner } from '../src/node/threads.js'
import { fixturePrompt, headPages, sameBits, values } from './threads-helpers.js'

// Decode attention split across threads by keys (split-K, issue 17): the merge of partials against a
// hand-computed case and a float64 twin, the rule that picks heads or keys, and the threaded kernels
// and the fixture model against one thread: bit for bit where the split is by heads, within float32
// rounding (and the same greedy tokens) where it is by keys.

const MODEL = 'models/fixture-14m'
const EPS = 2 ** -24

function maxAbsDiff(a: Float32Array, b: Float32Array, from = 0, to = a.length): number {
  let m = 0
  for (let i = from; i < to; i++) m = Math.max(m, Math.abs(a[i] - b[i]))
  return m
}

describe('mergePartials: the online-softmax combine of partial attention results', () => {
  it('a hand-checkable case: scores (0, 0 | ln 2) over values (1, 3 | 5) in two parts give 3.5 and lse ln 4', () => {
    // whole: weights e^0, e^0, e^ln2 = 1, 1, 2 of 4, so (1 + 3 + 2 * 5) / 4 = 3.5 and lse = ln 4;
    // part A: o = (1 + 3) / 2 = 2, lse = ln 2; part B: o = 5, lse = ln 2: equal weights, (2 + 5) / 2
    const F = new Float32Array(16)
    F.set([2, Math.LN2, 5, Math.LN2])
    mergePartials(F, [0, 8], [4, 12], 1, 1, 1, 0, 32, 36)
    expect(F[8]).toBe(3.5)
    expect(F[9]).toBeCloseTo(Math.log(4), 6)
  })

  it('a part that saw no key (lse -inf) weighs nothing; a row no part saw becomes zeros with lse -inf', () => {
    const F = new Float32Array(16)
    // part A row 0: o 7, lse 1; part B row 0: lse -inf (its output is ignored); row 1 in neither
    F.set([7, 8, 1, -Infinity], 0)
    F.set([99, 99, -Infinity, -Infinity], 4)
    mergePartials(F, [0, 16], [8, 24], 2, 1, 2, 0, 40, 48)
    expect([F[10], F[11], F[12], F[13]]).toEqual([7, 0, 1, -Infinity])
  })

  it('partials of a float64 twin over 4 uneven key ranges merge to the whole softmax attention of 3 rows, within float32 rounding', () => {
    const rows = 3, d = 5, n = 97
    const scores = values(rows * n, 3, 4)
    const v = values(n * d, 4)
    // twin: o[r] = sum_j softmax(s_r)_j v_j over keys [a, b), in float64; lse = log sum_j exp(s_rj)
    const attend = (a: number, b: number) => {
      const o = new Float64Array(rows * d)
      const lse = new Float64Array(rows)
      for (let r = 0; r < rows; r++) {
        let m = -Infinity
        for (let j = a; j < b; j++) m = Math.max(m, scores[r * n + j])
        let l = 0
        for (let j = a; j < b; j++) l += Math.exp(scores[r * n + j] - m)
        for (let j = a; j < b; j++) for (let c = 0; c < d; c++) o[r * d + c] += (Math.exp(scores[r * n + j] - m) / l) * v[j * d + c]
        lse[r] = m + Math.log(l)
      }
      return { o, lse }
    }
    const cuts = [0, 10, 11, 60, 97]
    const F = new Float32Array(1024)
    const outs: number[] = []
    const lses: number[] = []
    for (let i = 0; i + 1 < cuts.length; i++) {
      const p = attend(cuts[i], cuts[i + 1])
      const at = 64 * i
      F.set(p.o, at)
      F.set(p.lse, at + rows * d)
      outs.push(at * 4)
      lses.push((at + rows * d) * 4)
    }
    // rows go out with a stride: row r at out + r * 8 floats (t = r, group 1)
    mergePartials(F, outs, lses, rows, d, 1, 8, 512 * 4, 600 * 4)
    const whole = attend(0, n)
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < d; c++) expect(Math.abs(F[512 + r * 8 + c] - whole.o[r * d + c])).toBeLessThanOrEqual(4 * EPS)
      expect(Math.abs(F[600 + r] - whole.lse[r])).toBeLessThanOrEqual(4 * EPS * Math.abs(whole.lse[r]))
    }
  })
})

/** the fixture's decode shape: 2 KV heads of 3 query heads, 64 channels, pages of 64 */
const fixture = (keys: number): DecodeShape[] => [0, 1].map(() => ({ hq: 3, keys, kd: 64, vd: 64, keyAlign: 64 }))

describe('decodePlan: by heads or by keys, whichever costs less', () => {
  it.each([
    // 2 threads: one KV head each is already even, at any length
    [2, 100_000, 'heads'],
    // 3 threads: keys from 384 (3 x 256 keys over the 2 heads' 2 x 384), 4 from 512, 16 from 2048
    [3, 383, 'heads'], [3, 384, 'keys'], [3, 8000, 'keys'],
    [4, 511, 'heads'], [4, 512, 'keys'],
    [16, 2047, 'heads'], [16, 2048, 'keys'],
  ] as const)('the fixture (2 KV heads x 3) on %i threads at %i keys: by %s', (parts, keys, by) => {
    expect(decodePlan(fixture(keys), parts).by).toBe(by)
  })

  it('the head split keeps a KV head\'s 3 query heads together (the kernel computes 4 rows for 1, 2 or 3)', () => {
    expect(decodePlan(fixture(300), 4).pieces).toEqual([[{ call: 0, h0: 0, h1: 3, k0: 0, k1: 300 }], [{ call: 1, h0: 0, h1: 3, k0: 0, k1: 300 }]])
  })

  it('the key split of the fixture on 3 threads at 384 keys: pieces of 256 keys, cut on 64-key tiles', () => {
    expect(decodePlan(fixture(384), 3).pieces).toEqual([
      [{ call: 0, h0: 0, h1: 3, k0: 0, k1: 256 }],
      [{ call: 0, h0: 0, h1: 3, k0: 256, k1: 384 }, { call: 1, h0: 0, h1: 3, k0: 0, k1: 128 }],
      [{ call: 1, h0: 0, h1: 3, k0: 128, k1: 384 }],
    ])
  })

  // GQA shapes: the fixture, 8 query heads on one KV head (2 row blocks), 4 KV heads of 1, pages of 16 and 100
  const shapes: [string, DecodeShape[]][] = [
    ['2 x 3', fixture(5000)],
    ['1 x 8', [{ hq: 8, keys: 3001, kd: 64, vd: 64, keyAlign: 64 }]],
    ['4 x 1', [0, 1, 2, 3].map(() => ({ hq: 1, keys: 1999, kd: 32, vd: 48, keyAlign: 64 }))],
    ['2 x 4, pages of 100', [0, 1].map(() => ({ hq: 4, keys: 4321, kd: 64, vd: 64, keyAlign: 100 }))],
  ]
  it.each(shapes.flatMap(([name, calls]) => [2, 3, 4, 7, 16].map((p) => [name, p, calls] as const)))('%s on %i threads: every (head, key) in exactly one job, keys cut on their alignment, at most that many pieces', (_, parts, calls) => {
    const plan = decodePlan(calls, parts)
    expect(plan.pieces.length).toBeLessThanOrEqual(parts)
    const seen = calls.map((c) => new Uint8Array(c.hq * c.keys))
    for (const piece of plan.pieces) {
      expect(piece.length).toBeGreaterThan(0)
      for (const j of piece) {
        const c = calls[j.call]
        expect(j.k0 % c.keyAlign).toBe(0)
        // jobs never cut a row block of 4 heads
        expect(j.h0 % 4).toBe(0)
        expect(j.h1 === c.hq || j.h1 % 4 === 0).toBe(true)
        for (let h = j.h0; h < j.h1; h++) for (let k = j.k0; k < j.k1; k++) seen[j.call][h * c.keys + k]++
      }
    }
    for (const s of seen) expect(s.every((x) => x === 1)).toBe(true)
    if (plan.by === 'keys') {
      // near-even: each piece within one alignment block per row block of the even share
      const keys = plan.pieces.map((p) => p.reduce((a, j) => a + (j.k1 - j.k0) * Math.ceil((j.h1 - j.h0) / 4) * (calls[j.call].kd + calls[j.call].vd), 0))
      const total = keys.reduce((a, b) => a + b, 0)
      const slack = 2 * Math.max(...calls.map((c) => c.keyAlign * (c.kd + c.vd)))
      for (const k of keys) expect(Math.abs(k - total / plan.pieces.length)).toBeLessThanOrEqual(slack)
      // a thread's share of the row blocks' keys is at least MIN_SPLIT_KEYS
      expect(total / parts / (calls[0].kd + calls[0].vd)).toBeGreaterThanOrEqual(MIN_SPLIT_KEYS)
    }
  })
})

describe('threaded decode attention against one thread', () => {
  let one: CreatedBackend
  const pools: CreatedBackend[] = []
  beforeAll(async () => {
    one = await createBackend('wasm', { relaxed: false })
    for (const threads of [2, 3, 4]) pools.push(await createBackend('wasm', { relaxed: false, threads, spawnWorker: nodeWorkerSpawner }))
  })
  afterAll(() => pools.forEach((b) => b.close?.()))

  /**
   * The float16 bits of headPages' rows by KV head and page (its seeds depend on nothing else):
   * floatToHalf, a reference written for clarity, takes microseconds a value, and converting every page
   * again for each of the four backends took most of the float16 cells' time.
   */
  const halfPages = new Map<string, Uint16Array>()

  /**
   * One decode call per KV head (own pages of 64 keys, q/out columns as attendCache lays them out),
   * batched or one by one on `one`: over the first n keys, or over every `step`-th key listed
   * (attendGathered). Returns outputs then lse.
   */
  function decode(b: CreatedBackend, heads: number, group: number, n: number, step: number | null, half = false): Float32Array {
    const h = b.heap
    const d = 64
    const { tables, bufs } = headPages(b, heads, n, 64)
    // float16 rows of the same values, written over the first half of each float32 page
    if (half) {
      ;[...tables.map((x) => x.kTable), ...tables.map((x) => x.vTable)].forEach((t, i) => {
        for (let p = 0; p < Math.ceil(n / 64); p++) {
          const page = h.I32[(t >> 2) + p]
          const key = `${i < heads ? 'k' : 'v'}${i % heads}:${p}`
          let bits = halfPages.get(key)
          if (!bits) halfPages.set(key, (bits = Uint16Array.from(h.F32.subarray(page >> 2, (page >> 2) + 64 * d), (x) => floatToHalf(x))))
          h.U16.set(bits, page >> 1)
        }
      })
    }
    const q = h.f32From(values(heads * group * d, 7, 2))
    const out = h.allocF32(heads * group * d), lse = h.allocF32(heads * group), scratch = h.allocF32(attendScratchFloats(d, group))
    bufs.push(q, out, lse, scratch)
    const at = (g: number) => g * group * d * 4
    if (step === null) {
      const calls = tables.map((t, g) => ({ q: q.ptr + at(g), qStride: heads * group * d, hq: group, T: 1, kd: d, vd: d, ...t, n, visible0: n, scale: 0.125, out: out.ptr + at(g), outStride: heads * group * d, lse: lse.ptr + g * group * 4, scratch: scratch.ptr, half }))
      if (b === one) for (const c of calls) (half ? b.attendCausalF16 : b.attendCausal)(c.q, c.qStride, c.hq, c.T, c.kd, c.vd, c.kTable, c.vTable, c.pageTokens, c.n, c.visible0, c.scale, c.out, c.outStride, c.lse, c.scratch)
      else b.attendCausalBatch!(calls)
    } else {
      const list = Int32Array.from({ length: Math.ceil(n / step) }, (_, i) => i * step)
      const idx = h.allocI32(list.length)
      idx.view.set(list)
      bufs.push(idx)
      const calls = tables.map((t, g) => ({ q: q.ptr + at(g), hq: group, kd: d, vd: d, ...t, idx: idx.ptr, nIdx: list.length, scale: 0.125, out: out.ptr + at(g), lse: lse.ptr + g * group * 4, scratch: scratch.ptr, half }))
      if (b === one) for (const c of calls) (half ? b.attendGatheredF16 : b.attendGathered)(c.q, c.hq, c.kd, c.vd, c.kTable, c.vTable, c.pageTokens, c.idx, c.nIdx, c.scale, c.out, c.lse, c.scratch)
      else b.attendGatheredBatch!(calls)
    }
    const res = new Float32Array(out.view.length + lse.view.length)
    res.set(out.view)
    res.set(lse.view, out.view.length)
    for (const x of bufs) x.free()
    return res
  }

  // GQA shapes (KV heads x query heads), keys below, at and above the 3- and 4-thread thresholds
  // (fixture: 384 and 512 keys), dense and listed (every key, every 3rd)
  // float16 rows (the F16 kernels) on the fixture's shape and the one-KV-head one
  const grid = [
    ...[[2, 3], [1, 8], [4, 1]].flatMap(([heads, group]) => [200, 383, 384, 512, 3000].flatMap((n) => [null, 1, 3].map((step) => [heads, group, n, step, 'float32'] as const))),
    ...[[2, 3], [1, 8]].flatMap(([heads, group]) => [383, 3000].flatMap((n) => [null, 3].map((step) => [heads, group, n, step, 'float16'] as const))),
  ]
  it.each(grid)('%i KV heads x %i query heads over %i keys (listed every %s), %s rows: bit for bit when split by heads, else within float32 rounding', (heads, group, n, step, rows) => {
    const half = rows === 'float16'
    const want = decode(one, heads, group, n, step, half)
    const keys = step === null ? n : Math.ceil(n / step)
    const split = new Set<string>()
    for (const b of pools) {
      const got = decode(b, heads, group, n, step, half)
      const shape = Array.from({ length: heads }, () => ({ hq: group, keys, kd: 64, vd: 64, keyAlign: 64 }))
      const parts = partsFor(heads * group * keys * 128, b.threads ?? 1)
      const by = parts < 2 ? 'heads' : decodePlan(shape, parts).by
      split.add(by)
      if (by === 'heads') {
        expect(sameBits(got, want)).toBe(true)
        continue
      }
      // outputs are convex combinations of values in [-1, 1]; lse of scores up to |q||k| / 8
      const outs = heads * group * 64
      expect(maxAbsDiff(got, want, 0, outs)).toBeLessThanOrEqual(8 * EPS)
      for (let r = 0; r < heads * group; r++) expect(Math.abs(got[outs + r] - want[outs + r])).toBeLessThanOrEqual(8 * EPS * Math.max(1, Math.abs(want[outs + r])))
    }
    // the long contexts do run split by keys on 3 or 4 threads (the test is not all bit-for-bit cases)
    if (keys >= 1000) expect(split.has('keys')).toBe(true)
  })
})

describe('attendCache hands float16 heads to the threaded batch', () => {
  it.each(['float32', 'float16'] as const)('a %s cache: prefill and decode attention of every KV head go through attendCausalBatch, marked half for float16 rows', async (kvDtype) => {
    const b = await createBackend('wasm', { relaxed: false, threads: 2, spawnWorker: nodeWorkerSpawner })
    try {
      const halves: boolean[] = []
      const spy = { ...b, attendCausalBatch: (calls: readonly AttendCall[]) => { halves.push(...calls.map((c) => c.half === true)); b.attendCausalBatch!(calls) } }
      const cache = new PagedKVCache(b, { layers: 1, kvHeads: 2, headDim: 64, kvDtype })
      const h = b.heap
      // queries and outputs of up to 5 tokens x 6 query heads
      const q = h.f32From(values(5 * 6 * 64, 3)), out = h.allocF32(5 * 6 * 64)
      try {
        for (const [T, seed] of [[5, 1], [1, 2]]) {
          cache.append(0, values(T * 2 * 64, seed), values(T * 2 * 64, seed + 10), Int32Array.from({ length: T }, (_, i) => cache.length(0, 0) + i))
          attendCache(spy, cache, { layer: 0, q: q.ptr, T, qHeads: 6, out: out.ptr, scale: 0.125 })
        }
      } finally {
        q.free()
        out.free()
        cache.dispose()
      }
      expect(halves).toEqual(Array(4).fill(kvDtype === 'float16'))
    } finally {
      b.close?.()
    }
  })
})

describe('the fixture model decoding split by keys', () => {
  let m1: LlamaModel
  const ms: LlamaModel[] = []
  beforeAll(async () => {
    m1 = await loadModel(MODEL, { threads: 1, wasm: { relaxed: false } })
    for (const threads of [2, 3, 4]) ms.push(await loadModel(MODEL, { threads, wasm: { relaxed: false } }))
  })
  afterAll(() => [m1, ...ms].forEach((m) => m.dispose()))

  const prompt = fixturePrompt

  /** prefill then greedy decode steps: every step's logits and the tokens chosen */
  function prefillDecode(m: LlamaModel, ids: number[], steps: number, kvDtype: KVDtype = 'float32'): { logits: Float32Array[]; tokens: number[] } {
    const cache = m.newCache('post-rope', 64, kvDtype)
    try {
      const logits: Float32Array[] = []
      const tokens: number[] = []
      const out = new Float32Array(m.config.vocab)
      m.prefill(ids.slice(0, -1), cache)
      let next = ids[ids.length - 1]
      for (let s = 0; s < steps; s++) {
        m.forward.step([next], Int32Array.of(ids.length - 1 + s), cache, { decode: true, logits: 'last', out })
        logits.push(out.slice())
        next = out.indexOf(Math.max(...out))
        tokens.push(next)
      }
      return { logits, tokens }
    } finally {
      cache.dispose()
    }
  }

  it.each([
    [300, 'float32'], [400, 'float32'], [1200, 'float32'], [300, 'float16'], [1200, 'float16'],
  ] as const)('a %i-token prefill then 6 greedy decode steps over %s KV on 2, 3 and 4 threads: the same tokens, logits within float32 rounding (bit for bit below the split)', (n, kvDtype) => {
    const want = prefillDecode(m1, prompt(n), 6, kvDtype)
    for (const m of ms) {
      const got = prefillDecode(m, prompt(n), 6, kvDtype)
      expect(got.tokens).toEqual(want.tokens)
      got.logits.forEach((l, s) => {
        const scale = Math.max(...want.logits[s].map(Math.abs))
        // the step attends n + s keys
        if (decodePlan(fixture(n + s), m.backend.threads ?? 1).by === 'heads') expect(sameBits(l, want.logits[s])).toBe(true)
        // measured: 6 units of float32 rounding of the largest logit at 1200 keys, 17 at 3000 (the
        // attention outputs' few roundings of difference, carried through 8 layers)
        else expect(maxAbsDiff(l, want.logits[s])).toBeLessThanOrEqual(64 * EPS * scale)
      })
    }
  })

  it('greedy generation with a per-step token selection of 1024 keys (the listed decode path, split by keys on 3 and 4 threads) gives the same tokens', async () => {
    const ids = prompt(1500)
    const policy = 'tokenselect:tokens=1024,first=4,last=16'
    const a = await m1.generate(ids, { maxNewTokens: 8, policy }).result
    for (const m of ms) expect((await m.generate(ids, { maxNewTokens: 8, policy }).result).ids).toEqual(a.ids)
  })
})
