import { hsum } from '../kernels/simd'

/** out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * g, for T rows of dim floats (Llama's RMSNorm, in float32). */
export function rmsnorm(x: usize, g: usize, out: usize, T: i32, dim: i32, eps: f32): void {
  const row = <usize>dim << 2
  const d4 = dim & ~3
  for (let t = 0; t < T; t++) {
    const xr = x + <usize>t * row
    const yr = out + <usize>t * row
    let acc = f32x4.splat(0)
    for (let k = 0; k < d4; k += 4) {
      const v = v128.load(xr + (<usize>k << 2))
      acc = f32x4.add(acc, f32x4.mul(v, v))
    }
    let ss = hsum(acc)
    for (let k = d4; k < dim; k++) {
      const v = load<f32>(xr + (<usize>k << 2))
      ss += v * v
    }
    const inv: f32 = 1.0 / Mathf.sqrt(ss / <f32>dim + eps)
    const s = f32x4.splat(inv)
    for (let k = 0; k < d4; k += 4) {
      const off = <usize>k << 2
      v128.store(yr + off, f32x4.mul(f32x4.mul(v128.load(xr + off), s), v128.load(g + off)))
    }
    for (let k = d4; k < dim; k++) {
      const off = <usize>k << 2
      store<f32>(yr + off, load<f32>(xr + off) * inv * load<f32>(g + off))
    }
  }
}
