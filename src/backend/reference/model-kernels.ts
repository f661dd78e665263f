import type { Heap } from '../heap.js'
import type { ModelKernels } from '../model-kernels.js'
import { halfToFloat } from '../half.js'

/**
 * Plain TypeScript twins of the runtime's kernels, written for clarity (float64 accumulation, no blocking):
 * the independent reference the wasm kernels are tested against. Same pointers, same arena.
 */
/** rotate_half rotation of the row at float index a with the half-row tables at float indices c and s */
function rotateRow(f: Float32Array, a: number, half: number, c: number, s: number): void {
  for (let i = 0; i < half; i++) {
    const x1 = f[a + i]
    const x2 = f[a + i + half]
    f[a + i] = x1 * f[c + i] - x2 * f[s + i]
    f[a + i + half] = x2 * f[c + i] + x1 * f[s + i]
  }
}

export function referenceModelKernels(heap: Heap): ModelKernels {
  const F = () => heap.F32
  const I = () => heap.I32
  /** causal attention over the row sequence token(0), token(1), ... (the page table's rows, or a list) */
  const causal = (
    q: number, qStride: number, hq: number, T: number, kd: number, vd: number, kTable: number, vTable: number,
    pageTokens: number, n: number, visible0: number, scale: number, out: number, outStride: number, lse: number,
    token: (j: number) => number, half = false, ends = 0,
  ): void => {
    const f = F()
    const iv = I()
    const h16 = heap.U16
    // element e of row j of a stream: float32 rows, or float16 rows widened (the twin of the F16 kernels)
    const rowAt = (table: number, j: number, width: number) => {
      const t = token(j)
      return (iv[(table >> 2) + Math.floor(t / pageTokens)] >> (half ? 1 : 2)) + (t % pageTokens) * width
    }
    const el = (i: number) => (half ? halfToFloat(h16[i]) : f[i])
    for (let t = 0; t < T; t++) {
      const lim = ends ? iv[(ends >> 2) + t] : Math.min(n, visible0 + t)
      for (let h = 0; h < hq; h++) {
        const qr = (q >> 2) + t * qStride + h * kd
        const s = new Float64Array(Math.max(lim, 0))
        let m = -Infinity
        for (let j = 0; j < lim; j++) {
          const kr = rowAt(kTable, j, kd)
          let dot = 0
          for (let c = 0; c < kd; c++) dot += f[qr + c] * el(kr + c)
          s[j] = dot * scale
          if (s[j] > m) m = s[j]
        }
        let l = 0
        for (let j = 0; j < lim; j++) l += (s[j] = Math.exp(s[j] - m))
        const o = (out >> 2) + t * outStride + h * vd
        for (let c = 0; c < vd; c++) {
          let acc = 0
          for (let j = 0; j < lim; j++) acc += s[j] * el(rowAt(vTable, j, vd) + c)
          f[o + c] = l > 0 ? acc / l : 0
        }
        if (lse) f[(lse >> 2) + t * hq + h] = l > 0 ? m + Math.log(l) : -Infinity
      }
    }
  }

  const mass1 = (
    q: number, qStride: number, hq: number, T: number, kd: number, kTable: number, pageTokens: number,
    n: number, visible0: number, scale: number, lse: number, mass: number, half: boolean,
  ): void => {
    const f = F()
    const iv = I()
    const h16 = heap.U16
    for (let t = 0; t < T; t++) {
      const lim = Math.min(n, visible0 + t)
      for (let h = 0; h < hq; h++) {
        const qr = (q >> 2) + t * qStride + h * kd
        const l = f[(lse >> 2) + t * hq + h]
        for (let j = 0; j < lim; j++) {
          const kr = (iv[(kTable >> 2) + Math.floor(j / pageTokens)] >> (half ? 1 : 2)) + (j % pageTokens) * kd
          let dot = 0
          for (let c = 0; c < kd; c++) dot += f[qr + c] * (half ? halfToFloat(h16[kr + c]) : f[kr + c])
          f[(mass >> 2) + j] += Math.exp(dot * scale - l)
        }
      }
    }
  }

  return {
    matmul(x, w, bias, y, T, inDim, outDim) {
      const f = F()
      const xb = x >> 2, wb = w >> 2, yb = y >> 2, bb = bias >> 2
      for (let t = 0; t < T; t++) {
        for (let o = 0; o < outDim; o++) {
          let s = 0
          for (let k = 0; k < inDim; k++) s += f[xb + t * inDim + k] * f[wb + o * inDim + k]
          f[yb + t * outDim + o] = s + (bias ? f[bb + o] : 0)
        }
      }
    },
    rmsnorm(x, g, out, T, dim, eps) {
      const f = F()
      for (let t = 0; t < T; t++) {
        const xr = (x >> 2) + t * dim
        const yr = (out >> 2) + t * dim
        let ss = 0
        for (let k = 0; k < dim; k++) ss += f[xr + k] * f[xr + k]
        const inv = 1 / Math.sqrt(ss / dim + eps)
        for (let k = 0; k < dim; k++) f[yr + k] = f[xr + k] * inv * f[(g >> 2) + k]
      }
    },
    rope(x, T, heads, d, cos, sin) {
      const half = d >> 1
      for (let t = 0; t < T; t++) {
        for (let h = 0; h < heads; h++) rotateRow(F(), (x >> 2) + (t * heads + h) * d, half, (cos >> 2) + t * half, (sin >> 2) + t * half)
      }
    },
    ropeRows(table, pageTokens, first, n, d, cos, sin) {
      const iv = I()
      const half = d >> 1
      for (let r = 0; r < n; r++) {
        const i = first + r
        const p = Math.floor(i / pageTokens)
        rotateRow(F(), (iv[(table >> 2) + p] >> 2) + (i - p * pageTokens) * d, half, (cos >> 2) + r * half, (sin >> 2) + r * half)
      }
    },
    swiglu(gate, up, out, n) {
      const f = F()
      for (let i = 0; i < n; i++) {
        const g = f[(gate >> 2) + i]
        f[(out >> 2) + i] = (g / (1 + Math.exp(-g))) * f[(up >> 2) + i]
      }
    },
    addInPlace(y, x, n) {
      const f = F()
      for (let i = 0; i < n; i++) f[(y >> 2) + i] += f[(x >> 2) + i]
    },
    attendCausal(q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, n, visible0, scale, out, outStride, lse) {
      causal(q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, n, visible0, scale, out, outStride, lse, (j) => j)
    },
    attendCausalRows(q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, ends, scale, out, outStride, lse) {
      causal(q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, 0, 0, scale, out, outStride, lse, (j) => j, false, ends)
    },
    attendGathered(q, hq, kd, vd, kTable, vTable, pageTokens, idx, nIdx, scale, out, lse) {
      const iv = I()
      causal(q, hq * kd, hq, 1, kd, vd, kTable, vTable, pageTokens, nIdx, nIdx, scale, out, hq * vd, lse, (j) => iv[(idx >> 2) + j])
    },
    attendCausalF16(q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, n, visible0, scale, out, outStride, lse) {
      causal(q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, n, visible0, scale, out, outStride, lse, (j) => j, true)
    },
    attendGatheredF16(q, hq, kd, vd, kTable, vTable, pageTokens, idx, nIdx, scale, out, lse) {
      const iv = I()
      causal(q, hq * kd, hq, 1, kd, vd, kTable, vTable, pageTokens, nIdx, nIdx, scale, out, hq * vd, lse, (j) => iv[(idx >> 2) + j], true)
    },
    attentionMass(q, qStride, hq, T, kd, kTable, pageTokens, n, visible0, scale, lse, mass) {
      mass1(q, qStride, hq, T, kd, kTable, pageTokens, n, visible0, scale, lse, mass, false)
    },
    attentionMassF16(q, qStride, hq, T, kd, kTable, pageTokens, n, visible0, scale, lse, mass) {
      mass1(q, qStride, hq, T, kd, kTable, pageTokens, n, visible0, scale, lse, mass, true)
    },
    fmaPeak(iters) {
      // the same 48 scalar chains' multiply-adds (12 chains x 4 lanes) in plain TypeScript
      const acc = Float64Array.from({ length: 48 }, (_, i) => i)
      for (let i = 0; i < iters; i++) for (let k = 0; k < 48; k++) acc[k] = acc[k] * 0.999999 + 1e-7
      return acc.reduce((a, b) => a + b, 0)
    },
  }
}
