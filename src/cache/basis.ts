import { CacheError } from './errors.js'

/**
 * VidKV's key basis (Tao et al. 2025, section 3.2, "2-bit for anomalous channels, FFT + 1-bit for normal
 * channels"): a key row k of head_dim channels is stored as k' = [k[hi]; R k[lo]], the `hi` channels as
 * they are and the `lo` channels through R, the orthonormal real DFT across them. R is orthonormal, so a
 * query taken to the same basis scores the same: q' . k' = q[hi] . k[hi] + (R q[lo]) . (R k[lo]) = q . k;
 * the fused kernels thus score the packed k' against q' with no inverse transform, and reading keys back
 * applies R^T.
 *
 * R's rows (m = lo.length, X = the DFT of x, X_j = sum_n x_n e^{-2 pi i j n / m}): X_0 / sqrt(m), then
 * for j = 1 .. ceil(m / 2) - 1 the pair sqrt(2 / m) (Re X_j, Im X_j), then X_{m/2} / sqrt(m) when m is
 * even: the m independent reals of a real signal's spectrum (numpy's rfft, scaled). The released VidKV
 * code keeps the whole complex spectrum, 2m reals of which half repeat the other half (X_{m-j} is the
 * conjugate of X_j) and whose sign codes repeat too: this basis stores the same information in m codes.
 */
export interface KeyBasis {
  /** channels kept as they are (VidKV's anomalous channels: 2-bit), ascending */
  readonly hi: Int32Array
  /** the other channels, ascending: they go through R (1-bit signs) */
  readonly lo: Int32Array
}

/** the basis of `hi` channels of a head of d channels (the rest are lo); refuses a bad channel list */
export function keyBasis(hi: ArrayLike<number>, d: number, what = 'keyBasis'): KeyBasis {
  const seen = new Uint8Array(d)
  for (let j = 0; j < hi.length; j++) {
    const c = hi[j]
    if (!(Number.isInteger(c) && c >= 0 && c < d)) throw new CacheError(`${what}: channel ${c} at [${j}] is outside [0, ${d})`)
    if (seen[c]) throw new CacheError(`${what}: channel ${c} is listed twice`)
    seen[c] = 1
  }
  const lo: number[] = []
  for (let c = 0; c < d; c++) if (!seen[c]) lo.push(c)
  return { hi: Int32Array.from(hi).sort(), lo: Int32Array.from(lo) }
}

/**
 * The DFT of x (length m) as (re, im) by an iterative radix-2 FFT when m is a power of two, else by the
 * direct sum (head dimensions minus the 2-bit channels need not be powers of two). Float64 throughout.
 */
export function dft(x: ArrayLike<number>): { re: Float64Array; im: Float64Array } {
  const m = x.length
  const re = Float64Array.from(x)
  const im = new Float64Array(m)
  if (m <= 1) return { re, im }
  if ((m & (m - 1)) !== 0) {
    for (let j = 0; j < m; j++) {
      let a = 0
      let b = 0
      for (let n = 0; n < m; n++) {
        const t = (-2 * Math.PI * ((j * n) % m)) / m
        a += x[n] * Math.cos(t)
        b += x[n] * Math.sin(t)
      }
      re[j] = a
      im[j] = b
    }
    return { re, im }
  }
  // bit-reversed order, then butterflies of doubling span
  for (let i = 1, j = 0; i < m; i++) {
    let bit = m >> 1
    for (; j & bit; bit >>= 1) j ^= bit
    j ^= bit
    if (i < j) {
      ;[re[i], re[j]] = [re[j], re[i]]
      ;[im[i], im[j]] = [im[j], im[i]]
    }
  }
  for (let len = 2; len <= m; len <<= 1) {
    const ang = (-2 * Math.PI) / len
    for (let i = 0; i < m; i += len) {
      for (let k = 0; k < len / 2; k++) {
        const wr = Math.cos(ang * k)
        const wi = Math.sin(ang * k)
        const a = i + k
        const b = a + len / 2
        const xr = re[b] * wr - im[b] * wi
        const xi = re[b] * wi + im[b] * wr
        re[b] = re[a] - xr
        im[b] = im[a] - xi
        re[a] += xr
        im[a] += xi
      }
    }
  }
  return { re, im }
}

/** R x: the orthonormal real spectrum of x (see KeyBasis), written to out[outOff ..] */
export function realSpectrum(x: ArrayLike<number>, out: Float32Array | Float64Array, outOff = 0): void {
  const m = x.length
  if (m === 0) return
  const { re, im } = dft(x)
  const a = 1 / Math.sqrt(m)
  const b = Math.sqrt(2 / m)
  out[outOff] = re[0] * a
  let o = 1
  for (let j = 1; j < Math.ceil(m / 2); j++) {
    out[outOff + o++] = re[j] * b
    out[outOff + o++] = im[j] * b
  }
  if (m % 2 === 0) out[outOff + o] = re[m / 2] * a
}

/** R^T c: the real signal of an orthonormal spectrum (the inverse of realSpectrum), written to out[outOff ..] */
export function fromRealSpectrum(c: ArrayLike<number>, out: Float32Array | Float64Array, outOff = 0): void {
  const m = c.length
  const a = 1 / Math.sqrt(m)
  const b = Math.sqrt(2 / m)
  for (let n = 0; n < m; n++) {
    let x = c[0] * a
    let o = 1
    for (let j = 1; j < Math.ceil(m / 2); j++) {
      const t = (2 * Math.PI * ((j * n) % m)) / m
      // Re X_j = sum x cos t, Im X_j = -sum x sin t
      x += b * (c[o] * Math.cos(t) - c[o + 1] * Math.sin(t))
      o += 2
    }
    if (m % 2 === 0) x += c[o] * a * (n % 2 ? -1 : 1)
    out[outOff + n] = x
  }
}

/** k' = [k[hi]; R k[lo]] of one row k (d values at x[xOff]) into out[outOff ..] */
export function toBasis(basis: KeyBasis, x: ArrayLike<number>, xOff: number, out: Float32Array, outOff: number): void {
  const { hi, lo } = basis
  for (let j = 0; j < hi.length; j++) out[outOff + j] = x[xOff + hi[j]]
  const tail = new Float64Array(lo.length)
  for (let j = 0; j < lo.length; j++) tail[j] = x[xOff + lo[j]]
  realSpectrum(tail, out, outOff + hi.length)
}

/** k = the row whose basis form is k' (d values at x[xOff]), into out[outOff ..] */
export function fromBasis(basis: KeyBasis, x: ArrayLike<number>, xOff: number, out: Float32Array, outOff: number): void {
  const { hi, lo } = basis
  for (let j = 0; j < hi.length; j++) out[outOff + hi[j]] = x[xOff + j]
  const c = new Float64Array(lo.length)
  for (let j = 0; j < lo.length; j++) c[j] = x[xOff + hi.length + j]
  const back = new Float64Array(lo.length)
  fromRealSpectrum(c, back)
  for (let j = 0; j < lo.length; j++) out[outOff + lo[j]] = back[j]
}
