import { madd, hsum } from '../kernels/simd'

/**
 * y[t][o] = x[t] . w[o] (+ bias[o] when bias != 0) for t < T, o < outDim: a linear layer with the weight in
 * Hugging Face's [out][in] layout, so tied embeddings serve as the LM head without a transposed copy.
 * Register blocked 4 tokens x 2 output rows (8 accumulators, 6 loads per 8 multiply-adds), cache blocked
 * by groups of output rows whose weights (about 24 KiB) stay in L1 while 4 tokens at a time pass; the
 * last T % 4 tokens (all of a decode step) take 8 output rows a pass (8 accumulators, 9 loads).
 */
export function matmul(x: usize, w: usize, bias: usize, y: usize, T: i32, inDim: i32, outDim: i32): void {
  matmulRange(x, w, bias, y, T, inDim, outDim, 0, outDim)
}

/**
 * matmul's output rows [oFrom, oTo) only (all T tokens): the unit the worker pool splits a linear layer
 * into. Every y[t][o] is summed in the same order whichever block computes it (lanes over k in steps of
 * 4, one horizontal sum, the scalar tail), so any split into row ranges gives matmul's result bit for bit.
 */
export function matmulRange(x: usize, w: usize, bias: usize, y: usize, T: i32, inDim: i32, outDim: i32, oFrom: i32, oTo: i32): void {
  // blocks of OB output rows: their weights (OB x inDim floats) stay in L1 while all T tokens pass
  const pairsEnd = oFrom + ((oTo - oFrom) & ~1)
  const OB = max(2, (<i32>(6144 / inDim)) & ~1)
  for (let o0 = oFrom; o0 < pairsEnd; o0 += OB) matmulRows(x, w, bias, y, T, inDim, outDim, o0, min(pairsEnd, o0 + OB))
  if (pairsEnd < oTo) matmulTail(x, w, bias, y, T, inDim, outDim, pairsEnd)
}

