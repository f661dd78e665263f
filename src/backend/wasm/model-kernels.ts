import type { Heap } from '../heap.js'
import type { ModelKernels } from '../model-kernels.js'
import { WasmLoadError } from './load.js'

type Fn = (...args: number[]) => number

/** The runtime's kernels bound to the wasm exports (assembly/model/*). */
export function wasmModelKernels(exports: WebAssembly.Exports, _heap: Heap): ModelKernels {
  const fn = (name: string): Fn => {
    const f = exports[name]
    // a module given in the options that is another version's build: loadWasm's class, as its other refusals of a module
    if (typeof f !== 'function') throw new WasmLoadError(`wasm module lacks the model kernel export '${name}': not this kvkit version's build (rebuild with npm run build:wasm, or pass the build/*.wasm that came with the package)`)
    return f as Fn
  }
  const matmul = fn('matmul'), rmsnorm = fn('rmsnorm'), rope = fn('rope'), ropeRows = fn('ropeRows'), swiglu = fn('swiglu')
  const addInPlace = fn('addInPlace'), attendCausal = fn('attendCausal'), attentionMass = fn('attentionMass')
  const fmaPeak = fn('fmaPeak'), attendGathered = fn('attendGathered'), attendCausalRows = fn('attendCausalRows')
  const attendCausalF16 = fn('attendCausalF16'), attendGatheredF16 = fn('attendGatheredF16'), attentionMassF16 = fn('attentionMassF16')
  return {
    matmul: (x, w, bias, y, T, inDim, outDim) => void matmul(x, w, bias, y, T, inDim, outDim),
    rmsnorm: (x, g, out, T, dim, eps) => void rmsnorm(x, g, out, T, dim, eps),
    rope: (x, T, heads, d, cos, sin) => void rope(x, T, heads, d, cos, sin),
    ropeRows: (table, pageTokens, first, n, d, cos, sin) => void ropeRows(table, pageTokens, first, n, d, cos, sin),
    swiglu: (gate, up, out, n) => void swiglu(gate, up, out, n),
    addInPlace: (y, x, n) => void addInPlace(y, x, n),
    attendCausal: (q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, n, visible0, scale, out, outStride, lse, scratch) =>
      void attendCausal(q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, n, visible0, scale, out, outStride, lse, scratch),
    attendCausalRows: (q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, ends, scale, out, outStride, lse, scratch) =>
      void attendCausalRows(q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, ends, scale, out, outStride, lse, scratch),
    attendGathered: (q, hq, kd, vd, kTable, vTable, pageTokens, idx, nIdx, scale, out, lse, scratch) =>
      void attendGathered(q, hq, kd, vd, kTable, vTable, pageTokens, idx, nIdx, scale, out, lse, scratch),
    attendCausalF16: (q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, n, visible0, scale, out, outStride, lse, scratch) =>
      void attendCausalF16(q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, n, visible0, scale, out, outStride, lse, scratch),
    attendGatheredF16: (q, hq, kd, vd, kTable, vTable, pageTokens, idx, nIdx, scale, out, lse, scratch) =>
      void attendGatheredF16(q, hq, kd, vd, kTable, vTable, pageTokens, idx, nIdx, scale, out, lse, scratch),
    attentionMassF16: (q, qStride, hq, T, kd, kTable, pageTokens, n, visible0, scale, lse, mass, scratch) =>
      void attentionMassF16(q, qStride, hq, T, kd, kTable, pageTokens, n, visible0, scale, lse, mass, scratch),
    attentionMass: (q, qStride, hq, T, kd, kTable, pageTokens, n, visible0, scale, lse, mass, scratch) =>
      void attentionMass(q, qStride, hq, T, kd, kTable, pageTokens, n, visible0, scale, lse, mass, scratch),
    fmaPeak: (iters) => fmaPeak(iters, 0.999999, 1e-7),
  }
}
