import { beforeAll, describe, expect, it } from 'vitest'
import type { CreatedBackend } from '../src/backend/index.js'
import type { Heap } from '../src/backend/heap.js'
import { attendScratchFloats } from '../src/backend/model-kernels.js'
import { floatToHalf, halfToFloat, HALF_MAX_BITS, HALF_NAN_BITS } from '../src/backend/half.js'
import { expectClose, halfStreams, normals, rng, wasmAndReference } from './kernels-helpers.js'

// Float16 KV in the compute core: the conversion on append (round to nearest, ties to even, saturating),
// the exact widening, and the F16 kernels of the attention family, which read float16 pages in place.
// Three references: hand-worked values, the TypeScript twin (src/backend/half.ts, written from the format's
// definition), and the float32 kernels run over the widened rows (the F16 kernels must equal them bit for bit:
// widening is exact and the arithmetic is the same).
let wasm: CreatedBackend
let ref: CreatedBackend
let heap: Heap
beforeAll(async () => {
  ;({ wasm, ref, heap } = await wasmAndReference())
})

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.slice().buffer))
const f32 = (u: number) => new Float32Array(new Uint32Array([u]).buffer)[0]
const FINITE = Array.from({ length: 65536 }, (_, h) => h).filter((h) => (h & 0x7c00) !== 0x7c00)

/** wasm toFloat16 over xs: the half bits and the NaN count */
function narrow(xs: ArrayLike<number>): { h: number[]; nan: number } {
  const src = heap.f32From(Float32Array.from(xs))
  const dst = heap.alloc(xs.length * 2 + 16)
  try {
    const nan = wasm.toFloat16(src.ptr, dst, xs.length)
    return { h: Array.from(heap.U16.subarray(dst >> 1, (dst >> 1) + xs.length)), nan }
  } finally {
    src.free()
    heap.release(dst)
  }
}

/** wasm fromFloat16 over half bits */
function widen(hs: number[]): Float32Array {
  const src = heap.alloc(hs.length * 2 + 16)
  const dst = heap.allocF32(hs.length)
  try {
    heap.U16.set(hs, src >> 1)
    wasm.fromFloat16(src, dst.ptr, hs.length)
    return dst.view.slice()
  } finally {
    heap.release(src)
    dst.free()
  }
}

describe('float16 conversion (append rounding and in-kernel widening)', () => {
  it('the TypeScript twin: every finite half widens to its defined value and narrows back to itself', () => {
    expect(halfToFloat(0x3c00)).toBe(1)
    expect(halfToFloat(0xc000)).toBe(-2)
    expect(halfToFloat(0x0001)).toBe(2 ** -24)
    expect(halfToFloat(0x03ff)).toBe(1023 * 2 ** -24)
    expect(halfToFloat(0x0400)).toBe(2 ** -14)
    expect(halfToFloat(HALF_MAX_BITS)).toBe(65504)
    for (const h of FINITE) expect(floatToHalf(halfToFloat(h)), `0x${h.toString(16)}`).toBe(h)
  })

  it('the wasm widening equals the twin on all 63488 finite halves, bit for bit (signed zeros and subnormals included)', () => {
    const got = widen(FINITE)
    const want = Float32Array.from(FINITE, halfToFloat)
    expect(bits(got)).toEqual(bits(want))
  })

  it('exponent-31 codes, which the store never writes, widen to finite 65536..131008 (the kernels keep three operations)', () => {
    const got = widen([0x7c00, 0xfc00, 0x7e00, 0x7fff])
    expect(Array.from(got)).toEqual([65536, -65536, 98304, 131008])
  })

  const hand: [string, number, number][] = [
    ['1 is exact', 1, 0x3c00],
    ['a tie below an even mantissa rounds down: 1 + 2^-11', 1 + 2 ** -11, 0x3c00],
    ['a tie below an odd mantissa rounds up to even: 1 + 3 x 2^-11', 1 + 3 * 2 ** -11, 0x3c02],
    ['just above a tie rounds up', f32(0x3f801001), 0x3c01],
    ['the smallest subnormal, 2^-24', 2 ** -24, 0x0001],
    ['2^-25 ties to even zero', 2 ** -25, 0x0000],
    ['3 x 2^-25 ties to even 2 x 2^-24', 3 * 2 ** -25, 0x0002],
    ['just above 2^-25 rounds up to 2^-24', f32(0x33000001), 0x0001],
    ['a subnormal rounding up into the smallest normal', 2 ** -14 - 2 ** -26, 0x0400],
    ['-0 keeps its sign', -0, 0x8000],
    ['65504 is the largest half', 65504, 0x7bff],
    ['65519.996 rounds to 65504', f32(0x477fefff), 0x7bff],
    ['65520 (ties to inf under IEEE) saturates at 65504', 65520, HALF_MAX_BITS],
    ['1e6 saturates at 65504', 1e6, HALF_MAX_BITS],
    ['+inf saturates at 65504', Infinity, HALF_MAX_BITS],
    ['-inf saturates at -65504', -Infinity, 0x8000 | HALF_MAX_BITS],
    ['NaN gives the quiet NaN (the store refuses it)', NaN, HALF_NAN_BITS],
  ]
  it.each(hand)('%s', (_what, x, want) => {
    expect(floatToHalf(x)).toBe(want)
    expect(narrow([x]).h[0]).toBe(want)
  })

  it('the wasm rounding equals the twin on 200k float32 bit patterns of every exponent, and counts NaNs', () => {
    const r = rng(16)
    const xs = new Float32Array(200_000)
    const u = new Uint32Array(xs.buffer)
    for (let i = 0; i < u.length; i++) u[i] = (r() * 2 ** 32) >>> 0
    // and many values near half's range: exponents 100..145
    for (let i = 0; i < u.length; i += 2) u[i] = ((r() < 0.5 ? 0x80000000 : 0) | ((100 + Math.floor(r() * 46)) << 23) | Math.floor(r() * 2 ** 23)) >>> 0
    const nanCount = Array.from(xs).filter(Number.isNaN).length
    const { h, nan } = narrow(xs)
    expect(nan).toBe(nanCount)
    for (let i = 0; i < xs.length; i++) if (h[i] !== floatToHalf(xs[i])) throw new Error(`${xs[i]} (0x${u[i].toString(16)}): wasm 0x${h[i].toString(16)}, twin 0x${floatToHalf(xs[i]).toString(16)}`)
  })

  it('rounding is to the nearest half: no finite half lies closer (20k random values)', () => {
    const r = rng(3)
    for (let i = 0; i < 20_000; i++) {
      const x = Math.fround((r() - 0.5) * 2 ** (Math.floor(r() * 40) - 24))
      const h = floatToHalf(x)
      const err = Math.abs(halfToFloat(h) - x)
      for (const n of [h - 1, h + 1]) if ((n & 0x7fff) < 0x7c00 && n >= 0 && (n & 0x8000) === (h & 0x8000)) expect(err).toBeLessThanOrEqual(Math.abs(halfToFloat(n) - x))
    }
  })
})

