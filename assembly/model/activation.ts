import { expv, exp1 } from '../kernels/exp'

/** out[i] = silu(gate[i]) * up[i] = gate / (1 + exp(-gate)) * up: the SwiGLU MLP's gate (may alias gate). */
export function swiglu(gate: usize, up: usize, out: usize, n: i32): void {
  const n4 = n & ~3
  const one = f32x4.splat(1)
  for (let i = 0; i < n4; i += 4) {
    const off = <usize>i << 2
    const g = v128.load(gate + off)
    const e = expv(f32x4.neg(g))
    v128.store(out + off, f32x4.mul(f32x4.div(g, f32x4.add(one, e)), v128.load(up + off)))
  }
  for (let i = n4; i < n; i++) {
    const off = <usize>i << 2
    const g = load<f32>(gate + off)
    store<f32>(out + off, g / (1 + exp1(-g)) * load<f32>(up + off))
  }
}

/** y[i] += x[i]: the residual connection. */
export function addInPlace(y: usize, x: usize, n: i32): void {
  const n4 = n & ~3
  for (let i = 0; i < n4; i += 4) {
    const off = <usize>i << 2
    v128.store(y + off, f32x4.add(v128.load(y + off), v128.load(x + off)))
  }
  for (let i = n4; i < n; i++) {
    const off = <usize>i << 2
    store<f32>(y + off, load<f32>(y + off) + load<f32>(x + off))
  }
}
