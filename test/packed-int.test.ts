import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CreatedBackend } from '../src/backend/index.js'
import { packedIntScratch } from '../src/backend/backend.js'
import { Ops, ShapeError } from '../src/backend/ops.js'
import type { PageFormat } from '../src/cache/formats.js'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { normals, rng, simdAndRelaxed } from './kernels-helpers.js'
import { BITS, FORMATS, SCALE, packed, scoreBoth as scoreIn, topK, worstExcess } from './packed-int-cases.js'

// scorePackedKeysInt (assembly/kernels/packed-int.ts): integer dot products on int4/2/1 keys, in both
// wasm builds, against the float64 dequantize-then-dot twin within the bound the kernel states (the
// query's rounding step / 2 times the token's code sum, plus float32 rounding), on random keys, edge
// cases and the fixture model's real keys; and its top-k against the exact fused kernel's.

const builds: { name: 'simd' | 'relaxed'; b: CreatedBackend }[] = []
let model: LlamaModel
beforeAll(async () => {
  builds.push(...(await simdAndRelaxed()))
  model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
})
afterAll(() => model?.dispose())
const build = (name: string) => builds.find((x) => x.name === name)!

/** scorePackedKeysInt's, the twin's and the exact kernel's scores [qHeads][n], and the bound, on build `name` */
function scoreBoth(name: 'simd' | 'relaxed', keys: Float32Array, n: number, d: number, format: PageFormat, q: Float32Array, qHeads: number) {
  return scoreIn(build(name).b, keys, n, d, format, q, qHeads)
}

function expectWithinBound(r: ReturnType<typeof scoreBoth>): void {
  expect(worstExcess(r)).toBeLessThanOrEqual(0)
}

describe('integer key scoring equals dequantize-then-dot within its stated bound', () => {
  // [40, 3] and [40, 4]: a block of three or four heads whose last d % 16 channels go a unit at a time
  const shapes = [[64, 3], [40, 1], [64, 2], [128, 5], [40, 3], [40, 4]] as const
  const grid = (['simd', 'relaxed'] as const).flatMap((bn) => FORMATS.flatMap((f) => [1, 31, 32, 33, 77, 130].flatMap((n) => shapes.map(([d, h]) => [bn, f, n, d, h] as const))))
  it.each(grid)('%s build, %s keys: %i tokens of %i channels, %i query heads', (bn, format, n, d, qHeads) => {
    const keys = normals(rng(n * d + qHeads), n * d)
    for (let i = 0; i < keys.length; i += 13) keys[i] *= 6 // outliers inside groups
    const r = scoreBoth(bn, keys, n, d, format, normals(rng(qHeads + 5), qHeads * d), qHeads)
    expectWithinBound(r)
    // the query's rounding bound against the keys' own quantization bound on the same score:
    // 2 (mean code / levels) (max |q'| / mean |q'|), the factor the kernel's docstring derives; its
    // median over the scores is ~0.07 for int8 queries on int2/int1 codes and ~0.2-0.3 on int4's (codes
    // 5x larger: relaxed build), below 0.01 for the plain build's int16
    const ratios = Array.from(r.rounding, (x, i) => x / r.keyBound[i]).filter((x) => Number.isFinite(x) && x > 0).sort((a, b) => a - b)
    // (over whole groups: a one-token group has no range, and its near-zero scales make any crest)
    if (n >= 32) expect(ratios[ratios.length >> 1]).toBeLessThan(bn === 'simd' ? 0.01 : format === 'int4' ? 0.5 : 0.1)
  })

  it.each((['simd', 'relaxed'] as const).flatMap((bn) => FORMATS.map((f) => [bn, f] as const)))('%s build, %s keys: a zero query scores 0 everywhere, as the twin', (bn, format) => {
    const r = scoreBoth(bn, normals(rng(3), 70 * 64), 70, 64, format, new Float32Array(3 * 64), 3)
    expect(Array.from(r.out)).toEqual(new Array(3 * 70).fill(0))
    expect(Array.from(r.ref)).toEqual(new Array(3 * 70).fill(0))
  })

  it.each((['simd', 'relaxed'] as const).flatMap((bn) => FORMATS.map((f) => [bn, f] as const)))('%s build, %s keys: scores scale exactly with a power-of-two scale, below 2^16 (scale folded into the float16 widening) and past it (two steps)', (bn, format) => {
    // every step of the kernel scales exactly by a power of two (the integer query does not change), so
    // out(2^e) = 2^e out(1) bit for bit; a fold of 2^17 * 2^112 would overflow to inf
    const { b } = build(bn)
    const n = 70
    const d = 64
    const { cache, seg } = packed(b, normals(rng(21), n * d), n, d, format)
    const q = b.heap.f32From(normals(rng(22), 3 * d))
    const out = b.heap.allocF32(3 * n)
    const scratch = b.heap.allocF32(packedIntScratch(3, d))
    const at = (scale: number) => {
      b.scorePackedKeysInt!(q.ptr, 3, d, seg.kTable, 64, n, BITS[format], scale, out.ptr, scratch.ptr)
      return Array.from(out.view)
    }
    const unit = at(1)
    expect(unit.every(Number.isFinite)).toBe(true)
    for (const e of [-3, 15, 16, 17, 20]) expect(at(2 ** e)).toEqual(unit.map((x) => x * 2 ** e))
    for (const x of [q, out, scratch]) x.free()
    cache.dispose()
  })

  it.each((['simd', 'relaxed'] as const).flatMap((bn) => FORMATS.map((f) => [bn, f] as const)))('%s build, %s keys: all-equal codes (each channel constant over its group) score as the twin', (bn, format) => {
    // channel c holds 0.1 c + g in group g: zero range, one code for every token
    const n = 96
    const keys = Float32Array.from({ length: n * 64 }, (_, i) => 0.1 * (i % 64) + Math.floor(i / 64 / 32))
    const r = scoreBoth(bn, keys, n, 64, format, normals(rng(9), 2 * 64), 2)
    expectWithinBound(r)
    for (let i = 0; i < r.out.length; i++) expect(Math.abs(r.out[i] - r.ref[i])).toBeLessThanOrEqual(1e-4 * (1 + Math.abs(r.ref[i])))
  })
})

