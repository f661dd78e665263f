import type { Backend } from '../backend/backend.js'
import type { KeyRotation } from '../cache/types.js'

/**
 * cos and sin [n][d/2] of the rotation taking a key cached at position oldPositions[r] to
 * newPositions[r]. The angle is the difference of the two angles the runtime's own tables use
 * (`RopeTables.fill`: position x inverse frequency rounded to float32, as Transformers does), taken in
 * float64, where the difference of two float32 values is exact. Rotating by it lands within float32
 * rounding of a fresh prefill at the new position, however far the move: a rotation by
 * fround(delta x frequency) would not, since fround(p f) + fround(delta f) != fround((p + delta) f) by up
 * to half an ulp of the angle (2.4e-4 rad at position 4096, frequency 1).
 */
export function deltaTables(invFreq: Float32Array, oldPositions: ArrayLike<number>, newPositions: ArrayLike<number>, cos: Float32Array, sin: Float32Array): void {
  const half = invFreq.length
  for (let r = 0; r < oldPositions.length; r++) {
    for (let i = 0; i < half; i++) {
      const a = Math.fround(newPositions[r] * invFreq[i]) - Math.fround(oldPositions[r] * invFreq[i])
      cos[r * half + i] = Math.cos(a)
      sin[r * half + i] = Math.sin(a)
    }
  }
}

/**
 * The KeyRotation of a model (its RoPE inverse frequencies), run by the backend's `ropeRows` kernel on
 * the cached pages in place: what `PagedKVCache.reposition` calls to move post-RoPE keys. Source: the
 * re-rotation CacheBlend (Yao et al., EuroSys 2025, section 5) and llama.cpp's context shift apply.
 */
export function keyRotation(backend: Backend, invFreq: Float32Array): KeyRotation {
  const half = invFreq.length
  return (kTable, pageTokens, first, oldPositions, newPositions) => {
    const n = oldPositions.length
    if (n === 0) return
    const cos = new Float32Array(n * half)
    const sin = new Float32Array(n * half)
    deltaTables(invFreq, oldPositions, newPositions, cos, sin)
    const heap = backend.heap
    const c = heap.alloc(n * half * 4)
    const s = heap.alloc(n * half * 4)
    try {
      heap.F32.set(cos, c >> 2)
      heap.F32.set(sin, s >> 2)
      backend.ropeRows(kTable, pageTokens, first, n, half * 2, c, s)
    } finally {
      heap.release(c)
      heap.release(s)
    }
  }
}
