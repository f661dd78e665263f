// Softmax family. exp is scalar (Mathf.exp, correctly rounded enough to match the TypeScript twin); the
// max, scaling and summing passes are SIMD. A row whose max is -inf (nothing attendable) becomes zeros
// instead of NaN, in every kernel here and in the reference twin.

/** Largest of n floats (SIMD with a scalar tail); -inf for a row of -inf. */
export function rowMax(x: usize, n: i32): f32 {
  let m = f32x4.splat(-Infinity)
  let i = 0
  for (; i + 4 <= n; i += 4) m = f32x4.max(m, v128.load(x + (<usize>i << 2)))
  let s = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)))
  for (; i < n; i++) s = max(s, load<f32>(x + (<usize>i << 2)))
  return s
}

/** sum exp(x_i - m), summed in float64 so long rows lose nothing to rounding. */
function sumExp(x: usize, n: i32, m: f32): f64 {
  let s: f64 = 0
  for (let i = 0; i < n; i++) s += <f64>Mathf.exp(load<f32>(x + (<usize>i << 2)) - m)
  return s
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
    let s: f64 = 0
    for (let i = 0; i < n; i++) {
      const p = row + (<usize>i << 2)
      const e = Mathf.exp(load<f32>(p) - m)
      store<f32>(p, e)
      s += <f64>e
    }
    const inv = f32x4.splat(<f32>(1 / s))
    let i = 0
    for (; i + 4 <= n; i += 4) {
      const p = row + (<usize>i << 2)
      v128.store(p, f32x4.mul(v128.load(p), inv))
    }
    const invs = <f32>(1 / s)
    for (; i < n; i++) {
      const p = row + (<usize>i << 2)
      store<f32>(p, load<f32>(p) * invs)
    }
  }
}

/** log(sum exp(x_i)) over n floats, shifted by the max so it neither overflows nor underflows. */
export function logSumExp(x: usize, n: i32): f32 {
  const m = rowMax(x, n)
  if (m == -Infinity || m == Infinity) return m
  return <f32>(<f64>m + Math.log(sumExp(x, n, m)))
}

/** out[i] = sum over rows of softmax(row)[i] (x unchanged): each head's vote for each token. */
export function softVote(x: usize, rows: i32, n: i32, out: usize): void {
  memory.fill(out, 0, <usize>n << 2)
  for (let r = 0; r < rows; r++) {
    const row = x + (<usize>r * <usize>n << 2)
    const m = rowMax(row, n)
    if (m == -Infinity) continue
    const inv = <f32>(1 / sumExp(row, n, m))
    for (let i = 0; i < n; i++) {
      const o = out + (<usize>i << 2)
      store<f32>(o, load<f32>(o) + Mathf.exp(load<f32>(row + (<usize>i << 2)) - m) * inv)
    }
  }
}