/** output rows [oFrom, oTo) (an even count), all tokens: 4 tokens x 2 rows a register block, tokens outer */
function matmulRows(x: usize, w: usize, bias: usize, y: usize, T: i32, inDim: i32, outDim: i32, oFrom: i32, oTo: i32): void {
  const rowX = <usize>inDim << 2
  const rowY = <usize>outDim << 2
  const k4 = inDim & ~3
  let t = 0
  for (; t + 4 <= T; t += 4) {
    const x0 = x + <usize>t * rowX
    const x1 = x0 + rowX
    const x2 = x1 + rowX
    const x3 = x2 + rowX
    for (let o = oFrom; o < oTo; o += 2) {
      const w0 = w + <usize>o * rowX
      const w1 = w0 + rowX
      const b0: f32 = bias ? load<f32>(bias + (<usize>o << 2)) : 0
      const b1: f32 = bias ? load<f32>(bias + (<usize>(o + 1) << 2)) : 0
      let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a10 = f32x4.splat(0), a11 = f32x4.splat(0)
      let a20 = f32x4.splat(0), a21 = f32x4.splat(0), a30 = f32x4.splat(0), a31 = f32x4.splat(0)
      for (let k = 0; k < k4; k += 4) {
        const off = <usize>k << 2
        const v0 = v128.load(w0 + off)
        const v1 = v128.load(w1 + off)
        const u0 = v128.load(x0 + off)
        a00 = madd(u0, v0, a00); a01 = madd(u0, v1, a01)
        const u1 = v128.load(x1 + off)
        a10 = madd(u1, v0, a10); a11 = madd(u1, v1, a11)
        const u2 = v128.load(x2 + off)
        a20 = madd(u2, v0, a20); a21 = madd(u2, v1, a21)
        const u3 = v128.load(x3 + off)
        a30 = madd(u3, v0, a30); a31 = madd(u3, v1, a31)
      }
      let s00 = hsum(a00), s01 = hsum(a01), s10 = hsum(a10), s11 = hsum(a11)
      let s20 = hsum(a20), s21 = hsum(a21), s30 = hsum(a30), s31 = hsum(a31)
      for (let k = k4; k < inDim; k++) {
        const off = <usize>k << 2
        const v0 = load<f32>(w0 + off), v1 = load<f32>(w1 + off)
        const u0 = load<f32>(x0 + off), u1 = load<f32>(x1 + off), u2 = load<f32>(x2 + off), u3 = load<f32>(x3 + off)
        s00 += u0 * v0; s01 += u0 * v1; s10 += u1 * v0; s11 += u1 * v1
        s20 += u2 * v0; s21 += u2 * v1; s30 += u3 * v0; s31 += u3 * v1
      }
      const y0 = y + <usize>t * rowY + (<usize>o << 2)
      store<f32>(y0, s00 + b0); store<f32>(y0, s01 + b1, 4)
      store<f32>(y0 + rowY, s10 + b0); store<f32>(y0 + rowY, s11 + b1, 4)
      store<f32>(y0 + 2 * rowY, s20 + b0); store<f32>(y0 + 2 * rowY, s21 + b1, 4)
      store<f32>(y0 + 3 * rowY, s30 + b0); store<f32>(y0 + 3 * rowY, s31 + b1, 4)
    }
  }
  // the last T % 4 tokens (a decode step's one): 8 output rows a pass, so 8 independent accumulator chains
  // hide the multiply-add latency that 2 left exposed; each y[t][o] still sums k in the same order
  for (; t < T; t++) {
    const x0 = x + <usize>t * rowX
    let o = oFrom
    for (; o + 8 <= oTo; o += 8) matvecOct(x0, w + <usize>o * rowX, bias ? bias + (<usize>o << 2) : 0, y + <usize>t * rowY + (<usize>o << 2), inDim)
    for (; o < oTo; o += 2) {
      const w0 = w + <usize>o * rowX
      const w1 = w0 + rowX
      const b0: f32 = bias ? load<f32>(bias + (<usize>o << 2)) : 0
      const b1: f32 = bias ? load<f32>(bias + (<usize>(o + 1) << 2)) : 0
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0)
      for (let k = 0; k < k4; k += 4) {
        const off = <usize>k << 2
        const u = v128.load(x0 + off)
        a0 = madd(u, v128.load(w0 + off), a0)
        a1 = madd(u, v128.load(w1 + off), a1)
      }
      let s0 = hsum(a0), s1 = hsum(a1)
      for (let k = k4; k < inDim; k++) {
        const off = <usize>k << 2
        const u = load<f32>(x0 + off)
        s0 += u * load<f32>(w0 + off); s1 += u * load<f32>(w1 + off)
      }
      const y0 = y + <usize>t * rowY + (<usize>o << 2)
      store<f32>(y0, s0 + b0); store<f32>(y0, s1 + b1, 4)
    }
  }
}

/** y[0..8) = x . w[0..8) (+ bias[0..8) when bias != 0) for one token x and 8 consecutive weight rows */
// @ts-ignore: decorator
@inline function matvecOct(x0: usize, w0: usize, bias: usize, y0: usize, inDim: i32): void {
  const rowX = <usize>inDim << 2
  const k4 = inDim & ~3
  const w1 = w0 + rowX, w2 = w1 + rowX, w3 = w2 + rowX, w4 = w3 + rowX, w5 = w4 + rowX, w6 = w5 + rowX, w7 = w6 + rowX
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0)
  let a4 = f32x4.splat(0), a5 = f32x4.splat(0), a6 = f32x4.splat(0), a7 = f32x4.splat(0)
  for (let k = 0; k < k4; k += 4) {
    const off = <usize>k << 2
    const u = v128.load(x0 + off)
    a0 = madd(u, v128.load(w0 + off), a0)
    a1 = madd(u, v128.load(w1 + off), a1)
    a2 = madd(u, v128.load(w2 + off), a2)
    a3 = madd(u, v128.load(w3 + off), a3)
    a4 = madd(u, v128.load(w4 + off), a4)
    a5 = madd(u, v128.load(w5 + off), a5)
    a6 = madd(u, v128.load(w6 + off), a6)
    a7 = madd(u, v128.load(w7 + off), a7)
  }
  let s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3)
  let s4 = hsum(a4), s5 = hsum(a5), s6 = hsum(a6), s7 = hsum(a7)
  for (let k = k4; k < inDim; k++) {
    const off = <usize>k << 2
    const u = load<f32>(x0 + off)
    s0 += u * load<f32>(w0 + off); s1 += u * load<f32>(w1 + off); s2 += u * load<f32>(w2 + off); s3 += u * load<f32>(w3 + off)
    s4 += u * load<f32>(w4 + off); s5 += u * load<f32>(w5 + off); s6 += u * load<f32>(w6 + off); s7 += u * load<f32>(w7 + off)
  }
  // the bias (or 0) added last, as the other paths do: a -0 sum becomes +0 the same way
  const b = bias ? v128.load(bias) : f32x4.splat(0), c = bias ? v128.load(bias, 16) : f32x4.splat(0)
  s0 += f32x4.extract_lane(b, 0); s1 += f32x4.extract_lane(b, 1); s2 += f32x4.extract_lane(b, 2); s3 += f32x4.extract_lane(b, 3)
  s4 += f32x4.extract_lane(c, 0); s5 += f32x4.extract_lane(c, 1); s6 += f32x4.extract_lane(c, 2); s7 += f32x4.extract_lane(c, 3)
  store<f32>(y0, s0); store<f32>(y0, s1, 4); store<f32>(y0, s2, 8); store<f32>(y0, s3, 12)
  store<f32>(y0, s4, 16); store<f32>(y0, s5, 20); store<f32>(y0, s6, 24); store<f32>(y0, s7, 28)
}

