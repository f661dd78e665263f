/**
 * Rotary embedding in place, Hugging Face's rotate_half layout: channel i pairs with i + d/2.
 * x is [T][heads][d]; cos and sin are [T][d/2] (the caller computes them from positions and inverse
 * frequencies, so llama3 scaling and cache-relative positions need no kernel change).
 */
export function rope(x: usize, T: i32, heads: i32, d: i32, cos: usize, sin: usize): void {
  const half = d >> 1
  const h4 = half & ~3
  const rowT = <usize>(heads * d) << 2
  for (let t = 0; t < T; t++) {
    const ct = cos + <usize>(t * half) * 4
    const st = sin + <usize>(t * half) * 4
    for (let h = 0; h < heads; h++) {
      const a = x + <usize>t * rowT + (<usize>(h * d) << 2)
      const b = a + (<usize>half << 2)
      for (let i = 0; i < h4; i += 4) {
        const off = <usize>i << 2
        const x1 = v128.load(a + off)
        const x2 = v128.load(b + off)
        const c = v128.load(ct + off)
        const s = v128.load(st + off)
        v128.store(a + off, f32x4.sub(f32x4.mul(x1, c), f32x4.mul(x2, s)))
        v128.store(b + off, f32x4.add(f32x4.mul(x2, c), f32x4.mul(x1, s)))
      }
      for (let i = h4; i < half; i++) {
        const off = <usize>i << 2
        const x1 = load<f32>(a + off)
        const x2 = load<f32>(b + off)
        const c = load<f32>(ct + off)
        const s = load<f32>(st + off)
        store<f32>(a + off, x1 * c - x2 * s)
        store<f32>(b + off, x2 * c + x1 * s)
      }
    }
  }
}
