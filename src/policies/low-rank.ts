/**
 * Truncated SVD of a tall matrix X [T][n] (T tokens, n = kvHeads x headDim columns): X ~ A . B with
 * A = U_r S_r [T][r] and B = V_r^T [r][n], the best rank-r approximation in the Frobenius norm
 * (Eckart-Young). ShadowKV (Sun et al. 2024, sec. 4.1) factors a layer's pre-RoPE keys this way at
 * prefill end and rebuilds the keys of the chunks it selects from A's rows.
 *
 * Computed through the Gram matrix, since n is small (128 for the fixture, 1024 for Llama-3-8B) and T
 * large: G = X^T X [n][n] and A = X V_r run on the compute core's matmul (the O(T n^2) and O(T n r)
 * work); the eigen-decomposition of G (O(n^3), float64) is ml-matrix's symmetric solver. The right
 * singular vectors are G's eigenvectors and the squared singular values its eigenvalues, so
 * A = X V_r = U_r S_r without forming U. (Squaring the condition number costs precision only in the
 * smallest singular values, which the truncation drops.)
 */
import { EigenvalueDecomposition, Matrix } from 'ml-matrix'
import type { Backend } from '../backend/backend.js'

export interface LowRankFactors {
  /** [T][r] = U_r S_r */
  a: Float32Array
  /** [r][n] = V_r^T */
  b: Float32Array
  /** the r largest singular values, descending */
  singular: Float64Array
  /** share of ||X||_F^2 the r components hold (sum of the r largest squared singular values over all of them) */
  energy: number
}

/**
 * The rank-r factors of x [T][n] (float32, row-major). Arena temporaries are released before returning.
 * Throws RangeError for a shape that does not fit (x.length != T n, or r outside [1, min(T, n)]).
 */
export function lowRankFactors(backend: Pick<Backend, 'heap' | 'matmul'>, x: Float32Array, T: number, n: number, r: number): LowRankFactors {
  if (!(Number.isInteger(T) && T >= 1 && Number.isInteger(n) && n >= 1) || x.length !== T * n) throw new RangeError(`lowRankFactors: x must hold T x n = ${T} x ${n} floats, got ${x.length}`)
  if (!(Number.isInteger(r) && r >= 1 && r <= Math.min(T, n))) throw new RangeError(`lowRankFactors: rank must be an integer in [1, ${Math.min(T, n)}], got ${r}`)
  const heap = backend.heap
  const xt = heap.allocF32(n * T)
  const gram = heap.allocF32(n * n)
  try {
    // X^T as [n][T] rows: matmul(X^T, X^T) = X^T (X^T)^T = G (the kernel's weights are [out][in])
    const XT = xt.view
    for (let t = 0; t < T; t++) for (let c = 0; c < n; c++) XT[c * T + t] = x[t * n + c]
    backend.matmul(xt.ptr, xt.ptr, 0, gram.ptr, n, T, n)
    const G = gram.view
    const g = new Matrix(n, n)
    // symmetrised: the kernel's float32 sums may differ in the last bit across the diagonal
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) g.set(i, j, 0.5 * (G[i * n + j] + G[j * n + i]))
    const eig = new EigenvalueDecomposition(g, { assumeSymmetric: true })
    const values = eig.realEigenvalues
    const vectors = eig.eigenvectorMatrix
    const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => values[j] - values[i])
    const b = new Float32Array(r * n)
    const singular = new Float64Array(r)
    let kept = 0
    let total = 0
    for (const v of values) total += Math.max(0, v)
    for (let k = 0; k < r; k++) {
      const col = order[k]
      singular[k] = Math.sqrt(Math.max(0, values[col]))
      kept += Math.max(0, values[col])
      for (let c = 0; c < n; c++) b[k * n + c] = vectors.get(c, col)
    }
    const a = new Float32Array(T * r)
    const bBuf = heap.f32From(b)
    const xBuf = heap.f32From(x)
    const aBuf = heap.allocF32(T * r)
    try {
      // A = X V_r: the kernel's weights [out = r][in = n] are B itself
      backend.matmul(xBuf.ptr, bBuf.ptr, 0, aBuf.ptr, T, n, r)
      a.set(aBuf.view)
    } finally {
      aBuf.free()
      xBuf.free()
      bBuf.free()
    }
    return { a, b, singular, energy: total > 0 ? kept / total : 1 }
  } finally {
    gram.free()
    xt.free()
  }
}
