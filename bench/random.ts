/** Deterministic pseudo-random floats in [-1.5, 1.5) (an LCG): benchmark inputs that are the same every run. */
export function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0
    out[i] = (s / 2 ** 32 - 0.5) * 3
  }
  return out
}
