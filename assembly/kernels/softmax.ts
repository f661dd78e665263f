import { expv, exp1 } from './exp'

// Softmax family, all SIMD: max, exp (expv, ~1 ulp), sum and scaling four floats at a time, scalar
// tails through the same expv on a splatted lane so every element sees the same arithmetic. A row whose
// max is -inf (nothing attendable) becomes zeros instead of NaN, here and in the reference twin.

/** Largest of n floats; -inf for a row of -inf. */
export function rowMax(x: usize, n: i32): f32 {
  let m = f32x4.splat(-Infinity)
  let i = 0
  for (; i + 4 <= n; i += 4) m = f32x4.max(m, v128.load(x + (<usize>i << 2)))
  let s = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)))
  for (; i < n; i++) s = max(s, load<f32>(x + (<usize>i << 2)))
  return s
}

/**
 * sum exp(x_i - m); with dst != 0 also writes each exp(x_i - m) to dst (may equal x). Four lane sums,
 * folded in float64 at the end, keep long rows accurate.
 */
function expSum(x: usize, n: i32, m: f32, dst: usize): f64 {
  const vm = f32x4.splat(m)
  let acc = f32x4.splat(0)
  let i = 0
  for (; i + 4 <= n; i += 4) {
    const e = expv(f32x4.sub(v128.load(x + (<usize>i << 2)), vm))
    if (dst) v128.store(dst + (<usize>i << 2), e)
    acc = f32x4.add(acc, e)
  }
  let s: f64 = <f64>f32x4.extract_lane(acc, 0) + <f64>f32x4.extract_lane(acc, 1) + <f64>f32x4.extract_lane(acc, 2) + <f64>f32x4.extract_lane(acc, 3)
  for (; i < n; i++) {
    const e = exp1(load<f32>(x + (<usize>i << 2)) - m)
    if (dst) store<f32>(dst + (<usize>i << 2), e)
    s += <f64>e
  }
  return s
}

/** x[i] *= a over n floats. */
function scaleRow(x: usize, n: i32, a: f32): void {
  const va = f32x4.splat(a)
  let i = 0
  for (; i + 4 <= n; i += 4) v128.store(x + (<usize>i << 2), f32x4.mul(v128.load(x + (<usize>i << 2)), va))
  for (; i < n; i++) store<f32>(x + (<usize>i << 2), load<f32>(x + (<usize>i << 2)) * a)
}

/** Each of `rows` rows of n floats replaced by its softmax, in place. */
export function softmaxRows(x: usize, rows: i32, n: i32): void {
  for (let r = 0; r < rows; r++) {
    const row = x + (<usize>r * <usize>n << 2)
    const m = rowMax(row, n)
    if (m == -Infinity) {
      memory.fill(row, 0, <usize>n << 2)
      continue
    }
    scaleRow(row, n, <f32>(1 / expSum(row, n, m, row)))
  }
}

/** log(sum exp(x_i)) over n floats, shifted by the max so it neither overflows nor underflows. */
export function logSumExp(x: usize, n: i32): f32 {
  const m = rowMax(x, n)
  if (m == -Infinity || m == Infinity) return m
  return <f32>(<f64>m + Math.log(expSum(x, n, m, 0)))
}

/** out[i] = sum over rows of softmax(row)[i] (x unchanged): each head's vote for each token. */
export function softVote(x: usize, rows: i32, n: i32, out: usize): void {
  memory.fill(out, 0, <usize>n << 2)
  for (let r = 0; r < rows; r++) {
    const row = x + (<usize>r * <usize>n << 2)
    const m = rowMax(row, n)
    if (m == -Infinity) continue
    const inv = <f32>(1 / expSum(row, n, m, 0))
    const vm = f32x4.splat(m)
    const vinv = f32x4.splat(inv)
    let i = 0
    for (; i + 4 <= n; i += 4) {
      const o = out + (<usize>i << 2)
      const e = expv(f32x4.sub(v128.load(row + (<usize>i << 2)), vm))
      v128.store(o, f32x4.add(v128.load(o), f32x4.mul(e, vinv)))
    }
    for (; i < n; i++) {
      const o = out + (<usize>i << 2)
      store<f32>(o, load<f32>(o) + exp1(load<f32>(row + (<usize>i << 2)) - m) * inv)
    }
  }
}