const twinStreams = (rows: Float32Array, n: number, d: number, pageTokens: number) => halfStreams(heap, rows, n, d, pageTokens)

describe('F16 kernels read float16 pages in place', () => {
  const shapes = [
    // qHeads, d, n, pageTokens
    [1, 64, 1, 16], [2, 7, 37, 8], [3, 128, 130, 64], [4, 128, 257, 64], [5, 13, 70, 16], [8, 64, 200, 32], [4, 4, 9, 1],
  ]
  it.each(shapes)('scoreKeysF16 equals scoreKeys over the widened rows bit for bit, and the twin within float32 rounding (qHeads=%i d=%i n=%i pageTokens=%i)', (qHeads, d, n, pageTokens) => {
    const rand = rng(qHeads * 31 + d * 7 + n)
    const k = twinStreams(normals(rand, n * d), n, d, pageTokens)
    const q = heap.f32From(normals(rand, qHeads * d))
    const out = heap.allocF32(qHeads * n)
    const run = (f: () => void) => (f(), out.view.slice())
    const half = run(() => wasm.scoreKeysF16(q.ptr, qHeads, d, k.half, pageTokens, n, 0.3, out.ptr))
    const wide = run(() => wasm.scoreKeys(q.ptr, qHeads, d, k.wide, pageTokens, n, 0.3, out.ptr))
    const twin = run(() => ref.scoreKeysF16(q.ptr, qHeads, d, k.half, pageTokens, n, 0.3, out.ptr))
    expect(bits(half)).toEqual(bits(wide))
    expectClose(half, twin, 1e-4, 1e-4, 'scoreKeysF16')
    for (const b of [q, out]) b.free()
    k.free()
  })

  it.each([
    ['a query of 2^15 or more (the widening path)', 4, 128, 70, 40000],
    ['more than 16384 query floats (the widening path)', 130, 128, 9, 1],
    ['queries near the 2^15 bound (the prescaled path)', 4, 64, 33, 32767],
  ])('scoreKeysF16 with %s equals scoreKeys over the widened rows bit for bit', (_what, qHeads, d, n, big) => {
    const rand = rng(qHeads + n)
    const k = twinStreams(normals(rand, n * d), n, d, 16)
    const qv = normals(rand, qHeads * d)
    qv[5] = big
    const q = heap.f32From(qv)
    const out = heap.allocF32(qHeads * n)
    wasm.scoreKeysF16(q.ptr, qHeads, d, k.half, 16, n, 0.5, out.ptr)
    const half = out.view.slice()
    wasm.scoreKeys(q.ptr, qHeads, d, k.wide, 16, n, 0.5, out.ptr)
    expect(bits(half)).toEqual(bits(out.view.slice()))
    q.free()
    out.free()
    k.free()
  })

  it.each(shapes)('attendCausalF16, attendGatheredF16 and attentionMassF16 equal the float32 kernels over the widened rows bit for bit, and the twins closely (qHeads=%i d=%i n=%i pageTokens=%i)', (hq, d, n, pageTokens) => {
    const rand = rng(hq * 13 + d + n * 3)
    const k = twinStreams(normals(rand, n * d), n, d, pageTokens)
    const v = twinStreams(normals(rand, n * d), n, d, pageTokens)
    const T = Math.min(3, n)
    const q = heap.f32From(normals(rand, T * hq * d))
    const out = heap.allocF32(T * hq * d)
    const lse = heap.allocF32(T * hq)
    const mass = heap.allocF32(n)
    const scratch = heap.allocF32(attendScratchFloats(d, T * hq))
    const idx = heap.i32From(Array.from({ length: n }, (_, i) => n - 1 - i).filter((i) => i % 3 !== 1))
    const snap = () => [...out.view.slice(), ...lse.view.slice()]
    const causal = (be: CreatedBackend, f16: boolean) => {
      const f = f16 ? be.attendCausalF16 : be.attendCausal
      f(q.ptr, hq * d, hq, T, d, d, f16 ? k.half : k.wide, f16 ? v.half : v.wide, pageTokens, n, n - T + 1, 0.2, out.ptr, hq * d, lse.ptr, scratch.ptr)
      return snap()
    }
    const gathered = (be: CreatedBackend, f16: boolean) => {
      const f = f16 ? be.attendGatheredF16 : be.attendGathered
      f(q.ptr, hq, d, d, f16 ? k.half : k.wide, f16 ? v.half : v.wide, pageTokens, idx.ptr, idx.length, 0.2, out.ptr, lse.ptr, scratch.ptr)
      return snap().slice(0, hq * d).concat(snap().slice(T * hq * d, T * hq * d + hq))
    }
    const massOf = (be: CreatedBackend, f16: boolean) => {
      be.attendCausal(q.ptr, hq * d, hq, T, d, d, k.wide, v.wide, pageTokens, n, n - T + 1, 0.2, out.ptr, hq * d, lse.ptr, scratch.ptr)
      mass.view.fill(0)
      const f = f16 ? be.attentionMassF16 : be.attentionMass
      f(q.ptr, hq * d, hq, T, d, f16 ? k.half : k.wide, pageTokens, n, n - T + 1, 0.2, lse.ptr, mass.ptr, scratch.ptr)
      return Array.from(mass.view)
    }
    const same = (a: number[], b: number[], what: string) => expect(bits(Float32Array.from(a)), what).toEqual(bits(Float32Array.from(b)))
    same(causal(wasm, true), causal(wasm, false), 'attendCausalF16')
    same(gathered(wasm, true), gathered(wasm, false), 'attendGatheredF16')
    same(massOf(wasm, true), massOf(wasm, false), 'attentionMassF16')
    expectClose(causal(wasm, true), causal(ref, true), 1e-4, 1e-5, 'attendCausalF16 vs twin')
    expectClose(gathered(wasm, true), gathered(ref, true), 1e-4, 1e-5, 'attendGatheredF16 vs twin')
    expectClose(massOf(wasm, true), massOf(ref, true), 1e-4, 1e-5, 'attentionMassF16 vs twin')
    for (const b of [q, out, lse, mass, scratch, idx]) b.free()
    k.free()
    v.free()
  })

  it('gatherChannelsF16 keeps the listed halves of each row (against the twin)', () => {
    const n = 70, d = 16, pt = 32
    const k = twinStreams(normals(rng(5), n * d), n, d, pt)
    const channels = heap.i32From([0, 3, 4, 15])
    const pages = Array.from({ length: 3 }, () => heap.alloc(pt * 4 * 2, 64))
    const table = heap.i32From(pages)
    const read = () => Array.from({ length: n * 4 }, (_, i) => heap.U16[(pages[Math.floor(i / (pt * 4))] >> 1) + (i % (pt * 4))])
    wasm.gatherChannelsF16(k.half, table.ptr, pt, d, channels.ptr, 4, n)
    const got = read()
    heap.U16.fill(0, pages[0] >> 1, (pages[0] >> 1) + pt * 4)
    ref.gatherChannelsF16(k.half, table.ptr, pt, d, channels.ptr, 4, n)
    expect(got).toEqual(read())
    expect(got.some((x) => x !== 0)).toBe(true)
    for (const p of pages) heap.release(p)
    table.free()
    channels.free()
    k.free()
  })
})
