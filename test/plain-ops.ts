/**
 * Float64 building blocks of the plain TypeScript forward passes the model tests check the runtime
 * against (written from the Llama/Qwen2 equations, sharing no code with the runtime).
 */
export function plainOps(eps: number, D: number, invFreq: ArrayLike<number>, roundAngle = false) {
  const rms = (x: Float64Array, g: Float32Array) => {
    const ms = x.reduce((a, v) => a + v * v, 0) / x.length
    return x.map((v, i) => (v / Math.sqrt(ms + eps)) * g[i])
  }
  /** y[o] = x . w[o] + b[o], w [out][x.length] */
  const lin = (x: Float64Array, w: Float32Array, out: number, b?: Float32Array) =>
    Float64Array.from({ length: out }, (_, o) => x.reduce((a, v, k) => a + v * w[o * x.length + k], 0) + (b ? b[o] : 0))
  /** rotate_half RoPE of v [heads][D] at pos (the angle in float32 when roundAngle, as Transformers) */
  const rope = (v: Float64Array, pos: number) => {
    const r = v.slice()
    for (let h = 0; h < v.length / D; h++) for (let i = 0; i < D / 2; i++) {
      const a = roundAngle ? Math.fround(pos * invFreq[i]) : pos * invFreq[i]
      const c = Math.cos(a), s = Math.sin(a)
      const x1 = v[h * D + i], x2 = v[h * D + i + D / 2]
      r[h * D + i] = x1 * c - x2 * s
      r[h * D + i + D / 2] = x2 * c + x1 * s
    }
    return r
  }
  return { rms, lin, rope }
}
