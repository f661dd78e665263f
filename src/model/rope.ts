import type { Backend } from '../backend/backend.js'

/**
 * RoPE tables: cos and sin of position x inverse frequency, in float32 as Transformers computes them
 * (the angle rounded to float32 before cos/sin), written into arena buffers for the rope kernel.
 */
export class RopeTables {
  constructor(
    private readonly backend: Backend,
    readonly invFreq: Float32Array,
  ) {}

  /** writes cos and sin [positions.length][d/2] at the two pointers */
  fill(positions: ArrayLike<number>, cos: number, sin: number): void {
    const F = this.backend.heap.F32
    const half = this.invFreq.length
    for (let t = 0; t < positions.length; t++) {
      const p = positions[t]
      for (let i = 0; i < half; i++) {
        const angle = Math.fround(p * this.invFreq[i])
        F[(cos >> 2) + t * half + i] = Math.cos(angle)
        F[(sin >> 2) + t * half + i] = Math.sin(angle)
      }
    }
  }

  /** rotates x [rows][heads][d] in place, one position per row (arena temporaries, released after) */
  rotate = (x: number, rows: number, heads: number, positions: ArrayLike<number>): void => {
    const heap = this.backend.heap
    const half = this.invFreq.length
    const cos = heap.alloc(rows * half * 4)
    const sin = heap.alloc(rows * half * 4)
    try {
      this.fill(positions, cos, sin)
      this.backend.rope(x, rows, heads, half * 2, cos, sin)
    } finally {
      heap.release(cos)
      heap.release(sin)
    }
  }
}