/** the fixture model's real keys after a 200-token prompt: every (layer, KV head) as [n][64] */
function fixtureKeys(): { keys: Float32Array[]; n: number } {
  const cache = model.newCache()
  model.prefill([0, ...Array.from({ length: 199 }, (_, i) => 2 + ((i * 7919) % 4000))], cache)
  const keys: Float32Array[] = []
  for (let l = 0; l < model.config.layers; l++) for (let h = 0; h < model.config.kvHeads; h++) keys.push(cache.readKeys(l, h))
  const n = cache.length(0, 0)
  cache.dispose()
  return { keys, n }
}

describe('on the fixture model\'s real keys', () => {
  it.each((['simd', 'relaxed'] as const).flatMap((bn) => (['int4', 'int2'] as const).map((f) => [bn, f] as const)))(
    '%s build, %s keys: within the bound, and the top-k equals the exact fused kernel\'s except near-ties',
    (bn, format) => {
      const { keys, n } = fixtureKeys()
      const k = Math.floor(n / 8)
      let differ = 0
      let keyDiffer = 0
      keys.forEach((kk, s) => {
        // queries shaped like the keys (a real key and a sum of a few: the same outlier channels) and a random one
        const q = new Float32Array(3 * 64)
        q.set(kk.subarray(17 * 64, 18 * 64), 0)
        for (let t = 40; t < 48; t++) for (let c = 0; c < 64; c++) q[64 + c] += kk[t * 64 + c] / 8
        q.set(normals(rng(s), 64), 128)
        const r = scoreBoth(bn, kk, n, 64, format, q, 3)
        expectWithinBound(r)
        for (let h = 0; h < 3; h++) {
          const row = (x: Float32Array | Float64Array) => x.subarray(h * n, h * n + n)
          const exact = row(r.exact)
          const kth = Array.from(exact).sort((a, b) => b - a)[k - 1]
          const a = topK(row(r.out), k)
          const e = topK(exact, k)
          for (const i of [...a].filter((i) => !e.has(i)).concat([...e].filter((i) => !a.has(i)))) {
            // a swap needs two scores that the error can reorder: within twice the bound of the k-th
            expect(Math.abs(exact[i] - kth)).toBeLessThanOrEqual(2 * (row(r.bound)[i] + Math.max(...row(r.bound))))
            differ++
          }
          // the keys' own quantization against float32 keys, for scale
          const f32 = Array.from({ length: n }, (_, i) => { let s = 0; for (let c = 0; c < 64; c++) s += q[h * 64 + c] * kk[i * 64 + c]; return s })
          const fk = topK(f32, k)
          keyDiffer += [...e].filter((i) => !fk.has(i)).length * 2
        }
      })
      // the query's rounding reorders far fewer keys than the keys' own quantization does
      expect(differ).toBeLessThanOrEqual(Math.max(2, keyDiffer / 4))
    },
  )
})

describe('Ops.scoreKeys on packed views', () => {
  it('scores int4/int2 segments with the integer kernel, and with the exact fused one on request', () => {
    const { b } = build('simd')
    const ops = new Ops(b)
    const n = 100
    const keys = normals(rng(4), n * 64)
    for (const format of ['int4', 'int2'] as const) {
      const { cache, seg } = packed(b, keys, n, 64, format)
      const q = b.heap.f32From(normals(rng(5), 3 * 64))
      const [viaOps, viaExact, direct, exact] = [0, 1, 2, 3].map(() => b.heap.allocF32(3 * n))
      const scratch = b.heap.allocF32(packedIntScratch(3, 64))
      ops.scoreKeys(q, 3, seg, SCALE, viaOps)
      ops.scoreKeys(q, 3, seg, SCALE, viaExact, { exact: true })
      b.scorePackedKeysInt!(q.ptr, 3, 64, seg.kTable, 64, n, BITS[format], SCALE, direct.ptr, scratch.ptr)
      b.scorePackedKeys!(q.ptr, 3, 64, seg.kTable, 64, n, BITS[format], 0, SCALE, exact.ptr, scratch.ptr)
      expect(Array.from(viaOps.view)).toEqual(Array.from(direct.view))
      expect(Array.from(viaExact.view)).toEqual(Array.from(exact.view))
      expect(Array.from(viaOps.view)).not.toEqual(Array.from(exact.view))
      for (const x of [q, viaOps, viaExact, direct, exact, scratch]) x.free()
      cache.dispose()
    }
  })

  it('refuses int2+sign views by name (their keys live in a basis the query must enter first)', () => {
    const { b } = build('simd')
    const ops = new Ops(b)
    const q = b.heap.allocF32(64)
    const out = b.heap.allocF32(32)
    const view = { kTable: 0, vTable: 0, pageTokens: 64, n: 32, d: 64, format: 'int2+sign' as PageFormat }
    expect(() => ops.scoreKeys(q, 1, view, 1, out)).toThrow(ShapeError)
    expect(() => ops.scoreKeys(q, 1, view, 1, out)).toThrow(/int2\+sign/)
    q.free()
    out.free()
  })
})
