/**
 * Truncated SVD of a tall matrix X [T][n] (T tokens, n = kvHeads x headDim columns): X ~ A . B with
 * A = U_r S_r [T][r] and B = V_r^T [r][n], the best rank-r approximation in the Frobenius norm
 * (Eckart-Young). ShadowKV (Sun et al. 2024, sec. 4.1) factors a layer's pre-RoPE keys this way at
 * prefill end and rebuilds the keys of the chunks it selects from A's rows.
 *
 * Computed through the Gram matrix, since n is small (128 for the fixture, 1024 for Llama-3-8B) and T
 * large: G = X^T X [n][n] and A = X V_r run on the compute core's matmul (the O(T n^2) and O(T n r)
 * work). The right singular vectors are G's eigenvectors and the squared singular values its
 * eigenvalues, so A = X V_r = U_r S_r without forming U. Up to EXACT_COLUMNS columns, G's whole
 * eigen-decomposition (ml-matrix's symmetric solver, float64); beyond, randomized subspace iteration
 * (Halko, Martinsson and Tropp 2011, alg. 4.4): Q = orth(G^(q+1) Omega) for r + 16 seeded random columns,
 * the matmuls on the compute core, then the small eigen-problem Q^T G Q (a full 1024 x 1024
 * decomposition takes seconds in JavaScript; bench/shadowkv.ts). Squaring the condition number costs
 * precision only in the smallest singular values, which the truncation drops.
 */
import { EigenvalueDecomposition, Matrix, QrDecomposition } from 'ml-matrix'
import type { Backend } from '../backend/backend.js'

/** up to this many columns G is decomposed whole; beyond, randomized subspace iteration */
export const EXACT_COLUMNS = 256
/** extra random columns of the subspace iteration, and its power steps */
const OVERSAMPLE = 16
const POWER_STEPS = 2

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
    const { vectors, values, total } = n <= EXACT_COLUMNS ? exactEigen(gram.view, n, r) : randomizedEigen(backend, gram, n, r)
    const b = new Float32Array(r * n)
    const singular = new Float64Array(r)
    let kept = 0
    for (let k = 0; k < r; k++) {
      singular[k] = Math.sqrt(Math.max(0, values[k]))
      kept += Math.max(0, values[k])
      b.set(vectors.subarray(k * n, (k + 1) * n), k * n)
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

/** the symmetric n x n matrix of G's float32 entries, symmetrised (the kernel's sums may differ in the last bit across the diagonal) */
function symmetric(G: Float32Array, n: number): Matrix {
  const g = new Matrix(n, n)
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) g.set(i, j, 0.5 * (G[i * n + j] + G[j * n + i]))
  return g
}

/** the r leading eigenpairs of the symmetric m: its eigenvector matrix, the values descending and their columns */
function leading(m: Matrix, r: number): { vectors: Matrix; values: number[]; order: number[] } {
  const eig = new EigenvalueDecomposition(m, { assumeSymmetric: true })
  const values = eig.realEigenvalues
  const order = Array.from({ length: values.length }, (_, i) => i).sort((i, j) => values[j] - values[i]).slice(0, r)
  return { vectors: eig.eigenvectorMatrix, values: order.map((i) => values[i]), order }
}

/** G's r leading eigenpairs by its whole decomposition: vectors [r][n] row by row, values descending, and the trace */
function exactEigen(G: Float32Array, n: number, r: number): { vectors: Float32Array; values: number[]; total: number } {
  const g = symmetric(G, n)
  const { vectors, values, order } = leading(g, r)
  const out = new Float32Array(r * n)
  order.forEach((col, k) => {
    for (let c = 0; c < n; c++) out[k * n + c] = vectors.get(c, col)
  })
  return { vectors: out, values, total: g.trace() }
}

/**
 * G's r leading eigenpairs by randomized subspace iteration: Y = G Omega, then POWER_STEPS times
 * Y = G orth(Y) (each product on the compute core: G is symmetric, so matmul(G, Q^T) = G Q), and the
 * eigen-decomposition of the small Q^T G Q. Omega is seeded (the same factors on every run).
 */
function randomizedEigen(backend: Pick<Backend, 'heap' | 'matmul'>, gram: { ptr: number; view: Float32Array }, n: number, r: number): { vectors: Float32Array; values: number[]; total: number } {
  const k = Math.min(n, r + OVERSAMPLE)
  const heap = backend.heap
  const qt = heap.allocF32(k * n)
  const y = heap.allocF32(n * k)
  try {
    // Q^T rows: seeded uniform(-0.5, 0.5) (a 32-bit xorshift, so the factors are reproducible)
    let seed = 0x9e3779b9
    const QT = qt.view
    for (let i = 0; i < k * n; i++) {
      seed ^= seed << 13
      seed ^= seed >>> 17
      seed ^= seed << 5
      QT[i] = (seed >>> 0) / 2 ** 32 - 0.5
    }
    let basis = new Matrix(n, k)
    for (let step = 0; step <= POWER_STEPS; step++) {
      // Y [n][k] = G Q, with the kernel's weights [out = k][in = n] = Q^T
      backend.matmul(gram.ptr, qt.ptr, 0, y.ptr, n, n, k)
      const Y = y.view
      const m = new Matrix(n, k)
      for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) m.set(i, j, Y[i * k + j])
      basis = new QrDecomposition(m).orthogonalMatrix
      const Q = qt.view
      for (let j = 0; j < k; j++) for (let i = 0; i < n; i++) Q[j * n + i] = basis.get(i, j)
    }
    // H = Q^T G Q [k][k] from W = G Q
    backend.matmul(gram.ptr, qt.ptr, 0, y.ptr, n, n, k)
    const W = y.view
    const h = new Matrix(k, k)
    for (let a = 0; a < k; a++) for (let c = 0; c < k; c++) {
      let s = 0
      for (let i = 0; i < n; i++) s += basis.get(i, a) * W[i * k + c]
      h.set(a, c, s)
    }
    const small = leading(new Matrix(k, k).add(h).add(h.transpose()).mul(0.5), r)
    const out = new Float32Array(r * n)
    small.order.forEach((col, kk) => {
      for (let i = 0; i < n; i++) {
        let s = 0
        for (let a = 0; a < k; a++) s += basis.get(i, a) * small.vectors.get(a, col)
        out[kk * n + i] = s
      }
    })
    let total = 0
    const G = gram.view
    for (let i = 0; i < n; i++) total += G[i * n + i]
    return { vectors: out, values: small.values, total }
  } finally {
    y.free()
    qt.free()
  }
}