/** one output row (the last of an odd range) */
function matmulTail(x: usize, w: usize, bias: usize, y: usize, T: i32, inDim: i32, outDim: i32, o: i32): void {
  const rowX = <usize>inDim << 2
  const rowY = <usize>outDim << 2
  const k4 = inDim & ~3
  {
    const w0 = w + <usize>o * rowX
    const b0: f32 = bias ? load<f32>(bias + (<usize>o << 2)) : 0
    for (let t = 0; t < T; t++) {
      const x0 = x + <usize>t * rowX
      let a0 = f32x4.splat(0)
      for (let k = 0; k < k4; k += 4) {
        const off = <usize>k << 2
        a0 = madd(v128.load(x0 + off), v128.load(w0 + off), a0)
      }
      let s0 = hsum(a0)
      for (let k = k4; k < inDim; k++) s0 += load<f32>(x0 + (<usize>k << 2)) * load<f32>(w0 + (<usize>k << 2))
      store<f32>(y + <usize>t * rowY + (<usize>o << 2), s0 + b0)
    }
  }
}

/**
 * Peak yardstick for the benchmarks: 12 independent multiply-add chains (a = a * m + c) held in registers,
 * no memory traffic; 96 flops per iteration. m and c come in as arguments so nothing folds away.
 */
export function fmaPeak(iters: i32, m: f32, c: f32): f32 {
  const mv = f32x4.splat(m), cv = f32x4.splat(c)
  let a0 = f32x4.splat(1), a1 = f32x4.splat(2), a2 = f32x4.splat(3), a3 = f32x4.splat(4)
  let a4 = f32x4.splat(5), a5 = f32x4.splat(6), a6 = f32x4.splat(7), a7 = f32x4.splat(8)
  let a8 = f32x4.splat(9), a9 = f32x4.splat(10), a10 = f32x4.splat(11), a11 = f32x4.splat(12)
  for (let i = 0; i < iters; i++) {
    a0 = madd(a0, mv, cv); a1 = madd(a1, mv, cv); a2 = madd(a2, mv, cv); a3 = madd(a3, mv, cv)
    a4 = madd(a4, mv, cv); a5 = madd(a5, mv, cv); a6 = madd(a6, mv, cv); a7 = madd(a7, mv, cv)
    a8 = madd(a8, mv, cv); a9 = madd(a9, mv, cv); a10 = madd(a10, mv, cv); a11 = madd(a11, mv, cv)
  }
  const s = f32x4.add(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(f32x4.add(a4, a5), f32x4.add(a6, a7)))
  return hsum(f32x4.add(s, f32x4.add(f32x4.add(a8, a9), f32x4.add(a10, a11))))
}
