// Centered 1-D pooling (odd kernel, stride 1, output as long as the input), as SnapKV smooths its votes.
// The interior, where the whole window lies inside [0, n), runs four outputs per step with unaligned
// loads; the edges, where padding enters, are scalar.

/** out[i] = max of x over [i-r, i+r] clipped to [0, n) (padding is -inf, so clipping is the same). */
export function maxPool1d(x: usize, n: i32, kernel: i32, out: usize): void {
  const r = kernel >> 1
  let i = 0
  for (; i < n && i < r; i++) store<f32>(out + (<usize>i << 2), maxWindow(x, n, i, r))
  for (; i + 4 <= n - r; i += 4) {
    let m = v128.load(x + (<usize>(i - r) << 2))
    for (let j = 1; j < kernel; j++) m = f32x4.max(m, v128.load(x + (<usize>(i - r + j) << 2)))
    v128.store(out + (<usize>i << 2), m)
  }
  for (; i < n; i++) store<f32>(out + (<usize>i << 2), maxWindow(x, n, i, r))
}

function maxWindow(x: usize, n: i32, i: i32, r: i32): f32 {
  let m: f32 = -Infinity
  const hi = min(n - 1, i + r)
  for (let j = max(0, i - r); j <= hi; j++) m = max(m, load<f32>(x + (<usize>j << 2)))
  return m
}

/** torch avg_pool1d(kernel, stride 1, padding kernel>>1, count_include_pad=True): sum of the window / kernel. */
export function avgPool1d(x: usize, n: i32, kernel: i32, out: usize): void {
  const r = kernel >> 1
  const k = <f32>kernel
  const vk = f32x4.splat(k)
  let i = 0
  for (; i < n && i < r; i++) store<f32>(out + (<usize>i << 2), sumWindow(x, n, i, r) / k)
  for (; i + 4 <= n - r; i += 4) {
    let s = v128.load(x + (<usize>(i - r) << 2))
    for (let j = 1; j < kernel; j++) s = f32x4.add(s, v128.load(x + (<usize>(i - r + j) << 2)))
    v128.store(out + (<usize>i << 2), f32x4.div(s, vk))
  }
  for (; i < n; i++) store<f32>(out + (<usize>i << 2), sumWindow(x, n, i, r) / k)
}

function sumWindow(x: usize, n: i32, i: i32, r: i32): f32 {
  let s: f32 = 0
  const hi = min(n - 1, i + r)
  for (let j = max(0, i - r); j <= hi; j++) s += load<f32>(x + (<usize>j << 2))
  return s
}
